//! `mw_host_file_component`, `mw_component_release` and `mw_route_resolve`:
//! components served as the request's file (`AddHandler wasm-handler
//! .wasm`) and the routes of `WasmFileRoutes`.

use super::error::{ErrorBuf, guarded};
use super::host::{mw_component, mw_host};
use super::{mw_bytes, mw_result};
use crate::host::{Host, HostedComponent};
use mod_wasm_rules::routes::{self, Reach};
use std::ffi::{OsStr, c_char, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// The component in the file at `path` (absolute), which a request named:
/// compiled by this child on first use and again when the file changed, or
/// loaded at start-up if a `WasmComponent` names the same file. Safe to
/// call from several threads at once. The caller owns one reference and
/// gives it back with [`mw_component_release`].
///
/// # Safety
/// `host` came from `mw_host_new` and its `mw_host_child_init` has returned;
/// `path` is valid; `err` has `err_len` writable bytes; `component_out` is
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_file_component(
    host: *const mw_host,
    path: mw_bytes,
    component_out: *mut *const mw_component,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if host.is_null() || component_out.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let (host, path) = unsafe { (&*host.cast::<Host>(), path.as_slice()) };
        match host.component_for_file(Path::new(OsStr::from_bytes(path))) {
            Ok(hosted) => {
                // SAFETY: checked for NULL above.
                unsafe { *component_out = Arc::into_raw(hosted).cast::<mw_component>() };
                mw_result::Ok
            }
            Err(why) => err.fail(mw_result::InvalidComponent, &why),
        }
    })
}

/// Gives back the reference `mw_host_file_component` handed out.
///
/// # Safety
/// `component` came from `mw_host_file_component` and is not used
/// afterwards by this owner.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_component_release(component: *const mw_component) {
    if component.is_null() {
        return;
    }
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        // SAFETY: the caller's contract: one reference from `Arc::into_raw`.
        drop(unsafe { Arc::from_raw(component.cast::<HostedComponent>()) });
        mw_result::Ok
    });
}

/// Compiles, or takes from the cache, every component file below `dir`
/// (absolute) that `WasmFileRoutes` routes can lead to, as
/// `mw_host_add_component` does for one file; see
/// [`Host::preload_routes`]. Calls `failed` with the reason for each file
/// that cannot be served, and returns how many can.
///
/// # Safety
/// `host` came from `mw_host_new`; `dir` is valid; `failed` may be called
/// with `ctx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_preload_routes(
    host: *mut mw_host,
    dir: mw_bytes,
    ctx: *mut c_void,
    failed: Option<unsafe extern "C" fn(ctx: *mut c_void, why: mw_bytes)>,
) -> usize {
    let mut ready = 0;
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        let (Some(failed), false) = (failed, host.is_null()) else {
            return mw_result::NullArgument;
        };
        // SAFETY: the caller's contract.
        let (host, dir) = unsafe { (&mut *host.cast::<Host>(), dir.as_slice()) };
        let (count, errors) = host.preload_routes(Path::new(OsStr::from_bytes(dir)));
        for why in errors {
            // SAFETY: the caller's contract; the view outlives the call.
            unsafe { failed(ctx, mw_bytes::of(why.as_bytes())) };
        }
        ready = count;
        mw_result::Ok
    });
    ready
}

/// Looks `path` (the request's path below `root`, decoded) up as a route of
/// `WasmFileRoutes` in the directory `root` (see [`mod_wasm_rules::routes`]). If it
/// resolves, calls `found` once and returns true: with the file, whether it
/// is a component (else a static file from `public/`), and the dynamic
/// segments as a form-urlencoded `name=value&...` string (empty if none),
/// views valid during that call only.
///
/// # Safety
/// `root` and `path` are valid; `found` may be called with `ctx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_route_resolve(
    root: mw_bytes,
    path: mw_bytes,
    ctx: *mut c_void,
    found: Option<
        unsafe extern "C" fn(ctx: *mut c_void, file: mw_bytes, component: bool, params: mw_bytes),
    >,
) -> bool {
    let mut resolved = false;
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        let Some(found) = found else {
            return mw_result::NullArgument;
        };
        // SAFETY: the caller's contract.
        let (root, path) = unsafe { (root.as_slice(), path.as_slice()) };
        let Some(route) = routes::resolve(Path::new(OsStr::from_bytes(root)), path) else {
            return mw_result::Ok;
        };
        // SAFETY: the caller's contract; the views outlive the call.
        unsafe {
            found(
                ctx,
                mw_bytes::of(route.file.as_os_str().as_bytes()),
                route.component,
                mw_bytes::of(route.params.as_bytes()),
            )
        };
        resolved = true;
        mw_result::Ok
    });
    resolved
}

/// What a URL naming an existing file below a `WasmFileRoutes` directory
/// may reach (see [`mod_wasm_rules::routes::reachable`]).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mw_reach {
    /// A `.wasm` file outside `public/`: served as a component.
    Component,
    /// In `public/`: a static file (or directory).
    Public,
    /// A directory outside `public/`: its index may be a route.
    Directory,
    /// Anything else (a worker's `.toml`, sources, hidden files): 404.
    Hidden,
}

/// What the existing file at `path` (below a `WasmFileRoutes` directory;
/// `is_dir` if a directory) may be served as.
///
/// # Safety
/// `path` is valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_route_reach(path: mw_bytes, is_dir: bool) -> mw_reach {
    // SAFETY: the caller's contract.
    let path = unsafe { path.as_slice() };
    match routes::reachable(path, is_dir) {
        Reach::Component => mw_reach::Component,
        Reach::Public => mw_reach::Public,
        Reach::Directory => mw_reach::Directory,
        Reach::Hidden => mw_reach::Hidden,
    }
}
