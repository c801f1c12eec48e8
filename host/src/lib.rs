//! The Rust half of mod_wasm.
//!
//! Apache's C module (`mod_wasm/`) parses directives, owns the request and
//! moves bytes between bucket brigades and this crate. Everything that knows
//! about WebAssembly lives here, behind the C ABI in [`ffi`]:
//!
//! * [`compile`] turns a `.wasm` file into a validated, serialized artifact.
//!   It runs in the Apache parent while the configuration is read, so that a
//!   bad file stops start-up (and `apachectl -t`) with the directive's file
//!   and line.
//! * [`host::Host`] is one configuration generation: the components its
//!   directives named, loaded once per child process by
//!   [`host::Host::child_init`].
//! * [`component`] serves one HTTP request with a fresh instance of a
//!   `wasi:http/incoming-handler` component, streaming both bodies.
//! * [`legacy`] serves one request with a fresh instance of a WASI preview1
//!   module (`WasmModule`), stdin and stdout streaming.
//! * [`sandbox::Sandbox`] is what one request's guest may use: its time and
//!   memory limits and the capabilities its location grants, including the
//!   [`outgoing`] HTTP rules. [`ticker`] enforces the time limit.
//! * [`stats`] counts requests per location for the status page, in memory
//!   shared by all child processes.
//!
//! Rust never calls Apache directly and never writes to stdout or stderr:
//! bytes and errors travel back through the callbacks and buffers that the
//! C side passes in.
#![deny(missing_docs)]

pub mod cache;
pub mod compile;
pub mod component;
pub mod engine;
pub mod ffi;
pub mod host;
pub mod legacy;
pub mod log;
mod on_demand;
pub mod outgoing;
pub mod routes;
mod runtime;
pub mod sandbox;
pub mod stats;
pub mod stdio;
mod symlinks;
pub mod ticker;
