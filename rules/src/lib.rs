//! Rules that both the module (`mod-wasm-host`) and the `mod_wasm` CLI
//! apply, written once so that they cannot disagree: which URLs a
//! `WasmFileRoutes` folder serves (and so what the dev server lists),
//! which cache directory compiled code may be loaded from, and whether
//! Apache's children can reach a granted directory. No Wasmtime
//! here: the CLI must build without it.
#![deny(missing_docs)]

pub mod cache_dir;
pub mod listing;
pub mod reach;
pub mod routes;

/// The largest `.wasm` file the module reads: a route to a larger one is
/// not served (nor listed), a directive naming one fails.
pub const MAX_WASM_BYTES: u64 = 256 << 20;
