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
            // The granted directories do their file operations on the
            // request's own thread, as a component's do: handed to the
            // runtime's blocking threads, each costs two thread switches,
            // and an interpreter's start-up makes thousands (CPython's
            // imports stat every entry of sys.path: Flask through CGI took
            // 1.07 s that way, see docs/existing-apps.md). Each directory
            // takes the setting as it is when granted.
            .allow_blocking_current_thread(true);
        sandbox.grant_to(&mut wasi)?;
        // For the context itself it is off: with it on, preview1's
        // `poll_oneoff` sleeps with `std::thread::sleep`, and a sleeping
        // guest would hold the request's runtime, its output and its
        // WasmTimeout.
        wasi.allow_blocking_current_thread(false);
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
