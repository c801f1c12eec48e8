//! `WasmInstanceReuse` for WASI 0.3 components: an instance that serves
//! many requests, several at once if the section allows
//! (`WasmInstanceReuse <n> concurrent=<k>`).
//!
//! A `Store` is driven by one thread at a time, and Apache gives every
//! request a thread of its own. So a shared instance lives on its own
//! thread, inside one `Store::run_concurrent` for its whole life, and the
//! requests' threads hand it their requests: [`super::handoff`] carries the
//! bytes across, so that Apache is only ever called from the request's
//! thread.
//!
//! What sharing costs a guest, and what the host keeps:
//! * Requests in one instance share its memory and globals; each still
//!   gets its own request, body and response resources.
//! * A request that traps breaks the instance for all it holds: the trap
//!   poisons the component instance. Each of them fails
//!   ([`ServeError::Shared`], counted as "shared" on the status page), and
//!   the instance takes no new ones.
//! * A request that runs past `WasmTimeout` while the guest waits gets its
//!   504 and retires the instance: the host cannot cancel one guest call
//!   (wasmtime#11833), so the instance lets its other requests finish, takes
//!   no new ones, and is dropped with whatever the guest left running. A
//!   guest running Wasm past the earliest deadline of its requests is
//!   stopped, and that breaks the instance: with concurrency, the timeout
//!   is the instance's.
//! * The guest's log lines go to the request when the instance serves one
//!   at a time. With `concurrent=` above 1 no line can be told apart by
//!   request, so they go to the section's log, and a guest that imports
//!   `mod-wasm:host/request-info` (whose answers are the request's) is
//!   served one request at a time.
//! * An instance serves at most `<n>` requests, like a 0.2 one; idle
//!   instances are capped per child as 0.2's are.

use super::handoff::{self, Broken, ChannelBody, Epitaph, Event, InstanceSide};
use super::reuse::{self, Reuse, ReuseKey};
use super::serve::Call;
use super::serve03::{Unanswered, body_failed, handle};
use super::{RequestFacts, RequestState};
use crate::log::RequestLog;
use crate::request_io::{BodySource, ServeError, classify};
use crate::runtime;
use crate::sandbox::Sandbox;
use crate::stats::Meter;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::mpsc;
use wasmtime::component::Accessor;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p3::Request;
use wasmtime_wasi_http::p3::bindings::{Service, ServicePre};

/// One request, handed to an instance's thread.
struct Job {
    request: http::Request<ChannelBody>,
    side: InstanceSide,
    facts: RequestFacts,
    meter: Arc<Meter>,
    deadline: Instant,
}

/// A shared instance, as the requests' threads see it.
struct Entry {
    id: u64,
    key: ReuseKey,
    jobs: mpsc::UnboundedSender<Job>,
    /// Why the instance stopped, once it did.
    epitaph: Epitaph,
    /// Its guest ran into `WasmMemoryLimit`.
    memory_exceeded: Arc<AtomicBool>,
    /// Requests it may hold at once.
    concurrency: u32,
    /// Requests it holds now.
    in_flight: u32,
    /// Requests it was given, in all.
    taken: u32,
    /// It takes no new requests.
    retired: bool,
}

/// The shared instances of this process, the longest idle first.
static SHARED: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn shared() -> MutexGuard<'static, Vec<Entry>> {
    SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a request got: an instance's door, and how to learn why it closed.
struct Ticket {
    id: u64,
    jobs: mpsc::UnboundedSender<Job>,
    epitaph: Epitaph,
    memory_exceeded: Arc<AtomicBool>,
}

/// A place in an instance of `key` with room for one more request.
fn take(key: &ReuseKey, max_requests: u32) -> Option<Ticket> {
    let mut entries = shared();
    let entry = entries.iter_mut().rev().find(|entry| {
        !entry.retired
            && entry.in_flight < entry.concurrency
            && entry.taken < max_requests
            && entry.key.matches(key)
    })?;
    entry.in_flight += 1;
    entry.taken += 1;
    Some(Ticket {
        id: entry.id,
        jobs: entry.jobs.clone(),
        epitaph: entry.epitaph.clone(),
        memory_exceeded: entry.memory_exceeded.clone(),
    })
}

/// A request of instance `id` is over. Its instance goes when it has
/// served its share or was retired; idle, it goes last in line, and the
/// longest idle beyond the child's capacity go.
fn finish(id: u64, max_requests: u32) {
    let dropped = {
        let mut entries = shared();
        let Some(at) = entries.iter().position(|entry| entry.id == id) else {
            return;
        };
        let entry = &mut entries[at];
        entry.in_flight -= 1;
        if entry.in_flight > 0 {
            return;
        }
        if entry.retired || entry.taken >= max_requests {
            vec![entries.remove(at)]
        } else {
            let idle = entries.remove(at);
            entries.push(idle);
            let mut dropped = Vec::new();
            while entries.iter().filter(|entry| entry.in_flight == 0).count() > reuse::capacity() {
                let oldest = entries.iter().position(|entry| entry.in_flight == 0);
                dropped.extend(oldest.map(|at| entries.remove(at)));
            }
            dropped
        }
    };
    // Dropping an entry closes its instance's door; the instance's thread
    // then ends, and drops the store there.
    drop(dropped);
}

/// Instance `id` takes no new requests; it goes once the ones it holds end.
fn retire(id: u64) {
    let mut entries = shared();
    if let Some(at) = entries.iter().position(|entry| entry.id == id) {
        entries[at].retired = true;
        if entries[at].in_flight == 0 {
            entries.remove(at);
        }
    }
}

/// Closes the longest idle shared instance, for a new one that found the
/// pool full. False if none was idle.
pub(super) fn retire_oldest_idle() -> bool {
    let mut entries = shared();
    match entries.iter().position(|entry| entry.in_flight == 0) {
        Some(at) => {
            entries.remove(at);
            true
        }
        None => false,
    }
}

/// Serves `call` in a shared instance of `pre` (`call.reuse` is set):
/// one with room, or a new one.
pub async fn serve<S: BodySource>(
    pre: &ServicePre<RequestState>,
    call: Call<'_, S>,
) -> Result<(), ServeError> {
    let Call {
        request,
        sink,
        sandbox,
        facts,
        log,
        reuse,
        ..
    } = call;
    let Some(reuse) = reuse else {
        return Err(ServeError::Internal(
            "a shared instance without reuse".into(),
        ));
    };
    let max_requests = reuse.max_requests;
    let deadline = Instant::now() + sandbox.timeout;
    let (parts, body) = request.into_parts();
    let (request_side, guest_body, side) = handoff::channels();
    let job = Job {
        request: http::Request::from_parts(parts, guest_body),
        side,
        facts: facts.clone(),
        meter: sandbox.meter.clone(),
        deadline,
    };
    let ticket = match take(&reuse.key, max_requests) {
        Some(ticket) => match ticket.jobs.send(job) {
            Ok(()) => ticket,
            // Its thread ended since: a new instance takes the request.
            Err(mpsc::error::SendError(job)) => {
                finish(ticket.id, max_requests);
                start(pre, sandbox, facts, &log, reuse, deadline, job).await?
            }
        },
        None => start(pre, sandbox, facts, &log, reuse, deadline, job).await?,
    };
    let result = request_side
        .relay(body, sink, &*log, deadline, &ticket.epitaph)
        .await;
    if matches!(result, Err(ServeError::Timeout(_))) {
        // Its guest call cannot be cancelled alone: the instance ends
        // once its other requests have.
        retire(ticket.id);
    }
    finish(ticket.id, max_requests);
    let memory_exceeded = ticket.memory_exceeded.load(Ordering::Relaxed);
    result.map_err(|e| e.explained(sandbox.limits(), memory_exceeded))
}

/// A new shared instance for `reuse`'s key, on a thread of its own, with
/// `job` its first request.
async fn start(
    pre: &ServicePre<RequestState>,
    sandbox: &Sandbox,
    facts: RequestFacts,
    log: &Arc<dyn RequestLog>,
    reuse: Reuse,
    deadline: Instant,
    job: Job,
) -> Result<Ticket, ServeError> {
    let memory_exceeded = Arc::new(AtomicBool::new(false));
    let (store, service) =
        super::serve03::instantiate(pre, sandbox, &facts, log, &memory_exceeded, deadline).await?;
    // Its answers are the request's, and a shared call cannot say whose.
    let concurrency = if answers_per_request(pre) {
        1
    } else {
        reuse.concurrency.max(1)
    };
    let instance = Instance {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        section_log: (concurrency > 1).then(|| reuse.section_log.clone()),
        memory_exceeded: memory_exceeded.clone(),
        epitaph: Epitaph::default(),
        holding: Mutex::new(Vec::new()),
    };
    let (jobs, jobs_rx) = mpsc::unbounded_channel();
    let ticket = Ticket {
        id: instance.id,
        jobs: jobs.clone(),
        epitaph: instance.epitaph.clone(),
        memory_exceeded,
    };
    jobs.send(job)
        .map_err(|_| ServeError::Internal("a new instance's queue is closed".into()))?;
    shared().push(Entry {
        id: instance.id,
        key: reuse.key,
        jobs,
        epitaph: instance.epitaph.clone(),
        memory_exceeded: ticket.memory_exceeded.clone(),
        concurrency,
        in_flight: 1,
        taken: 1,
        retired: false,
    });
    let id = instance.id;
    std::thread::Builder::new()
        .name("mod_wasm instance".into())
        .spawn(move || instance.run(store, service, jobs_rx))
        .map_err(|e| {
            retire(id);
            ServeError::Internal(format!("cannot start a thread for a shared instance: {e}"))
        })?;
    Ok(ticket)
}

/// Whether `pre`'s component imports `mod-wasm:host/request-info`.
fn answers_per_request(pre: &ServicePre<RequestState>) -> bool {
    let component = pre.instance_pre().component();
    component
        .component_type()
        .imports(pre.engine())
        .any(|(name, _)| name.starts_with("mod-wasm:host/request-info"))
}

/// A shared instance, on its thread.
struct Instance {
    id: u64,
    /// Where the guest's lines go when it serves several requests at once.
    section_log: Option<Arc<dyn RequestLog>>,
    memory_exceeded: Arc<AtomicBool>,
    epitaph: Epitaph,
    /// The response channels of the requests it holds now: kept open here
    /// until the epitaph is written, however the guest's end drops theirs.
    holding: Mutex<Vec<(u64, mpsc::Sender<Event>)>>,
}

/// What a request left its instance in.
enum Verdict {
    /// Fit for the next request.
    Clean,
    /// The guest failed the request without trapping: the instance takes
    /// no new requests, as a 0.2 one is dropped after any failed one.
    Retire,
    /// The guest trapped: every request in the instance fails now.
    Broken(ServeError),
}

impl Instance {
    /// Serves the jobs that come until the door closes and the last of them
    /// ends, or until the guest traps.
    fn run(
        self,
        mut store: Store<RequestState>,
        service: Service,
        mut jobs: mpsc::UnboundedReceiver<Job>,
    ) {
        let deadlines = Arc::new(Mutex::new(Vec::<(u64, Instant)>::new()));
        stop_when_late(&mut store, deadlines.clone());
        let served = runtime::block_on(Awake(Box::pin(store.run_concurrent(async |accessor| {
            self.serve_jobs(accessor, &service, &mut jobs, &deadlines)
                .await
        }))));
        let broken = match served {
            Ok(Ok(result)) => result.err(),
            // A trap in a task of the guest's ends the event loop itself.
            Ok(Err(e)) => Some(classify(&e)),
            Err(e) => Some(ServeError::Internal(e.to_string())),
        };
        if let Some(error) = broken {
            self.bury(error);
            retire(self.id);
        }
        // The requests still held see their end now.
        lock(&self.holding).clear();
        // Requests still queued end here, with the store and whatever the
        // guest left running.
        drop(jobs);
    }

    /// Says why the instance broke, for the requests it still holds, before
    /// they see their channels close (unless it was said already).
    fn bury(&self, error: ServeError) {
        let alone = lock(&self.holding).len() <= 1;
        let _ = self.epitaph.set(Broken { error, alone });
    }

    async fn serve_jobs(
        &self,
        accessor: &Accessor<RequestState>,
        service: &Service,
        jobs: &mut mpsc::UnboundedReceiver<Job>,
        deadlines: &Mutex<Vec<(u64, Instant)>>,
    ) -> Result<(), ServeError> {
        let mut running = FuturesUnordered::new();
        let mut open = true;
        let mut next = 0u64;
        loop {
            tokio::select! {
                job = jobs.recv(), if open => match job {
                    Some(job) => {
                        next += 1;
                        lock(deadlines).push((next, job.deadline));
                        lock(&self.holding).push((next, job.side.events.clone()));
                        running.push(self.serve_job(accessor, service, job, next));
                    }
                    None => open = false,
                },
                Some((n, verdict)) = running.next() => {
                    lock(deadlines).retain(|(job, _)| *job != n);
                    lock(&self.holding).retain(|(job, _)| *job != n);
                    match verdict {
                        Verdict::Clean => {}
                        Verdict::Retire => retire(self.id),
                        // The request that trapped has its answer; the
                        // others learn why from the epitaph.
                        Verdict::Broken(error) => {
                            let _ = self.epitaph.set(Broken { error: error.clone(), alone: false });
                            return Err(error);
                        }
                    }
                }
                else => return Ok(()),
            }
        }
    }

    /// One request, from its head to the end of its response.
    async fn serve_job(
        &self,
        accessor: &Accessor<RequestState>,
        service: &Service,
        job: Job,
        n: u64,
    ) -> (u64, Verdict) {
        let Job {
            request,
            side,
            facts,
            meter,
            deadline,
        } = job;
        let alone = self.section_log.is_none();
        let log = self.section_log.clone().unwrap_or(side.log);
        let request = accessor.with(|mut access| {
            let state = access.data_mut();
            state.next_request(facts, log, self.memory_exceeded.clone(), meter);
            Request::from_http(state.http().hooks, request).0
        });
        let forwarded = tokio::time::timeout_at(
            deadline.into(),
            forward(accessor, service, request, &side.events),
        )
        .await;
        let (result, verdict) = match forwarded {
            Ok(Ok(())) => (Ok(()), Verdict::Clean),
            Ok(Err(Unanswered { error, trapped })) => {
                let verdict = match &error {
                    _ if trapped => Verdict::Broken(error.clone()),
                    // The client went away: no fault of the guest's.
                    ServeError::Sink => Verdict::Clean,
                    _ => Verdict::Retire,
                };
                (Err(error), verdict)
            }
            // The request's thread has answered 504 and retires the
            // instance.
            Err(_) => (
                Err(ServeError::Timeout("the guest was waiting".into())),
                Verdict::Retire,
            ),
        };
        if alone {
            // What the guest left unfinished in its output is this request's.
            accessor.with(|mut access| access.data_mut().end_request());
        }
        let _ = side.events.send(Event::End(result)).await;
        (n, verdict)
    }
}

/// Streams the guest's response to `request` into `events`.
async fn forward(
    accessor: &Accessor<RequestState>,
    service: &Service,
    request: Request,
    events: &mpsc::Sender<Event>,
) -> Result<(), Unanswered> {
    let gone = |_| Unanswered {
        error: ServeError::Sink,
        trapped: false,
    };
    let response = handle(accessor, service, request).await?;
    let (head, mut body) = response.into_parts();
    events
        .send(Event::Head(head.status.as_u16(), head.headers))
        .await
        .map_err(gone)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Unanswered {
            error: body_failed(e),
            trapped: false,
        })?;
        let event = match frame.into_data() {
            Ok(data) if data.is_empty() => continue,
            Ok(data) => Event::Data(data),
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => Event::Trailers(trailers),
                Err(_) => continue,
            },
        };
        events.send(event).await.map_err(gone)?;
    }
    Ok(())
}

/// The instance's event loop, counted as serving while it runs: a guest
/// running Wasm keeps it in one poll, so the epoch ticker ticks for it
/// even when no request is in flight (a task the guest left spinning),
/// and sleeps while the instance waits.
struct Awake<F>(std::pin::Pin<Box<F>>);

impl<F: Future> Future for Awake<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let _serving = crate::ticker::Serving::begin();
        self.0.as_mut().poll(cx)
    }
}

/// Stops the guest when it runs Wasm past the deadline of a request it
/// holds, or with none in flight (a task it left running). The first tick
/// that finds it late only yields, so that a request whose guest waits can
/// time out on its own first; a guest still running at the next is
/// interrupted, which breaks the instance.
fn stop_when_late(store: &mut Store<RequestState>, deadlines: Arc<Mutex<Vec<(u64, Instant)>>>) {
    let mut late_before = false;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        let now = Instant::now();
        let deadlines = lock(&deadlines);
        let late = deadlines.is_empty() || deadlines.iter().any(|(_, deadline)| *deadline <= now);
        drop(deadlines);
        let stop = late && late_before;
        late_before = late;
        Ok(if stop {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
