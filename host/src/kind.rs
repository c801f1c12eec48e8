//! What a `.wasm` file is served as: the one fact compiling, caching and
//! loading all key on.

/// What a file is served as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A `wasi:http/incoming-handler` component (`WasmComponent`).
    Component,
    /// A WASI preview1 core module (`WasmModule`).
    Module,
}
