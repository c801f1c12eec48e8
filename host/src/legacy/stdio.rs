//! A legacy guest's stdin and stdout: the request body in, the response out.
//!
//! Both are synchronous on the request's thread: a read blocks in Apache's
//! input filters until the client sent more, a write goes down Apache's
//! output filters. Neither holds more than one chunk, whatever the size of
//! the body.

use crate::request_io::{BodySource, MAX_BODY_CHUNK, OutputTarget, SinkError};
use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use wasmtime_wasi::cli::{IsTerminal, StdinStream};
use wasmtime_wasi::p2::{InputStream, Pollable, StreamError, StreamResult};

/// Where a legacy guest's stdout goes: in Apache, the response (through
/// CGI header parsing in CGI mode).
pub trait OutputSink: Send + 'static {
    /// Passes `data` on; `flush` asks for everything passed so far to reach
    /// the client now.
    fn write(&mut self, data: &[u8], flush: bool) -> Result<(), SinkError>;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The guest's stdin: every stream WASI opens on it reads the one body.
#[derive(Clone)]
pub struct Stdin(Arc<Mutex<StdinState>>);

struct StdinState {
    source: Box<dyn BodySource>,
    ended: bool,
}

impl Stdin {
    /// Reads the request body from `source`.
    pub fn new(source: impl BodySource) -> Self {
        Stdin(Arc::new(Mutex::new(StdinState {
            source: Box::new(source),
            ended: false,
        })))
    }

    /// At most `size` bytes; blocks until at least one byte arrived. Empty at
    /// the end of the body.
    fn read_some(&self, size: usize) -> std::io::Result<Vec<u8>> {
        let mut state = lock(&self.0);
        if state.ended || size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0; size.min(MAX_BODY_CHUNK)];
        match state.source.read(&mut buf) {
            Ok(0) => {
                state.ended = true;
                Ok(Vec::new())
            }
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(_) => {
                // The C side logged why; the guest sees an I/O error.
                state.ended = true;
                Err(std::io::Error::other("reading the request body failed"))
            }
        }
    }
}

impl IsTerminal for Stdin {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for Stdin {
    fn async_stream(&self) -> Box<dyn AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Stdin {
    // Always ready: a read blocks the thread instead (see the module docs).
    async fn ready(&mut self) {}
}

impl InputStream for Stdin {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        match self.read_some(size) {
            Ok(bytes) if bytes.is_empty() => Err(StreamError::Closed),
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(e) => Err(StreamError::LastOperationFailed(e.into())),
        }
    }
}

impl AsyncRead for Stdin {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let bytes = self.read_some(buf.remaining())?;
        buf.put_slice(&bytes);
        Poll::Ready(Ok(()))
    }
}

/// The guest's stdout (wrap it in [`GuestStream`](crate::request_io::GuestStream)
/// for WASI): collected into chunks of [`MAX_BODY_CHUNK`] for the sink, and
/// flushed by [`Stdout::flush_pending`] (called every epoch tick) so that
/// what the guest wrote reaches the client while it goes on.
#[derive(Clone)]
pub struct Stdout(Arc<Mutex<StdoutState>>);

struct StdoutState {
    sink: Box<dyn OutputSink>,
    buf: Vec<u8>,
    /// Bytes went to the sink since its last flush.
    unflushed: bool,
    /// The guest wrote something.
    wrote: bool,
    /// The sink refused bytes: the client went away, or (CGI) the headers
    /// were malformed. Every later write traps the guest.
    refused: bool,
}

impl Stdout {
    /// Writes to `sink`.
    pub fn new(sink: impl OutputSink) -> Self {
        Stdout(Arc::new(Mutex::new(StdoutState {
            sink: Box::new(sink),
            // Grown as the guest writes: most answers are far smaller.
            buf: Vec::new(),
            unflushed: false,
            wrote: false,
            refused: false,
        })))
    }

    fn push(&self, mut bytes: &[u8]) -> Result<(), SinkError> {
        let mut state = lock(&self.0);
        if state.refused {
            return Err(SinkError);
        }
        state.wrote |= !bytes.is_empty();
        while !bytes.is_empty() {
            let room = MAX_BODY_CHUNK - state.buf.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            state.buf.extend_from_slice(now);
            bytes = rest;
            if state.buf.len() == MAX_BODY_CHUNK {
                state.send(false)?;
            }
        }
        Ok(())
    }

    /// Sends what the guest wrote since the last flush, and flushes. Cheap
    /// when there is nothing to send.
    pub fn flush_pending(&self) -> Result<(), SinkError> {
        let mut state = lock(&self.0);
        if state.refused {
            return Err(SinkError);
        }
        if state.unflushed || !state.buf.is_empty() {
            state.send(true)?;
        }
        Ok(())
    }

    /// Sends what is left, without a flush (the end of the response follows).
    pub fn finish(&self) -> Result<(), SinkError> {
        let mut state = lock(&self.0);
        if state.refused {
            return Err(SinkError);
        }
        if !state.buf.is_empty() {
            state.send(false)?;
        }
        Ok(())
    }

    /// Whether the guest wrote anything to stdout.
    pub fn wrote(&self) -> bool {
        lock(&self.0).wrote
    }

    /// Whether the sink refused bytes.
    pub fn refused(&self) -> bool {
        lock(&self.0).refused
    }
}

impl StdoutState {
    fn send(&mut self, flush: bool) -> Result<(), SinkError> {
        let result = self.sink.write(&self.buf, flush);
        self.buf.clear();
        self.unflushed = !flush;
        if result.is_err() {
            self.refused = true;
        }
        result
    }
}

impl OutputTarget for Stdout {
    fn push(&self, bytes: &[u8]) -> Result<(), SinkError> {
        Stdout::push(self, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_io::GuestStream;
    use wasmtime_wasi::p2::OutputStream;

    #[derive(Clone, Default)]
    struct Record(Arc<Mutex<Vec<(usize, bool)>>>);

    impl OutputSink for Record {
        fn write(&mut self, data: &[u8], flush: bool) -> Result<(), SinkError> {
            self.0.lock().unwrap().push((data.len(), flush));
            Ok(())
        }
    }

    #[test]
    fn passes_full_chunks_and_flushes_the_rest_on_request() {
        let record = Record::default();
        let stdout = Stdout::new(record.clone());
        stdout.push(&vec![b'x'; MAX_BODY_CHUNK + 10]).unwrap();
        assert_eq!(*record.0.lock().unwrap(), [(MAX_BODY_CHUNK, false)]);
        stdout.flush_pending().unwrap();
        stdout.flush_pending().unwrap();
        assert_eq!(record.0.lock().unwrap()[1..], [(10, true)]);
        assert!(stdout.wrote());
    }

    struct Refuse;

    impl OutputSink for Refuse {
        fn write(&mut self, _: &[u8], _: bool) -> Result<(), SinkError> {
            Err(SinkError)
        }
    }

    #[test]
    fn refuses_every_write_after_the_sink_refused_one() {
        let stdout = Stdout::new(Refuse);
        stdout.push(b"fits in the buffer").unwrap();
        assert!(stdout.flush_pending().is_err());
        assert!(stdout.refused());
        let mut stream = GuestStream(stdout);
        assert!(matches!(
            OutputStream::write(&mut stream, Bytes::from_static(b"more")),
            Err(StreamError::Trap(_))
        ));
    }
}
