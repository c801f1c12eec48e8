//! Static files from the directory the location maps into the guest as
//! `/site` (`WasmMapDir /site <dir> ro`), streamed in 64 KiB chunks.

use mod_wasm_guest::http::StatusCode;
use mod_wasm_guest::http::header::CONTENT_TYPE;
use mod_wasm_guest::{Body, IntoResponse, Request, Response, apache, handler};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Component, Path, PathBuf};

const ROOT: &str = "/site";

#[handler]
fn handle(req: Request) -> Response {
    let location = apache::location();
    // Under <Directory> or <LocationMatch>, the location is no URL prefix:
    // nothing matches then.
    let wanted = req
        .uri()
        .path()
        .strip_prefix(location.trim_end_matches('/'));
    let Some(mut path) = wanted.and_then(file_path) else {
        return (StatusCode::NOT_FOUND, "Not Found\n").into_response();
    };
    if path.is_dir() {
        path.push("index.html");
    }
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return (StatusCode::NOT_FOUND, "Not Found\n").into_response();
        }
        Err(e) => return Err::<(), _>(e).into_response(),
    };
    let body = Body::from_writer(move |out| {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = file
                .read(&mut buffer)
                .map_err(|e| mod_wasm_guest::Error::Stream(e.to_string()))?;
            if read == 0 {
                return Ok(());
            }
            out.write_chunk(&buffer[..read])?;
        }
    });
    Response::builder()
        .header(CONTENT_TYPE, content_type(&path))
        .body(body)
        .expect("the content types are valid header values")
}

/// The file under `/site` for the URL path, or `None` for a path that tries
/// to leave it (WASI would refuse it anyway; this gives a clean 404).
fn file_path(url_path: &str) -> Option<PathBuf> {
    let mut path = PathBuf::from(ROOT);
    for part in Path::new(url_path.trim_start_matches('/')).components() {
        match part {
            Component::Normal(name) => path.push(name),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(path)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}
