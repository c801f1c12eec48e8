//! `mw_stats_*`: the status page's counters (see [`crate::stats`]) and
//! what one request measured (`mw_report`).

use super::error::{ErrorBuf, guarded};
use super::{mw_bytes, mw_result};
use crate::request_io::ServeError;
use crate::stats::render::{Format, render};
use crate::stats::{self, ErrorKind, GuestKind, Report, Slot};
use std::ffi::{c_char, c_void};

/// The counters of one location and guest file, shared by every process
/// (opaque). Never freed: valid for the life of the server.
pub struct mw_stats {
    _private: [u8; 0],
}

/// What a location serves, for [`mw_stats_for`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mw_guest_kind {
    /// A wasi:http component (WASI 0.2).
    Component = 1,
    /// A WASI preview1 module.
    Module = 2,
    /// A wasi:http component (WASI 0.3).
    Component03 = 3,
}

/// How a request ended, as the status page counts it.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mw_error_kind {
    /// No error.
    None = 0,
    /// The guest trapped.
    Trap = 1,
    /// `WasmTimeout`.
    Timeout = 2,
    /// `WasmMemoryLimit` or `WasmMaxInstances`.
    Limit = 3,
    /// The guest failed without trapping.
    Guest = 4,
    /// The host failed.
    Host = 5,
    /// Another request broke the shared instance.
    Shared = 6,
}

impl From<Option<ErrorKind>> for mw_error_kind {
    fn from(kind: Option<ErrorKind>) -> Self {
        match kind {
            None => mw_error_kind::None,
            Some(ErrorKind::Trap) => mw_error_kind::Trap,
            Some(ErrorKind::Timeout) => mw_error_kind::Timeout,
            Some(ErrorKind::Limit) => mw_error_kind::Limit,
            Some(ErrorKind::Guest) => mw_error_kind::Guest,
            Some(ErrorKind::Host) => mw_error_kind::Host,
            Some(ErrorKind::Shared) => mw_error_kind::Shared,
        }
    }
}

impl mw_error_kind {
    fn kind(self) -> Option<ErrorKind> {
        match self {
            mw_error_kind::None => None,
            mw_error_kind::Trap => Some(ErrorKind::Trap),
            mw_error_kind::Timeout => Some(ErrorKind::Timeout),
            mw_error_kind::Limit => Some(ErrorKind::Limit),
            mw_error_kind::Guest => Some(ErrorKind::Guest),
            mw_error_kind::Host => Some(ErrorKind::Host),
            mw_error_kind::Shared => Some(ErrorKind::Shared),
        }
    }
}

/// What one request measured, for the request's notes (`LogFormat`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct mw_report {
    /// How it ended, an [`mw_error_kind`].
    pub error: u32,
    /// From the start of serving to the last byte, in microseconds.
    pub total_us: u64,
    /// Creating the instance, in microseconds.
    pub instantiate_us: u64,
    /// The most linear memory the guest held at once, in bytes.
    pub peak_memory: u64,
}

impl From<Report> for mw_report {
    fn from(report: Report) -> Self {
        mw_report {
            error: mw_error_kind::from(report.error) as u32,
            total_us: report.total_us,
            instantiate_us: report.instantiate_us,
            peak_memory: report.peak_memory,
        }
    }
}

/// Writes `report` to `out` if it is not NULL.
///
/// # Safety
/// `out` is NULL or writable.
pub(crate) unsafe fn write_report(out: *mut mw_report, report: Report) {
    if !out.is_null() {
        // SAFETY: the caller's contract.
        unsafe { *out = report.into() };
    }
}

/// The C result for a request that failed with `e`, its message in `err`.
pub(crate) fn serve_failure(err: ErrorBuf, e: &ServeError) -> mw_result {
    match e {
        ServeError::Guest(why)
        | ServeError::Trap(why)
        | ServeError::Limit(why)
        | ServeError::Shared(why) => err.fail(mw_result::GuestFailed, why),
        ServeError::NoResponse => err.fail(
            mw_result::NoResponse,
            "the guest returned without setting a response",
        ),
        ServeError::Sink => err.fail(mw_result::SinkFailed, "the response could not be delivered"),
        ServeError::Timeout(why) => err.fail(mw_result::Timeout, why),
        ServeError::Internal(why) => err.fail(mw_result::Internal, why),
    }
}

/// The slot `stats` points to, if any.
///
/// # Safety
/// `stats` is NULL or came from [`mw_stats_for`].
pub(crate) unsafe fn slot_of(stats: *const mw_stats) -> Option<&'static Slot> {
    // SAFETY: the caller's contract; slots live as long as the process.
    unsafe { stats.cast::<Slot>().as_ref() }
}

/// Starts a configuration generation: the status page shows the locations
/// named from now on. Call in the parent before each reading of the
/// configuration; the first call makes the shared memory, which every
/// child inherits.
#[unsafe(no_mangle)]
pub extern "C" fn mw_stats_next_generation() {
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        stats::region().next_generation();
        mw_result::Ok
    });
}

/// The counters of the guest `file` at `location` (the section that chose
/// it), made on first use. NULL only if the host failed.
///
/// # Safety
/// The views are valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_stats_for(
    location: mw_bytes,
    file: mw_bytes,
    kind: mw_guest_kind,
) -> *const mw_stats {
    let mut slot: *const mw_stats = std::ptr::null();
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        // SAFETY: the caller's contract.
        let (location, file) = unsafe { (location.as_slice(), file.as_slice()) };
        let kind = match kind {
            mw_guest_kind::Module => GuestKind::Module,
            mw_guest_kind::Component => GuestKind::Component,
            mw_guest_kind::Component03 => GuestKind::Component03,
        };
        let found = stats::region().slot(
            &String::from_utf8_lossy(location),
            &String::from_utf8_lossy(file),
            kind,
        );
        slot = std::ptr::from_ref(found).cast();
        mw_result::Ok
    });
    slot
}

/// Counts a request the C side answered without running the guest
/// (`WasmMaxInstances`), or, with `counted` set, an error it found in a
/// request the host already counted (a module's bad CGI headers). NULL
/// `stats` is fine.
///
/// # Safety
/// `stats` is NULL or came from [`mw_stats_for`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_stats_count(
    stats: *const mw_stats,
    error: mw_error_kind,
    counted: bool,
) {
    // SAFETY: the caller's contract.
    let Some(slot) = (unsafe { slot_of(stats) }) else {
        return;
    };
    match (counted, error.kind()) {
        (false, kind) => stats::count(slot, kind),
        (true, Some(kind)) => stats::count_error_only(slot, kind),
        (true, None) => {}
    }
}

/// The form of the status page for [`mw_stats_render`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mw_status_format {
    /// HTML.
    Html = 0,
    /// mod_status's `?auto` lines.
    Auto = 1,
    /// Prometheus text format.
    Prometheus = 2,
}

/// The form of the status page that the request's query (`r->args`, NULL
/// for none) asks for, and the Content-Type to send it with in
/// `*content_type_out` (a static string).
///
/// # Safety
/// `query` is valid; `content_type_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_status_format_of(
    query: mw_bytes,
    content_type_out: *mut *const c_char,
) -> mw_status_format {
    // SAFETY: the caller's contract.
    let format = Format::from_query(unsafe { query.as_slice() });
    if !content_type_out.is_null() {
        // SAFETY: the caller's contract.
        unsafe { *content_type_out = format.content_type().as_ptr() };
    }
    match format {
        Format::Html => mw_status_format::Html,
        Format::Auto => mw_status_format::Auto,
        Format::Prometheus => mw_status_format::Prometheus,
    }
}

/// Renders the status page and hands it to `write` in one piece.
///
/// # Safety
/// `write` is safe to call with `ctx` and a view valid for that call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_stats_render(
    format: mw_status_format,
    ctx: *mut c_void,
    write: Option<unsafe extern "C" fn(ctx: *mut c_void, text: *const u8, len: usize)>,
) -> mw_result {
    guarded(ErrorBuf::new(std::ptr::null_mut(), 0), || {
        let Some(write) = write else {
            return mw_result::NullArgument;
        };
        let format = match format {
            mw_status_format::Html => Format::Html,
            mw_status_format::Auto => Format::Auto,
            mw_status_format::Prometheus => Format::Prometheus,
        };
        let page = render(stats::region(), format);
        // SAFETY: the caller's contract.
        unsafe { write(ctx, page.as_ptr(), page.len()) };
        mw_result::Ok
    })
}
