//! Helpers for mod_wasm guests: `wasi:http/incoming-handler` components
//! built with `cargo build --target wasm32-wasip2`.
//!
//! This is the low-level layer: it keeps the WASI 0.2 types of the [`wasi`]
//! crate (re-exported) and takes away the traps waiting in them — a stream
//! write takes at most 4096 bytes, a body must be finished after its stream
//! is dropped, and a failure must still answer the response outparam rather
//! than trap.
//!
//! ```no_run
//! use mod_wasm_guest::wasi::http::types::{IncomingRequest, ResponseOutparam};
//!
//! struct Hello;
//!
//! impl mod_wasm_guest::wasi::exports::http::incoming_handler::Guest for Hello {
//!     fn handle(_request: IncomingRequest, out: ResponseOutparam) {
//!         let _ = mod_wasm_guest::respond(out, 200, &[("content-type", b"text/plain")], b"hi\n");
//!     }
//! }
//!
//! mod_wasm_guest::wasi::http::proxy::export!(Hello);
//! ```
#![deny(missing_docs)]

pub use wasi;

use std::fmt;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse,
    ResponseOutparam,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// The most `blocking-write-and-flush` accepts in one call.
const MAX_WRITE: usize = 4096;

/// Why a response or a request body could not be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A header name or value the host refused.
    InvalidHeader(String),
    /// A status code outside 100..=999.
    InvalidStatus(u16),
    /// A body or stream was already taken or is unusable.
    Body(&'static str),
    /// Writing or reading a stream failed (the client went away, or the
    /// host refused the bytes, e.g. beyond a declared Content-Length).
    Stream(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidHeader(name) => write!(f, "invalid header {name:?}"),
            Error::InvalidStatus(code) => write!(f, "invalid status {code}"),
            Error::Body(why) => write!(f, "body: {why}"),
            Error::Stream(why) => write!(f, "stream: {why}"),
        }
    }
}

impl std::error::Error for Error {}

fn stream_error(error: StreamError) -> Error {
    match error {
        StreamError::Closed => Error::Stream("closed".into()),
        StreamError::LastOperationFailed(e) => Error::Stream(e.to_debug_string()),
    }
}

/// A response whose head has been handed to the host: write its body, then
/// [`finish`](Self::finish) it. Dropped without finishing, the host cuts the
/// response, so the client never takes a partial body for a whole one.
pub struct ResponseWriter {
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
}

impl ResponseWriter {
    /// Sends the status and headers. If they are invalid, the outparam is
    /// answered with an error (the client gets a 500) and the error returned.
    pub fn start(
        out: ResponseOutparam,
        status: u16,
        headers: &[(&str, &[u8])],
    ) -> Result<Self, Error> {
        match Self::head(status, headers) {
            Ok((response, body, stream)) => {
                ResponseOutparam::set(out, Ok(response));
                Ok(ResponseWriter {
                    stream: Some(stream),
                    body: Some(body),
                })
            }
            Err(error) => {
                ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(error.to_string()))));
                Err(error)
            }
        }
    }

    fn head(
        status: u16,
        headers: &[(&str, &[u8])],
    ) -> Result<(OutgoingResponse, OutgoingBody, OutputStream), Error> {
        let fields = Fields::new();
        for (name, value) in headers {
            fields
                .append(name, value)
                .map_err(|_| Error::InvalidHeader(name.to_string()))?;
        }
        let response = OutgoingResponse::new(fields);
        response
            .set_status_code(status)
            .map_err(|()| Error::InvalidStatus(status))?;
        let body = response.body().map_err(|()| Error::Body("already taken"))?;
        let stream = body
            .write()
            .map_err(|()| Error::Body("stream already taken"))?;
        Ok((response, body, stream))
    }

    /// Writes all of `bytes`, each piece flushed to the host (which passes
    /// it on to the client without waiting for the rest).
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let stream = self
            .stream
            .as_ref()
            .ok_or(Error::Body("already finished"))?;
        for piece in bytes.chunks(MAX_WRITE) {
            stream
                .blocking_write_and_flush(piece)
                .map_err(stream_error)?;
        }
        Ok(())
    }

    /// Ends the body: the response is complete.
    pub fn finish(mut self) -> Result<(), Error> {
        // The stream is a child of the body and must go first.
        drop(self.stream.take());
        let body = self.body.take().ok_or(Error::Body("already finished"))?;
        OutgoingBody::finish(body, None).map_err(|e| Error::Stream(format!("{e:?}")))
    }
}

/// A whole response in one call.
pub fn respond(
    out: ResponseOutparam,
    status: u16,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<(), Error> {
    let mut writer = ResponseWriter::start(out, status, headers)?;
    writer.write_all(body)?;
    writer.finish()
}

/// The request body, read piece by piece as the client sends it.
pub struct BodyReader {
    stream: Option<InputStream>,
    // Kept alive for as long as its stream is read.
    _body: IncomingBody,
}

impl BodyReader {
    /// Takes the body of `request`.
    pub fn new(request: &IncomingRequest) -> Result<Self, Error> {
        let body = request
            .consume()
            .map_err(|()| Error::Body("already taken"))?;
        let stream = body
            .stream()
            .map_err(|()| Error::Body("stream already taken"))?;
        Ok(BodyReader {
            stream: Some(stream),
            _body: body,
        })
    }

    /// The next piece of at most `max` bytes, waiting for it; `None` at the
    /// end of the body.
    pub fn read(&mut self, max: u64) -> Result<Option<Vec<u8>>, Error> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(None);
        };
        match stream.blocking_read(max) {
            Ok(piece) => Ok(Some(piece)),
            Err(StreamError::Closed) => {
                self.stream = None;
                Ok(None)
            }
            Err(e) => Err(stream_error(e)),
        }
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        // The stream is a child of the body and must go first.
        drop(self.stream.take());
    }
}
