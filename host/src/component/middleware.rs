//! `WasmMiddleware`: a WASI 0.3 component of the `wasi:http/middleware`
//! world around whatever Apache serves.
//!
//! The guest's call of the next handler stays open while Apache's handler
//! runs, and that handler's output must reach the guest while it runs. So
//! the guest is a future this side polls by hand, on the request's thread,
//! whenever Apache hands something over or wants something back: Apache
//! and the guest take turns on one thread, with no thread switch at all
//! (an earlier design ran the guest on a thread of its own, and the
//! handoffs cost more than the guest's work; docs/performance.md). What
//! the guest waits on besides Apache (a timer, an outgoing request) wakes
//! it through [`runtime::background`].
//!
//! The C side drives one [`Middleware`] through its life:
//! 1. [`Middleware::start`] runs the guest until it calls the next handler
//!    (the request it passes on is returned) or answers by itself;
//! 2. Apache serves the request and hands the response over
//!    ([`Middleware::backend_head`], [`Middleware::backend_data`],
//!    [`Middleware::backend_end`]), reading the body the guest passed on
//!    with [`Middleware::read_body`];
//! 3. [`Middleware::finish`] runs the guest to its end.
//!
//! The guest's response goes straight to the middleware's [`ResponseSink`]
//! from inside its poll, as a content component's does, at any of those
//! steps; [`super::next`] has the guest's side of the link.

use super::next::{BodyFrame, Link, NextHead, NextRequest};
use super::reuse::{self, Instance, Reuse};
use super::{RequestBody, RequestFacts, RequestState};
use crate::log::RequestLog;
use crate::request_io::{BodySource, ResponseSink, ServeError, SinkError};
use crate::runtime;
use crate::sandbox::Sandbox;
use crate::ticker;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use wasmtime_wasi_http::Error;
use wasmtime_wasi_http::p3::bindings::{Service, ServicePre};

/// The largest piece of the next handler's response handed over at once.
const BACKEND_PIECE: usize = 64 * 1024;

/// The guest's whole work for the request: instance, call, response.
type Guest = Pin<Box<dyn Future<Output = Result<(), ServeError>>>>;

/// One request's middleware, seen from the request's thread.
pub struct Middleware {
    /// The guest, until it ends (dropping it drops its store). First, so
    /// that it goes before what it was given.
    guest: Option<Guest>,
    link: Link,
    wakeup: Arc<Wakeup>,
    waker: Waker,
    deadline: Instant,
    log: Arc<dyn RequestLog>,
    /// The guest called the next handler; this waits for its head.
    reply: Option<oneshot::Sender<NextHead>>,
    /// Where the next handler's body goes.
    backend: Option<mpsc::Sender<BodyFrame>>,
    /// The body the guest passed on, and what is left of its last frame.
    next_body: Option<UnsyncBoxBody<Bytes, Error>>,
    leftover: Bytes,
    end: Option<Result<(), ServeError>>,
    memory_exceeded: Arc<AtomicBool>,
    limits: crate::request_io::Limits,
    _serving: ticker::Serving,
}

/// How [`Middleware::start`] left the request.
pub enum Started {
    /// The guest called the next handler with this request.
    Next(NextRequest),
    /// The guest answered by itself (or failed): there is no next handler
    /// to run.
    Answered,
}

/// Wakes the guest: a flag the request's thread looks at before it polls
/// again, and an unpark in case it sleeps (a wake-up from
/// [`runtime::background`]'s thread).
struct Wakeup {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// The middleware's response, marking the link answered as its head goes.
struct AnsweringSink {
    sink: Box<dyn ResponseSink>,
    link: Link,
}

impl ResponseSink for AnsweringSink {
    fn send_head(&mut self, status: u16, headers: &HeaderMap) -> Result<(), SinkError> {
        self.link.lock().answered = true;
        self.sink.send_head(status, headers)
    }

    fn send_data(&mut self, data: &[u8], flush: bool) -> Result<(), SinkError> {
        self.sink.send_data(data, flush)
    }

    fn send_trailers(&mut self, trailers: &HeaderMap) -> Result<(), SinkError> {
        self.sink.send_trailers(trailers)
    }
}

impl Middleware {
    /// Starts the guest of `pre` on `request` and runs it until it calls
    /// the next handler or answers. With `reuse`, an idle instance of the
    /// section's serves it, and the instance is kept after a clean end.
    pub fn start<S: BodySource + 'static>(
        pre: &ServicePre<RequestState>,
        request: http::Request<RequestBody<S>>,
        sink: Box<dyn ResponseSink>,
        sandbox: &Sandbox,
        facts: RequestFacts,
        log: Arc<dyn RequestLog>,
        reuse: Option<Reuse>,
    ) -> Result<(Self, Started), ServeError> {
        let serving = ticker::Serving::begin();
        let deadline = Instant::now() + sandbox.timeout;
        let link = Link::default();
        let memory_exceeded = Arc::new(AtomicBool::new(false));
        let guest = {
            let (pre, sandbox, memory_exceeded) =
                (pre.clone(), sandbox.clone(), memory_exceeded.clone());
            let (link, log) = (link.clone(), log.clone());
            let mut sink = AnsweringSink {
                sink,
                link: link.clone(),
            };
            // Polled by hand, maybe from inside a content component's
            // runtime: tokio's task budget must not make it wait for a
            // reschedule that never comes.
            tokio::task::unconstrained(async move {
                let idle = reuse.as_ref().and_then(|reuse| reuse::take(&reuse.key));
                let mut instance: Instance<Service> = match idle {
                    Some(idle) => {
                        let meter = sandbox.meter.clone();
                        idle.serves(facts, log, memory_exceeded, meter, deadline)
                    }
                    None => {
                        let (store, exports) = super::serve03::instantiate(
                            &pre,
                            &sandbox,
                            &facts,
                            &log,
                            &memory_exceeded,
                            deadline,
                        )
                        .await?;
                        Instance {
                            store,
                            exports,
                            served: 0,
                        }
                    }
                };
                let Instance { store, exports, .. } = &mut instance;
                store.data_mut().set_next_handler(link);
                super::serve03::run(store, exports, request, &mut sink).await?;
                // A clean end: the instance serves the section's next
                // request. A task the guest left running (rare for a
                // middleware, whose work is its response) stays in the
                // store and runs on during that request; what it holds of
                // this one (the next handler, the bodies) fails from now on.
                if let Some(reuse) = reuse {
                    reuse::give_back(reuse, instance);
                }
                Ok(())
            })
        };
        let wakeup = Arc::new(Wakeup {
            woken: AtomicBool::new(true),
            thread: thread::current(),
        });
        let mut middleware = Middleware {
            guest: Some(Box::pin(guest)),
            link,
            waker: Waker::from(wakeup.clone()),
            wakeup,
            deadline,
            log,
            reply: None,
            backend: None,
            next_body: None,
            leftover: Bytes::new(),
            end: None,
            memory_exceeded,
            limits: sandbox.limits(),
            _serving: serving,
        };
        let mut next = None;
        middleware.pump_until(|m| {
            let call = m.link.lock().call.take();
            if let Some(call) = call {
                m.reply = Some(call.reply);
                m.next_body = call.body;
                next = Some(call.request);
            }
            next.is_some() || m.answered()
        });
        let started = match next {
            Some(request) if !middleware.answered() => Started::Next(request),
            _ => Started::Answered,
        };
        Ok((middleware, started))
    }

    /// The next handler's response head, for the guest's call.
    pub fn backend_head(&mut self, status: u16, headers: HeaderMap) -> Result<(), SinkError> {
        let reply = self.reply.take().ok_or(SinkError)?;
        // Room for one frame: the first piece then goes without waiting
        // for the guest, so a small response (head, body and end in one
        // brigade) reaches it in one turn.
        let (frames, frames_rx) = mpsc::channel(1);
        reply
            .send(Ok((status, headers, frames_rx)))
            .map_err(|_| SinkError)?;
        self.backend = Some(frames);
        Ok(())
    }

    /// The guest's call of the next handler fails with `why`: its answer
    /// is the content.
    pub fn refuse_next(&mut self, why: String) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(why));
        }
        self.next_body = None;
    }

    /// A piece of the next handler's body, handed over as the guest takes
    /// them. `Err` when the guest no longer reads it (or is done): the
    /// rest goes nowhere.
    pub fn backend_data(&mut self, data: &[u8]) -> Result<(), SinkError> {
        for piece in data.chunks(BACKEND_PIECE) {
            self.hand_over(Ok(Frame::data(Bytes::copy_from_slice(piece))))?;
        }
        Ok(())
    }

    /// The next handler is done: its body ends, cut if `ok` is false. A
    /// guest still waiting for a head learns there is none.
    pub fn backend_end(&mut self, ok: bool) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err("the next handler gave no response".into()));
        }
        if !ok {
            let _ = self.hand_over(Err(Error::InternalError(Some(
                "the next handler's response broke off".into(),
            ))));
        }
        self.backend = None;
    }

    /// Puts `frame` in the next handler's body once there is room, running
    /// the guest until it takes the one before.
    fn hand_over(&mut self, mut frame: BodyFrame) -> Result<(), SinkError> {
        loop {
            let backend = self.backend.as_ref().ok_or(SinkError)?;
            match backend.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(SinkError),
                Err(mpsc::error::TrySendError::Full(back)) => frame = back,
            }
            if !self.step() {
                return Err(SinkError);
            }
        }
    }

    /// Reads the body the guest passed on to the next handler into `buf`;
    /// 0 at its end.
    pub fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, SinkError> {
        while self.leftover.is_empty() {
            let Some(body) = self.next_body.as_mut() else {
                return Ok(0);
            };
            let polled = {
                let _context = runtime::background().map_err(|_| SinkError)?.enter();
                Pin::new(body).poll_frame(&mut Context::from_waker(&self.waker))
            };
            match polled {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers do not reach the next handler.
                    if let Ok(data) = frame.into_data() {
                        self.leftover = data;
                    }
                }
                Poll::Ready(None) => {
                    self.next_body = None;
                    return Ok(0);
                }
                Poll::Ready(Some(Err(why))) => {
                    self.log.log(
                        crate::log::LogKind::GuestStderr,
                        format!("the body the middleware passed on failed: {why:?}").as_bytes(),
                    );
                    self.next_body = None;
                    return Err(SinkError);
                }
                // The guest writes it: its turn.
                Poll::Pending => {
                    if !self.step() {
                        return Err(SinkError);
                    }
                }
            }
        }
        let n = buf.len().min(self.leftover.len());
        buf[..n].copy_from_slice(&self.leftover.split_to(n));
        Ok(n)
    }

    /// Runs the guest to its end; how it ended.
    pub fn finish(mut self) -> Result<(), ServeError> {
        self.backend_end(true);
        self.pump_until(|_| false);
        let result = self
            .end
            .take()
            .unwrap_or_else(|| Err(ServeError::Internal("the middleware gave no end".into())));
        let memory_exceeded = self.memory_exceeded.load(Ordering::Relaxed);
        result.map_err(|e| e.explained(self.limits, memory_exceeded))
    }

    /// Whether the guest has answered (its head went to the sink).
    pub fn answered(&self) -> bool {
        self.link.lock().answered
    }

    /// Runs the guest until `done` says so or it ended.
    fn pump_until(&mut self, mut done: impl FnMut(&mut Self) -> bool) {
        while !done(self) && self.step() {}
    }

    /// One turn: polls the guest if something woke it, or sleeps until
    /// something does. False once the guest has ended (or ran out of
    /// time, which ends it).
    fn step(&mut self) -> bool {
        if self.guest.is_none() {
            return false;
        }
        // WasmTimeout covers the layer's whole exchange, Apache's handler
        // included; the guest's own code is stopped by the epoch deadline.
        let now = Instant::now();
        if now >= self.deadline {
            self.ended(Err(ServeError::Timeout("the guest was waiting".into())));
            return false;
        }
        if !self.wakeup.woken.swap(false, Ordering::Acquire) {
            thread::park_timeout(self.deadline - now);
            return true;
        }
        let polled = match runtime::background() {
            Ok(handle) => {
                let _context = handle.enter();
                let guest = self.guest.as_mut().expect("checked above");
                guest.as_mut().poll(&mut Context::from_waker(&self.waker))
            }
            Err(e) => Poll::Ready(Err(ServeError::Internal(format!(
                "cannot start the runtime for middlewares: {e}"
            )))),
        };
        match polled {
            Poll::Ready(result) => {
                self.ended(result);
                false
            }
            Poll::Pending => true,
        }
    }

    /// The guest is over: its store goes now, and what waited on it fails.
    fn ended(&mut self, result: Result<(), ServeError>) {
        self.guest = None;
        self.end.get_or_insert(result);
        self.reply = None;
        self.backend = None;
        self.next_body = None;
    }
}
