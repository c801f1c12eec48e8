//! The worker's side of a middleware (`WasmMiddleware`, world
//! `wasi:http/middleware`): the imported `wasi:http/handler.handle` that
//! asks Apache for the next handler's response, and the messages between
//! the middleware's thread and the request's ([`super::middleware`]).
//!
//! Everything that touches Apache happens on the request's thread, so the
//! worker only ever sends it messages, through one bounded channel, and
//! gets owned values back through channels it made itself. Bodies cross a
//! frame at a time and only when the side that reads them asks
//! ([`DemandBody`]), so memory stays bounded whatever the sizes.

use super::RequestState;
use crate::log::{LogKind, RequestLog};
use crate::request_io::{ResponseSink, SinkError};
use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use std::pin::Pin;
use std::sync::mpsc::SyncSender;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::{Accessor, Linker, Resource};
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::{Request, Response};
use wasmtime_wasi_http::{Error, WasiHttpView};

/// What a component served as `WasmComponent` gets when it calls the
/// imported handler: there is no next handler to call.
const NOT_A_MIDDLEWARE: &str = "no next handler: this component is served by WasmComponent; WasmMiddleware serves \
     components of the wasi:http/middleware world";

/// A frame of a body crossing between the threads.
pub type BodyFrame = Result<Frame<Bytes>, Error>;

/// The request a middleware passes on to the next handler.
pub struct NextRequest {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub target: String,
    /// The header fields (wasi:http leaves out the hop-by-hop ones).
    pub headers: HeaderMap,
    /// The middleware gives the next handler a body, read through
    /// [`ToApache::WantNextBody`].
    pub body: bool,
}

/// The next handler's response head, and where its body's frames come.
pub type NextHead = Result<(u16, HeaderMap, mpsc::UnboundedReceiver<BodyFrame>), String>;

/// What the middleware's thread tells the request's thread.
pub enum ToApache {
    /// The middleware's response: its status and headers.
    Head(u16, HeaderMap),
    /// A piece of its body.
    Data(Bytes),
    /// Its trailers.
    Trailers(HeaderMap),
    /// The guest wants the next frame of the request it was given.
    WantBody,
    /// The guest called the next handler with this request: the answer
    /// goes to `reply`; frames of the body it passed on are asked for on
    /// `want_body`.
    Next {
        request: NextRequest,
        reply: oneshot::Sender<NextHead>,
        want_body: Option<mpsc::UnboundedSender<()>>,
    },
    /// A frame of the body the guest passed on (`None`: its end).
    NextBodyFrame(Option<Result<Bytes, String>>),
    /// The guest wants the next frame of the next handler's response body.
    WantBackendData,
    /// The guest dropped that body: the rest of it goes nowhere.
    BackendGone,
    /// A line for the request's log.
    Log(LogLine),
    /// The guest is done with the request, cleanly or not.
    End(Result<(), crate::request_io::ServeError>),
}

/// A line the guest (or the host about it) logged.
pub enum LogLine {
    Host(LogKind, Vec<u8>),
    Guest(u8, Vec<u8>),
}

/// The worker's end of the link to the request's thread. Sends block
/// while the bounded channel is full: the request's thread always drains
/// it while it waits, and it is all the worker's thread serves.
#[derive(Clone)]
pub struct Link(pub SyncSender<ToApache>);

impl Link {
    fn send(&self, message: ToApache) -> bool {
        self.0.send(message).is_ok()
    }
}

/// The middleware's response, handed to the request's thread.
pub struct LinkSink(pub Link);

impl ResponseSink for LinkSink {
    fn send_head(&mut self, status: u16, headers: &HeaderMap) -> Result<(), SinkError> {
        self.0
            .send(ToApache::Head(status, headers.clone()))
            .then_some(())
            .ok_or(SinkError)
    }

    fn send_data(&mut self, data: &[u8], _flush: bool) -> Result<(), SinkError> {
        self.0
            .send(ToApache::Data(Bytes::copy_from_slice(data)))
            .then_some(())
            .ok_or(SinkError)
    }

    fn send_trailers(&mut self, trailers: &HeaderMap) -> Result<(), SinkError> {
        self.0
            .send(ToApache::Trailers(trailers.clone()))
            .then_some(())
            .ok_or(SinkError)
    }
}

/// The request's log, from the worker's thread.
pub struct LinkLog(pub Link);

impl RequestLog for LinkLog {
    fn log(&self, kind: LogKind, text: &[u8]) {
        self.0
            .send(ToApache::Log(LogLine::Host(kind, text.to_vec())));
    }

    fn guest_log(&self, level: u8, text: &[u8]) {
        self.0
            .send(ToApache::Log(LogLine::Guest(level, text.to_vec())));
    }
}

/// A body whose frames come from the request's thread, each asked for
/// when the reader wants one: `ask` is sent then, `on_drop` (if any) when
/// the reader drops the body before its end.
pub struct DemandBody {
    link: Link,
    ask: fn() -> ToApache,
    on_drop: Option<fn() -> ToApache>,
    frames: mpsc::UnboundedReceiver<BodyFrame>,
    asked: bool,
    ended: bool,
}

impl DemandBody {
    pub fn new(
        link: Link,
        ask: fn() -> ToApache,
        on_drop: Option<fn() -> ToApache>,
        frames: mpsc::UnboundedReceiver<BodyFrame>,
    ) -> Self {
        DemandBody {
            link,
            ask,
            on_drop,
            frames,
            asked: false,
            ended: false,
        }
    }
}

impl Body for DemandBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BodyFrame>> {
        let this = self.get_mut();
        match this.frames.poll_recv(cx) {
            Poll::Ready(frame) => {
                this.asked = false;
                this.ended = frame.is_none();
                Poll::Ready(frame)
            }
            Poll::Pending => {
                if !this.asked {
                    if !this.link.send((this.ask)()) {
                        this.ended = true;
                        return Poll::Ready(Some(Err(Error::InternalError(Some(
                            "the request ended".into(),
                        )))));
                    }
                    this.asked = true;
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for DemandBody {
    fn drop(&mut self) {
        if !self.ended
            && let Some(on_drop) = self.on_drop
        {
            self.link.send(on_drop());
        }
    }
}

/// Defines `wasi:http/handler@0.3.0#handle` for middlewares: the next
/// handler, which Apache runs. The `Link` in the store's state says where
/// to ask; a store without one (a `WasmComponent`) gets an error code.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    linker
        .instance("wasi:http/handler@0.3.0")?
        .func_wrap_concurrent(
            "handle",
            |accessor: &Accessor<RequestState>, (request,): (Resource<Request>,)| {
                Box::pin(async move { Ok((call_next(accessor, request).await?,)) })
            },
        )
}

async fn call_next(
    accessor: &Accessor<RequestState>,
    request: Resource<Request>,
) -> wasmtime::Result<Result<Resource<Response>, ErrorCode>> {
    let converted = accessor.with(|mut access| -> wasmtime::Result<_> {
        let mut request = access.data_mut().http().table.delete(request)?;
        // The next handler is this server's: a request made without a
        // scheme or authority (they mean nothing here) still converts.
        if request.authority.is_none() {
            request.scheme.get_or_insert(http::uri::Scheme::HTTP);
            request.authority = Some(http::uri::Authority::from_static("localhost"));
        }
        let link = access.data_mut().next_handler();
        Ok((request.into_http(&mut access, async { Ok(()) }), link))
    })?;
    let (request, link) = match converted {
        (Ok((request, _options)), Some(link)) => (request, link),
        (Ok(_), None) => return Ok(Err(internal(NOT_A_MIDDLEWARE))),
        (Err(e), _) => return e.downcast().map(Err),
    };
    let (parts, body) = request.into_parts();
    let passes_body = carries_body(&parts.method, &parts.headers, &body);
    let (want_tx, want_rx) = mpsc::unbounded_channel();
    if passes_body {
        tokio::spawn(forward_body(body, want_rx, link.clone()));
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |target| target.as_str().to_owned());
    let (reply, answer) = oneshot::channel();
    let sent = link.send(ToApache::Next {
        request: NextRequest {
            method: parts.method,
            target,
            headers: parts.headers,
            body: passes_body,
        },
        reply,
        want_body: passes_body.then_some(want_tx),
    });
    if !sent {
        return Ok(Err(internal("the request ended")));
    }
    let (status, headers, frames) = match answer.await {
        Ok(Ok(head)) => head,
        Ok(Err(why)) => return Ok(Err(internal(&why))),
        Err(_) => return Ok(Err(internal("the next handler gave no response"))),
    };
    let body = DemandBody::new(
        link,
        || ToApache::WantBackendData,
        Some(|| ToApache::BackendGone),
        frames,
    );
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status)?;
    *response.headers_mut() = headers;
    accessor.with(|mut access| {
        let (response, _io) = Response::from_http(access.data_mut().http().hooks, response);
        Ok(Ok(access.data_mut().http().table.push(response)?))
    })
}

fn internal(why: &str) -> ErrorCode {
    ErrorCode::InternalError(Some(why.to_owned()))
}

/// Whether the request a guest passes on has a body for the next handler:
/// its Content-Length says so, or, without one (wasi:http forbids
/// Transfer-Encoding), a body that may still hold data on a method that
/// has one. GET and HEAD never carry one here: a request the guest passes
/// on unchanged has the client's body, which for them is empty.
fn carries_body(method: &Method, headers: &HeaderMap, body: &UnsyncBoxBody<Bytes, Error>) -> bool {
    if let Some(length) = headers.get(http::header::CONTENT_LENGTH) {
        return length.as_bytes() != b"0";
    }
    !(body.is_end_stream()
        || body.size_hint().exact() == Some(0)
        || matches!(*method, Method::GET | Method::HEAD))
}

/// Hands the request's thread the body the guest passed on, a frame each
/// time it asks.
async fn forward_body(
    mut body: UnsyncBoxBody<Bytes, Error>,
    mut want: mpsc::UnboundedReceiver<()>,
    link: Link,
) {
    while want.recv().await.is_some() {
        let frame = loop {
            match body.frame().await {
                None => break None,
                Some(Err(e)) => break Some(Err(format!("{e:?}"))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => break Some(Ok(data)),
                    // Trailers do not reach the next handler.
                    Err(_) => continue,
                },
            }
        };
        let end = !matches!(frame, Some(Ok(_)));
        if !link.send(ToApache::NextBodyFrame(frame)) || end {
            return;
        }
    }
}
