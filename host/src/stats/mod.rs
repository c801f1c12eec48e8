//! What the status page (`SetHandler wasm-status`) shows: per location,
//! requests, errors by kind, instances in use, latency, compile and load
//! time, and linear memory in use, counted by every child into shared
//! memory ([`region`]) and shown by whichever child serves the page
//! ([`render`]); and per key-value store, operations, errors and latency
//! ([`stores`]).
//!
//! Each request has a [`Meter`]: the slot it counts into, and what the
//! request itself measured (instantiation time, peak memory), which the C
//! side also puts into the request's notes for `LogFormat`.

mod histogram;
mod region;
pub mod render;
mod stores;

pub use region::{ErrorKind, GuestKind, Region, Slot, region};
pub use stores::{StoreKind, StoreSlot};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One request's measurements, and the slot they are counted into.
#[derive(Default)]
pub struct Meter {
    slot: Option<&'static Slot>,
    peak_memory: AtomicU64,
    instantiate_us: AtomicU64,
}

/// What one request measured, when it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// How it ended: `None` for success.
    pub error: Option<ErrorKind>,
    /// From the host's start to the last byte, in microseconds.
    pub total_us: u64,
    /// Creating the instance, in microseconds.
    pub instantiate_us: u64,
    /// The most linear memory the guest held at once, in bytes.
    pub peak_memory: u64,
}

impl Meter {
    /// A meter counting into `slot` (none: measured, not counted).
    pub fn new(slot: Option<&'static Slot>) -> Arc<Meter> {
        Arc::new(Meter {
            slot,
            ..Meter::default()
        })
    }

    /// The guest's file took `compiled` to compile in the parent (or to
    /// load from the disk cache), and `loaded` to load in this child.
    pub fn times(&self, compiled: Duration, loaded: Option<Duration>) {
        if let Some(slot) = self.slot {
            slot.compile_us
                .store(compiled.as_micros() as u64, Ordering::Relaxed);
            if let Some(loaded) = loaded {
                slot.load_us
                    .store(loaded.as_micros() as u64, Ordering::Relaxed);
            }
        }
    }

    /// The request's instance took `took` to create.
    pub fn instantiated(&self, took: Duration) {
        self.instantiate_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The request's guest holds `delta` more bytes of linear memory
    /// (negative when it gave them back).
    pub fn memory(&self, delta: i64) {
        if let Some(slot) = self.slot {
            slot.memory.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// The request's guest has held `held` bytes of linear memory at once.
    pub fn peak(&self, held: u64) {
        self.peak_memory.fetch_max(held, Ordering::Relaxed);
        if let Some(slot) = self.slot {
            slot.peak_memory.fetch_max(held, Ordering::Relaxed);
        }
    }

    /// The request starts being served: an instance is in use until the
    /// returned guard ends (or is dropped, which counts a host error).
    pub fn begin(self: &Arc<Self>) -> Serving {
        if let Some(slot) = self.slot {
            slot.in_use.fetch_add(1, Ordering::Relaxed);
        }
        Serving {
            meter: self.clone(),
            started: Instant::now(),
            ended: false,
        }
    }
}

/// A request being served; see [`Meter::begin`].
pub struct Serving {
    meter: Arc<Meter>,
    started: Instant,
    ended: bool,
}

impl Serving {
    /// The request ended with `error` (`None`: success).
    pub fn end(mut self, error: Option<ErrorKind>) -> Report {
        self.ended = true;
        self.record(error)
    }

    fn record(&self, error: Option<ErrorKind>) -> Report {
        let report = Report {
            error,
            total_us: self.started.elapsed().as_micros() as u64,
            instantiate_us: self.meter.instantiate_us.load(Ordering::Relaxed),
            peak_memory: self.meter.peak_memory.load(Ordering::Relaxed),
        };
        if let Some(slot) = self.meter.slot {
            count(slot, error);
            slot.latency.record(report.total_us);
            slot.in_use.fetch_sub(1, Ordering::Relaxed);
        }
        report
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if !self.ended {
            self.record(Some(ErrorKind::Host));
        }
    }
}

/// Counts a request that ended with `error` into `slot`, without timing:
/// for requests refused before they were served (`WasmMaxInstances`).
pub fn count(slot: &Slot, error: Option<ErrorKind>) {
    slot.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(kind) = error {
        slot.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts an error the C side found after the host had counted the request
/// as a success (a legacy module's malformed CGI headers).
pub fn count_error_only(slot: &Slot, kind: ErrorKind) {
    slot.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_counted_with_its_outcome_and_memory() {
        let slot = region().slot("/meter-test", "/m.wasm", GuestKind::Component);
        let meter = Meter::new(Some(slot));
        let serving = meter.begin();
        assert_eq!(slot.in_use.load(Ordering::Relaxed), 1);
        meter.memory(65536);
        meter.peak(65536);
        assert_eq!(slot.memory.load(Ordering::Relaxed), 65536);
        meter.memory(-65536);
        let report = serving.end(Some(ErrorKind::Trap));
        assert_eq!(report.peak_memory, 65536);
        assert_eq!(report.error, Some(ErrorKind::Trap));
        assert_eq!(slot.in_use.load(Ordering::Relaxed), 0);
        assert_eq!(slot.memory.load(Ordering::Relaxed), 0);
        assert_eq!(slot.requests.load(Ordering::Relaxed), 1);
        assert_eq!(
            slot.errors[ErrorKind::Trap as usize].load(Ordering::Relaxed),
            1
        );
        assert_eq!(slot.latency.counts().iter().sum::<u64>(), 1);
    }

    #[test]
    fn a_request_dropped_unended_is_a_host_error() {
        let slot = region().slot("/meter-drop", "/m.wasm", GuestKind::Module);
        drop(Meter::new(Some(slot)).begin());
        assert_eq!(slot.in_use.load(Ordering::Relaxed), 0);
        assert_eq!(
            slot.errors[ErrorKind::Host as usize].load(Ordering::Relaxed),
            1
        );
    }
}
