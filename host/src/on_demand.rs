//! Files a child compiles when a request first needs them: modules named
//! in `.htaccess` files, and components served as the request's file
//! (`AddHandler wasm-handler .wasm`, `WasmFileRoutes`). Neither is known
//! when the parent reads the configuration.
//!
//! Each is compiled once per child and kept by canonical path with the
//! identity of the file it came from (device, inode, size, mtime): a
//! replaced file is compiled again on its next request, and the old code is
//! freed when the last request holding it ends. A file that failed is not
//! tried again until it changes. The compiling happens outside the lock, so
//! a slow compile holds up only the requests that wait for that file.

use crate::compile::{self, FileIdentity};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// By canonical path: the file as it was compiled, and what came of it.
type Entries<T> = HashMap<PathBuf, (FileIdentity, Result<Arc<T>, String>)>;

/// The files of one kind this child compiled on demand, as `T`.
pub(crate) struct OnDemand<T> {
    entries: Mutex<Entries<T>>,
}

impl<T> Default for OnDemand<T> {
    fn default() -> Self {
        OnDemand {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> OnDemand<T> {
    /// The entry for the file at `path` as it is now: what came of it
    /// before if the file did not change since, else `load(canonical path,
    /// identity)`. Two threads that find a file new at the same time may
    /// both load it; the first to finish is kept.
    pub(crate) fn get(
        &self,
        path: &Path,
        load: impl FnOnce(&Path, FileIdentity) -> Result<T, String>,
    ) -> Result<Arc<T>, String> {
        let (canonical, identity) = compile::identify(path)?;
        let cached = |entries: &Entries<T>| {
            entries
                .get(&canonical)
                .filter(|(cached, _)| *cached == identity)
                .map(|(_, outcome)| outcome.clone())
        };
        if let Some(outcome) = cached(&self.lock()) {
            return outcome;
        }
        let outcome = load(&canonical, identity).map(Arc::new);
        let mut entries = self.lock();
        if let Some(earlier) = cached(&entries) {
            return earlier;
        }
        entries.insert(canonical, (identity, outcome.clone()));
        outcome
    }

    fn lock(&self) -> MutexGuard<'_, Entries<T>> {
        // A panic while holding the lock cannot leave the map half-changed.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
