//! The one Wasmtime configuration shared by the compiling parent and the
//! serving children.
//!
//! Artifacts compiled in the parent are deserialized in the children, which
//! only works when both engines were built from the same settings: keep every
//! setting that affects code generation here and nowhere else.

use wasmtime::{Config, Engine, Result};

/// The stack a guest and the host code it calls run on: 8 MiB, Linux's
/// default thread stack, which is what Apache's own code expects.
pub const DEFAULT_ASYNC_STACK_SIZE: usize = 8 << 20;

/// The configuration every mod_wasm engine is built from.
pub fn config() -> Config {
    let mut config = Config::new();
    // The parent compiles before it forks the children. Wasmtime's parallel
    // compiler runs a thread pool, and threads do not survive fork(): in the
    // feasibility spike a child that compiled again after the parent had
    // compiled in parallel hung forever. Compile on the calling thread.
    config.parallel_compilation(false);
    config.wasm_component_model(true);
    // Guests run on their own stacks, and Apache code runs there too when a
    // guest reads its request body (input filters, TLS, even an error
    // document's internal redirect). Give it the room of an ordinary thread
    // stack; only the pages touched are ever backed by memory.
    config.async_stack_size(DEFAULT_ASYNC_STACK_SIZE);
    // WasmTimeout: compiled code checks the engine's epoch at function
    // entries and loop headers, and one ticker thread per child advances it
    // (see `ticker`). Cheaper than fuel, and it needs no thread per request.
    config.epoch_interruption(true);
    config
}

/// A new engine from [`config`].
pub fn new() -> Result<Engine> {
    Engine::new(&config())
}
