//! The end-to-end tests' guest: one component, many behaviours, chosen by
//! the last segment of the request path (`/any/prefix/echo`, ...). Each
//! behaviour exists to be checked by a test in `tests/e2e/`.

use mod_wasm_guest::raw::{BodyReader, ResponseWriter};
use mod_wasm_guest::wasi;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};
use wasi::http::types::{IncomingBody, IncomingRequest, Method, ResponseOutparam, Scheme};
use wasi::io::streams::InputStream;

mod checker;
mod sandbox;
use sandbox::*;

struct TestGuest;

impl wasi::exports::http::incoming_handler::Guest for TestGuest {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let Some((request, out)) = checker::verdict(request, out) else {
            return;
        };
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let op = path.rsplit('/').next().unwrap_or("");
        match op {
            "echo" => echo(request, out),
            "status" => status(query, out),
            "headers" => headers(request, out),
            "upload" => upload(request, out),
            "trailers" => trailers(query, out),
            "trailers-echo" => trailers_echo(request, out),
            "big" => big(query, out),
            "slow" => slow(out),
            "trap" => core::arch::wasm32::unreachable(),
            "oob" => out_of_bounds(),
            "trap-after-head" => trap_after_head(out),
            "noresponse" => drop(out),
            "length-lie" => length_lie(out),
            "stderr" => {
                eprint!("first line\nsecond line\nno newline at the end");
                respond(out, 200, &[], b"logged\n")
            }
            "panic" => panic!("the guest panicked on purpose"),
            "unfinished" => unfinished(out),
            // The SDK answers the outparam with an error instead of trapping.
            "bad-header" => drop(ResponseWriter::start(out, 200, &[("bad name", b"x")])),
            "longline" => long_line(out),
            "sized" => respond(out, 200, &[("content-length", b"11")], b"hello sized"),
            "spin" => spin(),
            "spin-after-head" => spin_after_head(out),
            "sleep" => sleep(query, out),
            "alloc" => alloc(query, out),
            "recurse" => {
                let depth = core::hint::black_box(u64::MAX);
                respond(out, 200, &[], format!("{}", recurse(depth)).as_bytes())
            }
            "crlf-header" => drop(ResponseWriter::start(
                out,
                200,
                &[("x-split", b"a\r\nInjected: yes")],
            )),
            "endless" => endless(out),
            "env" => env(out),
            "count" => count(query, out),
            "keep-body" => keep_body(request, out),
            "kept-body" => kept_body(out),
            "read" => read_file(query, out),
            "write" => write_file(query, out),
            "fetch" => fetch(query, out),
            "fetch-many" => fetch_many(query, out),
            "socket" => socket(query, out),
            "stdout" => {
                println!("a line on stdout");
                respond(out, 200, &[], b"printed\n")
            }
            "flood" => {
                let line = "z".repeat(99);
                for _ in 0..5000 {
                    eprintln!("{line}");
                }
                respond(out, 200, &[], b"flooded\n")
            }
            _ => respond(out, 200, &[], format!("test guest: {path}\n").as_bytes()),
        }
    }
}

wasi::http::proxy::export!(TestGuest);

pub(crate) fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

// The behaviours below exist to be checked: a failure is meant to trap.

pub(crate) fn start(out: ResponseOutparam, code: u16, headers: &[(&str, &[u8])]) -> ResponseWriter {
    ResponseWriter::start(out, code, headers).expect("a valid head")
}

pub(crate) fn respond(out: ResponseOutparam, code: u16, headers: &[(&str, &[u8])], body: &[u8]) {
    mod_wasm_guest::raw::respond(out, code, headers, body).expect("the client is reading");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A method as it is spelled on the wire.
pub(crate) fn method_name(method: Method) -> String {
    match method {
        Method::Get => "GET".to_string(),
        Method::Head => "HEAD".to_string(),
        Method::Post => "POST".to_string(),
        Method::Put => "PUT".to_string(),
        Method::Delete => "DELETE".to_string(),
        Method::Connect => "CONNECT".to_string(),
        Method::Options => "OPTIONS".to_string(),
        Method::Trace => "TRACE".to_string(),
        Method::Patch => "PATCH".to_string(),
        Method::Other(other) => other,
    }
}

/// The request as the guest saw it, one fact per line; header values in hex
/// so that any byte survives the trip.
fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let method = method_name(request.method());
    let scheme = match request.scheme() {
        Some(Scheme::Http) => "http".to_string(),
        Some(Scheme::Https) => "https".to_string(),
        Some(Scheme::Other(other)) => other,
        None => "none".to_string(),
    };
    let mut text = format!(
        "method {method}\nscheme {scheme}\nauthority {}\ntarget {}\n",
        request.authority().unwrap_or_default(),
        request.path_with_query().unwrap_or_default()
    );
    for (name, value) in request.headers().entries() {
        text.push_str(&format!("header {name} {}\n", hex(&value)));
    }
    respond(
        out,
        200,
        &[("content-type", b"text/plain")],
        text.as_bytes(),
    );
}

fn status(query: &str, out: ResponseOutparam) {
    let code: u16 = query_value(query, "code")
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    let text = format!("status {code}\n");
    let body: &[u8] = if code == 204 || code == 304 {
        b""
    } else {
        text.as_bytes()
    };
    respond(out, code, &[], body);
}

/// Multi-valued and non-UTF-8 response headers, and the request's
/// `x-reflect` header values sent back as `x-reflected`.
fn headers(request: IncomingRequest, out: ResponseOutparam) {
    let reflected = request.headers().get("x-reflect");
    let mut list: Vec<(&str, &[u8])> = vec![
        ("content-type", b"text/x-test"),
        ("x-multi", b"one"),
        ("x-multi", b"two"),
        ("set-cookie", b"a=1; Path=/"),
        ("set-cookie", b"b=2; Path=/"),
        ("x-bytes", b"caf\xe9 \xff!"),
    ];
    for value in &reflected {
        list.push(("x-reflected", value));
    }
    respond(out, 200, &list, b"headers\n");
}

/// The request body, streamed straight back.
fn upload(request: IncomingRequest, out: ResponseOutparam) {
    let mut input = BodyReader::new(&request).expect("a body");
    let mut writer = start(out, 200, &[("content-type", b"application/octet-stream")]);
    while let Some(piece) = input.read(65536).expect("reading the request body failed") {
        writer.write_all(&piece).expect("the client is reading");
    }
    writer.finish().expect("the body is complete");
}

/// A body and a trailer section; with `forbidden=1`, also a field that may
/// not be a trailer (the host drops it and says so).
fn trailers(query: &str, out: ResponseOutparam) {
    let mut writer = start(out, 200, &[]);
    writer
        .write_all(b"with trailers\n")
        .expect("the client is reading");
    let mut fields: Vec<(&str, &[u8])> = vec![("x-checksum", b"abc123")];
    if query_value(query, "forbidden") == Some("1") {
        fields.push(("content-type", b"text/evil"));
    }
    writer
        .finish_with_trailers(&fields)
        .expect("the body is complete");
}

/// The request body's length, then its trailers one per line; the same
/// trailers back as the response's.
fn trailers_echo(request: IncomingRequest, out: ResponseOutparam) {
    let mut input = BodyReader::new(&request).expect("a body");
    let mut length = 0;
    while let Some(piece) = input.read(65536).expect("reading the request body failed") {
        length += piece.len();
    }
    let trailers = input.trailers().expect("the trailers");
    let mut text = format!("{length} bytes\n");
    for (name, value) in &trailers {
        text += &format!("{name}: {}\n", String::from_utf8_lossy(value));
    }
    let mut writer = start(out, 200, &[]);
    writer
        .write_all(text.as_bytes())
        .expect("the client is reading");
    let back: Vec<(&str, &[u8])> = trailers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    writer
        .finish_with_trailers(&back)
        .expect("the body is complete");
}

/// `mib` MiB of a repeating 0..=255 pattern, written 4 KiB at a time.
fn big(query: &str, out: ResponseOutparam) {
    let mib: usize = query_value(query, "mib")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1);
    let pattern: Vec<u8> = (0..4096).map(|i| i as u8).collect();
    let mut writer = start(out, 200, &[("content-type", b"application/octet-stream")]);
    for _ in 0..mib * 256 {
        writer.write_all(&pattern).expect("the client is reading");
    }
    writer.finish().expect("the body is complete");
}

/// "first", a pause of one second, then "last": the first bytes must reach
/// the client before the guest is done.
fn slow(out: ResponseOutparam) {
    let mut writer = start(out, 200, &[("content-type", b"text/plain")]);
    writer.write_all(b"first\n").expect("the client is reading");
    wasi::clocks::monotonic_clock::subscribe_duration(1_000_000_000).block();
    writer.write_all(b"last\n").expect("the client is reading");
    writer.finish().expect("the body is complete");
}

/// How many requests this instance has served, this one included (more
/// than 1 only under `WasmInstanceReuse`); with `?log`, also on stderr, so
/// that the log line shows which request it went to.
fn count(query: &str, out: ResponseOutparam) {
    static SERVED: AtomicU32 = AtomicU32::new(0);
    let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
    if query == "log" {
        eprintln!("count {served}");
    }
    respond(out, 200, &[], format!("count {served}\n").as_bytes());
}

thread_local! {
    /// A request body kept past the end of its request.
    static KEPT: RefCell<Option<(IncomingBody, InputStream)>> = const { RefCell::new(None) };
}

/// Keeps the request body's stream, unread, for a later request of the same
/// instance: what a guest that leaks a resource across requests does.
fn keep_body(request: IncomingRequest, out: ResponseOutparam) {
    let body = request.consume().expect("the body");
    let stream = body.stream().expect("the body's stream");
    KEPT.with(|kept| *kept.borrow_mut() = Some((body, stream)));
    respond(out, 200, &[], b"kept\n");
}

/// Reads the body an earlier request kept: its request is gone, so the read
/// must fail, not reach into it.
fn kept_body(out: ResponseOutparam) {
    let text = KEPT.with(|kept| match kept.borrow().as_ref() {
        None => "nothing kept\n".to_string(),
        Some((_, stream)) => match stream.blocking_read(4096) {
            Ok(bytes) => format!("read {} bytes\n", bytes.len()),
            Err(_) => "the kept body failed\n".to_string(),
        },
    });
    respond(out, 200, &[], text.as_bytes());
}

fn out_of_bounds() {
    // Far beyond any memory this guest has: the load traps.
    let address = core::hint::black_box(0xffff_fff0usize) as *const u64;
    let value = unsafe { core::ptr::read_volatile(address) };
    core::hint::black_box(value);
}

fn trap_after_head(out: ResponseOutparam) {
    let mut writer = start(out, 200, &[("content-type", b"text/plain")]);
    writer.write_all(b"partial").expect("the client is reading");
    core::arch::wasm32::unreachable();
}

/// Declares 100 bytes, sends 10.
fn length_lie(out: ResponseOutparam) {
    let mut writer = start(out, 200, &[("content-length", b"100")]);
    writer
        .write_all(b"0123456789")
        .expect("the client is reading");
    // Finishing short is refused by the host; the guest gives up.
    let _ = writer.finish();
}

/// Sets the response, writes a little, and returns with the body neither
/// finished nor dropped (as a guest that leaks the resource would).
fn unfinished(out: ResponseOutparam) {
    let mut writer = start(out, 200, &[("content-type", b"text/plain")]);
    writer.write_all(b"partial").expect("the client is reading");
    std::mem::forget(writer);
}

/// A first line, then 64 KiB without a newline.
fn long_line(out: ResponseOutparam) {
    let mut writer = start(out, 200, &[("content-type", b"text/plain")]);
    writer.write_all(b"start\n").expect("the client is reading");
    writer
        .write_all(&[b'x'; 64 * 1024])
        .expect("the client is reading");
    writer.write_all(b"\n").expect("the client is reading");
    writer.finish().expect("the body is complete");
}
