//! Per-request store state of a legacy guest.

use super::{Stdin, Stdout};
use crate::log::{LogKind, RequestLog, StreamLog};
use crate::request_io::{GuestOutput, GuestStream};
use crate::sandbox::{MAX_RESOURCES, MemoryLimiter, Sandbox};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtxBuilder, WasiView};

/// The data of a legacy request's `Store`: the arguments and environment
/// the request was given, the sandbox's directories, the request body as
/// stdin, the response as stdout, the log as stderr. No sockets.
pub struct LegacyState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

impl LegacyState {
    /// The state for a guest in `sandbox` run with `args` (argv[0] first)
    /// and `env` (already merged with the sandbox's). Fails if a granted
    /// directory cannot be opened.
    pub fn new(
        sandbox: &Sandbox,
        args: &[String],
        env: &[(String, String)],
        stdio: (Stdin, Stdout),
        log: Arc<dyn RequestLog>,
        memory_exceeded: Arc<AtomicBool>,
    ) -> Result<Self, String> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(args)
            .envs(env)
            .stdin(stdio.0)
            .stdout(GuestStream(stdio.1))
            .stderr(GuestStream(GuestOutput::new(StreamLog::new(
                log,
                LogKind::GuestStderr,
            ))))
            // With blocking allowed on the current thread, preview1's
            // `poll_oneoff` sleeps with `std::thread::sleep`: a sleeping
            // guest would hold the request's runtime, its output and its
            // WasmTimeout. File operations go to the runtime's blocking
            // threads instead (set before the directories, which take it).
            .allow_blocking_current_thread(false);
        sandbox.grant_to(&mut wasi)?;
        let mut wasi = wasi.build_p1();
        // As for components: a guest cannot make the host hold more than
        // this many open files, directories and streams.
        wasi.ctx().table.set_max_capacity(MAX_RESOURCES);
        Ok(LegacyState {
            wasi,
            limiter: MemoryLimiter::new(
                sandbox.memory_limit,
                memory_exceeded,
                sandbox.meter.clone(),
            ),
        })
    }

    /// The WASI preview1 context, for the linker.
    pub fn wasi(&mut self) -> &mut WasiP1Ctx {
        &mut self.wasi
    }

    /// The limiter to install with `Store::limiter`.
    pub fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
}
