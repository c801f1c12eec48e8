//! Server-sent events: `?count=N&interval_ms=M` events, each sent to the
//! client when it happens, not when the response is complete.

use mod_wasm_guest::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use mod_wasm_guest::{Body, Request, RequestExt, Response, handler};
use std::time::{Duration, Instant};

#[handler]
fn handle(req: Request) -> Response {
    let count: u32 = req
        .query("count")
        .and_then(|n| n.parse().ok())
        .unwrap_or(5)
        .min(1000);
    let interval = req
        .query("interval_ms")
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
        .min(10_000);
    let interval = Duration::from_millis(interval);
    let body = Body::from_writer(move |out| {
        let start = Instant::now();
        for tick in 1..=count {
            let elapsed = start.elapsed().as_millis();
            out.write_chunk(format!("id: {tick}\ndata: tick {tick} at {elapsed} ms\n\n"))?;
            if tick < count {
                std::thread::sleep(interval);
            }
        }
        out.write_chunk("event: done\ndata: bye\n\n")
    });
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("static header names and values are valid")
}
