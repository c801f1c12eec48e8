//! What a new instance does when the child's instance pool is full.
//!
//! The pool is sized for the requests a child runs at once: the MPM's
//! threads, and mod_http2's workers by its default when it is loaded. An
//! admin can raise `H2MaxWorkers` where mod_wasm cannot read it, so a
//! request may still find every slot taken. It first evicts an idle
//! instance (`WasmInstanceReuse`); with none idle, it waits for a running
//! request to end, up to its own deadline, rather than fail at once.

use std::time::{Duration, Instant};

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
        if super::reuse::evict_oldest() {
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
