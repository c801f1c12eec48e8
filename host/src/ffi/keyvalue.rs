//! `mw_host_*_kv_store*`: the key-value stores a configuration declares
//! (`WasmKeyValueStore`) and the handles its sections grant
//! (`WasmKeyValue`).

use super::error::{ErrorBuf, guarded};
use super::{mw_bytes, mw_host, mw_result, slice};
use crate::host::Host;
use crate::keyvalue::Store;
use std::ffi::{OsStr, c_char, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// A declared store (opaque), as a section holds it.
pub struct mw_kv_store {
    _private: [u8; 0],
}

/// Declares the store `label` at `url` for the server (virtual host)
/// `server`, with `options` (`max-value=…`, `max-ops=…`, `timeout=…`).
/// `sqlite:` without a file keeps it in `state_dir` (absolute). Nothing is
/// opened: children connect on first use. On failure `err` says why.
///
/// # Safety
/// `host` came from `mw_host_new`; the views are valid; `options` points
/// at `options_len` views; `err` has `err_len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_add_kv_store(
    host: *mut mw_host,
    server: *const c_void,
    label: mw_bytes,
    url: mw_bytes,
    options: *const mw_bytes,
    options_len: usize,
    state_dir: mw_bytes,
    place: mw_bytes,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if host.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let (host, label, url, options, state_dir, place) = unsafe {
            (
                &mut *host.cast::<Host>(),
                String::from_utf8_lossy(label.as_slice()),
                String::from_utf8_lossy(url.as_slice()),
                slice(options, options_len)
                    .iter()
                    .map(|option| String::from_utf8_lossy(option.as_slice()).into_owned())
                    .collect::<Vec<_>>(),
                Path::new(OsStr::from_bytes(state_dir.as_slice())),
                String::from_utf8_lossy(place.as_slice()).into_owned(),
            )
        };
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        let declared = Store::declare(&label, &url, &options, state_dir, place)
            .and_then(|store| host.add_store(server as usize, store));
        match declared {
            Ok(()) => mw_result::Ok,
            Err(why) => err.fail(mw_result::InvalidConfig, &why),
        }
    })
}

/// The store `label` that a section of `server` may be granted: that
/// server's own, else the main server's (`main`). On success `*store_out`
/// holds a reference to free with [`mw_kv_store_free`]; if there is none,
/// `err` says so.
///
/// # Safety
/// `host` came from `mw_host_new`; `label` is valid; `store_out` is
/// writable; `err` has `err_len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_kv_store(
    host: *const mw_host,
    server: *const c_void,
    main: *const c_void,
    label: mw_bytes,
    store_out: *mut *const mw_kv_store,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if host.is_null() || store_out.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let (host, label) = unsafe {
            (
                &*host.cast::<Host>(),
                String::from_utf8_lossy(label.as_slice()),
            )
        };
        match host.store(server as usize, main as usize, &label) {
            Some(store) => {
                // SAFETY: checked for NULL above.
                unsafe { *store_out = Arc::into_raw(store).cast() };
                mw_result::Ok
            }
            None => err.fail(
                mw_result::InvalidConfig,
                &format!(
                    "no store '{label}' is declared (WasmKeyValueStore) before this line, in \
                     this virtual host or the main server"
                ),
            ),
        }
    })
}

/// Frees a reference from [`mw_host_kv_store`]. NULL is fine.
///
/// # Safety
/// `store` is NULL or came from [`mw_host_kv_store`], and is not used
/// afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_kv_store_free(store: *const mw_kv_store) {
    if store.is_null() {
        return;
    }
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        // SAFETY: the caller's contract: this is the reference it owned.
        drop(unsafe { Arc::from_raw(store.cast::<Store>()) });
        mw_result::Ok
    });
}

/// Checks every SQLite store's file for the children (`uid`, `gid`: `User`
/// and `Group`, which apply only when this process is root), creating a
/// missing directory for them; calls `unsafe_file` with a sentence for
/// each store that fails, and returns how many did. Call in the parent
/// after the configuration was read: a failure should stop start-up.
///
/// # Safety
/// `host` came from `mw_host_new`; `unsafe_file` may be called with `ctx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_check_kv_stores(
    host: *const mw_host,
    uid: u32,
    gid: u32,
    ctx: *mut c_void,
    unsafe_file: Option<unsafe extern "C" fn(ctx: *mut c_void, why: mw_bytes)>,
) -> usize {
    let mut count = 0;
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        let (Some(unsafe_file), false) = (unsafe_file, host.is_null()) else {
            return mw_result::NullArgument;
        };
        // SAFETY: the caller's contract.
        let host = unsafe { &*host.cast::<Host>() };
        // SAFETY: these have no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let (uid, gid) = if root {
            (uid, gid)
        } else {
            // SAFETY: as above.
            unsafe { (libc::geteuid(), libc::getegid()) }
        };
        let children = mod_wasm_rules::reach::Account::of(uid, gid);
        for why in host.unsafe_store_files(&children, gid, root) {
            // SAFETY: the caller's contract; the view outlives the call.
            unsafe { unsafe_file(ctx, mw_bytes::of(why.as_bytes())) };
            count += 1;
        }
        mw_result::Ok
    });
    count
}

/// A reference of the request's own to a store a section holds.
///
/// # Safety
/// `store` came from [`mw_host_kv_store`] and is alive.
pub(crate) unsafe fn share(store: *const mw_kv_store) -> Arc<Store> {
    let store = store.cast::<Store>();
    // SAFETY: the caller's contract.
    unsafe {
        Arc::increment_strong_count(store);
        Arc::from_raw(store)
    }
}
