//! A reverse proxy: `<location>/<rest>` is fetched from `$UPSTREAM/<rest>`
//! (the location's `WasmEnv UPSTREAM`, allowed by `WasmAllowOutgoing`),
//! both bodies streamed through.

use mod_wasm_guest::http::StatusCode;
use mod_wasm_guest::{IntoResponse, Request, Response, apache, client, handler};

#[handler]
async fn handle(req: Request) -> Response {
    let Ok(upstream) = std::env::var("UPSTREAM") else {
        return Err::<(), _>("WasmEnv UPSTREAM is not set for this location").into_response();
    };
    let location = apache::location();
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let rest = target
        .strip_prefix(location.trim_end_matches('/'))
        .unwrap_or(target)
        .to_string();
    let (mut parts, body) = req.into_parts();
    parts.uri = match format!("{}{rest}", upstream.trim_end_matches('/')).parse() {
        Ok(uri) => uri,
        Err(_) => return (StatusCode::BAD_REQUEST, "Bad Request\n").into_response(),
    };
    parts.headers.insert(
        "x-forwarded-for",
        match apache::client_addr().parse() {
            Ok(value) => value,
            Err(_) => return Err::<(), _>("unprintable client address").into_response(),
        },
    );
    match client::send_async(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(error) => {
            apache::log::warn(&format!("proxy: {upstream} failed: {error}"));
            (StatusCode::BAD_GATEWAY, "Bad Gateway\n").into_response()
        }
    }
}
