//! Write mod_wasm guests — `wasi:http` components for Apache — in a few
//! lines, on the [`http`] crate's types.
//!
//! # Hello
//!
//! ```
//! use mod_wasm_guest::{handler, Request};
//!
//! #[handler]
//! fn handle(req: Request) -> String {
//!     format!("Hello from WebAssembly! You asked for {}\n", req.uri().path())
//! }
//! ```
//!
//! Build it as a `cdylib` crate with `cargo build --release --target
//! wasm32-wasip2` and serve the `.wasm` with `WasmComponent` (the README
//! says more; `cargo component build` works too). `#[handler]` exports the
//! function as the component's `wasi:http/incoming-handler`, called once
//! per request in a fresh instance. It may return anything
//! [`IntoResponse`]: text, bytes, [`Json`], a status, a `(status, body)`
//! pair, an `http::Response`, or a `Result` of those.
//!
//! # Errors never trap
//!
//! A handler that returns `Err` answers a plain 500; the error's text goes
//! to stderr, which mod_wasm writes to Apache's error log (never to the
//! client). The same holds for a response head the host refuses. A body
//! that fails half-way is cut, so the client does not take it for whole.
//!
//! ```
//! use mod_wasm_guest::{handler, Request, RequestExt};
//!
//! #[handler]
//! fn handle(req: Request) -> Result<String, std::num::ParseIntError> {
//!     let n: u64 = req.query("n").unwrap_or_default().parse()?;
//!     Ok(format!("{}\n", n * 2))
//! }
//! ```
//!
//! # Streaming both ways
//!
//! The request's [`Body`] streams in as the client sends it: read it with
//! [`Body::chunk`] or as a [`std::io::Read`]. A response body made with
//! [`Body::from_writer`] or [`Body::from_chunks`] streams out: each chunk
//! reaches the client when it is written, so a 1 GiB response needs no
//! 1 GiB buffer.
//!
//! ```
//! use mod_wasm_guest::{handler, Body, Request};
//! use std::io::Read;
//!
//! #[handler]
//! fn handle(mut req: Request) -> Result<Body, mod_wasm_guest::Error> {
//!     let mut size = 0;
//!     while let Some(chunk) = req.body_mut().chunk()? {
//!         size += chunk.len();
//!     }
//!     Ok(Body::from_writer(move |out| {
//!         for i in 0..3 {
//!             out.write_chunk(format!("chunk {i} of a reply to {size} bytes\n"))?;
//!         }
//!         Ok(())
//!     }))
//! }
//! ```
//!
//! # Routing and JSON
//!
//! [`Router`] dispatches by method and path (with `matchit`, the matcher
//! axum uses); [`Json`] answers with serde (feature `json`, on by default),
//! [`Body::json`] reads a JSON body.
//!
//! ```
//! use mod_wasm_guest::{handler, Json, Request, RequestExt, Response, Router};
//!
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Greeting { to: String }
//!
//! #[handler]
//! fn handle(req: Request) -> Response {
//!     Router::new()
//!         .get("/hello/{name}", |req: Request| {
//!             Json(Greeting { to: req.param("name").unwrap_or("you").into() })
//!         })
//!         .post("/hello", |req: Request| req.into_body().json::<Greeting>().map(Json))
//!         .handle(req)
//! }
//! ```
//!
//! # Async handlers and outgoing HTTP
//!
//! An `async fn` handler runs on a small executor driven by WASI pollables
//! ([`block_on`]); [`client::send`] and [`client::send_async`] send
//! requests with the same types (mod_wasm sends only where the location's
//! `WasmAllowOutgoing` allows).
//!
//! ```
//! use mod_wasm_guest::{client, handler, Error, Request, Response};
//!
//! #[handler]
//! async fn handle(_req: Request) -> Result<Response, Error> {
//!     let upstream = mod_wasm_guest::http::Request::get("http://127.0.0.1:8080/hello").body(())?;
//!     client::send_async(upstream).await
//! }
//! ```
//!
//! # A whole body, and coming from Wasm Workers Server
//!
//! A handler may take any [`FromRequest`] type instead of the streaming
//! [`Request`]: `http::Request<String>` (or `Vec<u8>`, [`Bytes`]) has the
//! body read whole first (a body that is not UTF-8 answers 400). A worker
//! written for Wasm Workers Server's Rust kit keeps its signature:
//!
//! ```
//! use mod_wasm_guest::handler;
//! use mod_wasm_guest::http::{Request, Response};
//!
//! #[handler]
//! fn reply(req: Request<String>) -> Result<Response<String>, mod_wasm_guest::http::Error> {
//!     Response::builder()
//!         .header("x-generated-by", "mod_wasm")
//!         .body(format!("{} bytes for {}\n", req.body().len(), req.uri().path()))
//! }
//! ```
//!
//! Served from a folder as a file route (`users/[id].wasm`, see the README),
//! the dynamic segments are path parameters: `req.param("id")`
//! ([`RequestExt::param`]).
//!
//! # What only Apache knows
//!
//! [`apache`] logs to Apache's error log at its levels (filtered by
//! `LogLevel`) and tells the client's address, the authenticated user,
//! whether TLS is on and the matched location. These calls import
//! `mod-wasm:host` (wit/host.wit), so a component that makes them runs
//! under mod_wasm only; one that does not is a plain `wasi:http/proxy`
//! component that any wasi:http host runs.
//!
//! ```
//! use mod_wasm_guest::{apache, handler, Request};
//!
//! #[handler]
//! fn handle(_req: Request) -> String {
//!     apache::log::info("handling a request");
//!     format!("hello {}\n", apache::user().unwrap_or_else(|| apache::client_addr()))
//! }
//! ```
//!
//! # The low level
//!
//! [`raw`] keeps the `wasi:http` resources (re-exported as [`wasi`]) for
//! handlers that need them, with the traps taken out.
#![deny(missing_docs)]

pub mod apache;
mod body;
pub mod client;
pub mod config;
mod error;
mod executor;
mod extract;
mod fields;
pub mod kv;
pub mod raw;
mod request;
mod response;
mod router;
mod serve;

pub use body::{Body, BodyWriter};
pub use bytes::Bytes;
pub use error::Error;
pub use executor::{block_on, join, ready};
pub use extract::FromRequest;
pub use http;
pub use mod_wasm_guest_macro::handler;
pub use request::{Params, Request, RequestExt};
#[cfg(feature = "json")]
pub use response::Json;
pub use response::{IntoResponse, Response};
pub use router::Router;
pub use wasi;

impl From<http::Error> for Error {
    fn from(error: http::Error) -> Self {
        Error::InvalidRequest(error.to_string())
    }
}

#[doc(hidden)]
pub mod __private {
    pub use crate::serve::{serve, serve_async};
}
