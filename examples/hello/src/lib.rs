//! The smallest mod_wasm component: every request gets a greeting.
//!
//! Built with `cargo build --release --target wasm32-wasip2 -p hello`; the
//! result exports `wasi:http/incoming-handler` and is served by
//! `examples/hello/hello.conf`.

use mod_wasm_guest::wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Hello;

impl mod_wasm_guest::wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let message = format!("Hello from WebAssembly! You asked for {path}\n");
        let headers: &[(&str, &[u8])] = &[("content-type", b"text/plain; charset=utf-8")];
        // An error here means the client went away: nobody left to tell.
        let _ = mod_wasm_guest::respond(out, 200, headers, message.as_bytes());
    }
}

mod_wasm_guest::wasi::http::proxy::export!(Hello);
