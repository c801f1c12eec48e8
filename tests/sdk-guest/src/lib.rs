//! Routes that exercise guest-sdk through Apache (tests/e2e/component/test_guest_sdk.py):
//! errors that must not trap, bodies that stream both ways, outgoing
//! requests side by side, and an async handler that would wait forever.

use mod_wasm_guest::apache::log::Level;
use mod_wasm_guest::http::{Method, StatusCode};
use mod_wasm_guest::{
    Body, Error, IntoResponse, Json, Request, RequestExt, Response, Router, apache, client,
    handler, join,
};

const MIB: usize = 1024 * 1024;

#[handler]
async fn handle(req: Request) -> Response {
    match req.uri().path() {
        // The async routes; the rest go through a Router.
        "/sdk/fan-out" => fan_out(req).await.into_response(),
        "/sdk/unordered" => unordered(req).await.into_response(),
        "/sdk/async-size" => async_size(req).await.into_response(),
        "/sdk/stalled" => std::future::pending::<Response>().await,
        // Under /sdk and under /sdk/quiet (LogLevel wasm:warn).
        path if path.ends_with("/log") => log(req),
        // Served as a file route (tests/e2e/sites/test_file_routes.py).
        path if path.starts_with("/routes/") => route_params(req),
        _ => routes().handle(req),
    }
}

/// The path and the file route's parameters, one per line.
fn route_params(req: Request) -> Response {
    let mut text = format!("path {}\n", req.uri().path());
    if let Some(mod_wasm_guest::Params(params)) = req.extensions().get() {
        for (name, value) in params {
            text.push_str(&format!("param {name} = {value}\n"));
        }
    }
    text.push_str(&format!("id {:?}\n", req.param("id")));
    text.into_response()
}

fn routes() -> Router {
    Router::new()
        // A body that is not the JSON asked for is a 400, not a 500.
        .post("/sdk/json-sum", |req: Request| {
            let numbers = req
                .into_body()
                .json::<std::collections::BTreeMap<String, i64>>()?;
            Ok::<_, Error>(Json(numbers.values().sum::<i64>()))
        })
        .get("/sdk/error", |_req: Request| {
            Err::<String, _>("secret detail")
        })
        .get("/sdk/bad-header", |_req: Request| {
            Response::builder()
                .header("connection", "close")
                .body(Body::from("no"))
        })
        .get("/sdk/chunks", |req: Request| {
            let n: usize = req.query("n").and_then(|n| n.parse().ok()).unwrap_or(3);
            Body::from_chunks((0..n).map(|i| format!("{i}\n")))
        })
        .get("/sdk/broken", |_req: Request| {
            Body::try_from_chunks([Ok("partial\n"), Err(Error::Body("the source broke"))])
        })
        .get("/sdk/big", |req: Request| {
            let mib: usize = req.query("mib").and_then(|n| n.parse().ok()).unwrap_or(1);
            Body::from_writer(move |out| {
                let piece: Vec<u8> = (0..=255u8).cycle().take(MIB).collect();
                for _ in 0..mib {
                    out.write_chunk(&piece)?;
                }
                Ok(())
            })
        })
        .route(Method::POST, "/sdk/echo", |req: Request| {
            let mut body = req.into_body();
            Body::from_writer(move |out| {
                while let Some(chunk) = body.chunk()? {
                    out.write_chunk(chunk)?;
                }
                Ok(())
            })
        })
        // Answers without reading the body: guest-sdk never opens it.
        .route(
            Method::POST,
            "/sdk/ignore-body",
            |_req: Request| "not read\n",
        )
        .get("/sdk/slow", |req: Request| {
            let ms: u64 = req.query("ms").and_then(|n| n.parse().ok()).unwrap_or(100);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            format!("slept {ms} ms\n")
        })
        .get("/sdk/fetch", |req: Request| {
            let authority = req
                .uri()
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let url = format!("http://{authority}/hello/fetched");
            let upstream = http_get(&url)?;
            client::send(upstream)?.into_body().into_string()
        })
}

fn http_get(url: &str) -> Result<Request<()>, Error> {
    Ok(mod_wasm_guest::http::Request::get(url).body(())?)
}

/// Writes `?text=` to Apache's log at `?level=`; answers whether that
/// level is enabled here.
fn log(req: Request) -> Response {
    let level = match req.query("level").as_deref() {
        Some("error") => Level::Error,
        Some("notice") => Level::Notice,
        Some("info") => Level::Info,
        _ => Level::Debug,
    };
    apache::log::write(level, &req.query("text").unwrap_or_default());
    let enabled = if apache::log::enabled(level) {
        "enabled"
    } else {
        "disabled"
    };
    format!("{enabled}\n").into_response()
}

/// Two slow outgoing requests in flight at once; answers both bodies.
async fn fan_out(req: Request) -> Result<String, Error> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let one = client::send_async(http_get(&format!("http://{authority}/sdk/slow?ms=1000"))?);
    let two = client::send_async(http_get(&format!("http://{authority}/sdk/slow?ms=1001"))?);
    let (one, two) = join(one, two).await;
    Ok(one?.into_body().into_string()? + &two?.into_body().into_string()?)
}

/// Three slow outgoing requests through `FuturesUnordered`, which wakes
/// itself after polling its children and then polls only those woken: the
/// executor must keep their waits across that self-wake.
async fn unordered(req: Request) -> Result<String, Error> {
    use futures::StreamExt;
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut pending = futures::stream::FuturesUnordered::new();
    for ms in [300, 200, 100] {
        let url = format!("http://{authority}/sdk/slow?ms={ms}");
        pending.push(client::send_async(http_get(&url)?));
    }
    let mut answers = String::new();
    while let Some(response) = pending.next().await {
        answers += &response?.into_body().into_string()?;
    }
    Ok(answers)
}

/// The request body's size, read with `chunk_async`.
async fn async_size(req: Request) -> Result<(StatusCode, String), Error> {
    let mut body = req.into_body();
    let (mut size, mut chunks) = (0, 0);
    while let Some(chunk) = body.chunk_async().await? {
        size += chunk.len();
        chunks += 1;
    }
    Ok((StatusCode::OK, format!("{size} bytes in {chunks} chunks\n")))
}
