//! The C callbacks that carry one request's bodies, wrapped as the
//! [`BodySource`] and [`ResponseSink`] the component code wants.

use super::{mw_bytes, mw_header};
use crate::legacy::OutputSink;
use crate::log::{LogKind, RequestLog};
use crate::request_io::{BodySource, ReadError, ResponseSink, SinkError};
use http::HeaderMap;
use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A request head, as views into memory the caller owns for the call.
#[repr(C)]
pub struct mw_request {
    /// The method, e.g. `GET` or an extension method.
    pub method: mw_bytes,
    /// `http` or `https`.
    pub scheme: mw_bytes,
    /// `host[:port]` as the client sent it in Host, else the server's name.
    pub authority: mw_bytes,
    /// The request target as received: path and query.
    pub path_with_query: mw_bytes,
    /// The header fields in the order received.
    pub headers: *const mw_header,
    /// The number of header fields.
    pub headers_len: usize,
    /// The client's IP address.
    pub client_addr: mw_bytes,
    /// The authenticated user; NULL `ptr` when there is none.
    pub user: mw_bytes,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The configuration section that chose the component.
    pub location: mw_bytes,
    /// Apache's id for the request (`%L`).
    pub request_id: mw_bytes,
    /// The most verbose level the request's `LogLevel` lets through for this
    /// module, 0 (`APLOG_EMERG`) to 15 (`APLOG_TRACE8`).
    pub log_level: u8,
    /// The `[name]` segments of a `WasmFileRoutes` route, form-urlencoded
    /// (`id=42&post=7`); NULL `ptr` when the request came by no route. The
    /// guest receives them in [`PARAMS_HEADER`](mod_wasm_rules::routes::PARAMS_HEADER),
    /// and never a client's field of that name.
    pub route_params: mw_bytes,
}

/// What a callback reports.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mw_io {
    /// Done.
    Ok = 0,
    /// Failed; the C side has recorded why.
    Failed = 1,
}

/// The callbacks of one request, all called on the serving thread with `ctx`.
/// Those that can fail return an [`mw_io`] value as a `uint32_t`: anything
/// but `MW_IO_OK` is a failure.
#[repr(C)]
pub struct mw_exchange {
    /// Passed to every callback.
    pub ctx: *mut c_void,
    /// Reads request body bytes into `buf` (at most `buf_len`), blocking
    /// until at least one byte or the end of the body; `*read_out` is 0 at
    /// the end.
    pub read_body: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            buf: *mut u8,
            buf_len: usize,
            read_out: *mut usize,
        ) -> u32,
    >,
    /// Sets the response status and headers. Called once, before any data.
    pub send_head: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            status: u16,
            headers: *const mw_header,
            headers_len: usize,
        ) -> u32,
    >,
    /// Passes response body bytes on; `flush` asks for them to reach the
    /// client now.
    pub send_data: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            data: *const u8,
            data_len: usize,
            flush: bool,
        ) -> u32,
    >,
    /// Logs one line about the request (without a line ending); `kind` is an
    /// [`mw_log_kind`] and says what it is. May be NULL: the lines are then
    /// dropped.
    pub log:
        Option<unsafe extern "C" fn(ctx: *mut c_void, kind: u32, line: *const u8, line_len: usize)>,
    /// Logs a message the guest wrote through `mod-wasm:host/log`, at
    /// Apache's `level` (0 `APLOG_EMERG` to 15 `APLOG_TRACE8`). May be NULL:
    /// the messages are then dropped.
    pub guest_log: Option<
        unsafe extern "C" fn(ctx: *mut c_void, level: u32, text: *const u8, text_len: usize),
    >,
    /// The request's trailer fields, once `read_body` reached the end:
    /// `*trailers_out` points at `*len_out` of them, valid for the rest of
    /// the request. May be NULL: the guest then sees none.
    pub request_trailers: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            trailers_out: *mut *const mw_header,
            len_out: *mut usize,
        ) -> u32,
    >,
    /// Sets the response's trailer fields, after the last data and before
    /// the end. May be NULL: the guest's trailers are then dropped.
    pub send_trailers: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            trailers: *const mw_header,
            trailers_len: usize,
        ) -> u32,
    >,
    /// Logs a line of a guest whose instance serves several requests at
    /// once (`WasmInstanceReuse <n> concurrent=<k>`), which belongs to none
    /// of them alone: with `server` (the `server` of the request's
    /// `mw_sandbox`) and `place` (the section it names). `kind` is an
    /// [`mw_log_kind`]; `level` only counts for `MW_LOG_KIND_GUEST_LOG`.
    /// Called from the instance's thread, possibly after the request that
    /// passed it ended: it must use nothing of a request's, and nothing
    /// that is not thread-safe. May be NULL: the lines are then dropped.
    pub section_log: Option<
        unsafe extern "C" fn(
            server: *const c_void,
            place: *const u8,
            place_len: usize,
            kind: u32,
            level: u32,
            text: *const u8,
            text_len: usize,
        ),
    >,
}

/// What a line given to `mw_exchange.log` is.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mw_log_kind {
    /// A line the guest wrote to stderr.
    GuestStderr = 0,
    /// A line the guest wrote to stdout.
    GuestStdout = 1,
    /// The guest wrote more than a request may log; the text names the
    /// stream, and its later lines are dropped.
    OutputSuppressed = 2,
    /// An outgoing HTTP request was refused; the text says which and why.
    OutgoingDenied = 3,
    /// A message through `mod-wasm:host/log`, at the level given with it
    /// (`section_log` only: a request's have `guest_log`).
    GuestLog = 4,
    /// A key-value operation failed: the text names the store and why.
    StoreFailed = 5,
    /// The guest opened a store its section does not grant.
    StoreRefused = 6,
}

impl From<LogKind> for mw_log_kind {
    fn from(kind: LogKind) -> Self {
        match kind {
            LogKind::GuestStderr => mw_log_kind::GuestStderr,
            LogKind::GuestStdout => mw_log_kind::GuestStdout,
            LogKind::OutputSuppressed => mw_log_kind::OutputSuppressed,
            LogKind::OutgoingDenied => mw_log_kind::OutgoingDenied,
            LogKind::StoreFailed => mw_log_kind::StoreFailed,
            LogKind::StoreRefused => mw_log_kind::StoreRefused,
        }
    }
}

type ReadBodyFn =
    unsafe extern "C" fn(ctx: *mut c_void, buf: *mut u8, len: usize, read: *mut usize) -> u32;
type TrailersFn =
    unsafe extern "C" fn(ctx: *mut c_void, out: *mut *const mw_header, len: *mut usize) -> u32;

/// Whether a callback's return value says it succeeded.
fn succeeded(io: u32) -> bool {
    io == mw_io::Ok as u32
}

/// The request body through `read_body`.
pub(crate) struct CBody {
    ctx: *mut c_void,
    read: ReadBodyFn,
    trailers: Option<TrailersFn>,
    /// Cleared when `mw_component_serve` returns; a body somehow polled after
    /// that reads as failed instead of calling into a finished request.
    alive: Arc<AtomicBool>,
}

// SAFETY: the body is only ever polled on the thread serving the request
// (the runtime is single-threaded); `Send` is required by wasi:http's types,
// not used to cross threads.
unsafe impl Send for CBody {}

impl CBody {
    pub(crate) fn new(exchange: &mw_exchange) -> Option<Self> {
        exchange.send_head?;
        exchange.send_data?;
        Some(CBody {
            ctx: exchange.ctx,
            read: exchange.read_body?,
            trailers: exchange.request_trailers,
            alive: Arc::new(AtomicBool::new(true)),
        })
    }

    /// A body for a legacy guest's stdin, which needs no response head.
    pub(crate) fn stdin(exchange: &mw_exchange) -> Option<Self> {
        exchange.send_data?;
        Some(CBody {
            ctx: exchange.ctx,
            read: exchange.read_body?,
            trailers: None,
            alive: Arc::new(AtomicBool::new(true)),
        })
    }

    pub(crate) fn alive_flag(&self) -> Arc<AtomicBool> {
        self.alive.clone()
    }
}

impl BodySource for CBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        if !self.alive.load(Ordering::Acquire) {
            return Err(ReadError);
        }
        let mut read = 0;
        // SAFETY: the request is alive (checked above); `buf` is writable.
        if succeeded(unsafe { (self.read)(self.ctx, buf.as_mut_ptr(), buf.len(), &mut read) }) {
            Ok(read.min(buf.len()))
        } else {
            Err(ReadError)
        }
    }

    fn trailers(&mut self) -> Option<HeaderMap> {
        let trailers = self.trailers?;
        if !self.alive.load(Ordering::Acquire) {
            return None;
        }
        let (mut fields, mut len) = (std::ptr::null(), 0);
        // SAFETY: the request is alive; the C side fills both out-pointers
        // with fields in the request's pool.
        if !succeeded(unsafe { trailers(self.ctx, &mut fields, &mut len) }) || fields.is_null() {
            return None;
        }
        // SAFETY: `len` fields at `fields`, alive for the request.
        let fields = unsafe { std::slice::from_raw_parts(fields, len) };
        // SAFETY: each field's bytes are alive for the request.
        let map = crate::component::request_trailers(
            fields
                .iter()
                .map(|f| unsafe { (f.name.as_slice(), f.value.as_slice()) }),
        );
        (!map.is_empty()).then_some(map)
    }
}

/// `text` with each NUL byte written as `\0`. The C side logs through a
/// format string, where a NUL would end the line early and hide the rest
/// of it; Apache escapes every other control byte itself.
fn nul_visible(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !text.contains(&0) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len() + 8);
    for &b in text {
        match b {
            0 => out.extend_from_slice(b"\\0"),
            b => out.push(b),
        }
    }
    std::borrow::Cow::Owned(out)
}

type LogFn = unsafe extern "C" fn(ctx: *mut c_void, kind: u32, line: *const u8, len: usize);
type GuestLogFn = unsafe extern "C" fn(ctx: *mut c_void, level: u32, text: *const u8, len: usize);

/// The request's log lines through `log`.
pub(crate) struct CLog {
    ctx: *mut c_void,
    log: Option<LogFn>,
    guest_log: Option<GuestLogFn>,
    /// Shared with the request's [`CBody`]: no call after the request ended.
    alive: Arc<AtomicBool>,
}

// SAFETY: as for `CBody`: only called on the serving thread, while the
// request is alive; `Send` and `Sync` are required by WASI's stream types
// and the shared log handle, not used to cross threads.
unsafe impl Send for CLog {}
unsafe impl Sync for CLog {}

impl CLog {
    pub(crate) fn new(exchange: &mw_exchange, body: &CBody) -> Self {
        CLog {
            ctx: exchange.ctx,
            log: exchange.log,
            guest_log: exchange.guest_log,
            alive: body.alive_flag(),
        }
    }
}

impl RequestLog for CLog {
    fn log(&self, kind: LogKind, line: &[u8]) {
        if let Some(log) = self.log
            && self.alive.load(Ordering::Acquire)
        {
            let kind = mw_log_kind::from(kind) as u32;
            let line = nul_visible(line);
            // SAFETY: the request is alive; `line` outlives the call.
            unsafe { log(self.ctx, kind, line.as_ptr(), line.len()) };
        }
    }

    fn guest_log(&self, level: u8, text: &[u8]) {
        if let Some(guest_log) = self.guest_log
            && self.alive.load(Ordering::Acquire)
        {
            let text = nul_visible(text);
            // SAFETY: the request is alive; `text` outlives the call.
            unsafe { guest_log(self.ctx, level.into(), text.as_ptr(), text.len()) };
        }
    }
}

type SectionLogFn = unsafe extern "C" fn(
    server: *const c_void,
    place: *const u8,
    place_len: usize,
    kind: u32,
    level: u32,
    text: *const u8,
    text_len: usize,
);

/// The log of a section, for a shared instance's lines that belong to no
/// request alone.
pub(crate) struct SectionLog {
    log: Option<SectionLogFn>,
    /// A `server_rec`, which lives as long as the child.
    server: *const c_void,
    place: String,
}

// SAFETY: `section_log` is thread-safe by its contract, and `server` is
// only passed back to it.
unsafe impl Send for SectionLog {}
unsafe impl Sync for SectionLog {}

impl SectionLog {
    pub(crate) fn new(exchange: &mw_exchange, server: *const c_void, place: String) -> Self {
        SectionLog {
            log: exchange.section_log,
            server,
            place,
        }
    }

    fn write(&self, kind: mw_log_kind, level: u8, text: &[u8]) {
        if let Some(log) = self.log {
            let text = nul_visible(text);
            let place = self.place.as_bytes();
            // SAFETY: `server` and the function came from the C side for
            // this; the bytes outlive the call.
            unsafe {
                log(
                    self.server,
                    place.as_ptr(),
                    place.len(),
                    kind as u32,
                    level.into(),
                    text.as_ptr(),
                    text.len(),
                )
            };
        }
    }
}

impl RequestLog for SectionLog {
    fn log(&self, kind: LogKind, text: &[u8]) {
        self.write(mw_log_kind::from(kind), 0, text);
    }

    fn guest_log(&self, level: u8, text: &[u8]) {
        self.write(mw_log_kind::GuestLog, level, text);
    }
}

/// The response through `send_head` and `send_data`.
pub(crate) struct CSink<'a> {
    exchange: &'a mw_exchange,
}

impl<'a> CSink<'a> {
    pub(crate) fn new(exchange: &'a mw_exchange) -> Self {
        CSink { exchange }
    }
}

/// The fields of `headers` as views for a C call.
fn views(headers: &HeaderMap) -> Vec<mw_header> {
    headers
        .iter()
        .map(|(name, value)| mw_header {
            name: mw_bytes::of(name.as_str().as_bytes()),
            value: mw_bytes::of(value.as_bytes()),
        })
        .collect()
}

impl ResponseSink for CSink<'_> {
    fn send_head(&mut self, status: u16, headers: &HeaderMap) -> Result<(), SinkError> {
        let send_head = self.exchange.send_head.ok_or(SinkError)?;
        let fields = views(headers);
        // SAFETY: `fields` and the header map outlive the call.
        if succeeded(unsafe { send_head(self.exchange.ctx, status, fields.as_ptr(), fields.len()) })
        {
            Ok(())
        } else {
            Err(SinkError)
        }
    }

    fn send_data(&mut self, data: &[u8], flush: bool) -> Result<(), SinkError> {
        let send_data = self.exchange.send_data.ok_or(SinkError)?;
        // SAFETY: `data` outlives the call.
        if succeeded(unsafe { send_data(self.exchange.ctx, data.as_ptr(), data.len(), flush) }) {
            Ok(())
        } else {
            Err(SinkError)
        }
    }

    fn send_trailers(&mut self, trailers: &HeaderMap) -> Result<(), SinkError> {
        let Some(send_trailers) = self.exchange.send_trailers else {
            return Ok(());
        };
        let fields = views(trailers);
        // SAFETY: `fields` and the header map outlive the call.
        if succeeded(unsafe { send_trailers(self.exchange.ctx, fields.as_ptr(), fields.len()) }) {
            Ok(())
        } else {
            Err(SinkError)
        }
    }
}

type SendDataFn =
    unsafe extern "C" fn(ctx: *mut c_void, data: *const u8, len: usize, flush: bool) -> u32;

/// A legacy guest's stdout through `send_data`.
pub(crate) struct COutput {
    ctx: *mut c_void,
    send_data: SendDataFn,
    /// Shared with the request's [`CBody`]: no call after the request ended.
    alive: Arc<AtomicBool>,
}

// SAFETY: as for `CBody`: only called on the serving thread, while the
// request is alive; `Send` is required by WASI's stream types.
unsafe impl Send for COutput {}

impl COutput {
    pub(crate) fn new(exchange: &mw_exchange, body: &CBody) -> Option<Self> {
        Some(COutput {
            ctx: exchange.ctx,
            send_data: exchange.send_data?,
            alive: body.alive_flag(),
        })
    }
}

impl OutputSink for COutput {
    fn write(&mut self, data: &[u8], flush: bool) -> Result<(), SinkError> {
        if !self.alive.load(Ordering::Acquire) {
            return Err(SinkError);
        }
        // SAFETY: the request is alive; `data` outlives the call.
        if succeeded(unsafe { (self.send_data)(self.ctx, data.as_ptr(), data.len(), flush) }) {
            Ok(())
        } else {
            Err(SinkError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::nul_visible;

    #[test]
    fn a_nul_is_written_as_backslash_zero_and_the_rest_kept() {
        assert_eq!(&*nul_visible(b"plain \x1b text"), b"plain \x1b text");
        assert_eq!(&*nul_visible(b"a\0b\0"), b"a\\0b\\0");
    }
}
