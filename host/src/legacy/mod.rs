//! Legacy mode: serving a request with a WASI preview1 core module, as
//! VMware's mod_wasm 0.12 did (`WasmModule`). The module runs once per
//! request: the request body is its stdin, its stdout is the response (the
//! C side parses CGI headers from it in CGI mode), its stderr goes to the
//! error log.

mod linker;
mod run;
mod state;
mod stdio;

pub use linker::ModuleLinker;
pub use run::{Invocation, run};
pub use state::LegacyState;
pub use stdio::{OutputSink, Stdin, Stdout};
