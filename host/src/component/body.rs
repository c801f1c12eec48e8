//! The request body, pulled from Apache's input filters as the guest reads.

use crate::request_io::{BodySource, ReadError};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi_http::Error;

/// How much one read asks Apache for. Memory per request body is bounded by
/// a few of these, whatever the size of the upload.
const READ_CHUNK: usize = 64 * 1024;

/// An `http_body::Body` over a [`BodySource`].
///
/// Reading blocks the thread, which is fine: the thread serves this request
/// only, and the guest asked for the bytes.
pub struct RequestBody<S> {
    source: Option<S>,
}

impl<S: BodySource> RequestBody<S> {
    /// A body that reads from `source` until it returns 0.
    pub fn new(source: S) -> Self {
        RequestBody {
            source: Some(source),
        }
    }
}

// The source is never pinned in place: it is only called through `&mut`.
impl<S> Unpin for RequestBody<S> {}

impl<S: BodySource> Body for RequestBody<S> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        let Some(source) = this.source.as_mut() else {
            return Poll::Ready(None);
        };
        let mut buf = BytesMut::zeroed(READ_CHUNK);
        match source.read(&mut buf) {
            Ok(0) => {
                let trailers = source.trailers();
                this.source = None;
                Poll::Ready(trailers.map(|trailers| Ok(Frame::trailers(trailers))))
            }
            Ok(n) => {
                buf.truncate(n);
                Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
            }
            Err(ReadError) => {
                this.source = None;
                Poll::Ready(Some(Err(Error::InternalError(Some(
                    "reading the request body failed".into(),
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.source.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    struct Chunks(Vec<&'static [u8]>);

    /// A body of one chunk and a trailer section.
    struct WithTrailers(Chunks);

    impl BodySource for WithTrailers {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
            self.0.read(buf)
        }

        fn trailers(&mut self) -> Option<http::HeaderMap> {
            let mut map = http::HeaderMap::new();
            map.insert("x-sum", http::HeaderValue::from_static("7"));
            Some(map)
        }
    }

    impl BodySource for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0);
            if chunk == b"fail" {
                return Err(ReadError);
            }
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn yields_each_read_then_ends() {
        let body = RequestBody::new(Chunks(vec![b"ab", b"cde"]));
        let collected = crate::runtime::block_on(body.collect()).unwrap().unwrap();
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"abcde"));
    }

    #[test]
    fn trailers_come_after_the_data_and_end_the_body() {
        let body = RequestBody::new(WithTrailers(Chunks(vec![b"ab"])));
        let collected = crate::runtime::block_on(body.collect()).unwrap().unwrap();
        assert_eq!(collected.trailers().unwrap()["x-sum"], "7");
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"ab"));
    }

    #[test]
    fn a_failed_read_is_an_error_frame() {
        let body = RequestBody::new(Chunks(vec![b"ab", b"fail", b"never"]));
        let result = crate::runtime::block_on(body.collect()).unwrap();
        assert!(result.is_err());
    }
}
