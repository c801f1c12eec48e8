//! [`Body`]: the bytes of a request or a response, whole or streamed.

use crate::Error;
use crate::error::stream_error;
use bytes::Bytes;
use std::fmt;
use wasi::http::types::{IncomingBody, IncomingRequest, IncomingResponse};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// The most a read asks the host for at once.
const READ_SIZE: u64 = 64 * 1024;

/// A request or response body.
///
/// Made from bytes (`&str`, `String`, `Vec<u8>`, [`Bytes`], ...), from an
/// iterator of chunks ([`Body::from_chunks`]), from a function that writes
/// the body piece by piece ([`Body::from_writer`]), or, in a handler, the
/// request's body as the client sends it. Read it whole
/// ([`into_bytes`](Body::into_bytes), [`into_string`](Body::into_string),
/// [`json`](Body::json)), chunk by chunk ([`chunk`](Body::chunk),
/// [`chunk_async`](Body::chunk_async)), or through [`std::io::Read`].
/// Streamed bodies are never held in memory whole.
pub struct Body {
    inner: Inner,
    /// Bytes taken from `inner` that `Read::read` has not handed out yet.
    unread: Bytes,
}

/// What writes a [`Body::from_writer`] body.
type WriteFn = Box<dyn FnOnce(&mut BodyWriter<'_>) -> Result<(), Error>>;

enum Inner {
    Empty,
    Full(Bytes),
    Incoming(Incoming),
    Chunks(Box<dyn Iterator<Item = Result<Bytes, Error>>>),
    Writer(WriteFn),
}

/// A body arriving from the host, opened when it is first read: a handler
/// that never reads its request's body (most GETs) makes none of the four
/// host calls that open and close it. The fields drop in order: a stream
/// before its body, a body before the request or response it came from
/// (the host refuses to drop a parent whose child is alive).
pub(crate) struct Incoming {
    stream: Option<InputStream>,
    /// Set once the body is open; its stream is `None` again at the end.
    body: Option<IncomingBody>,
    parent: Parent,
}

pub(crate) enum Parent {
    Request(IncomingRequest),
    Response(IncomingResponse),
}

impl Body {
    /// No bytes.
    pub fn empty() -> Self {
        Body::from_inner(Inner::Empty)
    }

    /// A body sent as `chunks` yields them, each one passed on to the client
    /// as soon as it is written. The iterator runs while the response is
    /// sent, after the handler returned.
    pub fn from_chunks<I, C>(chunks: I) -> Self
    where
        I: IntoIterator<Item = C>,
        I::IntoIter: 'static,
        C: Into<Bytes>,
    {
        let chunks = chunks.into_iter().map(|chunk| Ok(chunk.into()));
        Body::from_inner(Inner::Chunks(Box::new(chunks)))
    }

    /// Like [`from_chunks`](Self::from_chunks), for chunks that can fail:
    /// an error ends the body there, and the host cuts the response so the
    /// client does not take it for complete.
    pub fn try_from_chunks<I, C>(chunks: I) -> Self
    where
        I: IntoIterator<Item = Result<C, Error>>,
        I::IntoIter: 'static,
        C: Into<Bytes>,
    {
        let chunks = chunks.into_iter().map(|chunk| chunk.map(Into::into));
        Body::from_inner(Inner::Chunks(Box::new(chunks)))
    }

    /// A body written by `write` while it is sent: every
    /// [`BodyWriter::write_chunk`] reaches the client right away, so a
    /// large or slow body needs no buffer. An error ends the body there
    /// (the host cuts the response) and goes to the error log.
    pub fn from_writer<F>(write: F) -> Self
    where
        F: FnOnce(&mut BodyWriter<'_>) -> Result<(), Error> + 'static,
    {
        Body::from_inner(Inner::Writer(Box::new(write)))
    }

    /// `value` as JSON.
    #[cfg(feature = "json")]
    pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, Error> {
        serde_json::to_vec(value)
            .map(Body::from)
            .map_err(|e| Error::Json(e.to_string()))
    }

    pub(crate) fn incoming(request: IncomingRequest) -> Self {
        Body::incoming_from(Parent::Request(request))
    }

    pub(crate) fn incoming_response(response: IncomingResponse) -> Self {
        Body::incoming_from(Parent::Response(response))
    }

    fn incoming_from(parent: Parent) -> Self {
        Body::from_inner(Inner::Incoming(Incoming {
            stream: None,
            body: None,
            parent,
        }))
    }

    fn from_inner(inner: Inner) -> Self {
        Body {
            inner,
            unread: Bytes::new(),
        }
    }

    /// The next chunk, waiting for it if the client has not sent it yet;
    /// `None` at the end.
    pub fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if !self.unread.is_empty() {
            return Ok(Some(std::mem::take(&mut self.unread)));
        }
        match &mut self.inner {
            Inner::Empty => Ok(None),
            Inner::Full(_) => match std::mem::replace(&mut self.inner, Inner::Empty) {
                Inner::Full(bytes) if !bytes.is_empty() => Ok(Some(bytes)),
                _ => Ok(None),
            },
            Inner::Incoming(incoming) => incoming.read(),
            Inner::Chunks(chunks) => chunks.next().transpose(),
            Inner::Writer(_) => {
                // Reading a writer body (in a test, say) runs the writer
                // into memory.
                let Inner::Writer(write) = std::mem::replace(&mut self.inner, Inner::Empty) else {
                    unreachable!("matched above")
                };
                let mut buffer = Vec::new();
                write(&mut BodyWriter {
                    sink: Sink::Buffer(&mut buffer),
                })?;
                Ok((!buffer.is_empty()).then(|| buffer.into()))
            }
        }
    }

    /// Like [`chunk`](Self::chunk), but lets other futures of the handler
    /// run while the client's bytes are on their way.
    pub async fn chunk_async(&mut self) -> Result<Option<Bytes>, Error> {
        if let Inner::Incoming(incoming) = &mut self.inner
            && self.unread.is_empty()
        {
            return incoming.read_async().await;
        }
        self.chunk()
    }

    /// The whole body in memory.
    pub fn into_bytes(mut self) -> Result<Bytes, Error> {
        if let Inner::Full(bytes) = &self.inner
            && self.unread.is_empty()
        {
            return Ok(bytes.clone());
        }
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk()? {
            all.extend_from_slice(&chunk);
        }
        Ok(all.into())
    }

    /// The whole body as UTF-8 text.
    pub fn into_string(self) -> Result<String, Error> {
        String::from_utf8(self.into_bytes()?.into()).map_err(|_| Error::Body("not valid UTF-8"))
    }

    /// The whole body parsed as JSON.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        serde_json::from_slice(&self.into_bytes()?).map_err(|e| Error::Json(e.to_string()))
    }

    /// Whether the body comes from the host (a request's, or an outgoing
    /// request's response).
    pub(crate) fn is_incoming(&self) -> bool {
        matches!(self.inner, Inner::Incoming(_))
    }

    /// The size of a body held in memory; `None` for one that streams.
    pub(crate) fn known_length(&self) -> Option<usize> {
        match &self.inner {
            Inner::Full(bytes) => Some(bytes.len() + self.unread.len()),
            _ => None,
        }
    }

    /// Sends the body down `stream`, chunk by chunk, each flushed.
    pub(crate) fn send_to(mut self, stream: &OutputStream) -> Result<(), Error> {
        if let Inner::Writer(_) = self.inner
            && self.unread.is_empty()
        {
            let Inner::Writer(write) = std::mem::replace(&mut self.inner, Inner::Empty) else {
                unreachable!("matched above")
            };
            return write(&mut BodyWriter {
                sink: Sink::Stream(stream),
            });
        }
        while let Some(chunk) = self.chunk()? {
            write_flushed(stream, &chunk)?;
        }
        Ok(())
    }
}

impl Body {
    /// Like [`send_to`](Self::send_to), but other futures run while the
    /// host is not ready for more (an outgoing request's body goes out while
    /// its response is awaited). A writer body still writes blocking.
    pub(crate) async fn send_to_async(mut self, stream: &OutputStream) -> Result<(), Error> {
        if let Inner::Writer(_) = self.inner {
            return self.send_to(stream);
        }
        while let Some(chunk) = self.chunk_async().await? {
            write_async(stream, &chunk).await?;
        }
        Ok(())
    }
}

impl Incoming {
    /// The body's stream, opened on the first call; `None` once it ended.
    fn stream(&mut self) -> Result<Option<&InputStream>, Error> {
        if self.body.is_none() {
            let body = match &self.parent {
                Parent::Request(request) => request.consume(),
                Parent::Response(response) => response.consume(),
            }
            .map_err(|()| Error::Body("already taken"))?;
            let stream = body
                .stream()
                .map_err(|()| Error::Body("stream already taken"))?;
            self.body = Some(body);
            self.stream = Some(stream);
        }
        Ok(self.stream.as_ref())
    }

    fn read(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let Some(stream) = self.stream()? else {
                return Ok(None);
            };
            match stream.blocking_read(READ_SIZE) {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Ok(Some(bytes.into())),
                Err(StreamError::Closed) => self.stream = None,
                Err(e) => return Err(stream_error(e)),
            }
        }
    }

    async fn read_async(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let Some(stream) = self.stream()? else {
                return Ok(None);
            };
            match stream.read(READ_SIZE) {
                Ok(bytes) if bytes.is_empty() => crate::executor::ready(stream.subscribe()).await,
                Ok(bytes) => return Ok(Some(bytes.into())),
                Err(StreamError::Closed) => self.stream = None,
                Err(e) => return Err(stream_error(e)),
            }
        }
    }
}

/// Writes all of `bytes` as fast as the host takes them, then flushes, so
/// that the chunk reaches the client now. Blocks this handler meanwhile.
pub(crate) fn write_flushed(stream: &OutputStream, bytes: &[u8]) -> Result<(), Error> {
    // A chunk WASI's blocking-write-and-flush takes whole goes in one call
    // to the host instead of the six of the loop below: most responses are
    // one such chunk, and each call into the host costs microseconds.
    if bytes.len() <= BLOCKING_WRITE_MAX {
        return stream.blocking_write_and_flush(bytes).map_err(stream_error);
    }
    crate::block_on(write_async(stream, bytes))?
}

/// The most `blocking-write-and-flush` takes in one call (WASI 0.2).
const BLOCKING_WRITE_MAX: usize = 4096;

/// [`write_flushed`] for async code: waits for the host in
/// [`ready`](crate::ready), so other futures run meanwhile.
async fn write_async(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), Error> {
    while !bytes.is_empty() {
        let permitted = stream.check_write().map_err(stream_error)?;
        if permitted == 0 {
            crate::executor::ready(stream.subscribe()).await;
            continue;
        }
        let len = bytes
            .len()
            .min(usize::try_from(permitted).unwrap_or(usize::MAX));
        stream.write(&bytes[..len]).map_err(stream_error)?;
        bytes = &bytes[len..];
    }
    // The pollable is ready once the flush has completed.
    stream.flush().map_err(stream_error)?;
    crate::executor::ready(stream.subscribe()).await;
    stream.check_write().map(drop).map_err(stream_error)
}

/// Writes a [`Body::from_writer`] body.
pub struct BodyWriter<'a> {
    sink: Sink<'a>,
}

enum Sink<'a> {
    Stream(&'a OutputStream),
    Buffer(&'a mut Vec<u8>),
}

impl BodyWriter<'_> {
    /// Writes `bytes` and passes them on to the client now.
    pub fn write_chunk(&mut self, bytes: impl AsRef<[u8]>) -> Result<(), Error> {
        match &mut self.sink {
            Sink::Stream(stream) => write_flushed(stream, bytes.as_ref()),
            Sink::Buffer(buffer) => {
                buffer.extend_from_slice(bytes.as_ref());
                Ok(())
            }
        }
    }
}

/// For `write!` and `std::io::copy`; each `write` is one flushed chunk.
impl std::io::Write for BodyWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write_chunk(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads the body as a byte stream (e.g. into a hasher with
/// `std::io::copy`).
impl std::io::Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.unread.is_empty() {
            match self.chunk()? {
                Some(chunk) => self.unread = chunk,
                None => return Ok(0),
            }
        }
        let len = buf.len().min(self.unread.len());
        buf[..len].copy_from_slice(&self.unread.split_to(len));
        Ok(len)
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            Inner::Empty => "empty",
            Inner::Full(_) => "bytes",
            Inner::Incoming(_) => "incoming",
            Inner::Chunks(_) => "chunks",
            Inner::Writer(_) => "writer",
        };
        f.debug_struct("Body").field("kind", &kind).finish()
    }
}

impl From<()> for Body {
    fn from((): ()) -> Self {
        Body::empty()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body::from_inner(Inner::Full(bytes))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::from(Bytes::from(bytes))
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Body::from(Bytes::from_static(bytes))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::from(Bytes::from(text))
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body::from(Bytes::from_static(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn bytes_strings_and_nothing_become_bodies() {
        assert_eq!(Body::from("text").into_string().unwrap(), "text");
        assert_eq!(
            Body::from(String::from("owned")).into_string().unwrap(),
            "owned"
        );
        assert_eq!(
            &Body::from(vec![1, 2, 3]).into_bytes().unwrap()[..],
            [1, 2, 3]
        );
        assert_eq!(
            &Body::from(&b"static"[..]).into_bytes().unwrap()[..],
            b"static"
        );
        assert_eq!(
            Body::from(Bytes::from_static(b"b")).into_string().unwrap(),
            "b"
        );
        assert!(Body::from(()).into_bytes().unwrap().is_empty());
        assert!(Body::empty().chunk().unwrap().is_none());
    }

    #[test]
    fn chunks_come_out_one_by_one() {
        let mut body = Body::from_chunks(["one", "two"]);
        assert_eq!(body.chunk().unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(body.chunk().unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(body.chunk().unwrap(), None);
    }

    #[test]
    fn a_failing_chunk_is_an_error_for_the_reader() {
        let body = Body::try_from_chunks([Ok("fine"), Err(Error::Body("broken"))]);
        assert_eq!(body.into_bytes(), Err(Error::Body("broken")));
    }

    #[test]
    fn a_writer_body_can_be_read_back() {
        let body = Body::from_writer(|out| {
            out.write_chunk("data: 1\n\n")?;
            write!(out, "data: {}\n\n", 2).map_err(|e| Error::Stream(e.to_string()))
        });
        assert_eq!(body.into_string().unwrap(), "data: 1\n\ndata: 2\n\n");
    }

    #[test]
    fn read_hands_out_a_chunk_in_pieces() {
        let mut body = Body::from_chunks(["abcdef", "gh"]);
        let mut piece = [0; 4];
        assert_eq!(body.read(&mut piece).unwrap(), 4);
        assert_eq!(&piece, b"abcd");
        let mut rest = String::new();
        body.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "efgh");
    }

    #[test]
    fn text_must_be_utf8() {
        assert_eq!(
            Body::from(vec![0xff]).into_string(),
            Err(Error::Body("not valid UTF-8"))
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_goes_both_ways() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Point {
            x: i32,
        }
        let body = Body::to_json(&Point { x: 3 }).unwrap();
        assert_eq!(body.json::<Point>().unwrap(), Point { x: 3 });
        assert!(matches!(
            Body::from("{").json::<Point>(),
            Err(Error::Json(_))
        ));
    }
}
