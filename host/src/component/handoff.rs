//! The crossing between a request's thread and the thread of the shared
//! WASI 0.3 instance that serves it ([`super::shared03`]).
//!
//! Apache's filters, its log and the request's pool belong to the request's
//! thread, so everything that touches them stays there: the request body
//! is read there when the guest asks for more, the response is written
//! there as the instance hands it over, and the guest's log lines are
//! logged there. Only owned values cross, through channels:
//! * body frames, one at a time and only on demand, so an upload is read
//!   as fast as the guest reads it and never ahead of it;
//! * the response's head, data and trailers, through a bounded channel, so
//!   a slow client holds back the guest's writes instead of filling memory;
//! * log lines, unbounded (a request's output is capped where it is
//!   written, `MW_MAX_LOGGED`).

use super::RequestBody;
use super::serve::poll_once;
use crate::log::{LogKind, RequestLog};
use crate::request_io::{BodySource, ResponseSink, ServeError, SinkError};
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::mpsc;
use wasmtime_wasi_http::Error;

/// Pieces of the response in flight at once: a few guest writes.
const RESPONSE_PIECES: usize = 4;

/// What the instance's thread tells the request's thread.
pub enum Event {
    /// The response's status and headers.
    Head(u16, HeaderMap),
    /// A piece of its body.
    Data(Bytes),
    /// Its trailers, after the last piece.
    Trailers(HeaderMap),
    /// The request is over, cleanly or not.
    End(Result<(), ServeError>),
}

/// A line the guest (or the host about it) logged for the request.
enum LogLine {
    Host(LogKind, Vec<u8>),
    Guest(u8, Vec<u8>),
}

/// Why an instance stopped, once it did, for the requests it still held.
pub type Epitaph = Arc<OnceLock<Broken>>;

/// How an instance broke.
pub struct Broken {
    /// What broke it (a trap, the memory limit, a guest past its deadline).
    pub error: ServeError,
    /// It held one request then: that request's own failure. With more, no
    /// one of them can be told as the cause, and each fails as
    /// [`ServeError::Shared`].
    pub alone: bool,
}

impl Broken {
    /// The failure of a request the instance held when it broke.
    fn failure(&self) -> ServeError {
        if self.alone {
            return self.error.clone();
        }
        let why = match &self.error {
            ServeError::Trap(why) => format!("the guest trapped: {why}"),
            ServeError::Timeout(why) => format!("the guest ran past WasmTimeout: {why}"),
            ServeError::Limit(why) => format!("the guest ran into WasmMemoryLimit: {why}"),
            ServeError::Guest(why) | ServeError::Internal(why) | ServeError::Shared(why) => {
                why.clone()
            }
            ServeError::NoResponse => "the guest set no response".into(),
            ServeError::Sink => "the response was refused".into(),
        };
        ServeError::Shared(format!(
            "its instance, shared with other requests, broke: {why}"
        ))
    }
}

/// The instance's ends of one request's channels, but for the body, which
/// goes into the request the guest gets.
pub struct InstanceSide {
    /// Where the response and the outcome go.
    pub events: mpsc::Sender<Event>,
    /// The request's log, from the instance's thread.
    pub log: Arc<dyn RequestLog>,
}

/// The request's ends, kept on its thread.
pub struct RequestSide {
    demand: mpsc::Receiver<()>,
    frames: mpsc::Sender<Result<Frame<Bytes>, Error>>,
    events: mpsc::Receiver<Event>,
    log: mpsc::UnboundedReceiver<LogLine>,
}

/// A new pair of ends for one request, and the body the guest reads.
pub fn channels() -> (RequestSide, ChannelBody, InstanceSide) {
    let (demand_tx, demand_rx) = mpsc::channel(1);
    let (frames_tx, frames_rx) = mpsc::channel(1);
    let (events_tx, events_rx) = mpsc::channel(RESPONSE_PIECES);
    let (log_tx, log_rx) = mpsc::unbounded_channel();
    let request = RequestSide {
        demand: demand_rx,
        frames: frames_tx,
        events: events_rx,
        log: log_rx,
    };
    let body = ChannelBody {
        demand: demand_tx,
        frames: frames_rx,
        asked: false,
    };
    let instance = InstanceSide {
        events: events_tx,
        log: Arc::new(ChannelLog(log_tx)),
    };
    (request, body, instance)
}

/// The request body on the instance's side: each frame asked for from the
/// request's thread when the guest wants one.
pub struct ChannelBody {
    demand: mpsc::Sender<()>,
    frames: mpsc::Receiver<Result<Frame<Bytes>, Error>>,
    /// A frame was asked for and has not come yet.
    asked: bool,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        match this.frames.poll_recv(cx) {
            Poll::Ready(frame) => {
                this.asked = false;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                // The request's thread answers one demand with one frame, or
                // with the end of the body (its sender dropped).
                if !this.asked && this.demand.try_send(()).is_ok() {
                    this.asked = true;
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The request's log, seen from the instance's thread.
struct ChannelLog(mpsc::UnboundedSender<LogLine>);

impl RequestLog for ChannelLog {
    fn log(&self, kind: LogKind, text: &[u8]) {
        // A request that is over takes no more lines.
        let _ = self.0.send(LogLine::Host(kind, text.to_vec()));
    }

    fn guest_log(&self, level: u8, text: &[u8]) {
        let _ = self.0.send(LogLine::Guest(level, text.to_vec()));
    }
}

impl RequestSide {
    /// Serves the request's side until the instance says the request is
    /// over or `deadline` passes: body frames to the guest as it asks,
    /// its response into `sink` (flushed whenever nothing more is queued),
    /// its lines into `log`. A request the instance drops without an end
    /// failed with it: `epitaph` says why.
    pub async fn relay<S: BodySource>(
        mut self,
        body: RequestBody<S>,
        sink: &mut dyn ResponseSink,
        log: &dyn RequestLog,
        deadline: Instant,
        epitaph: &Epitaph,
    ) -> Result<(), ServeError> {
        let result = tokio::time::timeout_at(deadline.into(), self.pump(body, sink, log, epitaph))
            .await
            .unwrap_or_else(|_| Err(ServeError::Timeout("the guest was waiting".into())));
        // Lines written before the end still belong to the request.
        while let Ok(line) = self.log.try_recv() {
            write_line(log, line);
        }
        result
    }

    async fn pump<S: BodySource>(
        &mut self,
        body: RequestBody<S>,
        sink: &mut dyn ResponseSink,
        log: &dyn RequestLog,
        epitaph: &Epitaph,
    ) -> Result<(), ServeError> {
        let mut body = Some(body);
        loop {
            tokio::select! {
                biased;
                Some(line) = self.log.recv() => write_line(log, line),
                event = self.events.recv() => match event {
                    Some(Event::Head(status, headers)) => {
                        sink.send_head(status, &headers).map_err(|SinkError| ServeError::Sink)?;
                    }
                    Some(Event::Data(data)) => {
                        let flush = self.events.is_empty();
                        sink.send_data(&data, flush).map_err(|SinkError| ServeError::Sink)?;
                    }
                    Some(Event::Trailers(trailers)) => {
                        sink.send_trailers(&trailers).map_err(|SinkError| ServeError::Sink)?;
                    }
                    Some(Event::End(result)) => return result,
                    None => return Err(epitaph.get().map(Broken::failure).unwrap_or_else(|| {
                        ServeError::Shared("its shared instance stopped".into())
                    })),
                },
                Some(()) = self.demand.recv(), if body.is_some() => {
                    // Reading blocks this thread, which has nothing else to
                    // do until the guest has the bytes it asked for.
                    let frame = body.as_mut().and_then(|body| poll_once(body.frame()).flatten());
                    match frame {
                        Some(frame) => {
                            // Room is certain: one frame per demand.
                            let _ = self.frames.try_send(frame);
                        }
                        None => {
                            body = None;
                            // The guest's body stream sees its end.
                            self.frames = mpsc::channel(1).0;
                        }
                    }
                }
            }
        }
    }
}

fn write_line(log: &dyn RequestLog, line: LogLine) {
    match line {
        LogLine::Host(kind, text) => log.log(kind, &text),
        LogLine::Guest(level, text) => log.guest_log(level, &text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_io::ReadError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A request body of `chunks`, counting the reads Apache would do.
    struct Counted {
        chunks: Vec<&'static [u8]>,
        reads: Arc<AtomicUsize>,
    }

    impl BodySource for Counted {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            if self.chunks.is_empty() {
                return Ok(0);
            }
            let chunk = self.chunks.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    /// What reached the client, and how often it was flushed.
    #[derive(Default)]
    struct Client {
        status: Option<u16>,
        body: Vec<u8>,
        flushes: usize,
    }

    impl ResponseSink for Client {
        fn send_head(&mut self, status: u16, _: &HeaderMap) -> Result<(), SinkError> {
            self.status = Some(status);
            Ok(())
        }

        fn send_data(&mut self, data: &[u8], flush: bool) -> Result<(), SinkError> {
            self.body.extend_from_slice(data);
            self.flushes += usize::from(flush);
            Ok(())
        }

        fn send_trailers(&mut self, _: &HeaderMap) -> Result<(), SinkError> {
            Ok(())
        }
    }

    struct NoLog;

    impl RequestLog for NoLog {
        fn log(&self, _: LogKind, _: &[u8]) {}
        fn guest_log(&self, _: u8, _: &[u8]) {}
    }

    fn far() -> Instant {
        Instant::now() + std::time::Duration::from_secs(30)
    }

    #[test]
    fn the_body_is_read_only_when_the_guest_asks_and_the_response_relayed() {
        let reads = Arc::new(AtomicUsize::new(0));
        let source = Counted {
            chunks: vec![b"ab", b"cd"],
            reads: reads.clone(),
        };
        let (request, mut body, instance) = channels();
        let mut client = Client::default();
        let epitaph = Epitaph::default();
        let guest = async {
            // The head goes out before the guest reads anything.
            instance
                .events
                .send(Event::Head(201, HeaderMap::new()))
                .await
                .ok();
            tokio::task::yield_now().await;
            assert_eq!(reads.load(Ordering::Relaxed), 0, "read ahead of the guest");
            let mut echoed = Vec::new();
            while let Some(frame) = body.frame().await {
                echoed.extend_from_slice(&frame.unwrap().into_data().unwrap());
            }
            // Two chunks and the end: one read each.
            assert_eq!(reads.load(Ordering::Relaxed), 3);
            instance.events.send(Event::Data(echoed.into())).await.ok();
            // Nothing more queued while the guest waits: the piece is
            // flushed.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            instance.events.send(Event::End(Ok(()))).await.ok();
        };
        let relay = request.relay(
            RequestBody::new(source),
            &mut client,
            &NoLog,
            far(),
            &epitaph,
        );
        let (result, ()) = crate::runtime::block_on(async { tokio::join!(relay, guest) }).unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert_eq!((client.status, &client.body[..]), (Some(201), &b"abcd"[..]));
        assert_eq!(client.flushes, 1);
    }

    #[test]
    fn a_request_its_instance_dropped_fails_as_the_epitaph_says() {
        let (request, _body, instance) = channels();
        let epitaph = Epitaph::default();
        let broken = |alone| Broken {
            error: ServeError::Trap("unreachable".into()),
            alone,
        };
        let _ = epitaph.set(broken(false));
        drop(instance);
        let source = Counted {
            chunks: Vec::new(),
            reads: Arc::default(),
        };
        let mut client = Client::default();
        let relay = request.relay(
            RequestBody::new(source),
            &mut client,
            &NoLog,
            far(),
            &epitaph,
        );
        let result = crate::runtime::block_on(relay).unwrap();
        let Err(ServeError::Shared(why)) = result else {
            panic!("{result:?}")
        };
        assert!(
            why.contains("broke: the guest trapped: unreachable"),
            "{why}"
        );
        // Held alone, the request fails with the trap itself.
        assert!(matches!(broken(true).failure(), ServeError::Trap(_)));
    }
}
