//! The epoch ticker: one thread per child process that advances the
//! engine's epoch, so that running guests notice their deadlines.
//!
//! Started in each child (threads do not survive fork(), and the parent must
//! not run any), never per request: a thread per request cut throughput by
//! orders of magnitude in a Wasmtime issue. It sleeps while no request is
//! being served, so that a prefork server with hundreds of idle children
//! does not wake hundreds of threads a hundred times a second.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::Duration;
use wasmtime::{Engine, EngineWeak};

/// How often running guests look at the clock. It bounds how late a
/// CPU-bound guest is stopped after its deadline, and how long it runs
/// before giving the rest of its request (streaming its body) a turn.
pub const TICK: Duration = Duration::from_millis(10);

/// Requests being served in this process.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The ticker of this process, once started.
static TICKER: OnceLock<Thread> = OnceLock::new();

/// Starts the ticker for `engines` (once per process): the engine of 0.2
/// components and modules, and the one of 0.3 components. The thread ends
/// when they are all dropped.
pub fn start(engines: &[&Engine]) -> std::io::Result<()> {
    let weak: Vec<EngineWeak> = engines.iter().map(|engine| engine.weak()).collect();
    let handle = std::thread::Builder::new()
        .name("mod_wasm epoch".into())
        .spawn(move || {
            loop {
                if ACTIVE.load(Ordering::Acquire) == 0 {
                    // Woken by the next request (or spuriously: look again).
                    std::thread::park();
                    continue;
                }
                std::thread::sleep(TICK);
                let mut alive = false;
                for engine in weak.iter().filter_map(EngineWeak::upgrade) {
                    engine.increment_epoch();
                    alive = true;
                }
                if !alive {
                    return;
                }
            }
        })?;
    _ = TICKER.set(handle.thread().clone());
    Ok(())
}

/// Marks a request as being served while it lives: the ticker runs.
pub struct Serving(());

impl Serving {
    /// Starts counting a request, waking the ticker if it was asleep.
    pub fn begin() -> Self {
        if ACTIVE.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(ticker) = TICKER.get()
        {
            ticker.unpark();
        }
        Serving(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Makes a guest in `store` stop at `deadline`: at every tick a running
/// guest checks it; past it, the guest traps where it is
/// (`Trap::Interrupt`); before it, it yields, so that the rest of its
/// request (streaming its output) gets a turn.
pub fn stop_at<T>(store: &mut wasmtime::Store<T>, deadline: std::time::Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if std::time::Instant::now() >= deadline {
            wasmtime::UpdateDeadline::Interrupt
        } else {
            wasmtime::UpdateDeadline::Yield(1)
        })
    });
}
