//! The end-to-end tests' guest: one component, many behaviours, chosen by
//! the last segment of the request path (`/any/prefix/echo`, ...). Each
//! behaviour exists to be checked by a test in `tests/e2e/`.

use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

struct TestGuest;

impl wasi::exports::http::incoming_handler::Guest for TestGuest {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let target = request.path_with_query().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let op = path.rsplit('/').next().unwrap_or("");
        match op {
            "echo" => echo(request, out),
            "status" => status(query, out),
            "headers" => headers(request, out),
            "upload" => upload(request, out),
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
            "longline" => long_line(out),
            "sized" => respond(out, 200, &[("content-length", b"11")], b"hello sized"),
            _ => respond(out, 200, &[], format!("test guest: {path}\n").as_bytes()),
        }
    }
}

wasi::http::proxy::export!(TestGuest);

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn fields(list: &[(&str, &[u8])]) -> Fields {
    let fields = Fields::new();
    for (name, value) in list {
        fields.append(name, value).expect("a valid header");
    }
    fields
}

/// Sets the head, then returns the body and its stream.
fn start(
    out: ResponseOutparam,
    code: u16,
    headers: &[(&str, &[u8])],
) -> (OutgoingBody, OutputStream) {
    let response = OutgoingResponse::new(fields(headers));
    response.set_status_code(code).expect("a valid status");
    let body = response.body().expect("a body");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("a stream");
    (body, stream)
}

fn write_all(stream: &OutputStream, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // blocking_write_and_flush takes at most 4096 bytes per call.
        let n = bytes.len().min(4096);
        stream
            .blocking_write_and_flush(&bytes[..n])
            .expect("the client is reading");
        bytes = &bytes[n..];
    }
}

fn end(body: OutgoingBody, stream: OutputStream) {
    drop(stream);
    OutgoingBody::finish(body, None).expect("the body is complete");
}

fn respond(out: ResponseOutparam, code: u16, headers: &[(&str, &[u8])], text: &[u8]) {
    let (body, stream) = start(out, code, headers);
    write_all(&stream, text);
    end(body, stream);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The request as the guest saw it, one fact per line; header values in hex
/// so that any byte survives the trip.
fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let method = match request.method() {
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
    };
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
    let incoming = request.consume().expect("a body");
    let input = incoming.stream().expect("a stream");
    let (body, stream) = start(out, 200, &[("content-type", b"application/octet-stream")]);
    loop {
        match input.blocking_read(65536) {
            Ok(chunk) => write_all(&stream, &chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                panic!("reading the request body failed: {}", e.to_debug_string())
            }
        }
    }
    end(body, stream);
}

/// `mib` MiB of a repeating 0..=255 pattern, written 4 KiB at a time.
fn big(query: &str, out: ResponseOutparam) {
    let mib: usize = query_value(query, "mib")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1);
    let pattern: Vec<u8> = (0..4096).map(|i| i as u8).collect();
    let (body, stream) = start(out, 200, &[("content-type", b"application/octet-stream")]);
    for _ in 0..mib * 256 {
        stream
            .blocking_write_and_flush(&pattern)
            .expect("the client is reading");
    }
    end(body, stream);
}

/// "first", a pause of one second, then "last": the first bytes must reach
/// the client before the guest is done.
fn slow(out: ResponseOutparam) {
    let (body, stream) = start(out, 200, &[("content-type", b"text/plain")]);
    write_all(&stream, b"first\n");
    wasi::clocks::monotonic_clock::subscribe_duration(1_000_000_000).block();
    write_all(&stream, b"last\n");
    end(body, stream);
}

fn out_of_bounds() {
    // Far beyond any memory this guest has: the load traps.
    let address = core::hint::black_box(0xffff_fff0usize) as *const u64;
    let value = unsafe { core::ptr::read_volatile(address) };
    core::hint::black_box(value);
}

fn trap_after_head(out: ResponseOutparam) {
    let (_body, stream) = start(out, 200, &[("content-type", b"text/plain")]);
    write_all(&stream, b"partial");
    core::arch::wasm32::unreachable();
}

/// Declares 100 bytes, sends 10.
fn length_lie(out: ResponseOutparam) {
    let (body, stream) = start(out, 200, &[("content-length", b"100")]);
    write_all(&stream, b"0123456789");
    drop(stream);
    // Finishing short is refused by the host; the guest gives up.
    let _ = OutgoingBody::finish(body, None);
}

/// Sets the response, writes a little, and returns with the body neither
/// finished nor dropped (as a guest that leaks the resource would).
fn unfinished(out: ResponseOutparam) {
    let (body, stream) = start(out, 200, &[("content-type", b"text/plain")]);
    write_all(&stream, b"partial");
    std::mem::forget(stream);
    std::mem::forget(body);
}

/// A first line, then 64 KiB without a newline.
fn long_line(out: ResponseOutparam) {
    let (body, stream) = start(out, 200, &[("content-type", b"text/plain")]);
    write_all(&stream, b"start\n");
    write_all(&stream, &[b'x'; 64 * 1024]);
    write_all(&stream, b"\n");
    end(body, stream);
}
