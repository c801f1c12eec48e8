//! The C ABI of `WasmMiddleware` (`component::Middleware`): start, the next
//! handler's response handed over, the body the guest passed on, finish.
//! All calls are made on the request's thread, in that order.

use super::error::{ErrorBuf, guarded};
use super::exchange::{CBody, CLog, CSink, mw_exchange, mw_request};
use super::host::{mw_component, request_facts, request_head, reuse_of};
use super::sandbox::{mw_sandbox, sandbox_from};
use super::stats::{mw_report, serve_failure, write_report};
use super::{mw_bytes, mw_header, mw_result, slice};
use crate::component::{self, ComponentPre, Middleware, NextRequest, Started};
use crate::host::HostedComponent;
use crate::log::RequestLog;
use crate::request_io::{ResponseSink, SinkError};
use crate::stats::{ErrorKind, Serving};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One request's middleware; opaque to C.
pub struct mw_middleware {
    middleware: Middleware,
    serving: Serving,
    /// Cleared when the middleware ends: the request's callbacks are not
    /// called after that.
    alive: Arc<AtomicBool>,
    /// The request the guest passed on, which `mw_next_request` views.
    next: Option<(NextRequest, Vec<mw_header>)>,
}

/// The request a middleware passes on to the next handler: views into the
/// middleware's memory, valid until its next call.
#[repr(C)]
pub struct mw_next_request {
    /// The method; NULL `ptr` when the guest answered by itself and there
    /// is no next handler to run.
    pub method: mw_bytes,
    /// The path and query.
    pub target: mw_bytes,
    /// The header fields.
    pub headers: *const mw_header,
    /// The number of header fields.
    pub headers_len: usize,
    /// The guest gives the next handler a body: read it with
    /// `mw_middleware_read_body`.
    pub body: bool,
}

/// The middleware's response through the exchange's callbacks; the
/// exchange outlives the middleware (the C side's contract).
struct ExchangeSink(*const mw_exchange);

impl ResponseSink for ExchangeSink {
    fn send_head(&mut self, status: u16, headers: &HeaderMap) -> Result<(), SinkError> {
        // SAFETY: the exchange outlives the middleware.
        CSink::new(unsafe { &*self.0 }).send_head(status, headers)
    }

    fn send_data(&mut self, data: &[u8], flush: bool) -> Result<(), SinkError> {
        // SAFETY: as above.
        CSink::new(unsafe { &*self.0 }).send_data(data, flush)
    }

    fn send_trailers(&mut self, trailers: &HeaderMap) -> Result<(), SinkError> {
        // SAFETY: as above.
        CSink::new(unsafe { &*self.0 }).send_trailers(trailers)
    }
}

/// Starts `component` (a WASI 0.3 component) as a middleware for
/// `request`, and runs it until it calls the next handler or answers by
/// itself: `*next_out` says which. Its response goes through `exchange`'s
/// callbacks, during this call or any later one. On success `*out` is the
/// middleware, to be ended with `mw_middleware_finish` (or, if the request
/// ends first, `mw_middleware_free`).
///
/// # Safety
/// As for `mw_component_serve`; `exchange` (and its `ctx`) must also stay
/// valid until the middleware is finished or freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_middleware_start(
    component: *const mw_component,
    request: *const mw_request,
    sandbox: *const mw_sandbox,
    exchange: *const mw_exchange,
    out: *mut *mut mw_middleware,
    next_out: *mut mw_next_request,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if component.is_null()
            || request.is_null()
            || sandbox.is_null()
            || exchange.is_null()
            || out.is_null()
            || next_out.is_null()
        {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let (hosted, request, raw_sandbox, exchange_ref) = unsafe {
            (
                &*component.cast::<HostedComponent>(),
                &*request,
                &*sandbox,
                &*exchange,
            )
        };
        // SAFETY: the caller's contract.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: the caller's contract.
        let sandbox = unsafe { sandbox_from(raw_sandbox) };
        let (compiled, loaded) = hosted.times();
        sandbox.meter.times(compiled, loaded);
        let serving = sandbox.meter.begin();
        let failed = |serving: Serving, kind| {
            // The report is written by finish, which never comes: the
            // counters are.
            let _ = serving.end(Some(kind));
        };
        let Some(ComponentPre::Service(pre)) = hosted.pre() else {
            failed(serving, ErrorKind::Host);
            return err.fail(
                mw_result::NotLoaded,
                "the middleware was not loaded in this process, or is not a WASI 0.3 component",
            );
        };
        let Some(body) = CBody::new(exchange_ref) else {
            failed(serving, ErrorKind::Host);
            return err.fail(mw_result::NullArgument, "the exchange lacks a callback");
        };
        let alive = body.alive_flag();
        let log: Arc<dyn RequestLog> = Arc::new(CLog::new(exchange_ref, &body));
        // SAFETY: the request's views are valid for this call.
        let head = unsafe { request_head(request) };
        // SAFETY: as above.
        let facts = unsafe { request_facts(request) };
        let (_scheme, request) = match component::build_request(head, body) {
            Ok(built) => built,
            Err(why) => {
                let _ = serving.end(None);
                return err.fail(mw_result::BadRequest, &why);
            }
        };
        // SAFETY: the caller's contract.
        let reuse = unsafe { reuse_of(component, raw_sandbox, &sandbox, exchange_ref, &facts) };
        let sink = Box::new(ExchangeSink(exchange));
        let (middleware, started) =
            match Middleware::start(pre, request, sink, &sandbox, facts, log, reuse) {
                Ok(started) => started,
                Err(e) => {
                    let kind = e.kind();
                    let result = serve_failure(err, &e);
                    let _ = serving.end(kind);
                    return result;
                }
            };
        let mut hosted = Box::new(mw_middleware {
            middleware,
            serving,
            alive,
            next: None,
        });
        // SAFETY: the caller's contract.
        let next_out = unsafe { &mut *next_out };
        *next_out = mw_next_request {
            method: mw_bytes {
                ptr: std::ptr::null(),
                len: 0,
            },
            target: mw_bytes::of(b""),
            headers: std::ptr::null(),
            headers_len: 0,
            body: false,
        };
        if let Started::Next(request) = started {
            let views = request
                .headers
                .iter()
                .map(|(name, value)| mw_header {
                    name: mw_bytes::of(name.as_str().as_bytes()),
                    value: mw_bytes::of(value.as_bytes()),
                })
                .collect::<Vec<_>>();
            let next = hosted.next.insert((request, views));
            *next_out = mw_next_request {
                method: mw_bytes::of(next.0.method.as_str().as_bytes()),
                target: mw_bytes::of(next.0.target.as_bytes()),
                headers: next.1.as_ptr(),
                headers_len: next.1.len(),
                body: next.0.body,
            };
        }
        // SAFETY: the caller's contract.
        unsafe { *out = Box::into_raw(hosted) };
        mw_result::Ok
    })
}

/// Runs `f` on the middleware, `MW_IO_FAILED` (1) when it fails or panics.
fn io(middleware: *mut mw_middleware, f: impl FnOnce(&mut mw_middleware) -> bool) -> u32 {
    if middleware.is_null() {
        return 1;
    }
    // SAFETY: the caller's contract: a live middleware, on its thread.
    let middleware = unsafe { &mut *middleware };
    match catch_unwind(AssertUnwindSafe(|| f(middleware))) {
        Ok(true) => 0,
        _ => 1,
    }
}

/// The next handler's status and headers, for the guest. `MW_IO_FAILED`
/// when the guest no longer waits for them.
///
/// # Safety
/// `middleware` is live; `headers` points to `headers_len` fields.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_middleware_backend_head(
    middleware: *mut mw_middleware,
    status: u16,
    headers: *const mw_header,
    headers_len: usize,
) -> u32 {
    // SAFETY: the caller's contract.
    let fields = unsafe { slice(headers, headers_len) };
    let mut map = HeaderMap::with_capacity(fields.len());
    for field in fields {
        // SAFETY: the caller's contract.
        let (name, value) = unsafe { (field.name.as_slice(), field.value.as_slice()) };
        // Apache's own fields are valid; one that is not is left out.
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    io(middleware, |m| {
        m.middleware.backend_head(status, map).is_ok()
    })
}

/// A piece of the next handler's body, handed over once the guest asks for
/// it (this waits until then, serving the guest meanwhile). `MW_IO_FAILED`
/// when the guest no longer reads it: the rest goes nowhere.
///
/// # Safety
/// `middleware` is live; `data` points to `data_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_middleware_backend_data(
    middleware: *mut mw_middleware,
    data: *const u8,
    data_len: usize,
) -> u32 {
    // SAFETY: the caller's contract.
    let data = unsafe { slice(data, data_len) };
    io(middleware, |m| m.middleware.backend_data(data).is_ok())
}

/// The next handler is done; `ok` false: its response broke off.
///
/// # Safety
/// `middleware` is live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_middleware_backend_end(middleware: *mut mw_middleware, ok: bool) {
    io(middleware, |m| {
        m.middleware.backend_end(ok);
        true
    });
}

/// Refuses the guest's call of the next handler: the call fails with an
/// internal error saying `why` (NUL-terminated), and the guest's answer is
/// the content.
///
/// # Safety
/// `middleware` is live; `why` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_middleware_refuse_next(
    middleware: *mut mw_middleware,
    why: *const c_char,
) {
    let why = if why.is_null() {
        "the next handler was refused".to_owned()
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::ffi::CStr::from_ptr(why) }
            .to_string_lossy()
            .into_owned()
    };
    io(middleware, |m| {
        m.middleware.refuse_next(why);
        true
    });
}

/// Reads the body the guest passed on to the next handler: at most
/// `buf_len` bytes into `buf`, `*read_out` 0 at its end.
///
/// # Safety
/// `middleware` is live; `buf` has room for `buf_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_middleware_read_body(
    middleware: *mut mw_middleware,
    buf: *mut u8,
    buf_len: usize,
    read_out: *mut usize,
) -> u32 {
    if buf.is_null() || read_out.is_null() {
        return 1;
    }
    // SAFETY: the caller's contract.
    let buf = unsafe { std::slice::from_raw_parts_mut(buf, buf_len) };
    io(middleware, |m| match m.middleware.read_body(buf) {
        Ok(n) => {
            // SAFETY: checked above.
            unsafe { *read_out = n };
            true
        }
        Err(SinkError) => false,
    })
}

/// Whether the guest has answered: its head went through `send_head`.
///
/// # Safety
/// `middleware` is live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_middleware_answered(middleware: *const mw_middleware) -> bool {
    // SAFETY: the caller's contract.
    !middleware.is_null() && unsafe { &*middleware }.middleware.answered()
}

/// Serves the guest to its end and frees the middleware; the result and
/// the report as for `mw_component_serve`.
///
/// # Safety
/// `middleware` came from `mw_middleware_start` and is not used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_middleware_finish(
    middleware: *mut mw_middleware,
    report: *mut mw_report,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if middleware.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let hosted = unsafe { Box::from_raw(middleware) };
        let mw_middleware {
            middleware,
            serving,
            alive,
            ..
        } = *hosted;
        let served = middleware.finish();
        alive.store(false, Ordering::Release);
        let (result, error) = match served {
            Ok(()) => (mw_result::Ok, None),
            Err(e) => (serve_failure(err, &e), e.kind()),
        };
        // SAFETY: the caller's contract.
        unsafe { write_report(report, serving.end(error)) };
        result
    })
}

/// Frees a middleware the request no longer finishes (it ended first):
/// its guest is stopped.
///
/// # Safety
/// `middleware` came from `mw_middleware_start`, or is NULL; it is not
/// used after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_middleware_free(middleware: *mut mw_middleware) {
    if middleware.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller's contract.
        let hosted = *unsafe { Box::from_raw(middleware) };
        hosted.alive.store(false, Ordering::Release);
        drop(hosted.middleware);
        let _ = hosted.serving.end(Some(ErrorKind::Host));
    }));
}
