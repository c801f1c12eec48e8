//! What a new instance does when the child's instance pool is full.
//!
//! The pool is sized for the requests a child runs at once: the MPM's
//! threads, and mod_http2's workers by its default when it is loaded. An
//! admin can raise `H2MaxWorkers` where mod_wasm cannot read it, so a
//! request may still find every slot taken. It first evicts an idle
//! instance (`WasmInstanceReuse`); with none idle, it waits for a running
//! request to end, up to its own deadline, rather than fail at once.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Drops the oldest idle instance, false if none was idle. Idle instances
/// are component mode's (`WasmInstanceReuse`), but any new instance, a
/// legacy module's too, may need the slots one holds: component mode
/// registers its evictor here once, so that this module needs neither mode.
static EVICT_IDLE: OnceLock<fn() -> bool> = OnceLock::new();

/// Makes `evict` the way [`PoolRoom::make`] frees a slot held by an idle
/// instance. The first registration stays.
pub fn evict_idle_with(evict: fn() -> bool) {
    let _ = EVICT_IDLE.set(evict);
}

/// The first wait for a slot; each next one is twice as long, up to
/// [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(10);

/// Room being made in the pool for one new instance.
pub struct PoolRoom {
    pause: Duration,
}

impl PoolRoom {
    /// Nothing tried yet.
    pub fn new() -> Self {
        PoolRoom { pause: FIRST_PAUSE }
    }

    /// Makes room by evicting an idle instance, or waits a moment for a
    /// running request to give its slot back; then the caller tries again.
    /// False when `deadline` would pass first: the pool stayed full.
    pub async fn make(&mut self, deadline: Instant) -> bool {
        if EVICT_IDLE.get().is_some_and(|evict| evict()) {
            return true;
        }
        if Instant::now() + self.pause >= deadline {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        true
    }
}

impl Default for PoolRoom {
    fn default() -> Self {
        Self::new()
    }
}
