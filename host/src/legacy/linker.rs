//! The imports a preview1 module may use, and pre-instantiation against them.

use super::LegacyState;
use wasmtime::{Engine, InstancePre, Linker, Module};

/// A linker with WASI preview1 (`wasi_snapshot_preview1`), the same in the
/// parent (to validate) and in the children (to serve).
pub struct ModuleLinker(Linker<LegacyState>);

impl ModuleLinker {
    /// WASI preview1, on the async engine every mod_wasm guest runs on.
    pub fn new(engine: &Engine) -> wasmtime::Result<Self> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut LegacyState| {
            state.wasi()
        })?;
        crate::symlinks::refuse_in_modules(&mut linker)?;
        Ok(ModuleLinker(linker))
    }

    /// Resolves the module's imports. The error is a sentence for the admin.
    pub fn pre_instantiate(&self, module: &Module) -> Result<InstancePre<LegacyState>, String> {
        self.0.instantiate_pre(module).map_err(|e| {
            format!(
                "imports something mod_wasm does not provide (a WASI preview1 module \
                 imports only wasi_snapshot_preview1): {e:#}"
            )
        })
    }
}
