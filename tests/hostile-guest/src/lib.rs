//! A guest written to break its host, for `tests/e2e/sandbox/test_hostile.py`. Each
//! attack is the last segment of the request path; the test asserts the
//! safe outcome. Where the host may refuse a step (a header, a status, a
//! symlink), the guest carries on without it and says in its body what was
//! refused, so that the test sees both the refusal and the wire.

use mod_wasm_guest::wasi;
use wasi::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// A whole response, as a smuggler would append it to a body.
const FORGED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-Forged: 1\r\n\r\nforged!";

struct Hostile;

impl wasi::exports::http::incoming_handler::Guest for Hostile {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        match path.rsplit('/').next().unwrap_or("") {
            // Framing: bodies that do not match their Content-Length.
            "overrun" => {
                let body = [b"hello".as_slice(), FORGED].concat();
                send(out, 200, &[("content-length", b"5")], &[&body]);
            }
            "overrun-4k" => send(out, 200, &[("content-length", b"5")], &[&[b'A'; 4096]]),
            "overrun-later" => {
                let second = [b"56789".as_slice(), FORGED].concat();
                send(out, 200, &[("content-length", b"10")], &[b"01234", &second]);
            }
            "two-lengths" => send(
                out,
                200,
                &[("content-length", b"5"), ("content-length", b"60")],
                &[&[b"hello".as_slice(), FORGED].concat()],
            ),
            // Headers the host must refuse or keep off the wire.
            "hop-by-hop" => try_headers(
                out,
                &[
                    ("transfer-encoding", b"chunked"),
                    ("connection", b"keep-alive, x-secret"),
                    ("keep-alive", b"timeout=999"),
                    ("upgrade", b"h2c"),
                    ("trailer", b"x-late"),
                ],
                // Chunk framing of its own, in case the header got through.
                b"5\r\nhello\r\n0\r\n\r\n",
            ),
            "bad-headers" => try_headers(
                out,
                &[
                    ("x-crlf", b"a\r\nX-Injected: 1"),
                    ("x-lf", b"a\nX-Injected: 1"),
                    ("x-nul", b"a\0b"),
                    ("x-cr", b"a\rb"),
                    ("x-bad name", b"v"),
                    ("x-colon:", b"v"),
                    ("x-injected\r\nx-more", b"v"),
                    ("", b"empty name"),
                ],
                b"body\n",
            ),
            "many-headers" => many_headers(query, out),
            "huge-header" => try_headers(out, &[("x-huge", &vec![b'h'; 1 << 20])], b"body\n"),
            "status" => status(query, out),
            // The filesystem of a read-write grant at /data.
            "symlink" => symlink(query, out),
            "read" => read(query, out),
            // The error log.
            "log-control" => {
                eprintln!("evil\x1b[2J\x1b[31mred\0nul\rcarriage [core:emerg] forged");
                send(out, 200, &[], &[b"logged\n"]);
            }
            "log-flood" => {
                let line = "f".repeat(1000);
                for _ in 0..10_000 {
                    eprintln!("{line}");
                }
                send(out, 200, &[], &[b"flooded\n"]);
            }
            _ => send(out, 404, &[], &[b"no such attack\n"]),
        }
    }
}

wasi::http::proxy::export!(Hostile);

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Sends a head, then each piece in one `blocking-write-and-flush` (as far
/// as the host lets it), then finishes the body, ignoring every refusal: a
/// hostile guest does not stop when told.
fn send(out: ResponseOutparam, status: u16, headers: &[(&str, &[u8])], pieces: &[&[u8]]) {
    let fields = Fields::new();
    for (name, value) in headers {
        let _ = fields.append(name, value);
    }
    respond_with(out, status, fields, pieces);
}

fn respond_with(out: ResponseOutparam, status: u16, fields: Fields, pieces: &[&[u8]]) {
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else {
        ResponseOutparam::set(out, Ok(response));
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body.write() {
        for piece in pieces {
            for part in piece.chunks(4096) {
                let _ = stream.blocking_write_and_flush(part);
            }
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(body, None);
}

/// Tries each header; answers 200 with one line per header, "accepted" or
/// "refused", and `body` after them.
fn try_headers(out: ResponseOutparam, headers: &[(&str, &[u8])], body: &[u8]) {
    let fields = Fields::new();
    let mut text = String::new();
    for (name, value) in headers {
        let verdict = match fields.append(name, value) {
            Ok(()) => "accepted",
            Err(_) => "refused",
        };
        text.push_str(&format!("{} {verdict}\n", name.escape_debug()));
    }
    respond_with(out, 200, fields, &[text.as_bytes(), body]);
}

/// Appends `n` headers (default 10,000) until the host refuses one.
fn many_headers(query: &str, out: ResponseOutparam) {
    let n: usize = query_value(query, "n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let fields = Fields::new();
    let mut accepted = 0;
    for i in 0..n {
        if fields.append(&format!("x-h{i}"), b"v").is_err() {
            break;
        }
        accepted += 1;
    }
    let text = format!("accepted {accepted} of {n}\n");
    respond_with(out, 200, fields, &[text.as_bytes()]);
}

/// A status the guest should not be able to send; the host's answer shows.
fn status(query: &str, out: ResponseOutparam) {
    let code: u16 = query_value(query, "code")
        .and_then(|c| c.parse().ok())
        .unwrap_or(99);
    let response = OutgoingResponse::new(Fields::new());
    let verdict = match response.set_status_code(code) {
        Ok(()) => "accepted",
        Err(()) => "refused",
    };
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body.write() {
        let _ = stream.blocking_write_and_flush(format!("status {code} {verdict}\n").as_bytes());
    }
    let _ = OutgoingBody::finish(body, None);
}

/// The preopened directory the location grants as `/data`.
fn data_dir() -> Option<Descriptor> {
    wasi::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == "/data")
        .map(|(dir, _)| dir)
}

/// Plants a symlink `link` → `target` (default: out of the grant to
/// /etc/passwd) in the writable grant.
fn symlink(query: &str, out: ResponseOutparam) {
    let target = query_value(query, "target").unwrap_or("../../../../../../etc/passwd");
    let link = query_value(query, "link").unwrap_or("escape");
    let verdict = match data_dir() {
        None => "no /data grant".to_string(),
        Some(dir) => match dir.symlink_at(target, link) {
            Ok(()) => "created".to_string(),
            Err(e) => format!("refused: {e:?}"),
        },
    };
    // The grant is writable all the same: an ordinary file goes in.
    let plain = match std::fs::write("/data/plain", b"written") {
        Ok(()) => "written".to_string(),
        Err(e) => format!("refused: {e}"),
    };
    let text = format!("symlink {verdict}\nplain file {plain}\n");
    send(out, 200, &[], &[text.as_bytes()]);
}

/// Opens `path` below the grant (`..` forms, absolute paths) and reports
/// what it read.
fn read(query: &str, out: ResponseOutparam) {
    let path = query_value(query, "path").unwrap_or("../../etc/passwd");
    let verdict = match data_dir() {
        None => "no /data grant".to_string(),
        Some(dir) => match dir.open_at(
            PathFlags::SYMLINK_FOLLOW,
            path,
            OpenFlags::empty(),
            DescriptorFlags::READ,
        ) {
            Err(e) => format!("refused: {e:?}"),
            Ok(file) => match file.read(4096, 0) {
                Ok((bytes, _)) => format!("read {}", String::from_utf8_lossy(&bytes)),
                Err(e) => format!("unreadable: {e:?}"),
            },
        },
    };
    send(out, 200, &[], &[format!("{verdict}\n").as_bytes()]);
}
