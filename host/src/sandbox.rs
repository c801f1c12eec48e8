//! What one request's guest may use: its limits (time, memory) and the
//! capabilities its location grants (environment, directories, outgoing
//! HTTP). Everything not granted here is denied.

use crate::keyvalue::Store;
use crate::outgoing::OutgoingRule;
use crate::request_io::Limits;
use crate::stats::Meter;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// `WasmTimeout` when none is configured.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(DEFAULT_TIMEOUT_MS);

/// [`DEFAULT_TIMEOUT`] in milliseconds, for the C side, which bounds the
/// writes to a client by the same deadline.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// `WasmMemoryLimit` when none is configured: per linear memory.
pub(crate) const DEFAULT_MEMORY_LIMIT: usize = 128 << 20;

/// Elements a table may grow to. Not configurable: real components stay far
/// below it, and it stops a guest from using tables to exhaust host memory.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Resources (streams, pollables, header fields, ...) a guest may hold at
/// once in the host. Real guests hold dozens.
pub(crate) const MAX_RESOURCES: usize = 1024;

/// Bytes of names and values one set of header fields may hold in the host
/// (Apache itself accepts about 8 KiB per request header line).
pub(crate) const MAX_FIELDS_SIZE: usize = 32 * 1024;

/// The limits and grants of one request.
#[derive(Clone)]
pub struct Sandbox {
    /// The whole exchange, from instantiation to the last byte.
    pub timeout: Duration,
    /// The size any one linear memory may reach, in bytes.
    pub memory_limit: usize,
    /// Environment variables (`WasmEnv`); a later entry wins over an earlier
    /// one with the same name.
    pub env: Vec<(String, String)>,
    /// Preopened directories (`WasmDir`, `WasmMapDir`).
    pub dirs: Vec<DirGrant>,
    /// Where outgoing HTTP requests may go (`WasmAllowOutgoing`); empty
    /// denies all.
    pub outgoing: Vec<Arc<OutgoingRule>>,
    /// The key-value stores the guest may open (`WasmKeyValue`); modules
    /// ignore them.
    pub stores: Vec<Arc<Store>>,
    /// `wasi:config` variables (`WasmConfigVar`); a later entry wins over
    /// an earlier one with the same name.
    pub config: Vec<(String, String)>,
    /// Where the request's measurements go (the status page, the notes
    /// for `LogFormat`).
    pub meter: Arc<Meter>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            timeout: DEFAULT_TIMEOUT,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            env: Vec::new(),
            dirs: Vec::new(),
            outgoing: Vec::new(),
            stores: Vec::new(),
            config: Vec::new(),
            meter: Arc::default(),
        }
    }
}

impl Sandbox {
    /// Where the guest sees the host file `host_path`: below the granted
    /// directory (`WasmDir`, `WasmMapDir`) with the longest host path that
    /// contains it, at that grant's guest path; `None` if no grant does.
    /// (`WasmMapCGIFileNames` gives a module its `SCRIPT_FILENAME` this way.)
    pub fn guest_path(&self, host_path: &str) -> Option<String> {
        // "/srv/app/" contains "/srv/app/x" as "/srv/app" does.
        fn trimmed(path: &str) -> &str {
            match path.trim_end_matches('/') {
                "" if path.starts_with('/') => "/",
                trimmed => trimmed,
            }
        }
        let (_, rest, guest) = self
            .dirs
            .iter()
            .filter_map(|dir| {
                let host = trimmed(dir.host.to_str()?);
                let rest = if host == "/" {
                    host_path
                } else {
                    let rest = host_path.strip_prefix(host)?;
                    if !rest.is_empty() && !rest.starts_with('/') {
                        return None; // "/srv/application" is not in "/srv/app"
                    }
                    rest
                };
                Some((host.len(), rest, trimmed(&dir.guest)))
            })
            .max_by_key(|(len, _, _)| *len)?;
        Some(match (guest.ends_with('/'), rest.strip_prefix('/')) {
            (true, Some(below)) => format!("{guest}{below}"),
            _ => format!("{guest}{rest}"),
        })
    }

    /// The limits a failure is explained by.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout,
            memory: self.memory_limit,
        }
    }

    /// The environment with later duplicates winning, in first-set order.
    pub fn environment(&self) -> Vec<(String, String)> {
        self.environment_over(Vec::new())
    }

    /// `base` (e.g. CGI variables) overridden and extended by `WasmEnv`, as
    /// [`Sandbox::environment`] does.
    pub fn environment_over(&self, base: Vec<(String, String)>) -> Vec<(String, String)> {
        later_wins(base, &self.env)
    }

    /// The `wasi:config` variables with later duplicates winning, in
    /// first-set order.
    pub fn config_vars(&self) -> Vec<(String, String)> {
        later_wins(Vec::new(), &self.config)
    }

    /// Grants the sandbox's directories to a WASI context being built, and
    /// denies sockets. Fails if a granted directory cannot be opened.
    ///
    /// Each directory takes the builder's `allow_blocking_current_thread`
    /// as it is now: set that first.
    pub fn grant_to(&self, wasi: &mut WasiCtxBuilder) -> Result<(), String> {
        // No wasi:sockets: no TCP, no UDP, no name lookups (the address check
        // already denies every address by default; this says it twice).
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for dir in &self.dirs {
            let perms = if dir.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            wasi.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|e| {
                    let denied = e
                        .downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
                    // Root read the configuration; this child switched to
                    // `User`, which is the one to give access (MW00046).
                    let hint = if denied {
                        // SAFETY: geteuid has no preconditions and cannot fail.
                        let uid = unsafe { libc::geteuid() };
                        format!("; this child runs as user id {uid}, which must be able to read it")
                    } else {
                        String::new()
                    };
                    format!(
                        "cannot open the granted directory {} (as {}): {e:#}{hint}",
                        dir.host.display(),
                        dir.guest
                    )
                })?;
        }
        Ok(())
    }
}

/// `base` overridden and extended by `entries`, in first-set order.
fn later_wins(
    mut base: Vec<(String, String)>,
    entries: &[(String, String)],
) -> Vec<(String, String)> {
    for (name, value) in entries {
        match base.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.clone(),
            None => base.push((name.clone(), value.clone())),
        }
    }
    base
}

/// A host directory a guest may open, under the path it sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest finds it.
    pub guest: String,
    /// No creating, writing, renaming or removing.
    pub read_only: bool,
}

/// Enforces `WasmMemoryLimit` and the table limit on one store, remembers
/// whether the guest ran into the memory limit, so that the log line can
/// say why its allocation failed, and tells the request's [`Meter`] how
/// much linear memory the guest holds.
pub struct MemoryLimiter {
    memory_limit: usize,
    exceeded: Arc<AtomicBool>,
    meter: Arc<Meter>,
    /// Bytes of linear memory this store's memories hold (Wasmtime asks
    /// the limiter for each memory's initial size too).
    held: u64,
    /// The growth last allowed, until it is known to have happened:
    /// Wasmtime may still fail it after asking (a memory's own maximum, the
    /// pool's slot size), and then says so in `memory_grow_failed`.
    pending: u64,
}

impl MemoryLimiter {
    /// A limiter for `memory_limit` bytes per memory; `exceeded` is set when
    /// a growth is refused.
    pub fn new(memory_limit: usize, exceeded: Arc<AtomicBool>, meter: Arc<Meter>) -> Self {
        MemoryLimiter {
            memory_limit,
            exceeded,
            meter,
            held: 0,
            pending: 0,
        }
    }

    /// The store serves another request (`WasmInstanceReuse`): its refusals
    /// and its peak, which starts at what the instance already holds, are
    /// that request's.
    pub fn next_request(&mut self, exceeded: Arc<AtomicBool>, meter: Arc<Meter>) {
        self.settle();
        self.exceeded = exceeded;
        self.meter = meter;
        self.meter.peak(self.held);
    }

    /// The last growth happened: count it toward the peak.
    fn settle(&mut self) {
        if self.pending > 0 {
            self.pending = 0;
            self.meter.peak(self.held);
        }
    }
}

impl Drop for MemoryLimiter {
    /// The store, and with it every memory, is going away.
    fn drop(&mut self) {
        self.settle();
        self.meter.memory(-(self.held as i64));
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.exceeded.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        self.settle();
        let grown = desired.saturating_sub(current) as u64;
        self.held += grown;
        self.pending = grown;
        self.meter.memory(grown as i64);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.held -= self.pending;
        self.meter.memory(-(self.pending as i64));
        self.pending = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_environment_entries_win() {
        let sandbox = Sandbox {
            env: vec![
                ("A".into(), "1".into()),
                ("B".into(), "2".into()),
                ("A".into(), "3".into()),
            ],
            ..Sandbox::default()
        };
        assert_eq!(
            sandbox.environment(),
            vec![("A".into(), "3".into()), ("B".into(), "2".into())]
        );
    }

    #[test]
    fn the_memory_limit_refuses_growth_beyond_it() {
        let exceeded = Arc::new(AtomicBool::new(false));
        let mut limiter = MemoryLimiter::new(1 << 20, exceeded.clone(), Arc::default());
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!exceeded.load(Ordering::Relaxed));
        assert!(!limiter.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(exceeded.load(Ordering::Relaxed));
    }

    #[test]
    fn memory_is_counted_while_held_and_a_failed_growth_is_not() {
        use crate::stats::{GuestKind, Meter, region};
        let slot = region().slot("/limiter-test", "/l.wasm", GuestKind::Component);
        let exceeded = Arc::new(AtomicBool::new(false));
        let mut limiter = MemoryLimiter::new(1 << 20, exceeded, Meter::new(Some(slot)));
        assert!(limiter.memory_growing(0, 65536, None).unwrap());
        assert!(limiter.memory_growing(65536, 131072, None).unwrap());
        // Wasmtime could not grow it after all (e.g. the memory's maximum).
        limiter
            .memory_grow_failed(wasmtime::format_err!("no"))
            .unwrap();
        assert_eq!(slot.memory.load(Ordering::Relaxed), 65536);
        drop(limiter);
        assert_eq!(slot.memory.load(Ordering::Relaxed), 0);
        assert_eq!(slot.peak_memory.load(Ordering::Relaxed), 65536);
    }

    #[test]
    fn a_host_file_is_found_below_the_longest_grant_that_holds_it() {
        let grant = |host: &str, guest: &str| DirGrant {
            host: host.into(),
            guest: guest.into(),
            read_only: true,
        };
        let sandbox = Sandbox {
            dirs: vec![
                grant("/srv/app/", "/app"),
                grant("/srv/app/static", "/static/"),
                grant("/", "/host"),
                grant("/data", "/"),
            ],
            ..Sandbox::default()
        };
        assert_eq!(
            sandbox.guest_path("/srv/app/run.py").as_deref(),
            Some("/app/run.py")
        );
        assert_eq!(sandbox.guest_path("/srv/app").as_deref(), Some("/app"));
        assert_eq!(
            sandbox.guest_path("/srv/app/static/x.css").as_deref(),
            Some("/static/x.css")
        );
        assert_eq!(sandbox.guest_path("/data/a/b").as_deref(), Some("/a/b"));
        assert_eq!(
            sandbox.guest_path("/srv/application").as_deref(),
            Some("/host/srv/application")
        );
        let none = Sandbox {
            dirs: vec![grant("/srv/app", "/app")],
            ..Sandbox::default()
        };
        assert_eq!(none.guest_path("/srv/application"), None);
        assert_eq!(none.guest_path("/etc/passwd"), None);
    }
}
