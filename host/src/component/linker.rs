//! The imports a component may use, and pre-instantiation against them.

use super::RequestState;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// A linker with WASI 0.2 and `wasi:http`, the same in the parent (to
/// validate) and in the children (to serve).
pub struct ComponentLinker(Linker<RequestState>);

impl ComponentLinker {
    /// All of WASI 0.2 (guests built with Rust's std import filesystem and
    /// environment interfaces even when the proxy world needs neither; the
    /// request's context grants nothing through them), `wasi:http`, and our
    /// own `mod-wasm:host` (wit/host.wit).
    pub fn new(engine: &Engine) -> wasmtime::Result<Self> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::symlinks::refuse_in_components(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        super::apache::add_to_linker(&mut linker)?;
        Ok(ComponentLinker(linker))
    }

    /// Resolves the component's imports and finds its
    /// `wasi:http/incoming-handler` export. The error is a sentence for the
    /// admin.
    pub fn pre_instantiate(&self, component: &Component) -> Result<ProxyPre<RequestState>, String> {
        let pre = self
            .0
            .instantiate_pre(component)
            .map_err(|e| format!("imports something mod_wasm does not provide: {e:#}"))?;
        ProxyPre::new(pre)
            .map_err(|e| format!("does not export wasi:http/incoming-handler (WASI 0.2): {e:#}"))
    }
}
