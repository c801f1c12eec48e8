//! Per-request cost of the host alone, without Apache: serves N requests to a
//! component in-process with an empty body and a sink that drops the bytes,
//! and prints microseconds per request.
//!
//! `cargo run --release -p mod-wasm-host --example instantiate -- APP.wasm [N] [THREADS]`
//! (`make bench` runs it). Set `MOD_WASM_POOLING=0` to compare with the
//! on-demand allocator, `MOD_WASM_CACHE=DIR` to use a disk cache,
//! `MOD_WASM_REUSE=N` to let an instance serve N requests
//! (`WasmInstanceReuse N`), `MOD_WASM_PAUSE_US=N` to sleep N µs before each
//! request. The pause shows the cost of a cold start: a request in Apache
//! follows other work that has evicted the host's code and data from the
//! CPU's caches, which a loop of back-to-back requests never sees. The
//! figure printed is the time spent serving, without the pauses.

use mod_wasm_host::component::{
    Call, ComponentPre, RequestFacts, RequestHead, Reuse, ReuseKey, build_request, serve, serve03,
};
use mod_wasm_host::host::Host;
use mod_wasm_host::log::{LogKind, RequestLog};
use mod_wasm_host::request_io::{BodySource, ReadError, ResponseSink, SinkError};
use mod_wasm_host::sandbox::Sandbox;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct NoBody;
impl BodySource for NoBody {
    fn read(&mut self, _: &mut [u8]) -> Result<usize, ReadError> {
        Ok(0)
    }
}

#[derive(Default)]
struct CountingSink {
    status: u16,
    bytes: usize,
}
impl ResponseSink for CountingSink {
    fn send_head(&mut self, status: u16, _: &http::HeaderMap) -> Result<(), SinkError> {
        self.status = status;
        Ok(())
    }
    fn send_data(&mut self, data: &[u8], _flush: bool) -> Result<(), SinkError> {
        self.bytes += data.len();
        Ok(())
    }
    fn send_trailers(&mut self, _: &http::HeaderMap) -> Result<(), SinkError> {
        Ok(())
    }
}

struct Quiet;
impl RequestLog for Quiet {
    fn log(&self, _: LogKind, _: &[u8]) {}
    fn guest_log(&self, _: u8, _: &[u8]) {}
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: instantiate APP.wasm [REQUESTS] [THREADS]");
    let requests: usize = args.next().map_or(20_000, |n| n.parse().expect("REQUESTS"));
    let threads: usize = args.next().map_or(1, |n| n.parse().expect("THREADS"));

    let mut host = Host::new();
    let cache = std::env::var_os("MOD_WASM_CACHE");
    host.set_cache_dir(cache.as_ref().map(Path::new))
        .expect("cache directory");
    let pooling = std::env::var("MOD_WASM_POOLING").map_or(true, |v| v != "0");
    let started = Instant::now();
    let entry = host
        .add_component(Path::new(&path))
        .expect("compile")
        .0
        .clone();
    let compiled = started.elapsed();
    let started = Instant::now();
    let setup = host
        .child_init(if pooling { threads as u32 } else { 0 })
        .expect("child_init");
    let loaded = started.elapsed();
    let sandbox = Sandbox::default();
    let pre = entry.pre().expect("loaded");
    let reuse: Option<u32> = std::env::var("MOD_WASM_REUSE")
        .ok()
        .map(|n| n.parse().expect("MOD_WASM_REUSE"));
    let pause = std::env::var("MOD_WASM_PAUSE_US")
        .ok()
        .map(|us| Duration::from_micros(us.parse().expect("MOD_WASM_PAUSE_US")))
        .filter(|pause| !pause.is_zero());

    let one = |sandbox: &Sandbox| {
        let head = RequestHead {
            method: b"GET",
            scheme: b"http",
            authority: b"localhost",
            path_with_query: b"/hello",
            headers: std::iter::empty(),
        };
        let (scheme, request) = build_request(head, NoBody).expect("request");
        let mut sink = CountingSink::default();
        let call = Call {
            scheme,
            request,
            sink: &mut sink,
            sandbox,
            facts: RequestFacts::default(),
            log: Arc::new(Quiet),
            reuse: reuse.map(|max_requests| Reuse {
                key: ReuseKey::new(entry.clone(), String::new()),
                max_requests,
                concurrency: 1,
                section_log: Arc::new(Quiet),
            }),
        };
        match pre {
            ComponentPre::Proxy(pre) => serve(pre, call),
            ComponentPre::Service(pre) => serve03(pre, call),
        }
        .expect("serve");
        assert_eq!(sink.status, 200);
    };
    for _ in 0..200 {
        one(&sandbox); // warm up: runtimes, pools, page cache
    }
    let serving: Duration = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut serving = Duration::ZERO;
                    for _ in 0..requests / threads {
                        if let Some(pause) = pause {
                            std::thread::sleep(pause);
                        }
                        let started = Instant::now();
                        one(&sandbox);
                        serving += started.elapsed();
                    }
                    serving
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    // Each thread's serving time over its requests: µs per request.
    let per_request = serving.as_secs_f64() * 1e6 / requests as f64;
    println!(
        "{path}: compile {:.1} ms, load {:.1} ms, {:?}{}{}, {requests} requests on {threads} \
         thread(s): {per_request:.1} µs/request, {:.0} requests/s per thread",
        compiled.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3,
        setup.allocation,
        reuse.map_or(String::new(), |n| format!(
            ", instances reused for {n} requests"
        )),
        pause.map_or(String::new(), |p| format!(
            ", {} µs pause before each",
            p.as_micros()
        )),
        1e6 / per_request,
    );
}
