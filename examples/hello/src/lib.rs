//! The smallest mod_wasm component: every request gets a greeting.
//!
//! Built with `cargo build --release --target wasm32-wasip2 -p hello`; the
//! result exports `wasi:http/incoming-handler` and is served by
//! `examples/hello/hello.conf`.

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body of a new response");
        ResponseOutparam::set(response_out, Ok(response));

        let message = format!("Hello from WebAssembly! You asked for {path}\n");
        let stream = body.write().expect("the stream of a new body");
        // At most 4096 bytes per call; the greeting is far shorter.
        stream
            .blocking_write_and_flush(message.as_bytes())
            .expect("the client is reading");
        drop(stream);
        OutgoingBody::finish(body, None).expect("the body is complete");
    }
}

wasi::http::proxy::export!(Hello);
