//! `mw_sandbox` and `mw_outgoing_rule_*`: the limits and grants of a
//! location, as the C side merged them from its directives.

use super::error::{ErrorBuf, guarded};
use super::{mw_bytes, mw_header, mw_result, slice};
use crate::keyvalue::Store;
use crate::outgoing::OutgoingRule;
use crate::sandbox::{DirGrant, Sandbox};
use crate::stats::Meter;
use std::ffi::{OsStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A parsed `WasmAllowOutgoing` rule (opaque).
pub struct mw_outgoing_rule {
    _private: [u8; 0],
}

/// A directory grant (`WasmDir`, `WasmMapDir`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mw_dir {
    /// The path the guest opens.
    pub guest: mw_bytes,
    /// The directory on the host.
    pub host: mw_bytes,
    /// Read only: no creating, writing, renaming or removing.
    pub read_only: bool,
}

/// The limits and grants of one request. Zero limits mean the defaults.
#[repr(C)]
pub struct mw_sandbox {
    /// `WasmTimeout` in milliseconds; 0 for the default (60 s).
    pub timeout_ms: u64,
    /// `WasmMemoryLimit` in bytes per linear memory; 0 for the default
    /// (128 MiB).
    pub memory_limit: u64,
    /// `WasmEnv` variables in order; a later one wins over an earlier one
    /// with the same name.
    pub env: *const mw_header,
    /// The number of variables.
    pub env_len: usize,
    /// Directory grants.
    pub dirs: *const mw_dir,
    /// The number of directory grants.
    pub dirs_len: usize,
    /// `WasmAllowOutgoing` rules, from [`mw_outgoing_rule_new`].
    pub outgoing: *const *const mw_outgoing_rule,
    /// The number of rules.
    pub outgoing_len: usize,
    /// `WasmKeyValue` stores, from [`super::mw_host_kv_store`].
    pub stores: *const *const super::mw_kv_store,
    /// The number of stores.
    pub stores_len: usize,
    /// `WasmConfigVar` variables in order; a later one wins over an earlier
    /// one with the same name.
    pub config: *const mw_header,
    /// The number of variables.
    pub config_len: usize,
    /// Where the request is counted for the status page, from
    /// [`super::mw_stats_for`]; NULL: not counted.
    pub stats: *const super::mw_stats,
    /// `WasmInstanceReuse`: requests one instance of a component may serve;
    /// 0 or 1 for a fresh instance per request. Modules ignore it.
    pub reuse: u32,
    /// `WasmInstanceReuse <n> concurrent=<k>`: requests one WASI 0.3
    /// instance may serve at once; 0 or 1 for one at a time. Others ignore
    /// it.
    pub concurrency: u32,
    /// The virtual host serving the request (its `server_rec`, which lives
    /// as long as the child), only compared: a section of the main server
    /// applies to every virtual host, yet two virtual hosts never share an
    /// instance.
    pub server: *const std::ffi::c_void,
    /// The directive that chose the guest, with its file and line; empty
    /// for a component that `AddHandler` or `WasmFileRoutes` found.
    pub place: mw_bytes,
}

/// Parses a `WasmAllowOutgoing` pattern. On success `*rule_out` owns the
/// rule (free it with [`mw_outgoing_rule_free`]); on failure `err` says what
/// is wrong with it.
///
/// # Safety
/// `text` is valid; `rule_out` is writable; `err` has `err_len` writable
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_outgoing_rule_new(
    text: mw_bytes,
    rule_out: *mut *const mw_outgoing_rule,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if rule_out.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let text = String::from_utf8_lossy(unsafe { text.as_slice() });
        match OutgoingRule::parse(&text) {
            Ok(rule) => {
                // SAFETY: checked for NULL above.
                unsafe { *rule_out = Arc::into_raw(Arc::new(rule)).cast() };
                mw_result::Ok
            }
            Err(why) => err.fail(mw_result::InvalidConfig, &why),
        }
    })
}

/// Frees a rule. NULL is fine.
///
/// # Safety
/// `rule` is NULL or came from [`mw_outgoing_rule_new`], and is not used
/// afterwards (requests being served hold their own references).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_outgoing_rule_free(rule: *const mw_outgoing_rule) {
    if rule.is_null() {
        return;
    }
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        // SAFETY: the caller's contract: this is the reference it owned.
        drop(unsafe { Arc::from_raw(rule.cast::<OutgoingRule>()) });
        mw_result::Ok
    });
}

/// What a reused instance was built from besides its component: the
/// virtual host, the directive and section that chose it, and the grants
/// and limits `sandbox_from` read from `sandbox`. Requests differing in any
/// of it never share an instance. This is the one place that rule lives.
///
/// # Safety
/// `raw.place` is valid.
pub(crate) unsafe fn reuse_config(sandbox: &Sandbox, raw: &mw_sandbox, section: &str) -> String {
    // SAFETY: the caller's contract.
    let place = String::from_utf8_lossy(unsafe { raw.place.as_slice() });
    let rules: Vec<*const OutgoingRule> = sandbox.outgoing.iter().map(Arc::as_ptr).collect();
    let stores: Vec<*const Store> = sandbox.stores.iter().map(Arc::as_ptr).collect();
    format!(
        "{:p}\0{place}\0{section}\0{}\0{:?}\0{:?}\0{rules:?}\0{:?}\0{stores:?}\0{:?}",
        raw.server, sandbox.memory_limit, sandbox.env, sandbox.dirs, raw.stats, sandbox.config
    )
}

/// The Rust view of `sandbox`.
///
/// # Safety
/// The arrays of `sandbox` and the bytes they point to are valid; every rule
/// pointer came from [`mw_outgoing_rule_new`] and is alive; `stats` is NULL
/// or came from [`super::mw_stats_for`].
pub(crate) unsafe fn sandbox_from(sandbox: &mw_sandbox) -> Sandbox {
    let defaults = Sandbox::default();
    let text = |bytes: mw_bytes| {
        // SAFETY: the caller's contract.
        String::from_utf8_lossy(unsafe { bytes.as_slice() }).into_owned()
    };
    // SAFETY: the caller's contract, for each array.
    let (env, dirs, outgoing, stores, config) = unsafe {
        (
            slice(sandbox.env, sandbox.env_len),
            slice(sandbox.dirs, sandbox.dirs_len),
            slice(sandbox.outgoing, sandbox.outgoing_len),
            slice(sandbox.stores, sandbox.stores_len),
            slice(sandbox.config, sandbox.config_len),
        )
    };
    Sandbox {
        timeout: match sandbox.timeout_ms {
            0 => defaults.timeout,
            ms => Duration::from_millis(ms),
        },
        memory_limit: match sandbox.memory_limit {
            0 => defaults.memory_limit,
            bytes => usize::try_from(bytes).unwrap_or(usize::MAX),
        },
        env: env
            .iter()
            .map(|var| (text(var.name), text(var.value)))
            .collect(),
        dirs: dirs
            .iter()
            .map(|dir| DirGrant {
                // SAFETY: the caller's contract.
                host: PathBuf::from(OsStr::from_bytes(unsafe { dir.host.as_slice() })),
                guest: text(dir.guest),
                read_only: dir.read_only,
            })
            .collect(),
        outgoing: outgoing
            .iter()
            .filter(|rule| !rule.is_null())
            .map(|&rule| {
                let rule = rule.cast::<OutgoingRule>();
                // SAFETY: the rule is alive (the caller's contract); this
                // request takes a reference of its own.
                unsafe {
                    Arc::increment_strong_count(rule);
                    Arc::from_raw(rule)
                }
            })
            .collect(),
        stores: stores
            .iter()
            .filter(|store| !store.is_null())
            // SAFETY: the store is alive (the caller's contract).
            .map(|&store| unsafe { super::keyvalue::share(store) })
            .collect(),
        config: config
            .iter()
            .map(|var| (text(var.name), text(var.value)))
            .collect(),
        // SAFETY: the caller's contract.
        meter: Meter::new(unsafe { super::stats::slot_of(sandbox.stats) }),
    }
}

/// Remembers that the directive at `place` (its name, section, file and
/// line) grants the host directory `dir`, for [`mw_host_check_grants`].
///
/// # Safety
/// `host` came from `mw_host_new`; `dir` and `place` are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_note_grant(
    host: *mut super::mw_host,
    dir: mw_bytes,
    place: mw_bytes,
) {
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        if host.is_null() {
            return mw_result::NullArgument;
        }
        // SAFETY: the caller's contract.
        let (host, dir, place) = unsafe {
            (
                &mut *host.cast::<crate::host::Host>(),
                dir.as_slice(),
                place.as_slice(),
            )
        };
        host.note_grant(
            PathBuf::from(OsStr::from_bytes(dir)),
            String::from_utf8_lossy(place).into_owned(),
        );
        mw_result::Ok
    });
}

/// Calls `unreachable` with a sentence for each directory granted to
/// `host`'s guests that the children's user cannot read, and returns how
/// many there are. `uid` and `gid` are `User` and `Group`; they apply only
/// when the parent runs as root (else the children keep its user). Call in
/// the parent, after the configuration was read: the children switch users
/// later.
///
/// # Safety
/// `host` came from `mw_host_new`; `unreachable` may be called with `ctx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_check_grants(
    host: *const super::mw_host,
    uid: u32,
    gid: u32,
    ctx: *mut std::ffi::c_void,
    unreachable: Option<unsafe extern "C" fn(ctx: *mut std::ffi::c_void, why: mw_bytes)>,
) -> usize {
    let mut count = 0;
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        let (Some(unreachable), false) = (unreachable, host.is_null()) else {
            return mw_result::NullArgument;
        };
        // SAFETY: the caller's contract.
        let host = unsafe { &*host.cast::<crate::host::Host>() };
        // SAFETY: these have no preconditions and cannot fail.
        let (uid, gid) = match unsafe { (libc::geteuid(), libc::getegid()) } {
            (0, _) => (uid, gid),
            own => own,
        };
        let children = mod_wasm_rules::reach::Account::of(uid, gid);
        for why in host.unreachable_grants(&children) {
            // SAFETY: the caller's contract; the view outlives the call.
            unsafe { unreachable(ctx, mw_bytes::of(why.as_bytes())) };
            count += 1;
        }
        mw_result::Ok
    });
    count
}
