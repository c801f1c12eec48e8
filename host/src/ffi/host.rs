//! `mw_host_*` and `mw_component_*`: the configuration generation and the
//! components it holds.

use super::error::{ErrorBuf, guarded};
use super::exchange::{CBody, CLog, CSink, SectionLog, mw_exchange, mw_request};
use super::sandbox::{mw_sandbox, reuse_config, sandbox_from};
use super::stats::{mw_report, serve_failure, write_report};
use super::{mw_bytes, mw_outcome, mw_result, slice};
use crate::compile::Outcome;
use crate::component::{self, ComponentPre, RequestFacts, RequestHead, Reuse, ReuseKey};
use crate::engine::Allocation;
use crate::host::{ChildSetup, Host, HostedComponent};
use crate::log::RequestLog;
use crate::sandbox::Sandbox;
use crate::stats::{ErrorKind, Serving};
use mod_wasm_rules::{cache_dir, routes};
use std::ffi::{OsStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One configuration generation (opaque).
pub struct mw_host {
    _private: [u8; 0],
}

/// A component of a generation (opaque). Valid as long as its host.
pub struct mw_component {
    _private: [u8; 0],
}

/// Creates an empty generation. Returns NULL only if the host failed. Call
/// in the Apache parent, before it forks (see
/// [`crate::engine::open_pagemap_before_fork`]).
#[unsafe(no_mangle)]
pub extern "C" fn mw_host_new() -> *mut mw_host {
    let mut host = std::ptr::null_mut();
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        crate::engine::open_pagemap_before_fork();
        host = Box::into_raw(Box::new(Host::new())).cast::<mw_host>();
        mw_result::Ok
    });
    host
}

/// Frees a generation and its components. NULL is fine.
///
/// # Safety
/// `host` is NULL or came from [`mw_host_new`] and is not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_free(host: *mut mw_host) {
    if host.is_null() {
        return;
    }
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(host.cast::<Host>()) });
        mw_result::Ok
    });
}

/// Validates and compiles the component at `path` (absolute), or reuses the
/// entry of an earlier call for the same file. On success `*component_out`
/// is the entry and `*outcome_out` tells how it was made ready. On failure `err` holds a sentence naming the path.
///
/// # Safety
/// `host` came from [`mw_host_new`]; `path` is valid; `err` has `err_len`
/// writable bytes; the outputs are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_add_component(
    host: *mut mw_host,
    path: mw_bytes,
    component_out: *mut *const mw_component,
    outcome_out: *mut mw_outcome,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    // SAFETY: the caller's contract.
    unsafe {
        add_file(
            host,
            path,
            component_out,
            outcome_out,
            err,
            err_len,
            |host, path| {
                host.add_component(path)
                    .map(|(hosted, outcome)| (Arc::as_ptr(hosted).cast(), outcome))
            },
        )
    }
}

/// The body of `mw_host_add_component` and `mw_host_add_module`: `add`
/// names the file's entry in the host.
///
/// # Safety
/// As for those functions.
pub(crate) unsafe fn add_file<T>(
    host: *mut mw_host,
    path: mw_bytes,
    entry_out: *mut *const T,
    outcome_out: *mut mw_outcome,
    err: *mut c_char,
    err_len: usize,
    add: impl FnOnce(&mut Host, &Path) -> Result<(*const T, Outcome), String>,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if host.is_null() || entry_out.is_null() || outcome_out.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let (host, path) = unsafe { (&mut *host.cast::<Host>(), path.as_slice()) };
        match add(host, Path::new(OsStr::from_bytes(path))) {
            Ok((entry, outcome)) => {
                // SAFETY: checked for NULL above.
                unsafe {
                    *entry_out = entry;
                    *outcome_out = outcome.into();
                }
                mw_result::Ok
            }
            Err(why) => err.fail(mw_result::InvalidComponent, &why),
        }
    })
}

/// Keeps compiled code in the directory `dir` (`WasmCacheDir`; created if
/// missing), or in memory only if `dir` is empty. Must be called before the
/// first file is added; fails with a sentence if the directory cannot be
/// created or is not safe to load code from.
///
/// # Safety
/// `host` came from [`mw_host_new`]; `dir` is valid; `err` has `err_len`
/// writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_set_cache_dir(
    host: *mut mw_host,
    dir: mw_bytes,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    // SAFETY: the caller's contract.
    unsafe {
        set_cache_dir(host, dir, err, err_len, |dir| {
            Ok((!dir.is_empty()).then(|| Path::new(OsStr::from_bytes(dir)).to_path_buf()))
        })
    }
}

/// Keeps compiled code in the default directory below Apache's runtime
/// directory `runtime_dir` (`DefaultRuntimeDir`), when no `WasmCacheDir`
/// named one: as [`mw_host_set_cache_dir`] with that directory.
///
/// # Safety
/// As for [`mw_host_set_cache_dir`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_set_default_cache_dir(
    host: *mut mw_host,
    runtime_dir: mw_bytes,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    // SAFETY: the caller's contract.
    unsafe {
        set_cache_dir(host, runtime_dir, err, err_len, |runtime_dir| {
            if runtime_dir.is_empty() {
                return Err("no runtime directory");
            }
            let runtime_dir = Path::new(OsStr::from_bytes(runtime_dir));
            Ok(Some(runtime_dir.join(cache_dir::DEFAULT_DIR_NAME)))
        })
    }
}

/// The body of both: `dir` (`None`: in memory only) from `pick(bytes)`.
///
/// # Safety
/// As for [`mw_host_set_cache_dir`].
unsafe fn set_cache_dir(
    host: *mut mw_host,
    bytes: mw_bytes,
    err: *mut c_char,
    err_len: usize,
    pick: impl FnOnce(&[u8]) -> Result<Option<PathBuf>, &'static str>,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if host.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let (host, bytes) = unsafe { (&mut *host.cast::<Host>(), bytes.as_slice()) };
        let dir = match pick(bytes) {
            Ok(dir) => dir,
            Err(why) => return err.fail(mw_result::InvalidConfig, why),
        };
        match host.set_cache_dir(dir.as_deref()) {
            Ok(()) => mw_result::Ok,
            Err(why) => err.fail(mw_result::InvalidConfig, &why),
        }
    })
}

/// Whether [`mw_host_set_cache_dir`] has been called on `host` (false for
/// NULL).
///
/// # Safety
/// `host` is NULL or came from [`mw_host_new`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_cache_dir_decided(host: *const mw_host) -> bool {
    // SAFETY: the caller's contract.
    !host.is_null() && unsafe { &*host.cast::<Host>() }.cache_dir_decided()
}

/// What a guest of `kind` is, for the log: "a WASI 0.2 component
/// (wasi:http/proxy)", "a WASI 0.3 component (wasi:http/service)" or "a
/// WASI preview1 module". Static text.
#[unsafe(no_mangle)]
pub extern "C" fn mw_guest_kind_describe(kind: super::mw_guest_kind) -> mw_bytes {
    use crate::kind::Kind;
    let kind = match kind {
        super::mw_guest_kind::Component => Kind::Component,
        super::mw_guest_kind::Component03 => Kind::Component03,
        super::mw_guest_kind::Module => Kind::Module,
    };
    mw_bytes::of(kind.describe().as_bytes())
}

/// What the status page counts `component` as: a WASI 0.2 or a WASI 0.3
/// component (0.2 for NULL).
///
/// # Safety
/// `component` is NULL or came from `mw_host_add_component`, and its host
/// is alive.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_component_guest_kind(
    component: *const mw_component,
) -> super::mw_guest_kind {
    // SAFETY: the caller's contract.
    match unsafe { component.cast::<HostedComponent>().as_ref() }.map(|c| c.kind()) {
        Some(crate::kind::Kind::Component03) => super::mw_guest_kind::Component03,
        _ => super::mw_guest_kind::Component,
    }
}

/// Loads every component of `host` into this child process, with an
/// instance pool for `threads` requests at once (0: no pool). Call once per
/// child, before serving. `info` receives a sentence on how instances are
/// allocated (for the log), and `*warn_out` whether it is a warning (no
/// pool although one was asked for). A failure is reported in `err`; the
/// components that loaded still serve.
///
/// # Safety
/// `host` came from [`mw_host_new`]; no request is being served; `info` has
/// `info_len` and `err` `err_len` writable bytes; `warn_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_host_child_init(
    host: *mut mw_host,
    threads: u32,
    info: *mut c_char,
    info_len: usize,
    warn_out: *mut bool,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let info = ErrorBuf::new(info, info_len);
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if host.is_null() || warn_out.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let host = unsafe { &mut *host.cast::<Host>() };
        match host.child_init(threads) {
            Ok(setup) => {
                info.write(&describe(&setup));
                // SAFETY: checked for NULL above.
                unsafe { *warn_out = setup.pool_error.is_some() };
                mw_result::Ok
            }
            Err(why) => err.fail(mw_result::InvalidComponent, &why),
        }
    })
}

/// The log line's words for how a child allocates instances.
fn describe(setup: &ChildSetup) -> String {
    let capacity = setup.capacity;
    match (setup.allocation, &setup.pool_error) {
        (Allocation::Pooled, why) => format!(
            "instances come from a pool for {} requests at once ({} memories and {} tables \
             each){}",
            capacity.requests,
            capacity.memories_per_request,
            capacity.tables_per_request,
            // Only the 0.3 engine's pool failed (see `Host::child_init`).
            why.as_ref()
                .map(|why| format!("; no pool could be reserved for {why}"))
                .unwrap_or_default()
        ),
        (Allocation::OnDemand, Some(why)) => format!(
            "no instance pool for {} requests could be reserved, instances are allocated \
             one by one: {why}",
            capacity.requests
        ),
        (Allocation::OnDemand, None) => "instances are allocated one by one".into(),
    }
}

/// What a shared instance's section lines name: the directive, or the
/// section for a component found by `AddHandler` or `WasmFileRoutes`.
fn section_place(place: &[u8], location: &str) -> String {
    if place.is_empty() {
        location.to_owned()
    } else {
        String::from_utf8_lossy(place).into_owned()
    }
}

/// Serves one request with a fresh instance of `component` confined to
/// `sandbox` (or an idle one, if `sandbox` lets instances be reused),
/// blocking until the response is complete. The callbacks of
/// `exchange` are called on this thread only, and never after this function
/// returns.
///
/// # Safety
/// `component` came from [`mw_host_add_component`] (and its host is alive)
/// or from `mw_host_file_component` (and is not released yet); `request`,
/// `sandbox` and their views are valid for the call; `report` is NULL or
/// writable (what the request measured, written at the end); `err` has
/// `err_len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_component_serve(
    component: *const mw_component,
    request: *const mw_request,
    sandbox: *const mw_sandbox,
    exchange: *const mw_exchange,
    report: *mut mw_report,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if component.is_null() || request.is_null() || sandbox.is_null() || exchange.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let (hosted, request, raw_sandbox, exchange) = unsafe {
            (
                &*component.cast::<HostedComponent>(),
                &*request,
                &*sandbox,
                &*exchange,
            )
        };
        // SAFETY: the caller's contract.
        let sandbox = unsafe { sandbox_from(raw_sandbox) };
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
                "the component was not loaded in this process (see the error at start-up)",
            );
        };
        let Some(body) = CBody::new(exchange) else {
            host_failed(serving);
            return err.fail(mw_result::NullArgument, "the exchange lacks a callback");
        };
        let alive = body.alive_flag();
        let log: Arc<dyn RequestLog> = Arc::new(CLog::new(exchange, &body));
        // SAFETY: the request's views are valid for this call.
        let head = unsafe { request_head(request) };
        // SAFETY: as above.
        let facts = unsafe { request_facts(request) };
        // SAFETY: the caller's contract.
        let reuse = unsafe { reuse_of(component, raw_sandbox, &sandbox, exchange, &facts) };
        let (result, error) = match component::build_request(head, body) {
            // The client's fault: not counted as an error of the location.
            Err(why) => (err.fail(mw_result::BadRequest, &why), None),
            Ok((scheme, request)) => {
                let mut sink = CSink::new(exchange);
                let call = component::Call {
                    scheme,
                    request,
                    sink: &mut sink,
                    sandbox: &sandbox,
                    facts,
                    log,
                    reuse,
                };
                let served = match pre {
                    ComponentPre::Proxy(pre) => component::serve(pre, call),
                    ComponentPre::Service(pre) => component::serve03(pre, call),
                };
                match served {
                    Ok(()) => (mw_result::Ok, None),
                    Err(e) => (serve_failure(err, &e), e.kind()),
                }
            }
        };
        alive.store(false, std::sync::atomic::Ordering::Release);
        // SAFETY: the caller's contract.
        unsafe { write_report(report, serving.end(error)) };
        result
    })
}

/// The section's `WasmInstanceReuse`, if it reuses instances: the key an
/// instance of `component` is kept under, and what it may serve.
///
/// # Safety
/// `component` is alive for the call (as for [`mw_component_serve`]), and
/// so are the views of `raw_sandbox` and `exchange`.
pub(super) unsafe fn reuse_of(
    component: *const mw_component,
    raw_sandbox: &mw_sandbox,
    sandbox: &Sandbox,
    exchange: &mw_exchange,
    facts: &RequestFacts,
) -> Option<Reuse> {
    (raw_sandbox.reuse > 1).then(|| Reuse {
        key: ReuseKey::new(
            // SAFETY: `component` is one reference of an `Arc` (from
            // `mw_host_add_component` or `mw_host_file_component`) that
            // is alive for the call; the key takes its own.
            unsafe {
                Arc::increment_strong_count(component.cast::<HostedComponent>());
                Arc::from_raw(component.cast::<HostedComponent>())
            },
            // SAFETY: the caller's contract (the sandbox's views).
            unsafe { reuse_config(sandbox, raw_sandbox, &facts.location) },
        ),
        max_requests: raw_sandbox.reuse,
        concurrency: raw_sandbox.concurrency.max(1),
        section_log: Arc::new(SectionLog::new(
            exchange,
            raw_sandbox.server,
            // SAFETY: the caller's contract (the sandbox's views).
            section_place(unsafe { raw_sandbox.place.as_slice() }, &facts.location),
        )),
    })
}

/// # Safety
/// The views of `request` must be valid for this call.
pub(super) unsafe fn request_facts(request: &mw_request) -> RequestFacts {
    let text = |bytes: mw_bytes| {
        // SAFETY: the caller's contract.
        String::from_utf8_lossy(unsafe { bytes.as_slice() }).into_owned()
    };
    RequestFacts {
        client_addr: text(request.client_addr),
        user: (!request.user.ptr.is_null()).then(|| text(request.user)),
        tls: request.tls,
        location: text(request.location),
        request_id: text(request.request_id),
        log_level: request.log_level,
    }
}

/// # Safety
/// The views of `request` must be valid for `'a`.
pub(super) unsafe fn request_head<'a>(
    request: &'a mw_request,
) -> RequestHead<'a, impl Iterator<Item = (&'a [u8], &'a [u8])>> {
    // SAFETY: the caller's contract, for the request and its header array.
    unsafe {
        let headers = slice(request.headers, request.headers_len);
        let params = (!request.route_params.ptr.is_null()).then(|| {
            (
                routes::PARAMS_HEADER.as_bytes(),
                request.route_params.as_slice(),
            )
        });
        RequestHead {
            method: request.method.as_slice(),
            scheme: request.scheme.as_slice(),
            authority: request.authority.as_slice(),
            path_with_query: request.path_with_query.as_slice(),
            headers: headers
                .iter()
                .map(|header| (header.name.as_slice(), header.value.as_slice()))
                .filter(|(name, _)| !routes::is_params_header(name))
                .chain(params),
        }
    }
}
