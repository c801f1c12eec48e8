//! Per-request store state: what one instance of a guest may touch.

use super::GuestStderr;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{Error, RequestOptions, Result, WasiBody, WasiHttpCtx, WasiHttpCtxView};
use wasmtime_wasi_http::{WasiHttpHooks, WasiHttpView};

/// The data of a request's `Store`.
///
/// The WASI context grants nothing: no environment, no arguments, no
/// preopened directories, no sockets; stdin is empty and stdout discarded.
/// stderr goes to the host's log. Capabilities are granted per location by
/// later configuration.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: DenyOutgoing,
}

impl RequestState {
    /// A state that grants the guest no capabilities.
    pub fn new(stderr: GuestStderr) -> Self {
        RequestState {
            wasi: WasiCtx::builder().stderr(stderr).build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: DenyOutgoing,
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outgoing HTTP requests are a capability no location grants yet: every
/// `wasi:http/outgoing-handler.handle` call is answered with
/// `HTTP-request-denied`.
struct DenyOutgoing;

impl WasiHttpHooks for DenyOutgoing {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}
