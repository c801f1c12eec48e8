//! `mw_host_*_module` and `mw_module_serve`: WASI preview1 modules
//! (`WasmModule`, legacy mode).

use super::error::{ErrorBuf, guarded};
use super::exchange::{CBody, CLog, COutput, mw_exchange};
use super::host::{add_file, mw_host};
use super::sandbox::{mw_sandbox, sandbox_from};
use super::stats::{mw_report, serve_failure, write_report};
use super::{mw_bytes, mw_header, mw_outcome, mw_result, slice};
use crate::host::{Host, HostedModule};
use crate::legacy::{self, Invocation};
use crate::log::RequestLog;
use crate::stats::{ErrorKind, Serving};
use std::ffi::{OsStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// A module of a generation (opaque). Valid as long as its host.
pub struct mw_module {
    _private: [u8; 0],
}

/// How a module is started for one request; views valid for the call.
#[repr(C)]
pub struct mw_invocation {
    /// argv, argv[0] first (`WasmArg` after the module's file name).
    pub args: *const mw_bytes,
    /// The number of arguments.
    pub args_len: usize,
    /// Variables from the request (CGI mode), set before the sandbox's
    /// `WasmEnv` entries, which win over them.
    pub env: *const mw_header,
    /// The number of variables.
    pub env_len: usize,
    /// `WasmEntryPoint`; empty for `_start`.
    pub entry_point: mw_bytes,
    /// `WasmMapCGIFileNames On`: `SCRIPT_FILENAME` in `env` is the host's
    /// path, to be given as the guest sees it
    /// ([`Sandbox::guest_path`](crate::sandbox::Sandbox::guest_path)).
    pub map_script_filename: bool,
}

/// Validates and compiles the WASI preview1 module at `path` (absolute), or
/// reuses the entry of an earlier call for the same file, as
/// `mw_host_add_component` does for components. Call while reading the server's configuration, in the parent.
///
/// # Safety
/// As for `mw_host_add_component`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_add_module(
    host: *mut mw_host,
    path: mw_bytes,
    module_out: *mut *const mw_module,
    outcome_out: *mut mw_outcome,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    // SAFETY: the caller's contract.
    unsafe {
        add_file(
            host,
            path,
            module_out,
            outcome_out,
            err,
            err_len,
            |host, path| {
                host.add_module(path)
                    .map(|(hosted, outcome)| (Arc::as_ptr(hosted).cast(), outcome))
            },
        )
    }
}

/// The module at `path` (absolute) for a `WasmModule` read from an
/// `.htaccess` file in a child that has run `mw_host_child_init`: compiled
/// now with the child's engine, or taken from the child's cache. Safe to
/// call from several threads at once. The caller owns one reference to the
/// module and gives it back with [`mw_module_release`] (when the
/// configuration that names it is freed).
///
/// # Safety
/// `host` came from `mw_host_new` and its
/// `mw_host_child_init` has returned; `path` is valid; `err` has `err_len`
/// writable bytes; `module_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_htaccess_module(
    host: *const mw_host,
    path: mw_bytes,
    module_out: *mut *const mw_module,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if host.is_null() || module_out.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let (host, path) = unsafe { (&*host.cast::<Host>(), path.as_slice()) };
        match host.module_for_htaccess(Path::new(OsStr::from_bytes(path))) {
            Ok(hosted) => {
                // SAFETY: checked for NULL above.
                unsafe { *module_out = Arc::into_raw(hosted).cast::<mw_module>() };
                mw_result::Ok
            }
            Err(why) => err.fail(mw_result::InvalidComponent, &why),
        }
    })
}

/// Gives back the reference `mw_host_htaccess_module` handed out.
///
/// # Safety
/// `module` came from `mw_host_htaccess_module` and is not used afterwards
/// by this owner.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_module_release(module: *const mw_module) {
    if module.is_null() {
        return;
    }
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        // SAFETY: the caller's contract: one reference from `Arc::into_raw`.
        drop(unsafe { Arc::from_raw(module.cast::<HostedModule>()) });
        mw_result::Ok
    });
}

/// Runs one request with a fresh instance of `module` confined to
/// `sandbox`: the request body (`read_body`) is its stdin, its stdout goes
/// to `send_data`, its stderr to `log`; `send_head` is not used. Blocks
/// until the guest has exited. On `MW_RESULT_OK`, `*exit_status_out` is the
/// status the guest exited with (0 when its entry point returned).
///
/// # Safety
/// `module` came from this host's `mw_host_add_module` (and the host is
/// alive) or from `mw_host_htaccess_module` (and is not released yet); `invocation`, `sandbox`
/// and their views are valid for the call; `err` has `err_len` writable
/// bytes; `exit_status_out` is writable; `report` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_module_serve(
    module: *const mw_module,
    invocation: *const mw_invocation,
    sandbox: *const mw_sandbox,
    exchange: *const mw_exchange,
    exit_status_out: *mut i32,
    report: *mut mw_report,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if module.is_null()
            || invocation.is_null()
            || sandbox.is_null()
            || exchange.is_null()
            || exit_status_out.is_null()
        {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let (hosted, mut invocation, map_script_filename, sandbox, exchange) = unsafe {
            (
                &*module.cast::<HostedModule>(),
                invocation_from(&*invocation),
                (*invocation).map_script_filename,
                sandbox_from(&*sandbox),
                &*exchange,
            )
        };
        if map_script_filename {
            for (name, value) in &mut invocation.env {
                if name == "SCRIPT_FILENAME"
                    && let Some(guest) = sandbox.guest_path(value)
                {
                    *value = guest;
                }
            }
        }
        let (compiled, loaded) = hosted.times();
        sandbox.meter.times(compiled, loaded);
        // Counts the request when it ends (dropped on a panic: a host error).
        let serving = sandbox.meter.begin();
        let host_failed = |serving: Serving| {
            // SAFETY: the caller's contract.
            unsafe { write_report(report, serving.end(Some(ErrorKind::Host))) };
        };
        let Some(pre) = hosted.pre() else {
            host_failed(serving);
            return err.fail(
                mw_result::NotLoaded,
                "the module was not loaded in this process (see the error at start-up)",
            );
        };
        let Some(stdin) = CBody::stdin(exchange) else {
            host_failed(serving);
            return err.fail(mw_result::NullArgument, "the exchange lacks a callback");
        };
        let alive = stdin.alive_flag();
        let log: Arc<dyn RequestLog> = Arc::new(CLog::new(exchange, &stdin));
        let Some(stdout) = COutput::new(exchange, &stdin) else {
            host_failed(serving);
            return err.fail(mw_result::NullArgument, "the exchange lacks a callback");
        };
        let (result, error) = match legacy::run(pre, invocation, stdin, stdout, &sandbox, log) {
            Ok(status) => {
                // SAFETY: checked for NULL above.
                unsafe { *exit_status_out = status };
                (mw_result::Ok, (status != 0).then_some(ErrorKind::Guest))
            }
            Err(e) => (serve_failure(err, &e), e.kind()),
        };
        alive.store(false, std::sync::atomic::Ordering::Release);
        // SAFETY: the caller's contract.
        unsafe { write_report(report, serving.end(error)) };
        result
    })
}

/// # Safety
/// The views of `invocation` are valid for the call.
unsafe fn invocation_from(invocation: &mw_invocation) -> Invocation {
    let text = |bytes: mw_bytes| {
        // SAFETY: the caller's contract.
        String::from_utf8_lossy(unsafe { bytes.as_slice() }).into_owned()
    };
    // SAFETY: the caller's contract.
    let (args, env) = unsafe {
        (
            slice(invocation.args, invocation.args_len),
            slice(invocation.env, invocation.env_len),
        )
    };
    let entry_point = text(invocation.entry_point);
    Invocation {
        args: args.iter().map(|&arg| text(arg)).collect(),
        env: env
            .iter()
            .map(|field| (text(field.name), text(field.value)))
            .collect(),
        entry_point: (!entry_point.is_empty()).then_some(entry_point),
    }
}
