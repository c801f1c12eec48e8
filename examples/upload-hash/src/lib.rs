//! The SHA-256 of an upload, computed as the body streams in: a 1 GiB
//! upload needs no 1 GiB buffer.

use mod_wasm_guest::http::{Method, StatusCode};
use mod_wasm_guest::{IntoResponse, Request, Response, handler};
use sha2::{Digest, Sha256};

#[handler]
fn handle(req: Request) -> Response {
    if req.method() != Method::POST && req.method() != Method::PUT {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "POST or PUT a body to hash it\n",
        )
            .into_response();
    }
    let mut body = req.into_body();
    let mut hasher = Sha256::new();
    let hashed = std::io::copy(&mut body, &mut hasher);
    match hashed {
        Ok(size) => format!("sha256 {:x}\nbytes {size}\n", hasher.finalize()).into_response(),
        Err(error) => Err::<(), _>(error).into_response(),
    }
}
