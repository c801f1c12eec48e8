//! Key-value stores for guests: what `WasmKeyValueStore <label> <url>`
//! declares and `WasmKeyValue <label>…` grants, behind `wasi:keyvalue`
//! (the WIT side is `component::keyvalue`).
//!
//! A store is one bucket: a guest opens it by its label. Two backends:
//! SQLite (one file per store, in this process; safe under many children
//! and threads at once) and Redis or Valkey (one server several Apaches
//! share). Both are blocking: a call holds its request's thread, as a file
//! read does, and is bounded by the store's timeout and by what is left of
//! the request's `WasmTimeout`. Connections are opened in the child on
//! first use, never in the parent, and kept for the next request.
//!
//! Numbers that `increment` keeps are stored as decimal text in both
//! backends, so a guest reads a counter with `get` the same way on either.

mod files;
mod redis;
mod sqlite;

pub use files::check_file;

use crate::stats::{StoreKind, StoreSlot};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes a key may have. Keys are names, not data; a long one is a bug.
pub const MAX_KEY: usize = 1024;

/// `max-value=` when not given: bytes one value may have.
pub const DEFAULT_MAX_VALUE: usize = 1 << 20;

/// `max-ops=` when not given: operations one request may make on a store
/// (a batch counts one per key).
pub const DEFAULT_MAX_OPS: u32 = 1000;

/// `timeout=` when not given: how long one operation may wait for the
/// backend (a lock in SQLite, the network for Redis).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keys one `list-keys` call returns at most; the cursor gives the rest.
pub const LIST_PAGE: usize = 1000;

/// Connections a store keeps open per child for the next requests.
const MAX_IDLE: usize = 16;

/// What a store allows one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Bytes one value may have (`max-value=`).
    pub max_value: usize,
    /// Operations one request may make (`max-ops=`).
    pub max_ops: u32,
    /// How long one operation may wait (`timeout=`).
    pub timeout: Duration,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_value: DEFAULT_MAX_VALUE,
            max_ops: DEFAULT_MAX_OPS,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A declared store: its label, where it lives, its limits.
pub struct Store {
    label: String,
    /// The directive that declared it, with its file and line.
    place: String,
    limits: StoreLimits,
    backend: Box<dyn Backend>,
    /// The SQLite file, checked once the children's user is known.
    file: Option<PathBuf>,
    /// Its counters on the status page.
    stats: &'static StoreSlot,
}

/// Why a store operation failed: a sentence naming the cause, which the
/// guest gets as `error::other` and the error log gets with the store.
pub type Failure = String;

/// The operations a backend provides; `within` bounds each.
trait Backend: Send + Sync {
    /// How the log names where the store lives (no password).
    fn describe(&self) -> String;
    /// Which backend it is, for the status page.
    fn kind(&self) -> StoreKind;
    fn get(&self, key: &str, within: Duration) -> Result<Option<Vec<u8>>, Failure>;
    fn set(&self, key: &str, value: &[u8], within: Duration) -> Result<(), Failure>;
    fn delete(&self, key: &str, within: Duration) -> Result<(), Failure>;
    fn exists(&self, key: &str, within: Duration) -> Result<bool, Failure>;
    /// Up to [`LIST_PAGE`] keys after `cursor`, and the cursor of the
    /// next page if there may be more.
    fn list_keys(
        &self,
        cursor: Option<&str>,
        within: Duration,
    ) -> Result<(Vec<String>, Option<String>), Failure>;
    /// Adds `delta` to the number at `key` (0 if absent), atomically.
    fn increment(&self, key: &str, delta: i64, within: Duration) -> Result<i64, Failure>;
    /// Sets `key` to `value` if it still holds `expected` (`None`: absent),
    /// atomically; false if it did not.
    fn swap_if(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        within: Duration,
    ) -> Result<bool, Failure>;
    fn get_many(&self, keys: &[String], within: Duration) -> Result<Vec<Option<Vec<u8>>>, Failure>;
    /// All of them or none.
    fn set_many(&self, pairs: &[(String, Vec<u8>)], within: Duration) -> Result<(), Failure>;
    /// All of them or none.
    fn delete_many(&self, keys: &[String], within: Duration) -> Result<(), Failure>;
}

impl Store {
    /// The store `WasmKeyValueStore <label> <url> [option=value]…` declares.
    /// `url` is `sqlite:<absolute file>`, `sqlite:` for `<state_dir>/<label>.sqlite3`,
    /// or `redis://[user:password@]host[:port][/db]`. Nothing is opened yet.
    pub fn declare(
        label: &str,
        url: &str,
        options: &[&str],
        state_dir: &Path,
        place: String,
    ) -> Result<Store, String> {
        if label.is_empty()
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(format!(
                "'{label}' is not a store label (letters, digits, '-', '_' and '.')"
            ));
        }
        let Options { limits, ca } = parse_options(options)?;
        let tls = ["rediss://", "valkeys://"]
            .iter()
            .any(|scheme| url.starts_with(scheme));
        if ca.is_some() && !tls {
            return Err("ca= applies to a store on rediss:// or valkeys:// only".into());
        }
        let (backend, file): (Box<dyn Backend>, _) = if let Some(path) = url.strip_prefix("sqlite:")
        {
            let file = if path.is_empty() {
                state_dir.join(format!("{label}.sqlite3"))
            } else {
                PathBuf::from(path)
            };
            if !file.is_absolute() {
                return Err(format!(
                    "the SQLite file {} is not an absolute path",
                    file.display()
                ));
            }
            (Box::new(sqlite::Sqlite::new(file.clone())), Some(file))
        } else if tls || url.starts_with("redis://") || url.starts_with("valkey://") {
            (Box::new(redis::Redis::new(url, ca.as_deref())?), None)
        } else {
            return Err(format!(
                "'{url}' is not a store URL: sqlite:[<file>], redis://<host>[:<port>][/<db>] \
                 or rediss://…"
            ));
        };
        let stats = crate::stats::region().store_slot(label, &backend.describe(), backend.kind());
        Ok(Store {
            label: label.to_owned(),
            place,
            limits,
            backend,
            file,
            stats,
        })
    }

    /// The label guests open it by.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The SQLite file it keeps, if it is one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The directive that declared it.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// How log lines name it: label and where it lives.
    pub fn describe(&self) -> String {
        format!("store '{}' ({})", self.label, self.backend.describe())
    }

    /// Its limits.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }
}

/// A store's options: its limits, and the CA a TLS Redis server's
/// certificate must chain to.
struct Options {
    limits: StoreLimits,
    /// `ca=<file>`: PEM certificates to trust instead of the system's.
    ca: Option<PathBuf>,
}

/// `max-value=<size>`, `max-ops=<n>`, `timeout=<seconds>`, `ca=<file>`.
fn parse_options(options: &[&str]) -> Result<Options, String> {
    let mut limits = StoreLimits::default();
    let mut ca = None;
    for option in options {
        let Some((name, value)) = option.split_once('=') else {
            return Err(format!("'{option}' is not <option>=<value>"));
        };
        match name.to_ascii_lowercase().as_str() {
            "max-value" => {
                limits.max_value = crate::directive::size(value, 1, 64 << 20)? as usize;
            }
            "max-ops" => limits.max_ops = crate::directive::count(value, false)?,
            "timeout" => {
                limits.timeout = Duration::from_millis(crate::directive::timeout_ms(value)?);
            }
            "ca" => {
                let file = PathBuf::from(value);
                if !file.is_absolute() {
                    return Err(format!("the CA file {value} is not an absolute path"));
                }
                ca = Some(file);
            }
            _ => {
                return Err(format!(
                    "'{name}' is not an option of a store (max-value, max-ops, timeout, ca)"
                ));
            }
        }
    }
    Ok(Options { limits, ca })
}

/// One request's use of one store: its operations counted against
/// `max-ops`, each bounded by the store's timeout and the request's
/// deadline, each input checked against the limits before the backend
/// sees it.
pub struct Session<'a> {
    /// The store.
    pub store: &'a Store,
    /// Operations this request may still make.
    pub ops_left: &'a mut u32,
    /// When the request's `WasmTimeout` runs out.
    pub deadline: Instant,
}

impl Session<'_> {
    /// Runs `op` on the backend as `n` operations: taken from the request's
    /// allowance, bounded by the time one may take, counted and timed on the
    /// status page.
    fn run<T>(
        &mut self,
        n: usize,
        op: impl FnOnce(&dyn Backend, Duration) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if n > *self.ops_left {
            return Err(self.refuse(format!(
                "this request reached the store's limit of {} operations (max-ops)",
                self.store.limits.max_ops
            )));
        }
        *self.ops_left -= n;
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.refuse("the request's WasmTimeout has run out".into()));
        }
        let started = Instant::now();
        let result = op(&*self.store.backend, left.min(self.store.limits.timeout));
        self.store.stats.ran(started.elapsed(), result.is_ok());
        result
    }

    /// `why` an operation is refused, counted.
    fn refuse(&self, why: String) -> Failure {
        self.store.stats.refused();
        why
    }

    fn check_key(&self, key: &str) -> Result<(), Failure> {
        if key.len() > MAX_KEY {
            return Err(self.refuse(format!(
                "a key of {} bytes is longer than the {MAX_KEY} a key may have",
                key.len()
            )));
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), Failure> {
        let max = self.store.limits.max_value;
        if value.len() > max {
            return Err(self.refuse(format!(
                "a value of {} bytes is larger than the store's max-value of {max} bytes",
                value.len()
            )));
        }
        Ok(())
    }

    /// The value at `key`, if any.
    pub fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Failure> {
        self.check_key(key)?;
        self.run(1, |backend, within| backend.get(key, within))
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<(), Failure> {
        self.check_key(key)?;
        self.check_value(value)?;
        self.run(1, |backend, within| backend.set(key, value, within))
    }

    /// Removes `key` (absent is fine).
    pub fn delete(&mut self, key: &str) -> Result<(), Failure> {
        self.check_key(key)?;
        self.run(1, |backend, within| backend.delete(key, within))
    }

    /// Whether `key` has a value.
    pub fn exists(&mut self, key: &str) -> Result<bool, Failure> {
        self.check_key(key)?;
        self.run(1, |backend, within| backend.exists(key, within))
    }

    /// A page of keys after `cursor`, and the next page's cursor.
    pub fn list_keys(
        &mut self,
        cursor: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), Failure> {
        self.run(1, |backend, within| backend.list_keys(cursor, within))
    }

    /// Adds `delta` to the number at `key`; the sum.
    pub fn increment(&mut self, key: &str, delta: i64) -> Result<i64, Failure> {
        self.check_key(key)?;
        self.run(1, |backend, within| backend.increment(key, delta, within))
    }

    /// Sets `key` to `value` if it holds `expected`; whether it did.
    pub fn swap_if(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, Failure> {
        self.check_key(key)?;
        self.check_value(value)?;
        self.run(1, |backend, within| {
            backend.swap_if(key, expected, value, within)
        })
    }

    /// The values at `keys`, in their order.
    pub fn get_many(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Failure> {
        keys.iter().try_for_each(|key| self.check_key(key))?;
        self.run(keys.len(), |backend, within| backend.get_many(keys, within))
    }

    /// Sets every pair, all or none.
    pub fn set_many(&mut self, pairs: &[(String, Vec<u8>)]) -> Result<(), Failure> {
        for (key, value) in pairs {
            self.check_key(key)?;
            self.check_value(value)?;
        }
        self.run(pairs.len(), |backend, within| {
            backend.set_many(pairs, within)
        })
    }

    /// Removes every key, all or none.
    pub fn delete_many(&mut self, keys: &[String]) -> Result<(), Failure> {
        keys.iter().try_for_each(|key| self.check_key(key))?;
        self.run(keys.len(), |backend, within| {
            backend.delete_many(keys, within)
        })
    }
}

/// The number `increment` finds at a key: decimal text, or nothing (0).
fn stored_number(value: Option<&[u8]>) -> Result<i64, Failure> {
    let Some(value) = value else { return Ok(0) };
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| "the value at the key is not a decimal integer".to_owned())
}

/// `current + delta`, or why not.
fn add(current: i64, delta: i64) -> Result<i64, Failure> {
    current
        .checked_add(delta)
        .ok_or_else(|| "the increment overflows a 64-bit integer".to_owned())
}

/// Connections kept for the next requests of one child, taken one at a
/// time, each with when it was put back; a connection that failed is not
/// put back.
struct Idle<C>(std::sync::Mutex<Vec<(C, Instant)>>);

impl<C> Idle<C> {
    fn new() -> Self {
        Idle(std::sync::Mutex::new(Vec::new()))
    }

    /// The connection used last, and how long it has been idle.
    fn take(&self) -> Option<(C, Duration)> {
        self.lock()
            .pop()
            .map(|(connection, since)| (connection, since.elapsed()))
    }

    fn put(&self, connection: C) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push((connection, Instant::now()));
        }
    }

    /// Drops every kept connection: the server went away, and each of
    /// them would fail once before being dropped.
    fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(C, Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_urls_and_options_are_checked() {
        let dir = Path::new("/var/lib/x");
        let store = Store::declare("counter", "sqlite:", &[], dir, "here".into()).unwrap();
        assert_eq!(store.file(), Some(Path::new("/var/lib/x/counter.sqlite3")));
        let store = Store::declare(
            "s",
            "redis://127.0.0.1:6379/2",
            &["max-value=2K", "max-ops=5", "timeout=0.5"],
            dir,
            "here".into(),
        )
        .unwrap();
        assert_eq!(
            store.limits(),
            StoreLimits {
                max_value: 2048,
                max_ops: 5,
                timeout: Duration::from_millis(500)
            }
        );
        assert_eq!(store.file(), None);
        for (label, url, options) in [
            ("", "sqlite:", &[][..]),
            ("a b", "sqlite:", &[]),
            ("a", "sqlite:relative.db", &[]),
            ("a", "mysql://x", &[]),
            ("a", "redis://", &[]),
            ("a", "sqlite:", &["max-value"]),
            ("a", "sqlite:", &["colour=red"]),
            ("a", "sqlite:", &["max-ops=0"]),
            (
                "a",
                "redis://127.0.0.1/0",
                &["ca=/etc/ssl/certs/ca-certificates.crt"],
            ),
            ("a", "rediss://127.0.0.1/0", &["ca=relative.pem"]),
            ("a", "rediss://127.0.0.1/0", &["ca=/nonexistent/ca.pem"]),
        ] {
            assert!(
                Store::declare(label, url, options, dir, String::new()).is_err(),
                "{label:?} {url:?} {options:?}"
            );
        }
    }

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(stored_number(None), Ok(0));
        assert_eq!(stored_number(Some(b"-12")), Ok(-12));
        assert!(stored_number(Some(b"twelve")).is_err());
        assert!(add(i64::MAX, 1).is_err());
    }
}
