//! One request for a WASI 0.3 component (`wasi:http/handler`): a fresh
//! instance, its `handle` called inside the store's event loop, and the
//! response's body streamed into a [`ResponseSink`] from there too.
//!
//! A 0.3 guest typically returns its response at once and writes the body
//! from a task of its own afterwards; that task runs only while the event
//! loop does (`Store::run_concurrent`), so the whole response is pulled
//! from inside it. Under `WasmInstanceReuse` the instance is a shared one
//! instead, on a thread of its own ([`super::shared03`]).

use super::serve::{Call, new_store, poll_once, send_trailers};
use super::{RequestFacts, RequestState};
use crate::log::RequestLog;
use crate::request_io::{BodySource, PoolRoom, ResponseSink, ServeError, SinkError, classify};
use crate::runtime;
use crate::sandbox::Sandbox;
use crate::ticker;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use wasmtime::component::Accessor;
use wasmtime::{PoolConcurrencyLimitError, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p3::Request;
use wasmtime_wasi_http::p3::bindings::{Service, ServicePre};

/// Serves `call` with a new instance of `pre` confined to its sandbox,
/// blocking this thread until the response is complete, or until the
/// sandbox's timeout stopped the guest.
pub fn serve<S: BodySource>(
    pre: &ServicePre<RequestState>,
    call: Call<'_, S>,
) -> Result<(), ServeError> {
    let _serving = ticker::Serving::begin();
    let served = if call.reuse.is_some() {
        runtime::block_on(super::shared03::serve(pre, call))
    } else {
        runtime::block_on(serve_call(pre, call))
    };
    served.map_err(|e| ServeError::Internal(e.to_string()))?
}

async fn serve_call<S: BodySource>(
    pre: &ServicePre<RequestState>,
    call: Call<'_, S>,
) -> Result<(), ServeError> {
    let Call {
        request,
        sink,
        sandbox,
        facts,
        log,
        ..
    } = call;
    let deadline = Instant::now() + sandbox.timeout;
    let memory_exceeded = Arc::new(AtomicBool::new(false));
    // The deadline around everything, as well as in the guest's code: a
    // guest waiting in the host runs no Wasm to notice it, and a timeout
    // inside the event loop does not fire while a host call holds the store.
    let result = tokio::time::timeout_at(deadline.into(), async {
        let (mut store, service) =
            instantiate(pre, sandbox, &facts, &log, &memory_exceeded, deadline).await?;
        run(&mut store, &service, request, sink).await
    })
    .await
    .unwrap_or_else(|_| Err(ServeError::Timeout("the guest was waiting".into())));
    // A task the guest left running ends with the store, here: nothing of
    // the request may outlive `serve`.
    result.map_err(|e| e.explained(sandbox.limits(), memory_exceeded.load(Ordering::Relaxed)))
}

/// A new instance of `pre` in a store of its own, for a fresh request or a
/// shared instance's first. When every slot of the child's pool is taken,
/// an idle shared instance closes (its thread gives the slots back soon
/// after) or an idle 0.2 instance is dropped, or a running request ends,
/// up to `deadline`.
pub(super) async fn instantiate(
    pre: &ServicePre<RequestState>,
    sandbox: &Sandbox,
    facts: &RequestFacts,
    log: &Arc<dyn RequestLog>,
    memory_exceeded: &Arc<AtomicBool>,
    deadline: Instant,
) -> Result<(Store<RequestState>, Service), ServeError> {
    let mut room = PoolRoom::new();
    loop {
        let mut store = new_store(pre.engine(), sandbox, facts, log, memory_exceeded, deadline)?;
        let started = Instant::now();
        match pre.instantiate_async(&mut store).await {
            Ok(service) => {
                sandbox.meter.instantiated(started.elapsed());
                return Ok((store, service));
            }
            // The half-built store goes first, with the slots it took.
            Err(e)
                if e.is::<PoolConcurrencyLimitError>() && {
                    super::shared03::retire_oldest_idle();
                    room.make(deadline).await
                } => {}
            Err(e) => return Err(classify(&e)),
        }
    }
}

pub(super) async fn run<B>(
    store: &mut Store<RequestState>,
    service: &Service,
    request: http::Request<B>,
    sink: &mut dyn ResponseSink,
) -> Result<(), ServeError>
where
    B: http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
{
    // The future for the guest's verdict on the request body is not
    // awaited: the body reaches the guest through the event loop either way.
    let (request, _body_result) = Request::from_http(store.data_mut().http().hooks, request);
    store
        .run_concurrent(async |accessor| respond(accessor, service, request, sink).await)
        .await
        .map_err(|e| classify(&e))?
}

/// The guest's response to `request`, checked: a final status, valid
/// fields. `Err` says why there is none; [`Unanswered::trapped`] when the
/// call itself failed, after which the instance cannot be entered again.
pub(super) async fn handle(
    accessor: &Accessor<RequestState>,
    service: &Service,
    request: Request,
) -> Result<http::Response<UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>>, Unanswered> {
    let answered = |error| Unanswered {
        error,
        trapped: false,
    };
    let response = match service.handle(accessor, request).await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => {
            return Err(answered(ServeError::Guest(format!(
                "the guest answered with an error instead of a response: {code:?}"
            ))));
        }
        Err(e) => {
            return Err(Unanswered {
                error: classify(&e),
                trapped: true,
            });
        }
    };
    let response = accessor
        .with(|mut access| response.into_http(&mut access, async { Ok(()) }))
        .map_err(|e| {
            answered(ServeError::Guest(format!(
                "the guest's response is invalid: {e:#}"
            )))
        })?;
    let status = response.status().as_u16();
    if !(200..=599).contains(&status) {
        return Err(answered(ServeError::Guest(format!(
            "the guest answered with status {status}, which is not a final HTTP status"
        ))));
    }
    Ok(response)
}

/// The guest's response body broke off.
pub(super) fn body_failed(e: wasmtime_wasi_http::Error) -> ServeError {
    ServeError::Guest(format!("the guest's response body failed: {e:?}"))
}

/// Why a call of `handle` gave no response.
pub(super) struct Unanswered {
    pub error: ServeError,
    /// The guest trapped (or the host failed it): its instance is done.
    pub trapped: bool,
}

/// Calls the guest's handler and streams its response into `sink`.
async fn respond(
    accessor: &Accessor<RequestState>,
    service: &Service,
    request: Request,
    sink: &mut dyn ResponseSink,
) -> Result<(), ServeError> {
    let response = handle(accessor, service, request)
        .await
        .map_err(|unanswered| unanswered.error)?;
    let (head, mut body) = response.into_parts();
    let status = head.status.as_u16();
    sink.send_head(status, &head.headers)
        .map_err(|SinkError| ServeError::Sink)?;
    let mut ahead = None;
    loop {
        let frame = match ahead.take() {
            Some(frame) => frame,
            None => body.frame().await,
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(body_failed)?;
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                send_trailers(frame, sink)?;
                continue;
            }
        };
        // Flush only when nothing more is ready: Apache may gather pieces
        // the guest wrote in a row into one write.
        ahead = poll_once(body.frame());
        if !data.is_empty() || ahead.is_none() {
            sink.send_data(&data, ahead.is_none())
                .map_err(|SinkError| ServeError::Sink)?;
        }
    }
    Ok(())
}
