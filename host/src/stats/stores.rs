//! The status page's counters for key-value stores (`WasmKeyValueStore`):
//! per store, the operations guests made, how many failed in the backend,
//! how many a limit refused before the backend saw them, and how long the
//! backend took. They live in the same shared memory as the guests'
//! counters ([`super::region`]), in slots of their own.

use super::histogram::Histogram;
use super::region::{Named, Names};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Store slots in the mapping; the last counts whatever finds no free one.
pub(crate) const STORE_SLOTS: usize = 64;

/// Where a store keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A SQLite file.
    Sqlite = 1,
    /// A Redis or Valkey server.
    Redis = 2,
}

/// The counters of one store, in all processes.
#[repr(C)]
pub struct StoreSlot {
    names: Names,
    /// Operations guests asked for, refused ones included (a batch counts
    /// one).
    pub(crate) operations: AtomicU64,
    /// Operations the backend failed (down, busy past the timeout, a
    /// value `increment` cannot add to).
    pub(crate) failed: AtomicU64,
    /// Operations a limit refused before the backend saw them (key length,
    /// `max-value`, `max-ops`, the request's deadline).
    pub(crate) refused: AtomicU64,
    /// How long the backend took, for the operations it was asked.
    pub(crate) latency: Histogram,
}

impl Named for StoreSlot {
    fn names(&self) -> &Names {
        &self.names
    }
}

impl StoreSlot {
    /// The store's label.
    pub fn label(&self) -> String {
        self.names.first()
    }

    /// Where it lives, as the error log names it (no password).
    pub fn backend(&self) -> String {
        self.names.second()
    }

    /// SQLite or Redis.
    pub fn kind(&self) -> &'static str {
        match self.names.kind() {
            2 => "redis",
            _ => "sqlite",
        }
    }

    /// Counts an operation a limit refused.
    pub fn refused(&self) {
        self.operations.fetch_add(1, Ordering::Relaxed);
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an operation the backend ran for `took`, and whether it
    /// succeeded.
    pub fn ran(&self, took: Duration, succeeded: bool) {
        self.operations.fetch_add(1, Ordering::Relaxed);
        if !succeeded {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.record(took.as_micros() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::super::region;
    use super::*;

    #[test]
    fn a_store_is_counted_in_its_own_slot() {
        let region = region();
        let slot = region.store_slot("stats-test", "/x.sqlite3", StoreKind::Sqlite);
        let other = region.store_slot("stats-test", "127.0.0.1:6379/0", StoreKind::Redis);
        assert!(!std::ptr::eq(slot, other));
        slot.ran(Duration::from_micros(120), true);
        slot.ran(Duration::from_micros(80), false);
        slot.refused();
        assert_eq!(slot.operations.load(Ordering::Relaxed), 3);
        assert_eq!(slot.failed.load(Ordering::Relaxed), 1);
        assert_eq!(slot.refused.load(Ordering::Relaxed), 1);
        assert_eq!(slot.latency.counts().iter().sum::<u64>(), 2);
        assert!(std::ptr::eq(
            slot,
            region.store_slot("stats-test", "/x.sqlite3", StoreKind::Sqlite)
        ));
        assert_eq!(
            (slot.label().as_str(), slot.kind()),
            ("stats-test", "sqlite")
        );
        assert!(
            region
                .shown_stores()
                .any(|shown| std::ptr::eq(shown, other))
        );
    }
}
