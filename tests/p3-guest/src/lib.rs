//! A WASI 0.3 component for the end-to-end tests, its behaviour picked by
//! the last segment of the path (as `tests/guest` does for 0.2). Bodies are
//! written by tasks that run after `handle` returned, as 0.3 guests do.

use std::sync::atomic::{AtomicU64, Ordering};
use wasip3::http::client;
use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme, Trailers};
use wasip3::wit_bindgen::{FutureReader, StreamWriter};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(Guest);

/// Apache's imports (wit/host.wit), which a 0.3 guest may use as a 0.2 one
/// does. Only `log` is called: a component importing `request-info` is
/// served one request at a time even in a concurrent instance, which the
/// shared-instance tests must not be.
mod apache {
    use super::wit_bindgen;
    wit_bindgen::generate!({
        path: "../../wit",
        world: "mod-wasm:host/imports",
    });
}
use apache::mod_wasm::host::log;

/// The state interfaces (wit/host.wit, world `mod-wasm:host/state`), which
/// mod_wasm serves to 0.3 components as to 0.2 ones.
mod state {
    use super::wit_bindgen;
    wit_bindgen::generate!({
        path: "../../wit",
        world: "mod-wasm:host/state",
        generate_all,
        runtime_path: "wasip3::wit_bindgen::rt",
    });
}
use state::wasi::config0_2_0_draft_2024_09_27::store as config;
use state::wasi::keyvalue::{atomics, store};

struct Guest;

const CHUNK: usize = 64 * 1024;

/// Requests this instance has served: more than 1 only where instances
/// are reused.
static SERVED: AtomicU64 = AtomicU64::new(0);
/// Requests in `sleep` now, and the most there were at once: more than 1
/// only where one instance serves requests concurrently.
static SLEEPING: AtomicU64 = AtomicU64::new(0);
static MOST_AT_ONCE: AtomicU64 = AtomicU64::new(0);

impl wasip3::exports::http::handler::Guest for Guest {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let last = path.rsplit('/').next().unwrap_or_default().to_owned();
        let param = |name: &str| -> String {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_owned())
                .unwrap_or_default()
        };
        let number = |name: &str| -> u64 { param(name).parse().unwrap_or(0) };
        let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
        // As a WasmAccessChecker: the verdict the test asked for.
        let verdict = request.get_headers().get("x-verdict");
        if let Some(verdict) = verdict.first() {
            let (code, headers): (u16, &[(&str, &[u8])]) = match verdict.as_slice() {
                b"allow" => (200, &[("wasm-auth-wasi", b"0.3")]),
                _ => (403, &[("content-type", b"text/plain")]),
            };
            let fields: Vec<(String, Vec<u8>)> = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect();
            let fields = Fields::from_list(&fields).map_err(|_| ErrorCode::InternalError(None))?;
            let response = respond(fields, |mut out, trailers_out| async move {
                out.write_all(b"refused by a WASI 0.3 checker\n".to_vec())
                    .await;
                drop(out);
                send_trailers(trailers_out, None).await;
            })?;
            response
                .set_status_code(code)
                .map_err(|()| ErrorCode::InternalError(None))?;
            return Ok(response);
        }
        match last.as_str() {
            // How many requests this instance has served, this one included.
            "count" => text_response(format!("count {served}\n")),
            // Adds 1 to `key` in the store `store` and says the sum, with
            // the config variable `var`; a store error is a 500 saying why.
            "kv-incr" => {
                let sum = store::open(&param("store"))
                    .and_then(|bucket| atomics::increment(&bucket, &param("key"), 1));
                let var = config::get(&param("var"))
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                match sum {
                    Ok(sum) => text_response(format!("{sum} {var}\n")),
                    Err(error) => {
                        let response = text_response(format!("{error:?}\n"))?;
                        response
                            .set_status_code(500)
                            .map_err(|()| ErrorCode::InternalError(None))?;
                        Ok(response)
                    }
                }
            }
            // Waits `ms` milliseconds, then says how many requests were
            // waiting at once at most, in this instance.
            "sleep" => {
                let now = SLEEPING.fetch_add(1, Ordering::Relaxed) + 1;
                MOST_AT_ONCE.fetch_max(now, Ordering::Relaxed);
                wasip3::clocks::monotonic_clock::wait_for(number("ms") * 1_000_000).await;
                SLEEPING.fetch_sub(1, Ordering::Relaxed);
                let most = MOST_AT_ONCE.load(Ordering::Relaxed);
                text_response(format!("at once {most}\n"))
            }
            // A line on stderr (the query), then an answer.
            "stderr" => {
                eprintln!("{query}");
                text_response("written\n".into())
            }
            // The request body back, its trailers as the response's.
            "echo" => {
                let (_, done) = wit_future::new(|| Ok(()));
                let (mut body_in, trailers_in) = Request::consume_body(request, done);
                respond(Fields::new(), move |mut out, trailers_out| async move {
                    let mut buf = Vec::with_capacity(CHUNK);
                    loop {
                        let (_, read) = body_in.read(buf).await;
                        if read.is_empty() {
                            break;
                        }
                        let unwritten = out.write_all(read).await;
                        assert!(unwritten.is_empty(), "the host stopped reading");
                        buf = Vec::with_capacity(CHUNK);
                    }
                    drop(out);
                    let trailers = trailers_in.await.ok().flatten();
                    send_trailers(trailers_out, trailers).await;
                })
            }
            // `mib` MiB of the bytes 0..=255 repeated, 64 KiB at a time.
            "big" => {
                let total = number("mib") << 20;
                respond(Fields::new(), move |mut out, trailers_out| async move {
                    let mut sent = 0;
                    while sent < total {
                        let n = CHUNK.min((total - sent) as usize);
                        let piece = (0..n).map(|i| i as u8).collect();
                        let unwritten = out.write_all(piece).await;
                        assert!(unwritten.is_empty(), "the host stopped reading");
                        sent += n as u64;
                    }
                    drop(out);
                    send_trailers(trailers_out, None).await;
                })
            }
            // A status and a header of the guest's choosing.
            "status" => {
                let headers = Fields::from_list(&[("x-wasi".into(), b"0.3".to_vec())])
                    .map_err(|_| ErrorCode::InternalError(None))?;
                let response = respond(headers, |mut out, trailers_out| async move {
                    out.write_all(b"I'm a teapot\n".to_vec()).await;
                    drop(out);
                    send_trailers(trailers_out, None).await;
                })?;
                response
                    .set_status_code(number("code") as u16)
                    .map_err(|()| ErrorCode::InternalError(Some("bad status".into())))?;
                Ok(response)
            }
            "trailers" => respond(Fields::new(), |mut out, trailers_out| async move {
                out.write_all(b"with trailers\n".to_vec()).await;
                drop(out);
                let trailers = Fields::from_list(&[("x-checksum".into(), b"abc123".to_vec())])
                    .expect("a valid trailer");
                send_trailers(trailers_out, Some(trailers)).await;
            }),
            // GET `url` with wasi:http/client: "status N" and the body, or
            // the error code (403 when the host refused the destination).
            "fetch" => {
                let url = query.strip_prefix("url=").unwrap_or_default().to_owned();
                let text = match fetch(&url).await {
                    Ok(text) => text,
                    Err(ErrorCode::HttpRequestDenied) => {
                        let response =
                            respond(Fields::new(), |mut out, trailers_out| async move {
                                out.write_all(b"denied\n".to_vec()).await;
                                drop(out);
                                send_trailers(trailers_out, None).await;
                            })?;
                        let _ = response.set_status_code(403);
                        return Ok(response);
                    }
                    Err(code) => format!("error {code:?}\n"),
                };
                respond(Fields::new(), move |mut out, trailers_out| async move {
                    out.write_all(text.into_bytes()).await;
                    drop(out);
                    send_trailers(trailers_out, None).await;
                })
            }
            "trap-before" => panic!("trapping before the response"),
            // `mib` MiB taken at once: past a small WasmMemoryLimit.
            "alloc" => {
                let held = vec![1u8; (number("mib") << 20) as usize];
                let text = format!("held {} bytes\n", std::hint::black_box(&held).len());
                respond(Fields::new(), move |mut out, trailers_out| async move {
                    out.write_all(text.into_bytes()).await;
                    drop(out);
                    send_trailers(trailers_out, None).await;
                })
            }
            // Half a body, then a trap in the task writing it.
            "trap-body" => respond(Fields::new(), |mut out, _trailers_out| async move {
                out.write_all(b"partial".to_vec()).await;
                panic!("trapping in the middle of the body");
            }),
            // A whole response; a moment later the task that wrote it
            // spins (at once, it would hold the host back from seeing
            // the response end).
            "spin-after" => respond(Fields::new(), |mut out, trailers_out| async move {
                out.write_all(b"done\n".to_vec()).await;
                drop(out);
                send_trailers(trailers_out, None).await;
                wasip3::clocks::monotonic_clock::wait_for(200_000_000).await;
                #[allow(clippy::empty_loop)]
                loop {}
            }),
            // A Content-Length the body falls short of, or goes past.
            "short" | "long" => {
                let declared = if last == "short" {
                    b"100".to_vec()
                } else {
                    b"4".to_vec()
                };
                let headers = Fields::from_list(&[("content-length".into(), declared)])
                    .map_err(|_| ErrorCode::InternalError(None))?;
                respond(headers, |mut out, trailers_out| async move {
                    out.write_all(b"partial\n".to_vec()).await;
                    drop(out);
                    send_trailers(trailers_out, None).await;
                })
            }
            // Two pieces a second apart.
            "slow" => respond(Fields::new(), |mut out, trailers_out| async move {
                out.write_all(b"first\n".to_vec()).await;
                wasip3::clocks::monotonic_clock::wait_for(1_000_000_000).await;
                out.write_all(b"last\n".to_vec()).await;
                drop(out);
                send_trailers(trailers_out, None).await;
            }),
            // A task of the guest's own panics while `handle` is still
            // waiting to answer.
            "task-panic" => {
                wit_bindgen::spawn(async {
                    wasip3::clocks::monotonic_clock::wait_for(20_000_000).await;
                    panic!("a spawned task panicked");
                });
                wasip3::clocks::monotonic_clock::wait_for(500_000_000).await;
                text_response("too late\n".into())
            }
            // A whole response, then a task that waits for ever.
            "wait-after" => respond(Fields::new(), |mut out, trailers_out| async move {
                out.write_all(b"done\n".to_vec()).await;
                drop(out);
                send_trailers(trailers_out, None).await;
                let (keep, never): (_, FutureReader<Result<(), ErrorCode>>) =
                    wit_future::new(|| Ok(()));
                let _ = never.await;
                drop(keep);
            }),
            // A line in Apache's error log, at info: the query.
            "log" => {
                log::write(log::Level::Info, &format!("a 0.3 guest says {query}"));
                text_response("logged\n".into())
            }
            // wasi:filesystem@0.3.0 on the section's grants.
            "fs" => text_response(filesystem(&param("op"), &param("path")).await),
            // A TCP connection with wasi:sockets@0.3.0 to 127.0.0.1:`port`.
            "connect" => text_response(connect(number("port") as u16).await),
            // An error code instead of a response.
            "error" => Err(ErrorCode::InternalError(Some("the guest refused".into()))),
            "spin" =>
            {
                #[allow(clippy::empty_loop)]
                loop {}
            }
            // A response that never comes: the guest waits on a future
            // nobody resolves.
            "never" => {
                let (keep, never): (_, FutureReader<Result<(), ErrorCode>>) =
                    wit_future::new(|| Ok(()));
                let _ = never.await;
                drop(keep);
                unreachable!()
            }
            _ => {
                let text = format!("Hello from WASI 0.3! You asked for {target}\n");
                respond(Fields::new(), move |mut out, trailers_out| async move {
                    let unwritten = out.write_all(text.into_bytes()).await;
                    assert!(unwritten.is_empty(), "the host stopped reading");
                    drop(out);
                    send_trailers(trailers_out, None).await;
                })
            }
        }
    }
}

/// A response whose body is `text`.
fn text_response(text: String) -> Result<Response, ErrorCode> {
    respond(Fields::new(), move |mut out, trailers_out| async move {
        let unwritten = out.write_all(text.into_bytes()).await;
        assert!(unwritten.is_empty(), "the host stopped reading");
        drop(out);
        send_trailers(trailers_out, None).await;
    })
}

/// `GET url` (http://authority/path): its status and body as text.
async fn fetch(url: &str) -> Result<String, ErrorCode> {
    let rest = url
        .strip_prefix("http://")
        .ok_or(ErrorCode::HttpRequestUriInvalid)?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (_, no_trailers) = wit_future::new(|| Ok(None));
    let (request, _sent) = Request::new(Fields::new(), None, no_trailers, None);
    let invalid = |()| ErrorCode::HttpRequestUriInvalid;
    request.set_scheme(Some(&Scheme::Http)).map_err(invalid)?;
    request.set_authority(Some(authority)).map_err(invalid)?;
    request
        .set_path_with_query(Some(if path.is_empty() { "/" } else { path }))
        .map_err(invalid)?;
    let response = client::send(request).await?;
    let status = response.get_status_code();
    let (_, done) = wit_future::new(|| Ok(()));
    let (body, _trailers) = Response::consume_body(response, done);
    let body = body.collect().await;
    Ok(format!(
        "status {status}\n{}",
        String::from_utf8_lossy(&body)
    ))
}

/// `op` on `path`, inside the preopened directory whose name begins it:
/// "read" its text, "write" a line into it, "symlink" it to /etc/passwd.
/// The outcome as text, an error as "error <code>".
async fn filesystem(op: &str, path: &str) -> String {
    use wasip3::filesystem::preopens::get_directories;
    use wasip3::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let Some((dir, rest)) = get_directories().into_iter().find_map(|(dir, name)| {
        let rest = path.strip_prefix(name.as_str())?.strip_prefix('/')?;
        Some((dir, rest.to_owned()))
    }) else {
        return "error no grant\n".into();
    };
    let outcome = match op {
        "read" => match dir
            .open_at(
                PathFlags::empty(),
                rest,
                OpenFlags::empty(),
                DescriptorFlags::READ,
            )
            .await
        {
            Ok(file) => {
                let (data, done) = file.read_via_stream(0);
                let bytes = data.collect().await;
                done.await
                    .map(|()| String::from_utf8_lossy(&bytes).into_owned())
            }
            Err(code) => Err(code),
        },
        "write" => match dir
            .open_at(
                PathFlags::empty(),
                rest,
                OpenFlags::CREATE | OpenFlags::TRUNCATE,
                DescriptorFlags::WRITE,
            )
            .await
        {
            Ok(file) => {
                let (mut data, reader) = wit_stream::new();
                let done = file.write_via_stream(reader, 0);
                wit_bindgen::spawn(async move {
                    data.write_all(b"written through WASI 0.3\n".to_vec()).await;
                });
                done.await.map(|()| "written\n".to_owned())
            }
            Err(code) => Err(code),
        },
        "symlink" => dir
            .symlink_at("/etc/passwd".into(), rest)
            .await
            .map(|()| "linked\n".to_owned()),
        _ => return "error unknown op\n".into(),
    };
    outcome.unwrap_or_else(|code| format!("error {code:?}\n"))
}

/// "connected", or the error code connecting to 127.0.0.1:`port` gave.
async fn connect(port: u16) -> String {
    use wasip3::sockets::types::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, TcpSocket};
    let socket = match TcpSocket::create(IpAddressFamily::Ipv4) {
        Ok(socket) => socket,
        Err(code) => return format!("error {code:?}\n"),
    };
    let to = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    });
    match socket.connect(to).await {
        Ok(()) => "connected\n".into(),
        Err(code) => format!("error {code:?}\n"),
    }
}

type TrailersOut = wit_bindgen::FutureWriter<Result<Option<Trailers>, ErrorCode>>;

/// A response with `headers` whose body (and trailers) `write` produces in a
/// task of its own, after the response was handed over.
fn respond<F, W>(headers: Fields, write: W) -> Result<Response, ErrorCode>
where
    W: FnOnce(StreamWriter<u8>, TrailersOut) -> F,
    F: Future<Output = ()> + 'static,
{
    let (out, body) = wit_stream::new();
    let (trailers_out, trailers) = wit_future::new(|| Ok(None));
    let (response, _delivered) = Response::new(headers, Some(body), trailers);
    wit_bindgen::spawn(write(out, trailers_out));
    Ok(response)
}

async fn send_trailers(out: TrailersOut, trailers: Option<Trailers>) {
    // The host may have gone: nothing to do about it here.
    let _ = out.write(Ok(trailers)).await;
}
