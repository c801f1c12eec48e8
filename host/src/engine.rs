//! The one Wasmtime configuration shared by the compiling parent and the
//! serving children.
//!
//! Artifacts compiled in the parent are deserialized in the children, which
//! only works when both engines were built from the same settings: keep every
//! setting that affects code generation here and nowhere else.

use wasmtime::{Config, Engine, Result};

/// The configuration every mod_wasm engine is built from.
pub fn config() -> Config {
    let mut config = Config::new();
    // The parent compiles before it forks the children. Wasmtime's parallel
    // compiler runs a thread pool, and threads do not survive fork(): in the
    // feasibility spike a child that compiled again after the parent had
    // compiled in parallel hung forever. Compile on the calling thread.
    config.parallel_compilation(false);
    config.wasm_component_model(true);
    config
}

/// A new engine from [`config`].
pub fn new() -> Result<Engine> {
    Engine::new(&config())
}
