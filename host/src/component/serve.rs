//! One request, one fresh instance: run the guest's `incoming-handler` and
//! stream its response into a [`ResponseSink`].

use super::{BodySource, GuestStderr, RequestBody, RequestState};
use crate::runtime;
use http::HeaderMap;
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// The sink refused the bytes: the client went away, or the C side rejected
/// the head (it then knows the status to answer with).
#[derive(Debug)]
pub struct SinkError;

/// Where the response goes: in Apache, `request_rec` and the output filters.
pub trait ResponseSink {
    /// Status and headers, called once, before any data.
    fn send_head(&mut self, status: u16, headers: &HeaderMap) -> Result<(), SinkError>;
    /// A piece of the body. `flush` is set when the guest has nothing more
    /// ready right now, so the bytes should reach the client without waiting.
    fn send_data(&mut self, data: &[u8], flush: bool) -> Result<(), SinkError>;
}

/// Why a request did not end with a complete response. Whether the head had
/// already been sent is the sink's knowledge, not ours.
#[derive(Debug)]
pub enum ServeError {
    /// The guest trapped, returned an error, or produced an invalid response.
    Guest(String),
    /// The guest returned without ever setting its `response-outparam`.
    NoResponse,
    /// The sink refused a head or data.
    Sink,
    /// The host failed (a panic in a task, no runtime).
    Internal(String),
}

/// Serves `request` with a new instance of `pre`, blocking this thread until
/// the guest has returned and its response is complete.
pub fn serve<S: BodySource>(
    pre: &ProxyPre<RequestState>,
    scheme: Scheme,
    request: http::Request<RequestBody<S>>,
    sink: &mut dyn ResponseSink,
    stderr: GuestStderr,
) -> Result<(), ServeError> {
    runtime::block_on(exchange(pre.clone(), scheme, request, sink, stderr))
        .map_err(|e| ServeError::Internal(format!("cannot start a tokio runtime: {e}")))?
}

type GuestTask = JoinHandle<wasmtime::Result<()>>;

async fn exchange<S: BodySource>(
    pre: ProxyPre<RequestState>,
    scheme: Scheme,
    request: http::Request<RequestBody<S>>,
    sink: &mut dyn ResponseSink,
    stderr: GuestStderr,
) -> Result<(), ServeError> {
    let mut store = Store::new(pre.engine(), RequestState::new(stderr));
    let (response_tx, response_rx) = oneshot::channel();
    let mut http = store.data_mut().http();
    let incoming = http
        .new_incoming_request(scheme, request)
        .map_err(|e| ServeError::Internal(format!("cannot create the request: {e:#}")))?;
    let outparam = http
        .new_response_outparam(response_tx)
        .map_err(|e| ServeError::Internal(format!("cannot create the outparam: {e:#}")))?;

    // The guest runs as its own task: after handing over the response head
    // it goes on writing the body, which this task streams to the sink.
    let guest: GuestTask = tokio::task::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, incoming, outparam)
            .await
    });
    let mut guest = Some(guest);
    let result = respond(response_rx, &mut guest, sink).await;

    // Nothing of this request may outlive this call: the C side's pointers
    // are only valid until it returns.
    if let Some(unfinished) = guest {
        unfinished.abort();
        let _ = unfinished.await;
    }
    result
}

type ResponseResult = Result<
    hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>,
    wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
>;

/// Streams the guest's response into `sink`. Takes `guest` out of its slot
/// once it has awaited it; whatever is left there the caller must stop.
async fn respond(
    response_rx: oneshot::Receiver<ResponseResult>,
    guest: &mut Option<GuestTask>,
    sink: &mut dyn ResponseSink,
) -> Result<(), ServeError> {
    let response = match response_rx.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => {
            return Err(ServeError::Guest(format!(
                "the guest set an error instead of a response: {code:?}"
            )));
        }
        // The outparam was dropped unset: the guest's result says why.
        Err(_) => {
            return match finish(guest).await {
                Ok(()) => Err(ServeError::NoResponse),
                Err(e) => Err(e),
            };
        }
    };

    let (head, mut body) = response.into_parts();
    let status = head.status.as_u16();
    if !(200..=599).contains(&status) {
        return Err(ServeError::Guest(format!(
            "the guest answered with status {status}, which is not a final HTTP status"
        )));
    }
    sink.send_head(status, &head.headers)
        .map_err(|SinkError| ServeError::Sink)?;

    let mut next = body.frame().await;
    while let Some(frame) = next {
        let frame = frame
            .map_err(|e| ServeError::Guest(format!("the guest's response body failed: {e:?}")))?;
        let Ok(data) = frame.into_data() else {
            // Trailers: HTTP/1.1 responses through Apache carry none.
            next = body.frame().await;
            continue;
        };
        // Let the guest run once: if it has the next piece ready, Apache may
        // gather both into one write; flush only when we would wait.
        tokio::task::yield_now().await;
        let ready = poll_once(body.frame());
        if !data.is_empty() || ready.is_none() {
            sink.send_data(&data, ready.is_none())
                .map_err(|SinkError| ServeError::Sink)?;
        }
        next = match ready {
            Some(frame) => frame,
            None => body.frame().await,
        };
    }

    // The body ended; it is only complete if the guest also returned cleanly
    // (a guest that traps mid-body drops the body without finishing it).
    finish(guest).await
}

/// Waits for the guest to return and says how it went.
async fn finish(guest: &mut Option<GuestTask>) -> Result<(), ServeError> {
    let Some(task) = guest.take() else {
        return Ok(());
    };
    match task.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(guest_error(&e)),
        Err(e) => Err(ServeError::Internal(format!("the guest task failed: {e}"))),
    }
}

/// One line for the error log, from a trap or a guest error with its wasm
/// backtrace.
fn guest_error(error: &wasmtime::Error) -> ServeError {
    let text = format!("{error:#}");
    ServeError::Guest(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Polls `future` once; `None` if it is not ready.
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}
