//! One request, one fresh instance: run the module's entry point with the
//! request as stdin and the response as stdout.

use super::{LegacyState, OutputSink, Stdin, Stdout};
use crate::log::RequestLog;
use crate::request_io::{BodySource, PoolRoom, ServeError, classify};
use crate::sandbox::Sandbox;
use crate::{runtime, ticker};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use wasmtime::{InstancePre, PoolConcurrencyLimitError, Store};
use wasmtime_wasi::I32Exit;

/// How a module is started for one request.
pub struct Invocation {
    /// argv, argv[0] first.
    pub args: Vec<String>,
    /// Variables from the request (CGI), before the sandbox's `WasmEnv`
    /// entries, which win.
    pub env: Vec<(String, String)>,
    /// The export to call; `_start` when `None`.
    pub entry_point: Option<String>,
}

/// The export a command module starts at.
const START: &str = "_start";

/// The export a reactor module initialises itself with, before any other.
const INITIALIZE: &str = "_initialize";

/// Runs `pre` for one request confined to `sandbox`, blocking this thread
/// until the guest has exited and its output has gone to `sink`, or until
/// the sandbox's timeout stopped it. The guest's exit status on success:
/// 0 when its entry point returned.
pub fn run(
    pre: &InstancePre<LegacyState>,
    invocation: Invocation,
    stdin: impl BodySource,
    sink: impl OutputSink,
    sandbox: &Sandbox,
    log: Arc<dyn RequestLog>,
) -> Result<i32, ServeError> {
    let _serving = ticker::Serving::begin();
    runtime::block_on(execute(pre.clone(), invocation, stdin, sink, sandbox, log))
        .map_err(|e| ServeError::Internal(e.to_string()))?
}

async fn execute(
    pre: InstancePre<LegacyState>,
    invocation: Invocation,
    stdin: impl BodySource,
    sink: impl OutputSink,
    sandbox: &Sandbox,
    log: Arc<dyn RequestLog>,
) -> Result<i32, ServeError> {
    let deadline = Instant::now() + sandbox.timeout;
    let memory_exceeded = Arc::new(AtomicBool::new(false));
    let stdout = Stdout::new(sink);
    let env = sandbox.environment_over(invocation.env);
    let state = LegacyState::new(
        sandbox,
        &invocation.args,
        &env,
        (Stdin::new(stdin), stdout.clone()),
        log,
        memory_exceeded.clone(),
    )
    .map_err(ServeError::Internal)?;
    let mut store = Store::new(pre.module().engine(), state);
    store.limiter(|state| state.limiter());
    ticker::stop_at(&mut store, deadline);
    let entry = invocation.entry_point.unwrap_or_else(|| START.into());
    let meter = sandbox.meter.clone();
    // The guest runs inside this future rather than as a task of its own:
    // nothing else on the thread needs to run while it does, and a spawn per
    // request costs a task allocation and a scheduler round trip.
    let guest = async move {
        let mut room = PoolRoom::new();
        let instance = loop {
            // Timed per attempt: a wait for a slot is not instantiation.
            let started = Instant::now();
            match pre.instantiate_async(&mut store).await {
                // Every slot is taken: an idle component (WasmInstanceReuse)
                // makes room, or a running request gives its slot back. A
                // failed core instantiation leaves nothing in the store.
                Err(e) if e.is::<PoolConcurrencyLimitError>() && room.make(deadline).await => {}
                result => {
                    let instance = result?;
                    meter.instantiated(started.elapsed());
                    break instance;
                }
            }
        };
        if entry != INITIALIZE
            && let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut store, INITIALIZE)
        {
            initialize.call_async(&mut store, ()).await?;
        }
        let Some(func) = instance.get_func(&mut store, &entry) else {
            return Err(wasmtime::format_err!(
                "the module exports no function named '{entry}' (WasmEntryPoint)"
            ));
        };
        let func = func.typed::<(), ()>(&store).map_err(|_| {
            wasmtime::format_err!(
                "the export '{entry}' is not a function without parameters and results"
            )
        })?;
        func.call_async(&mut store, ()).await
    };

    // While the guest runs, what it wrote goes out at every tick: a guest
    // that prints and then thinks (or sleeps) is seen by the client as it
    // goes, as a CGI script would be. The first tick is one TICK away: a
    // guest done by then (most are) never starts the interval's timer.
    let watched = async {
        let mut guest = pin!(guest);
        let mut ticks =
            tokio::time::interval_at((Instant::now() + ticker::TICK).into(), ticker::TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                finished = &mut guest => break Some(finished),
                _ = ticks.tick() => {
                    if stdout.flush_pending().is_err() {
                        break None;
                    }
                }
            }
        }
    };
    // Past the deadline, or when the client went away, the guest's future
    // is dropped where it waits, and its store with it.
    let outcome = tokio::time::timeout_at(deadline.into(), watched).await;
    let finished = match outcome {
        Err(_) => {
            let waiting = ServeError::Timeout("the guest was waiting".into());
            return Err(waiting.explained(sandbox.limits(), false));
        }
        Ok(None) => return Err(ServeError::Sink),
        Ok(Some(finished)) => finished,
    };
    let status = match finished {
        Ok(()) => 0,
        Err(e) => exit_status(&e).ok_or_else(|| failure(&e, &stdout, &memory_exceeded, sandbox))?,
    };
    stdout.finish().map_err(|_| ServeError::Sink)?;
    Ok(status)
}

/// The status a guest passed to `proc_exit`.
fn exit_status(error: &wasmtime::Error) -> Option<i32> {
    error.downcast_ref::<I32Exit>().map(|exit| exit.0)
}

/// Why the guest failed, as one line for the error log.
fn failure(
    error: &wasmtime::Error,
    stdout: &Stdout,
    memory_exceeded: &AtomicBool,
    sandbox: &Sandbox,
) -> ServeError {
    if stdout.refused() {
        return ServeError::Sink;
    }
    classify(error).explained(sandbox.limits(), memory_exceeded.load(Ordering::Relaxed))
}
