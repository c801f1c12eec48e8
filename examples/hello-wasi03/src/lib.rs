//! Hello for WASI 0.3: `handle` is an async function that returns the
//! response at once, with a body stream a spawned task then writes.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(Hello);

struct Hello;

impl wasip3::exports::http::handler::Guest for Hello {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        let (mut body, body_out) = wit_stream::new();
        // No trailers: the future resolves to "none" when dropped unwritten.
        let (trailers, trailers_out) = wit_future::new(|| Ok(None));
        let (response, _delivered) = Response::new(Fields::new(), Some(body_out), trailers_out);
        drop(trailers);
        wit_bindgen::spawn(async move {
            let text = format!("Hello from WASI 0.3! You asked for {path}\n");
            body.write_all(text.into_bytes()).await;
        });
        Ok(response)
    }
}
