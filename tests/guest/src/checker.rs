//! The guest as a `WasmAccessChecker`: when the request has an
//! `x-verdict` field, the answer is the verdict it names, whatever the path.

use crate::{method_name, respond, start};
use mod_wasm_guest::apache;
use mod_wasm_guest::raw::BodyReader;
use mod_wasm_guest::wasi::http::types::{IncomingRequest, ResponseOutparam};

/// Answers `request` as a checker if it asks for a verdict; gives it back
/// otherwise.
pub(crate) fn verdict(
    request: IncomingRequest,
    out: ResponseOutparam,
) -> Option<(IncomingRequest, ResponseOutparam)> {
    let wanted = request.headers().get("x-verdict");
    let Some(wanted) = wanted.first() else {
        return Some((request, out));
    };
    let target = request.path_with_query().unwrap_or_default();
    match wanted.as_slice() {
        // Allowed, with what the checker saw for the backend: the request's
        // head, the client, Apache's user, and how much body it could read.
        b"allow" => {
            let body = body_length(&request);
            let seen = format!(
                "{} {target} from {} user {} body {body}",
                method_name(request.method()),
                apache::client_addr(),
                apache::user().unwrap_or_else(|| "-".into())
            );
            let user = request.headers().get("x-user");
            let user = user.first().map(Vec::as_slice).unwrap_or(b"checked");
            respond(
                out,
                200,
                &[
                    ("wasm-auth-user", user),
                    ("wasm-auth-seen", seen.as_bytes()),
                    // Not a Wasm-Auth- field: the backend never sees it.
                    ("x-not-passed", b"1"),
                ],
                b"this body goes nowhere\n",
            )
        }
        b"deny" => respond(
            out,
            403,
            &[("content-type", b"text/x-refusal"), ("x-checker", b"0.2")],
            b"refused by the checker\n",
        ),
        b"login" => respond(
            out,
            401,
            &[("www-authenticate", b"Bearer realm=\"test\"")],
            b"log in first\n",
        ),
        b"redirect" => {
            let location = format!("/login?from={target}");
            respond(out, 302, &[("location", location.as_bytes())], b"")
        }
        // A refusal too big to keep.
        b"huge" => {
            let mut writer = start(out, 403, &[]);
            let piece = vec![b'r'; 64 * 1024];
            for _ in 0..32 {
                writer.write_all(&piece).expect("the host reads");
            }
            writer.finish().expect("the host reads");
        }
        b"informational" => respond(out, 103, &[], b""),
        b"trap" => core::arch::wasm32::unreachable(),
        b"spin" => loop {
            core::hint::spin_loop();
        },
        _ => respond(out, 400, &[], b"no such verdict\n"),
    }
    None
}

/// How many body bytes the guest could read: a checker is given none.
fn body_length(request: &IncomingRequest) -> usize {
    let Ok(mut body) = BodyReader::new(request) else {
        return usize::MAX;
    };
    let mut length = 0;
    while let Ok(Some(piece)) = body.read(64 * 1024) {
        length += piece.len();
    }
    length
}
