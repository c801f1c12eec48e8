//! The low-level form: the `wasi:http` resources themselves (an
//! `incoming-request` and a `response-outparam`), with the traps taken out
//! of them — a body finished after its stream is dropped, writes of any
//! size, a failure answered through the outparam rather than by a trap.
//!
//! For a handler that needs what the `http` types hide (trailers, its own
//! `export!`); everything else is simpler with [`handler`](crate::handler).
//!
//! ```no_run
//! use mod_wasm_guest::wasi::http::types::{IncomingRequest, ResponseOutparam};
//!
//! struct Hello;
//!
//! impl mod_wasm_guest::wasi::exports::http::incoming_handler::Guest for Hello {
//!     fn handle(_request: IncomingRequest, out: ResponseOutparam) {
//!         let _ = mod_wasm_guest::raw::respond(out, 200, &[("content-type", b"text/plain")], b"hi\n");
//!     }
//! }
//!
//! mod_wasm_guest::wasi::http::proxy::export!(Hello);
//! ```

use crate::Error;
use crate::body::write_flushed;
use crate::error::stream_error;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse,
    ResponseOutparam, Trailers,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

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
        let response = OutgoingResponse::new(fields(headers)?);
        response
            .set_status_code(status)
            .map_err(|()| Error::InvalidStatus(status))?;
        let body = response.body().map_err(|()| {
            Error::Body("unavailable: already taken, or an invalid Content-Length")
        })?;
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
        write_flushed(stream, bytes)
    }

    /// Ends the body: the response is complete.
    pub fn finish(mut self) -> Result<(), Error> {
        // The stream is a child of the body and must go first.
        drop(self.stream.take());
        let body = self.body.take().ok_or(Error::Body("already finished"))?;
        OutgoingBody::finish(body, None).map_err(|e| Error::Stream(format!("{e:?}")))
    }

    /// Ends the body with a trailer section (e.g. a checksum of what was
    /// sent). Over HTTP/1.1 Apache sends them after the last chunk, over
    /// HTTP/2 as the stream's last HEADERS frame; a response that is not
    /// chunked (HTTP/1.0, a Content-Length) goes out without them.
    pub fn finish_with_trailers(mut self, trailers: &[(&str, &[u8])]) -> Result<(), Error> {
        let trailers: Trailers = fields(trailers)?;
        drop(self.stream.take());
        let body = self.body.take().ok_or(Error::Body("already finished"))?;
        OutgoingBody::finish(body, Some(trailers)).map_err(|e| Error::Stream(format!("{e:?}")))
    }
}

fn fields(list: &[(&str, &[u8])]) -> Result<Fields, Error> {
    let fields = Fields::new();
    for (name, value) in list {
        fields
            .append(name, value)
            .map_err(|_| Error::InvalidHeader(name.to_string()))?;
    }
    Ok(fields)
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
    body: Option<IncomingBody>,
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
            body: Some(body),
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

    /// The request's trailer fields (names lower-case), once
    /// [`read`](Self::read) has returned `None`; empty when the client
    /// sent none. Unread body bytes are dropped.
    pub fn trailers(mut self) -> Result<Vec<(String, Vec<u8>)>, Error> {
        drop(self.stream.take());
        let body = self.body.take().ok_or(Error::Body("already taken"))?;
        let future = IncomingBody::finish(body);
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(Some(trailers)))) => Ok(trailers.entries()),
            Some(Ok(Ok(None))) => Ok(Vec::new()),
            Some(Ok(Err(code))) => Err(Error::Stream(format!("{code:?}"))),
            _ => Err(Error::Body("trailers already taken")),
        }
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        // The stream is a child of the body and must go first.
        drop(self.stream.take());
    }
}
