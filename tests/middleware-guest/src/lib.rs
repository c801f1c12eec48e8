//! A middleware for the end-to-end tests. Every layer of a chain runs the
//! same code; the request's `x-mw` field (words separated by commas) says
//! what it does (`word@N`: only the layer at depth N does it):
//! * nothing of the below: pass the request on, and the response back with
//!   `x-via` naming this layer's depth (1 the outermost): the depth is one
//!   more than the `x-seen` fields the request had, and the layer adds its
//!   own before passing it on, so the backend sees the order too;
//! * `upper`: the response body upper-cased, as it streams;
//! * `upper-request`: the request body upper-cased, as it streams;
//! * `answer`: answer by itself, never calling the next handler;
//! * `summary`: read the next handler's response and answer with its
//!   status, its content type and its length;
//! * `drop`: answer at once without reading the next handler's body;
//! * `trap-before`: trap once the next handler's head came;
//! * `trap-after`: trap after passing on the first piece of the body;
//! * `twice`: call the next handler a second time, and answer with that
//!   call's error;
//! * `retarget`: pass the request on for another path, and answer with the
//!   error that gives;
//! * `wait`: wait forever (past `WasmTimeout`) once the head came;
//! * `pause`: wait 200 ms before calling the next handler, then pass on as
//!   usual (the host wakes a guest whose timer fired);
//! * `count`: pass on as usual, with `x-instance-requests` in the response
//!   saying how many requests this instance has been given, this one
//!   included (more than 1 under `WasmInstanceReuse`).

use std::sync::atomic::{AtomicU32, Ordering};
use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::wit_bindgen::{self, StreamReader, StreamResult};
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(Middleware);

/// The imported handler: the next one, which Apache runs.
mod next {
    use super::wit_bindgen;
    wit_bindgen::generate!({
        inline: "package mod-wasm:tests; world next { import wasi:http/handler@0.3.0; }",
        path: "../../wit/wasi-0.3",
        with: {
            "wasi:http/types@0.3.0": wasip3::http::types,
            "wasi:clocks/types@0.3.0": wasip3::clocks::types,
        },
        generate_all,
        runtime_path: "wasip3::wit_bindgen::rt",
    });
}
use next::wasi::http::handler;

struct Middleware;

/// Requests this instance has been given.
static REQUESTS: AtomicU32 = AtomicU32::new(0);

const PIECE: usize = 64 * 1024;

impl wasip3::exports::http::handler::Guest for Middleware {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let requests = REQUESTS.fetch_add(1, Ordering::Relaxed) + 1;
        let headers = request.get_headers();
        let words = headers
            .get("x-mw")
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        let depth = headers.get("x-seen").len() + 1;
        let at_depth = format!("@{depth}");
        let has = |word: &str| {
            words
                .split(',')
                .map(str::trim)
                .any(|w| w == word || w.strip_suffix(at_depth.as_str()) == Some(word))
        };
        if has("answer") {
            return text(200, format!("answered by middleware {depth}\n"));
        }
        if has("pause") {
            wasip3::clocks::monotonic_clock::wait_for(200_000_000).await;
        }
        let forwarded = headers.clone();
        forwarded
            .append("x-seen", depth.to_string().as_bytes())
            .map_err(|_| ErrorCode::InternalError(None))?;
        let method = request.get_method();
        let target = request.get_path_with_query();
        let (_, done) = wit_future::new(|| Ok(()));
        let (body, trailers) = Request::consume_body(request, done);
        let body = if has("upper-request") {
            upper(body)
        } else {
            body
        };
        let (passed, _sent) = Request::new(forwarded, Some(body), trailers, None);
        let _ = passed.set_method(&method);
        let target = if has("retarget") {
            Some("/elsewhere".to_owned())
        } else {
            target
        };
        let _ = passed.set_path_with_query(target.as_deref());
        let response = match handler::handle(passed).await {
            Ok(response) => response,
            Err(code) if has("retarget") => return text(200, format!("next failed: {code:?}\n")),
            Err(code) => return Err(code),
        };
        if has("twice") {
            let (_, no_trailers) = wit_future::new(|| Ok(None));
            let (again, _) = Request::new(Fields::new(), None, no_trailers, None);
            let _ = again.set_path_with_query(Some("/"));
            return match handler::handle(again).await {
                Ok(_) => text(200, "the second call was served\n".into()),
                Err(code) => text(200, format!("second call: {code:?}\n")),
            };
        }
        if has("trap-before") {
            panic!("trapped after the next handler's head");
        }
        if has("wait") {
            wasip3::clocks::monotonic_clock::wait_for(3_600_000_000_000).await;
        }
        let status = response.get_status_code();
        let headers = response.get_headers().clone();
        if has("drop") {
            drop(response);
            return text(200, format!("dropped a {status} response\n"));
        }
        let (_, done) = wit_future::new(|| Ok(()));
        let (body, trailers) = Response::consume_body(response, done);
        if has("summary") {
            let kind = headers
                .get("content-type")
                .first()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let length = body.collect().await.len();
            return text(
                200,
                format!("status {status}, type {kind}, {length} bytes\n"),
            );
        }
        headers
            .append("x-via", depth.to_string().as_bytes())
            .map_err(|_| ErrorCode::InternalError(None))?;
        if has("count") {
            headers
                .append("x-instance-requests", requests.to_string().as_bytes())
                .map_err(|_| ErrorCode::InternalError(None))?;
        }
        let body = if has("upper") {
            let _ = headers.delete("content-length");
            upper(body)
        } else if has("trap-after") {
            // Chunked, so that the cut shows.
            let _ = headers.delete("content-length");
            trap_after_first(body)
        } else {
            body
        };
        let (out, _delivered) = Response::new(headers, Some(body), trailers);
        out.set_status_code(status)
            .map_err(|()| ErrorCode::InternalError(None))?;
        Ok(out)
    }
}

/// A response of `status` with `body` as its text.
fn text(status: u16, body: String) -> Result<Response, ErrorCode> {
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
        .map_err(|_| ErrorCode::InternalError(None))?;
    let (mut out, contents) = wit_stream::new();
    let (_, no_trailers) = wit_future::new(|| Ok(None));
    let (response, _) = Response::new(headers, Some(contents), no_trailers);
    response
        .set_status_code(status)
        .map_err(|()| ErrorCode::InternalError(None))?;
    wit_bindgen::spawn(async move {
        out.write_all(body.into_bytes()).await;
    });
    Ok(response)
}

/// `body`, upper-cased piece by piece by a task of its own.
fn upper(mut body: StreamReader<u8>) -> StreamReader<u8> {
    let (mut out, reader) = wit_stream::new();
    wit_bindgen::spawn(async move {
        loop {
            let (result, mut piece) = body.read(Vec::with_capacity(PIECE)).await;
            if !matches!(result, StreamResult::Complete(_)) {
                break;
            }
            piece.make_ascii_uppercase();
            if !out.write_all(piece).await.is_empty() {
                break;
            }
        }
    });
    reader
}

/// `body`'s first piece, then a trap.
fn trap_after_first(mut body: StreamReader<u8>) -> StreamReader<u8> {
    let (mut out, reader) = wit_stream::new();
    wit_bindgen::spawn(async move {
        let (_, piece) = body.read(Vec::with_capacity(PIECE)).await;
        out.write_all(piece).await;
        // Long enough for the piece to reach the client first.
        wasip3::clocks::monotonic_clock::wait_for(100_000_000).await;
        panic!("trapped after the first piece of the body");
    });
    reader
}
