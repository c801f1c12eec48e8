//! Per-request store state: what one instance of a guest may touch.

use super::RequestFacts;
use super::keyvalue::Grants;
use super::next::Link;
use crate::log::{LogKind, RelayLog, RequestLog, StreamLog};
use crate::outgoing::OutgoingHooks;
use crate::request_io::{GuestOutput, GuestStream};
use crate::sandbox::{MAX_FIELDS_SIZE, MAX_RESOURCES, MemoryLimiter, Sandbox};
use crate::stats::Meter;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The data of a request's `Store`.
///
/// The guest gets what its [`Sandbox`] grants and nothing else: no host
/// environment, no arguments, no directories but the granted ones, no
/// sockets, no outgoing HTTP but to allowed destinations. stdin is empty;
/// stdout and stderr go to the request's log.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutgoingHooks,
    limiter: MemoryLimiter,
    facts: RequestFacts,
    /// Everything that logs goes through it, so that a reused instance
    /// logs to its current request.
    log: Arc<RelayLog>,
    stdout: GuestOutput,
    stderr: GuestOutput,
    /// The stores it may open (`WasmKeyValue`).
    grants: Grants,
    /// Its section's `WasmConfigVar` variables, later ones winning.
    config: Vec<(String, String)>,
    /// Where the imported `wasi:http/handler` leads: set for a
    /// `WasmMiddleware` only.
    next: Option<Link>,
}

impl RequestState {
    /// The state for a guest in `sandbox`. `memory_exceeded` is set if the
    /// guest runs into its memory limit. Fails if a granted directory cannot
    /// be opened. `facts` answer the guest's `mod-wasm:host` questions.
    pub fn new(
        sandbox: &Sandbox,
        facts: RequestFacts,
        log: Arc<dyn RequestLog>,
        memory_exceeded: Arc<AtomicBool>,
    ) -> Result<Self, String> {
        let log = RelayLog::new(log);
        let output = |kind| GuestOutput::new(StreamLog::new(log.clone(), kind));
        let (stdout, stderr) = (output(LogKind::GuestStdout), output(LogKind::GuestStderr));
        let mut wasi = WasiCtx::builder();
        wasi.stderr(GuestStream(stderr.clone()))
            .stdout(GuestStream(stdout.clone()))
            .envs(&sandbox.environment())
            // File operations run inline on the request's thread: a thread
            // hand-off per operation would cost more.
            .allow_blocking_current_thread(true);
        sandbox.grant_to(&mut wasi)?;
        // Host-side state the guest creates is bounded too, or a guest under
        // a small WasmMemoryLimit could still fill the host's memory with
        // resources and header fields.
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_FIELDS_SIZE);
        Ok(RequestState {
            wasi: wasi.build(),
            http,
            table,
            hooks: OutgoingHooks::new(sandbox.outgoing.clone(), log.clone()),
            limiter: MemoryLimiter::new(
                sandbox.memory_limit,
                memory_exceeded,
                sandbox.meter.clone(),
            ),
            facts,
            log,
            stdout,
            stderr,
            grants: Grants::new(sandbox.stores.clone(), sandbox.timeout),
            config: sandbox.config_vars(),
            next: None,
        })
    }

    /// The instance serves another request (`WasmInstanceReuse`): its facts,
    /// its log, its memory refusals and its meter replace the last ones'.
    pub fn next_request(
        &mut self,
        facts: RequestFacts,
        log: Arc<dyn RequestLog>,
        memory_exceeded: Arc<AtomicBool>,
        meter: Arc<Meter>,
    ) {
        self.facts = facts;
        self.log.switch(log);
        self.limiter.next_request(memory_exceeded, meter);
        self.grants.next_request();
    }

    /// The request ended cleanly and the instance is kept: what the guest
    /// left unfinished in its output is logged now, with this request.
    pub fn end_request(&mut self) {
        self.stdout.end_request();
        self.stderr.end_request();
        // A middleware's link to this request's next handler goes with it.
        self.next = None;
    }

    /// The limiter to install with `Store::limiter`.
    pub fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }

    /// What Apache told us about the request.
    pub fn facts(&self) -> &RequestFacts {
        &self.facts
    }

    /// The request's log.
    pub fn log(&self) -> &dyn RequestLog {
        &*self.log
    }

    /// The stores the guest may open.
    pub(super) fn grants(&mut self) -> &mut Grants {
        &mut self.grants
    }

    /// The value of the section's variable `name`.
    pub(super) fn config_var(&self, name: &str) -> Option<String> {
        self.config
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.clone())
    }

    /// The guest is a middleware: its next handler is asked through `link`.
    pub(super) fn set_next_handler(&mut self, link: Link) {
        self.next = Some(link);
    }

    /// Where its next handler is asked, if it is a middleware.
    pub(super) fn next_handler(&self) -> Option<Link> {
        self.next.clone()
    }

    /// All of the section's variables.
    pub(super) fn config_vars(&self) -> &[(String, String)] {
        &self.config
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
