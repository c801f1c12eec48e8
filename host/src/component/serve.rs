//! One request, one instance (fresh, or idle under `WasmInstanceReuse`):
//! run the guest's `incoming-handler` and stream its response into a
//! [`ResponseSink`].

use super::reuse::{self, Instance, Reuse};
use super::{RequestBody, RequestFacts, RequestState};
use crate::log::RequestLog;
use crate::request_io::{BodySource, PoolRoom, ResponseSink, ServeError, SinkError, classify};
use crate::runtime;
use crate::sandbox::Sandbox;
use crate::ticker;
use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tokio::sync::oneshot;
use wasmtime::{PoolConcurrencyLimitError, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// One request for a component: everything [`serve`] needs besides the
/// component itself.
pub struct Call<'a, S> {
    /// The request's scheme, as wasi:http names it.
    pub scheme: Scheme,
    /// The request, its body read from Apache as the guest asks for it.
    pub request: http::Request<RequestBody<S>>,
    /// Where the response goes.
    pub sink: &'a mut dyn ResponseSink,
    /// What the guest may use, and for how long.
    pub sandbox: &'a Sandbox,
    /// What only Apache knows (`mod-wasm:host/request`).
    pub facts: RequestFacts,
    /// The host's messages about this request.
    pub log: Arc<dyn RequestLog>,
    /// Whether an idle instance may serve it, and be kept after.
    pub reuse: Option<Reuse>,
}

/// Serves `call` with a new instance of `pre` confined to its sandbox, or
/// with an idle one if the location reuses them, blocking this thread
/// until the guest has returned and its response is complete, or until the
/// sandbox's timeout stopped it.
pub fn serve<S: BodySource>(
    pre: &ProxyPre<RequestState>,
    call: Call<'_, S>,
) -> Result<(), ServeError> {
    let _serving = ticker::Serving::begin();
    runtime::block_on(serve_call(pre.clone(), call))
        .map_err(|e| ServeError::Internal(e.to_string()))?
}

/// The guest's call of its handler, polled in place by the request's future
/// rather than spawned as a task: a task per request would cost an
/// allocation, a copy of the call's state and a scheduler round trip, and
/// nothing else on the thread needs to run while the guest does.
struct Guest<'a, F> {
    call: Pin<&'a mut F>,
    /// The call has ended.
    ended: bool,
    /// It ended by returning, without a trap or an error.
    returned: bool,
    /// Why it failed, until [`Guest::wait`] reports it.
    failure: Option<ServeError>,
}

impl<'a, F: Future<Output = wasmtime::Result<()>>> Guest<'a, F> {
    fn new(call: Pin<&'a mut F>) -> Self {
        Guest {
            call,
            ended: false,
            returned: false,
            failure: None,
        }
    }

    fn has_ended(&self) -> bool {
        self.ended
    }

    /// Waits until the guest's call ends, keeping its failure for
    /// [`Guest::wait`]. Cancel-safe: dropping the future leaves the call in
    /// place, to be polled again.
    async fn end(&mut self) {
        if !self.ended {
            let result = self.call.as_mut().await;
            self.end_with(result);
        }
    }

    /// Waits until the guest returns; its error if it failed (once).
    /// Cancel-safe, as [`Guest::end`].
    async fn wait(&mut self) -> Result<(), ServeError> {
        self.end().await;
        self.failure.take().map_or(Ok(()), Err)
    }

    /// Lets the guest run until it would wait: it may have more to write.
    /// A failure is kept for [`Guest::wait`], so that what the guest wrote
    /// before it still goes out first.
    fn run_once(&mut self) {
        if !self.ended
            && let Some(result) = poll_once(self.call.as_mut())
        {
            self.end_with(result);
        }
    }

    fn end_with(&mut self, result: wasmtime::Result<()>) {
        self.ended = true;
        match result {
            Ok(()) => self.returned = true,
            Err(e) => self.failure = Some(classify(&e)),
        }
    }
}

/// A store for the request with an instance in it: an idle one of the
/// location's, or a new one.
async fn instance(
    pre: &ProxyPre<RequestState>,
    sandbox: &Sandbox,
    facts: RequestFacts,
    log: Arc<dyn RequestLog>,
    memory_exceeded: &Arc<AtomicBool>,
    reuse: Option<&Reuse>,
    deadline: Instant,
) -> Result<Instance<Proxy>, ServeError> {
    if let Some(idle) = reuse.and_then(|reuse| reuse::take(&reuse.key)) {
        let (memory_exceeded, meter) = (memory_exceeded.clone(), sandbox.meter.clone());
        return Ok(idle.serves(facts, log, memory_exceeded, meter, deadline));
    }
    let mut room = PoolRoom::new();
    loop {
        let mut store = new_store(
            pre.engine(),
            sandbox,
            &facts,
            &log,
            memory_exceeded,
            deadline,
        )?;
        let started = Instant::now();
        match pre.instantiate_async(&mut store).await {
            Ok(proxy) => {
                sandbox.meter.instantiated(started.elapsed());
                return Ok(Instance {
                    store,
                    exports: proxy,
                    served: 0,
                });
            }
            // Every slot is taken: an idle instance makes room, or a
            // running request gives its slot back. The half-built store
            // goes first, with the slots it took.
            Err(e) if e.is::<PoolConcurrencyLimitError>() && room.make(deadline).await => {}
            Err(e) => return Err(classify(&e)),
        }
    }
}

/// A store for a new instance of the request's guest, 0.2 or 0.3: the
/// request's state, its memory limiter, and an epoch deadline at
/// `deadline`.
pub(super) fn new_store(
    engine: &wasmtime::Engine,
    sandbox: &Sandbox,
    facts: &RequestFacts,
    log: &Arc<dyn RequestLog>,
    memory_exceeded: &Arc<AtomicBool>,
    deadline: Instant,
) -> Result<Store<RequestState>, ServeError> {
    let state = RequestState::new(sandbox, facts.clone(), log.clone(), memory_exceeded.clone())
        .map_err(ServeError::Internal)?;
    let mut store = Store::new(engine, state);
    store.limiter(|state| state.limiter());
    ticker::stop_at(&mut store, deadline);
    Ok(store)
}

async fn serve_call<S: BodySource>(
    pre: ProxyPre<RequestState>,
    call: Call<'_, S>,
) -> Result<(), ServeError> {
    let Call {
        scheme,
        request,
        sink,
        sandbox,
        facts,
        log,
        reuse,
    } = call;
    let deadline = Instant::now() + sandbox.timeout;
    let memory_exceeded = Arc::new(AtomicBool::new(false));
    let idle = reuse.as_ref();
    let result = instance(&pre, sandbox, facts, log, &memory_exceeded, idle, deadline).await;
    let result = match result {
        Ok(instance) => run(instance, scheme, request, sink, deadline).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(instance) => {
            if let (Some(reuse), Some(instance)) = (reuse, instance) {
                reuse::give_back(reuse, instance);
            }
            Ok(())
        }
        Err(e) => Err(e.explained(sandbox.limits(), memory_exceeded.load(Ordering::Relaxed))),
    }
}

/// Runs the guest's handler in `instance` until `deadline`; the instance
/// back if the request went cleanly (and the guest returned).
async fn run<S: BodySource>(
    mut instance: Instance<Proxy>,
    scheme: Scheme,
    request: http::Request<RequestBody<S>>,
    sink: &mut dyn ResponseSink,
    deadline: Instant,
) -> Result<Option<Instance<Proxy>>, ServeError> {
    let store = &mut instance.store;
    let (response_tx, response_rx) = oneshot::channel();
    let mut http = store.data_mut().http();
    let incoming = http
        .new_incoming_request(scheme, request)
        .map_err(|e| ServeError::Internal(format!("cannot create the request: {e:#}")))?;
    let outparam = http
        .new_response_outparam(response_tx)
        .map_err(|e| ServeError::Internal(format!("cannot create the outparam: {e:#}")))?;

    // The guest runs inside this future: after handing over the response
    // head it goes on writing the body, which `respond` streams to the sink
    // while it polls the guest's call.
    let (result, returned) = {
        let Instance {
            store,
            exports: proxy,
            ..
        } = &mut instance;
        let call = pin!(proxy.wasi_http_incoming_handler().call_handle(
            &mut *store,
            incoming,
            outparam
        ));
        let mut guest = Guest::new(call);
        // A guest waiting in the host (for a timer, for an outgoing
        // response) runs no Wasm to notice its deadline: this timeout
        // covers that.
        let result =
            tokio::time::timeout_at(deadline.into(), respond(response_rx, &mut guest, sink))
                .await
                .unwrap_or_else(|_| Err(ServeError::Timeout("the guest was waiting".into())));
        (result, guest.returned)
        // A guest still running stops here, where it waits: nothing of the
        // request may outlive `serve`, as the C side's pointers are only
        // valid until it returns. The store outlives the streaming of the
        // response: dropping it would close an unfinished body as if the
        // guest had finished it.
    };
    result.map(|()| returned.then_some(instance))
}

type ResponseResult = Result<
    hyper::Response<HyperOutgoingBody>,
    wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
>;

type BodyFrame = Option<Result<Frame<Bytes>, wasmtime_wasi_http::Error>>;

/// Streams the guest's response into `sink`, and waits for the guest to
/// return: a response is only complete when both have ended cleanly.
async fn respond<F: Future<Output = wasmtime::Result<()>>>(
    mut response_rx: oneshot::Receiver<ResponseResult>,
    guest: &mut Guest<'_, F>,
    sink: &mut dyn ResponseSink,
) -> Result<(), ServeError> {
    let response = tokio::select! {
        biased;
        response = &mut response_rx => response.ok(),
        // A guest that set its response before it returned (or failed)
        // left it here; a failure is reported once its response is sent.
        () = guest.end() => poll_once(&mut response_rx).and_then(Result::ok),
    };
    let response = match response {
        Some(Ok(response)) => response,
        Some(Err(code)) => {
            return Err(ServeError::Guest(format!(
                "the guest set an error instead of a response: {code:?}"
            )));
        }
        // The outparam is gone or the guest returned: its result says why.
        None => {
            guest.wait().await?;
            return Err(ServeError::NoResponse);
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

    let mut ahead: Option<BodyFrame> = None;
    loop {
        let frame = match ahead.take() {
            Some(frame) => frame,
            None => next_frame(&mut body, guest).await?,
        };
        let Some(frame) = frame else { break };
        let frame = frame
            .map_err(|e| ServeError::Guest(format!("the guest's response body failed: {e:?}")))?;
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                send_trailers(frame, sink)?;
                continue;
            }
        };
        // Let a running guest go on: if it has the next piece ready, Apache
        // may gather both into one write; flush only when we would wait.
        guest.run_once();
        ahead = poll_once(body.frame());
        if !data.is_empty() || ahead.is_none() {
            sink.send_data(&data, ahead.is_none())
                .map_err(|SinkError| ServeError::Sink)?;
        }
    }
    // The body ended; the response is only complete if the guest also
    // returns cleanly (a guest that traps mid-body loses its body unfinished).
    guest.wait().await
}

/// Passes on the trailers `frame` holds, if it is a trailers frame.
pub(super) fn send_trailers(
    frame: Frame<Bytes>,
    sink: &mut dyn ResponseSink,
) -> Result<(), ServeError> {
    match frame.into_trailers() {
        Ok(trailers) => sink
            .send_trailers(&trailers)
            .map_err(|SinkError| ServeError::Sink),
        Err(_) => Ok(()),
    }
}

/// The next frame of the response body, while watching the guest.
async fn next_frame<F: Future<Output = wasmtime::Result<()>>>(
    body: &mut HyperOutgoingBody,
    guest: &mut Guest<'_, F>,
) -> Result<BodyFrame, ServeError> {
    if !guest.has_ended() {
        tokio::select! {
            biased;
            frame = body.frame() => return Ok(frame),
            () = guest.end() => {}
        }
    }
    // The guest's call has ended, so everything it wrote is queued: what
    // is, goes out; a body that is still open now was never finished,
    // because the guest failed (its error) or forgot to.
    match poll_once(body.frame()) {
        Some(frame) => Ok(frame),
        None => {
            guest.wait().await?;
            Err(ServeError::Guest(
                "the guest returned without finishing its response body".into(),
            ))
        }
    }
}

/// Polls `future` once; `None` if it is not ready.
///
/// Outside tokio's cooperative budget: a request's future that streams many
/// frames in one poll runs out of it, and a receiver then reads as empty
/// while it holds data. Where the answer matters (is the body finished?),
/// "not ready" must mean just that. The budget still makes the request
/// yield where it waits for real, in `select!`.
pub(super) fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(tokio::task::unconstrained(future));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[test]
    fn poll_once_sees_what_is_queued_when_the_budget_is_spent() {
        crate::runtime::block_on(async {
            let (tx, mut rx) = mpsc::channel(1024);
            for i in 0..1000 {
                tx.try_send(i).unwrap();
            }
            // Read in one poll of the request's future until tokio's
            // cooperative budget says no, as a long response body does.
            let mut cx = Context::from_waker(Waker::noop());
            let mut read = 0;
            while let Poll::Ready(Some(_)) = rx.poll_recv(&mut cx) {
                read += 1;
            }
            assert!(read < 1000, "the budget never ran out");
            assert_eq!(poll_once(rx.recv()), Some(Some(read)));
        })
        .unwrap();
    }
}
