//! The one error type of the crate.

use std::fmt;
use wasi::io::streams::StreamError;

/// Why a request, a response or an outgoing call could not be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A header name or value the host refused.
    InvalidHeader(String),
    /// A status code outside 100..=999.
    InvalidStatus(u16),
    /// A request the host or the `http` crate refused (method, URI, ...).
    InvalidRequest(String),
    /// A body or stream was already taken or is unusable.
    Body(&'static str),
    /// Writing or reading a stream failed (the client went away, or the
    /// host refused the bytes, e.g. beyond a declared Content-Length).
    Stream(String),
    /// An outgoing request failed; the text is the `wasi:http` error code
    /// (`HTTP-request-denied` when the location does not allow it).
    Outgoing(String),
    /// A body was not the JSON that was asked for.
    Json(String),
    /// A key-value store refused or failed ([`crate::kv`]): a label the
    /// section does not grant, a value over its limit, a backend that is
    /// down.
    Store(String),
    /// A future waited for something that is not a WASI pollable (e.g. a
    /// timer of another runtime), so nothing would ever wake it.
    Stalled,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidHeader(name) => write!(f, "invalid header {name:?}"),
            Error::InvalidStatus(code) => write!(f, "invalid status {code}"),
            Error::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Error::Body(why) => write!(f, "body: {why}"),
            Error::Stream(why) => write!(f, "stream: {why}"),
            Error::Outgoing(why) => write!(f, "outgoing request: {why}"),
            Error::Json(why) => write!(f, "JSON: {why}"),
            Error::Store(why) => write!(f, "key-value store: {why}"),
            Error::Stalled => write!(
                f,
                "the handler waits for something that is not a WASI pollable; nothing can wake it"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(error: Error) -> Self {
        std::io::Error::other(error)
    }
}

pub(crate) fn stream_error(error: StreamError) -> Error {
    match error {
        StreamError::Closed => Error::Stream("closed".into()),
        StreamError::LastOperationFailed(e) => Error::Stream(e.to_debug_string()),
    }
}
