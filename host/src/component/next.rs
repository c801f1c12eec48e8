//! The guest's side of a middleware (`WasmMiddleware`, world
//! `wasi:http/middleware`): the imported `wasi:http/handler.handle` that
//! asks Apache for the next handler's response, and the [`Link`] that call
//! shares with the request's side ([`super::middleware`]).
//!
//! Guest and Apache take turns on the request's thread: the guest runs
//! while the request's side polls it, and Apache runs in between. So the
//! link is a few fields behind a lock nobody contends for, and the next
//! handler's body crosses through a channel of one frame ([`BackendBody`]),
//! which keeps memory bounded whatever the sizes.

use super::RequestState;
use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
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

/// A frame of the next handler's body, on its way to the guest.
pub type BodyFrame = Result<Frame<Bytes>, Error>;

/// The request a middleware passes on to the next handler.
pub struct NextRequest {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub target: String,
    /// The header fields (wasi:http leaves out the hop-by-hop ones).
    pub headers: HeaderMap,
    /// The middleware gives the next handler a body, read with
    /// `Middleware::read_body`.
    pub body: bool,
}

/// The next handler's response head, and where its body's frames come.
pub type NextHead = Result<(u16, HeaderMap, mpsc::Receiver<BodyFrame>), String>;

/// The guest's call of the next handler, waiting for the request's side.
pub struct NextCall {
    pub request: NextRequest,
    /// Where the next handler's head goes.
    pub reply: oneshot::Sender<NextHead>,
    /// The body the guest passed on, if it has one.
    pub body: Option<UnsyncBoxBody<Bytes, Error>>,
}

/// What the guest's side and the request's side of one middleware share.
#[derive(Default)]
pub struct Exchange {
    /// A call of the next handler the request's side has not taken yet.
    pub call: Option<NextCall>,
    /// The guest called the next handler (once is all it may).
    pub called: bool,
    /// The guest's response head went out.
    pub answered: bool,
}

/// The link between a middleware's guest and its request; one per request.
#[derive(Clone, Default)]
pub struct Link(Arc<Mutex<Exchange>>);

impl Link {
    /// The shared fields. Both sides run on the request's thread, one at a
    /// time, so this never waits; a panic while held poisons nothing of
    /// worth (the request fails either way).
    pub fn lock(&self) -> MutexGuard<'_, Exchange> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The next handler's body as the guest reads it. The request's side
/// hands over a frame whenever the channel (of one) has room, so at most
/// two are in memory: one waiting, one the guest works on. A guest that
/// drops the body closes the channel: the rest goes nowhere.
pub struct BackendBody {
    frames: mpsc::Receiver<BodyFrame>,
    ended: bool,
}

impl Body for BackendBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BodyFrame>> {
        let this = self.get_mut();
        let frame = std::task::ready!(this.frames.poll_recv(cx));
        this.ended = frame.is_none();
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
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
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |target| target.as_str().to_owned());
    let (reply, answer) = oneshot::channel();
    {
        let mut exchange = link.lock();
        if exchange.called || exchange.answered {
            return Ok(Err(internal(
                "the next handler runs once, before the middleware answers",
            )));
        }
        exchange.called = true;
        exchange.call = Some(NextCall {
            request: NextRequest {
                method: parts.method,
                target,
                headers: parts.headers,
                body: passes_body,
            },
            reply,
            body: passes_body.then_some(body),
        });
    }
    let (status, headers, frames) = match answer.await {
        Ok(Ok(head)) => head,
        Ok(Err(why)) => return Ok(Err(internal(&why))),
        Err(_) => return Ok(Err(internal("the next handler gave no response"))),
    };
    let body = BackendBody {
        frames,
        ended: false,
    };
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
