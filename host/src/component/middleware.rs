//! `WasmMiddleware`: a WASI 0.3 component of the `wasi:http/middleware`
//! world around whatever Apache serves. The request's thread keeps all of
//! Apache; the guest runs on a thread of its own ([`super::workers`] keeps them
//! between requests; [`super::next`] has its
//! side), because the next handler runs in the middle of the guest's call
//! and its output must reach the guest while the guest runs: Apache's
//! handler pushes the response through an output filter, which hands it
//! over a frame at a time ([`Middleware::backend_data`]) and waits,
//! answering whatever the guest asks meanwhile, until the guest wants the
//! next one.
//!
//! The C side drives one [`Middleware`] through its life:
//! 1. [`Middleware::start`] runs the guest until it calls the next handler
//!    (the request it passes on is returned) or answers by itself;
//! 2. Apache serves the request and hands the response over
//!    ([`Middleware::backend_head`], [`Middleware::backend_data`],
//!    [`Middleware::backend_end`]), reading the body the guest passed on
//!    with [`Middleware::read_body`];
//! 3. [`Middleware::finish`] waits for the guest's end.
//!
//! Whatever the guest answers goes to the middleware's [`ResponseSink`]
//! as it comes, at any of those steps.

use super::next::{BodyFrame, DemandBody, Link, LinkLog, LinkSink, LogLine, NextRequest, ToApache};
use super::{RequestBody, RequestFacts, RequestState};
use crate::log::RequestLog;
use crate::request_io::{BodySource, ResponseSink, ServeError, SinkError};
use crate::runtime;
use crate::sandbox::Sandbox;
use crate::ticker;
use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use wasmtime_wasi_http::Error;
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// Messages in flight from the guest's thread: a few pieces of its
/// response (each at most a guest write), so that a slow client holds the
/// guest back instead of filling memory.
const IN_FLIGHT: usize = 8;

/// The largest piece of the next handler's response handed over at once.
const BACKEND_PIECE: usize = 64 * 1024;

/// One request's middleware, seen from the request's thread.
pub struct Middleware<S: BodySource> {
    events: Receiver<ToApache>,
    /// A message read ahead to see whether more were queued.
    peeked: Option<ToApache>,
    sink: Box<dyn ResponseSink>,
    log: Arc<dyn RequestLog>,
    /// The request's body, read as the guest asks; its frames go there.
    body: Option<RequestBody<S>>,
    body_frames: Option<mpsc::UnboundedSender<BodyFrame>>,
    /// The guest answered: its head went to the sink.
    answered: bool,
    /// The guest called the next handler; this waits for its head.
    reply: Option<oneshot::Sender<super::next::NextHead>>,
    called_next: bool,
    /// Where the next handler's body goes, and how many frames the guest
    /// has asked for.
    backend: Option<mpsc::UnboundedSender<BodyFrame>>,
    backend_demand: usize,
    backend_gone: bool,
    /// The body the guest passed on: where to ask for its frames, the one
    /// that came, and what is left of the last.
    want_body: Option<mpsc::UnboundedSender<()>>,
    body_frame: Option<Option<Result<Bytes, String>>>,
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

impl<S: BodySource> Middleware<S> {
    /// Starts the guest of `pre` on `request` on a thread of its own, and
    /// serves it until it calls the next handler or answers.
    pub fn start(
        pre: &ServicePre<RequestState>,
        request: http::Request<RequestBody<S>>,
        sink: Box<dyn ResponseSink>,
        sandbox: &Sandbox,
        facts: RequestFacts,
        log: Arc<dyn RequestLog>,
    ) -> Result<(Self, Started), ServeError> {
        let serving = ticker::Serving::begin();
        let deadline = Instant::now() + sandbox.timeout;
        let (events_tx, events) = sync_channel(IN_FLIGHT);
        let link = Link(events_tx);
        let (parts, body) = request.into_parts();
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        let guest_body = DemandBody::new(link.clone(), || ToApache::WantBody, None, frames_rx);
        let request = http::Request::from_parts(parts, guest_body);
        let memory_exceeded = Arc::new(AtomicBool::new(false));
        {
            let (pre, sandbox, memory_exceeded) =
                (pre.clone(), sandbox.clone(), memory_exceeded.clone());
            super::workers::spawn("mod_wasm middleware", move || {
                work(
                    pre,
                    sandbox,
                    facts,
                    request,
                    link,
                    deadline,
                    memory_exceeded,
                )
            })
            .map_err(|e| {
                ServeError::Internal(format!("cannot start a thread for the middleware: {e}"))
            })?;
        }
        let mut middleware = Middleware {
            events,
            peeked: None,
            sink,
            log,
            body: Some(body),
            body_frames: Some(frames_tx),
            answered: false,
            reply: None,
            called_next: false,
            backend: None,
            backend_demand: 0,
            backend_gone: false,
            want_body: None,
            body_frame: None,
            leftover: Bytes::new(),
            end: None,
            memory_exceeded,
            limits: sandbox.limits(),
            _serving: serving,
        };
        let mut next = None;
        middleware.pump_until(|m| m.called_next || m.answered, &mut next);
        let started = match next {
            Some(request) if !middleware.answered => Started::Next(request),
            _ => Started::Answered,
        };
        Ok((middleware, started))
    }

    /// The next handler's response head, for the guest's call.
    pub fn backend_head(&mut self, status: u16, headers: HeaderMap) -> Result<(), SinkError> {
        let reply = self.reply.take().ok_or(SinkError)?;
        let (frames, frames_rx) = mpsc::unbounded_channel();
        reply
            .send(Ok((status, headers, frames_rx)))
            .map_err(|_| SinkError)?;
        self.backend = Some(frames);
        // The first piece goes without being asked for: a small response
        // (head, body and end in one brigade) is then handed over in one
        // go instead of waiting for the guest's turn. Two pieces at most
        // are in flight: this one and the one the guest asks for next.
        self.backend_demand = 1;
        Ok(())
    }

    /// The guest's call of the next handler fails with `why`: its answer
    /// is the content.
    pub fn refuse_next(&mut self, why: String) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(why));
        }
        self.want_body = None;
    }

    /// A piece of the next handler's body, handed over as the guest asks
    /// for it. `Err` when the guest no longer reads it (or is done): the
    /// rest goes nowhere.
    pub fn backend_data(&mut self, mut data: &[u8]) -> Result<(), SinkError> {
        while !data.is_empty() {
            self.pump_until(
                |m| m.backend_demand > 0 || m.backend_gone || m.backend.is_none(),
                &mut None,
            );
            let Some(backend) = self.backend.as_ref().filter(|_| self.backend_demand > 0) else {
                return Err(SinkError);
            };
            let (piece, rest) = data.split_at(data.len().min(BACKEND_PIECE));
            if backend
                .send(Ok(Frame::data(Bytes::copy_from_slice(piece))))
                .is_err()
            {
                return Err(SinkError);
            }
            self.backend_demand -= 1;
            data = rest;
        }
        Ok(())
    }

    /// The next handler is done: its body ends, cut if `ok` is false. A
    /// guest still waiting for a head learns there is none.
    pub fn backend_end(&mut self, ok: bool) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err("the next handler gave no response".into()));
        }
        if let Some(backend) = self.backend.take()
            && !ok
        {
            let _ = backend.send(Err(Error::InternalError(Some(
                "the next handler's response broke off".into(),
            ))));
        }
    }

    /// Reads the body the guest passed on to the next handler into `buf`;
    /// 0 at its end.
    pub fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, SinkError> {
        if self.leftover.is_empty() {
            let Some(want) = self.want_body.as_ref() else {
                return Ok(0);
            };
            if want.send(()).is_err() {
                return Err(SinkError);
            }
            self.pump_until(|m| m.body_frame.is_some(), &mut None);
            match self.body_frame.take() {
                Some(Some(Ok(data))) => self.leftover = data,
                Some(None) => {
                    self.want_body = None;
                    return Ok(0);
                }
                Some(Some(Err(why))) => {
                    self.log.log(
                        crate::log::LogKind::GuestStderr,
                        format!("the body the middleware passed on failed: {why}").as_bytes(),
                    );
                    self.want_body = None;
                    return Err(SinkError);
                }
                // The guest ended first.
                None => return Err(SinkError),
            }
        }
        let n = buf.len().min(self.leftover.len());
        buf[..n].copy_from_slice(&self.leftover.split_to(n));
        Ok(n)
    }

    /// Serves the guest to its end; how it ended.
    pub fn finish(mut self) -> Result<(), ServeError> {
        self.backend_end(true);
        self.pump_until(|_| false, &mut None);
        let result = self
            .end
            .take()
            .unwrap_or_else(|| Err(ServeError::Internal("the middleware gave no end".into())));
        // No need to wait for the worker thread: it sent the end after
        // dropping the guest's store, so its pool slot is free already.
        self.close();
        let memory_exceeded = self.memory_exceeded.load(Ordering::Relaxed);
        result.map_err(|e| e.explained(self.limits, memory_exceeded))
    }

    /// Whether the guest has answered (its head went to the sink).
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// Drops the request's ends of every channel: the worker's sends fail
    /// and its reads end, so it finishes soon.
    fn close(&mut self) {
        self.events = sync_channel(0).1;
        self.peeked = None;
        self.body_frames = None;
        self.reply = None;
        self.backend = None;
        self.want_body = None;
        self.body = None;
    }

    /// Handles the guest's messages until `done` says so or the guest
    /// ended. A `Next` message's request goes to `next`.
    fn pump_until(&mut self, done: impl Fn(&Self) -> bool, next: &mut Option<NextRequest>) {
        while self.end.is_none() && !done(self) {
            let message = match self.peeked.take() {
                Some(message) => message,
                None => match self.events.recv() {
                    Ok(message) => message,
                    Err(_) => {
                        self.end = Some(Err(ServeError::Internal(
                            "the middleware's thread stopped".into(),
                        )));
                        break;
                    }
                },
            };
            self.handle(message, next);
        }
    }

    fn handle(&mut self, message: ToApache, next: &mut Option<NextRequest>) {
        match message {
            ToApache::Head(status, headers) => {
                self.answered = true;
                if self.sink.send_head(status, &headers).is_err() {
                    self.refused();
                }
            }
            ToApache::Data(data) => {
                // Flushed only when nothing more is queued: Apache may
                // gather pieces written in a row into one write.
                let flush = match self.events.try_recv() {
                    Ok(message) => {
                        self.peeked = Some(message);
                        false
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => true,
                };
                if self.sink.send_data(&data, flush).is_err() {
                    self.refused();
                }
            }
            ToApache::Trailers(trailers) => {
                if self.sink.send_trailers(&trailers).is_err() {
                    self.refused();
                }
            }
            ToApache::WantBody => {
                let frame = self
                    .body
                    .as_mut()
                    .and_then(|body| super::serve::poll_once(body.frame()).flatten());
                match (frame, self.body_frames.as_ref()) {
                    (Some(frame), Some(frames)) => {
                        let _ = frames.send(frame);
                    }
                    // Its end: the guest's stream sees it.
                    _ => {
                        self.body = None;
                        self.body_frames = None;
                    }
                }
            }
            ToApache::Next {
                request,
                reply,
                want_body,
            } => {
                if self.called_next || self.answered {
                    let _ = reply.send(Err(
                        "the next handler runs once, before the middleware answers".into(),
                    ));
                    return;
                }
                self.called_next = true;
                self.reply = Some(reply);
                self.want_body = want_body;
                *next = Some(request);
            }
            ToApache::NextBodyFrame(frame) => self.body_frame = Some(frame),
            ToApache::WantBackendData => self.backend_demand += 1,
            ToApache::BackendGone => self.backend_gone = true,
            ToApache::Log(LogLine::Host(kind, text)) => self.log.log(kind, &text),
            ToApache::Log(LogLine::Guest(level, text)) => self.log.guest_log(level, &text),
            ToApache::End(result) => self.end = Some(result),
        }
    }

    /// The sink refused the response: the request is over for the guest.
    fn refused(&mut self) {
        self.end = Some(Err(ServeError::Sink));
        self.close();
    }
}

impl<S: BodySource> Drop for Middleware<S> {
    /// A middleware the C side never finished (the request ended first):
    /// its worker sees its channels close and ends by itself.
    fn drop(&mut self) {
        self.close();
    }
}

/// The guest's thread: a fresh instance serving `request`, its response
/// and requests for the next handler sent over `link`, then its end.
fn work(
    pre: ServicePre<RequestState>,
    sandbox: Sandbox,
    facts: RequestFacts,
    request: http::Request<DemandBody>,
    link: Link,
    deadline: Instant,
    memory_exceeded: Arc<AtomicBool>,
) {
    let log: Arc<dyn RequestLog> = Arc::new(LinkLog(link.clone()));
    let serve = async {
        let (mut store, service) =
            super::serve03::instantiate(&pre, &sandbox, &facts, &log, &memory_exceeded, deadline)
                .await?;
        store.data_mut().set_next_handler(link.clone());
        let mut sink = LinkSink(link.clone());
        super::serve03::run(&mut store, &service, request, &mut sink).await
    };
    let result = runtime::block_on(async {
        tokio::time::timeout_at(deadline.into(), serve)
            .await
            .unwrap_or_else(|_| Err(ServeError::Timeout("the guest was waiting".into())))
    })
    .unwrap_or_else(|e| Err(ServeError::Internal(e.to_string())));
    let _ = link.0.send(ToApache::End(result));
}
