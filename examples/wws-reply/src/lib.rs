//! A worker written for Wasm Workers Server's Rust kit, moved to mod_wasm.
//! Only the `use` lines changed: `#[handler]` takes the same
//! `Request<String>` (the body read whole) and the same
//! `Result<Response<String>>`.
use anyhow::Result;
use mod_wasm_guest::handler;
use mod_wasm_guest::http::{Request, Response};

#[handler]
fn reply(req: Request<String>) -> Result<Response<String>> {
    Ok(Response::builder()
        .status(200)
        .header("x-generated-by", "mod_wasm")
        .body(format!(
            "Hello wasm! {} bytes came to {}\n",
            req.body().len(),
            req.uri().path()
        ))?)
}
