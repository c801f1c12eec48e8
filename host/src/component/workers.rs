//! The threads middlewares run on, kept between requests. A thread per
//! request cost more than the rest of a pass-through middleware's work
//! (creating and unmapping it, a fresh tokio runtime, Wasmtime's per-thread
//! set-up): `make bench`'s middleware rows. An idle thread waits for its
//! next job; each keeps its own runtime (`crate::runtime`) between jobs.
//!
//! Only a child serving requests starts them, so none exists at fork().

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};

type Job = Box<dyn FnOnce() + Send>;

/// The idle threads, each waiting on its channel.
static IDLE: Mutex<Vec<Sender<Job>>> = Mutex::new(Vec::new());

/// Idle threads kept at most; more end after their job. Above what one
/// child serves at once with the usual ThreadsPerChild.
const MAX_IDLE: usize = 64;

/// Runs `job` on an idle thread, or on a new one named `name`. Nothing
/// waits for its end: a job says it is done by its own means (a
/// middleware's end message, sent after its store was dropped).
pub fn spawn(name: &str, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let mut job: Job = Box::new(job);
    loop {
        let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let Some(idle) = idle else { break };
        // A thread that ended (its job panicked) hands the job back.
        match idle.send(job) {
            Ok(()) => return Ok(()),
            Err(returned) => job = returned.0,
        }
    }
    let (jobs, next) = channel();
    jobs.send(job).expect("the thread's own channel");
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || serve(jobs, next))?;
    Ok(())
}

/// A thread's life: its jobs, one at a time, going back to the idle list
/// after each. A job that panics ends the thread (what it held is dropped,
/// which its request sees as its end).
fn serve(jobs: Sender<Job>, next: Receiver<Job>) {
    while let Ok(job) = next.recv() {
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            return;
        }
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            return;
        }
        idle.push(jobs.clone());
    }
}
