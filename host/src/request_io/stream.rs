//! The WASI side of a guest's output stream (stdout or stderr): one
//! adapter for every target that takes bytes synchronously on the
//! request's thread — lines for the error log, a legacy module's response.

use super::{MAX_BODY_CHUNK, SinkError};
use bytes::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Where a guest's output goes. Every stream WASI opens on it writes to the
/// same place, so it is cloned, not copied.
pub trait OutputTarget: Clone + Send + Sync + 'static {
    /// Takes `bytes`. An error stops the guest with a trap: a guest whose
    /// output nobody takes must not go on computing for nothing.
    fn push(&self, bytes: &[u8]) -> Result<(), SinkError>;
}

/// A guest output stream writing to `T`; give it to `WasiCtxBuilder::stdout`
/// or `::stderr`.
#[derive(Clone)]
pub struct GuestStream<T>(pub T);

impl<T: OutputTarget> IsTerminal for GuestStream<T> {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl<T: OutputTarget> StdoutStream for GuestStream<T> {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl<T: OutputTarget> Pollable for GuestStream<T> {
    // Always ready: a write completes on the spot.
    async fn ready(&mut self) {}
}

impl<T: OutputTarget> OutputStream for GuestStream<T> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0
            .push(&bytes)
            .map_err(|SinkError| StreamError::trap("the guest's output could not be delivered"))
    }

    fn flush(&mut self) -> StreamResult<()> {
        // WASI preview1 flushes after every 4 KiB piece of every write: a
        // target that forwards bytes decides itself when to flush.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // At most this much per write; the target decides what to buffer.
        Ok(MAX_BODY_CHUNK)
    }
}

impl<T: OutputTarget> AsyncWrite for GuestStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.0
                .push(buf)
                .map(|()| buf.len())
                .map_err(|SinkError| std::io::ErrorKind::BrokenPipe.into()),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
