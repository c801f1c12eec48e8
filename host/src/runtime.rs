//! One current-thread tokio runtime per Apache worker thread.
//!
//! Apache calls the handler on its own threads and expects it to block until
//! the response is done. wasi:http is asynchronous, so each thread lazily gets
//! a single-threaded runtime and drives one request at a time on it. All the
//! tasks of a request run on the thread that owns the `request_rec`, which is
//! what Apache's filters require.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Handle, Runtime};

thread_local! {
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `future` to completion on this thread's runtime, creating the runtime
/// on first use.
///
/// Refuses to nest: Apache can re-enter the handler from inside a guest's
/// callback on the same thread (an `ErrorDocument` raised while the guest
/// reads its body, an include), and one thread cannot drive two requests.
pub fn block_on<F: Future>(future: F) -> std::io::Result<F::Output> {
    if BUSY.replace(true) {
        return Err(std::io::Error::other(
            "a Wasm request cannot be served from inside another one on the same thread",
        ));
    }
    let _busy = Busy;
    run(future)
}

/// Frees the thread for its next request however this one ends: a panic
/// (caught at the C boundary) must not leave the thread refusing them all.
struct Busy;

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.set(false);
    }
}

fn run<F: Future>(future: F) -> std::io::Result<F::Output> {
    RUNTIME.with(|cell| {
        let runtime = match cell.borrow_mut().take() {
            Some(runtime) => runtime,
            // The guest runs inside the block_on future, but a request may
            // spawn tasks (an outgoing request's connection). Tokio polls
            // the block_on future again only after `event_interval` task
            // polls: with the default (61), busy tasks could hold back the
            // guest, its response and its timeout. Only requests that spawn
            // tasks pay for the driver polls this adds.
            None => Builder::new_current_thread()
                .enable_all()
                .event_interval(1)
                // Only DNS lookups of outgoing requests use the blocking
                // pool (file operations run inline); a few threads bound what
                // one worker thread can start.
                .max_blocking_threads(2)
                .build()?,
        };
        let output = runtime.block_on(future);
        *cell.borrow_mut() = Some(runtime);
        Ok(output)
    })
}

/// The child's runtime for what a guest polled by hand waits on: its
/// timers, sockets and spawned tasks. A middleware's guest runs on the
/// request's thread between Apache's calls, not inside `block_on` (which
/// cannot nest, and Apache calls the middleware from inside a content
/// component's response), so its wake-ups come from this runtime's one
/// thread. Started by the first such request, so only in a child.
pub fn background() -> std::io::Result<&'static Handle> {
    static BACKGROUND: OnceLock<Runtime> = OnceLock::new();
    if let Some(runtime) = BACKGROUND.get() {
        return Ok(runtime.handle());
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .thread_name("mod_wasm io")
        .enable_all()
        .build()?;
    // Two requests may race to build it: one runtime is kept, the other
    // shut down (it never ran anything).
    if let Err(spare) = BACKGROUND.set(runtime) {
        spare.shutdown_background();
    }
    Ok(BACKGROUND.get().expect("set just now").handle())
}
