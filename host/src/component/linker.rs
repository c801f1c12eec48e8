//! The imports a component may use, and pre-instantiation against them.

use super::RequestState;
use crate::kind::Kind;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// A component ready to be instantiated for a request, by the world it
/// serves.
pub enum ComponentPre {
    /// WASI 0.2: `wasi:http/incoming-handler`.
    Proxy(ProxyPre<RequestState>),
    /// WASI 0.3: `wasi:http/handler`.
    Service(ServicePre<RequestState>),
}

/// A linker for components of one [`Kind`], the same in the parent (to
/// validate) and in the children (to serve).
pub struct ComponentLinker {
    linker: Linker<RequestState>,
    kind: Kind,
}

impl ComponentLinker {
    /// For `Kind::Component`, on an engine from `engine::config`: all of
    /// WASI 0.2 (guests built with Rust's std import filesystem and
    /// environment interfaces even when the proxy world needs neither; the
    /// request's context grants nothing through them), `wasi:http`, and our
    /// own `mod-wasm:host` (wit/host.wit).
    ///
    /// For `Kind::Component03`, on an engine from `engine::config_for`: the
    /// same WASI 0.2 imports (std for wasm32-wasip2 still uses them), and
    /// all of WASI 0.3 with its `wasi:http`. Both versions see one WASI
    /// context, so a grant (`WasmDir`, `WasmEnv`, no sockets) is the same
    /// through either, and 0.3's `symlink-at` is refused as 0.2's is.
    pub fn new(engine: &Engine, kind: Kind) -> wasmtime::Result<Self> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::symlinks::refuse_in_components(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        if kind == Kind::Component03 {
            wasmtime_wasi::p3::add_to_linker(&mut linker)?;
            crate::symlinks::refuse_in_components03(&mut linker)?;
            wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
            // The middleware world's import; WasmMiddleware gives it a
            // next handler, WasmComponent an error code.
            super::next::add_to_linker(&mut linker)?;
        }
        super::apache::add_to_linker(&mut linker)?;
        super::keyvalue::add_to_linker(&mut linker)?;
        super::config_vars::add_to_linker(&mut linker)?;
        Ok(ComponentLinker { linker, kind })
    }

    /// Resolves the component's imports and finds the handler its kind
    /// exports. The error is a sentence for the admin.
    pub fn pre_instantiate(&self, component: &Component) -> Result<ComponentPre, String> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| format!("imports something mod_wasm does not provide: {e:#}"))?;
        match self.kind {
            Kind::Component03 => ServicePre::new(pre)
                .map(ComponentPre::Service)
                .map_err(|e| format!("does not export wasi:http/handler@0.3.0 (WASI 0.3): {e:#}")),
            _ => ProxyPre::new(pre).map(ComponentPre::Proxy).map_err(|e| {
                format!("does not export wasi:http/incoming-handler (WASI 0.2): {e:#}")
            }),
        }
    }
}
