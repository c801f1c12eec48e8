//! Security headers around whatever Apache serves. A middleware: each
//! request goes to the next handler unchanged (a static file, PHP, a
//! proxied backend), and its response comes back with
//! * the usual security headers, each only where the backend set none of
//!   its own (a page that brings its own `Content-Security-Policy` keeps
//!   it): `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy`,
//!   `Content-Security-Policy` (the section's `WasmConfigVar
//!   content-security-policy`, or `default-src 'self'`) and, on https
//!   only (browsers ignore it on http), `Strict-Transport-Security`;
//! * `X-Powered-By` removed, which names the backend's software;
//! * a `Server-Timing` entry `backend;dur=…`: the milliseconds until the
//!   next handler's head came, added beside any the backend wrote.
//!
//! The body streams through as it came, with its length: the middleware
//! never holds more than the piece in flight.

use wasip3::clocks::monotonic_clock;
use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme};
use wasip3::wit_future;

wasip3::http::service::export!(SecurityHeaders);

/// The imported handler: the next one, which Apache runs.
mod next {
    wasip3::wit_bindgen::generate!({
        inline: "package mod-wasm:examples; world next { import wasi:http/handler@0.3.0; }",
        path: "../../wit/wasi-0.3",
        with: {
            "wasi:http/types@0.3.0": wasip3::http::types,
            "wasi:clocks/types@0.3.0": wasip3::clocks::types,
        },
        generate_all,
        runtime_path: "wasip3::wit_bindgen::rt",
    });
}

/// The section's `WasmConfigVar` variables.
mod config {
    wasip3::wit_bindgen::generate!({
        path: "../../wit/deps/config.wit",
        world: "wasi:config/imports@0.2.0-draft-2024-09-27",
        runtime_path: "wasip3::wit_bindgen::rt",
    });
}

use config::wasi::config::store;
use next::wasi::http::handler;

const DEFAULT_POLICY: &str = "default-src 'self'";

struct SecurityHeaders;

impl wasip3::exports::http::handler::Guest for SecurityHeaders {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let https = matches!(request.get_scheme(), Some(Scheme::Https));
        let started = monotonic_clock::now();
        let response = handler::handle(request).await?;
        let waited = monotonic_clock::now().saturating_sub(started);

        let status = response.get_status_code();
        let headers = response.get_headers().clone();
        let policy = store::get("content-security-policy")
            .ok()
            .flatten()
            .unwrap_or_else(|| DEFAULT_POLICY.to_owned());
        let mut added = vec![
            ("x-content-type-options", "nosniff".to_owned()),
            ("x-frame-options", "DENY".to_owned()),
            ("referrer-policy", "no-referrer".to_owned()),
            ("content-security-policy", policy),
        ];
        if https {
            added.push(("strict-transport-security", "max-age=31536000".to_owned()));
        }
        for (name, value) in added {
            if !headers.has(name) {
                set(&headers, name, &value)?;
            }
        }
        let _ = headers.delete("x-powered-by");
        // Nanoseconds to milliseconds, to a tenth.
        let millis = format!("{:.1}", waited as f64 / 1e6);
        headers
            .append("server-timing", format!("backend;dur={millis}").as_bytes())
            .map_err(|_| ErrorCode::InternalError(None))?;

        // The same body and trailers, handed on without reading them.
        let (_, done) = wit_future::new(|| Ok(()));
        let (body, trailers) = Response::consume_body(response, done);
        let (out, _delivered) = Response::new(headers, Some(body), trailers);
        out.set_status_code(status)
            .map_err(|()| ErrorCode::InternalError(None))?;
        Ok(out)
    }
}

fn set(headers: &Fields, name: &str, value: &str) -> Result<(), ErrorCode> {
    headers
        .set(name, &[value.as_bytes().to_vec()])
        .map_err(|_| ErrorCode::InternalError(None))
}
