//! Behaviours that probe the limits and capabilities of the guest's
//! location: each either stays inside what the test's location grants, or
//! reports (or suffers) the refusal.

use super::{query_value, respond, start};
use mod_wasm_guest::wasi;
use wasi::http::types::{Fields, OutgoingRequest, ResponseOutparam, Scheme};

/// Burns CPU forever: only the timeout ends it.
pub fn spin() {
    let mut n: u64 = 0;
    loop {
        n = core::hint::black_box(n.wrapping_add(1));
    }
}

/// Sends a head and some bytes, then burns CPU forever.
pub fn spin_after_head(out: ResponseOutparam) {
    let mut writer = start(out, 200, &[("content-type", b"text/plain")]);
    writer.write_all(b"partial").expect("the client is reading");
    spin();
}

/// Waits `ms` milliseconds in the host (no Wasm runs), then answers.
pub fn sleep(query: &str, out: ResponseOutparam) {
    let ms: u64 = query_value(query, "ms")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
    respond(out, 200, &[], b"slept\n");
}

/// Allocates and touches `mib` MiB.
pub fn alloc(query: &str, out: ResponseOutparam) {
    let mib: usize = query_value(query, "mib")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1);
    let mut block = vec![0u8; mib << 20];
    for page in block.chunks_mut(65536) {
        page[0] = 1;
    }
    let touched: usize = block.iter().step_by(65536).map(|&b| b as usize).sum();
    respond(
        out,
        200,
        &[],
        format!("allocated {mib} MiB ({touched} pages)\n").as_bytes(),
    );
}

/// Recursion deep enough to exhaust Wasmtime's call stack (not the shadow
/// stack in linear memory: the frames hold only Wasm locals).
pub fn recurse(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        recurse(n - 1).wrapping_mul(3).wrapping_add(n)
    }
}

/// Streams forever, ignoring write errors: only the host can stop it.
pub fn endless(out: ResponseOutparam) {
    let mut writer = start(out, 200, &[("content-type", b"application/octet-stream")]);
    let piece = [b'e'; 4096];
    loop {
        let _ = writer.write_all(&piece);
    }
}

/// The environment, one `NAME=value` per line, sorted.
pub fn env(out: ResponseOutparam) {
    let mut vars: Vec<String> = std::env::vars()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    vars.sort();
    respond(out, 200, &[], vars.concat().as_bytes());
}

/// The file at `path`: 200 with its text, or 403 with the error.
pub fn read_file(query: &str, out: ResponseOutparam) {
    let path = query_value(query, "path").unwrap_or("");
    match std::fs::read_to_string(path) {
        Ok(text) => respond(out, 200, &[], text.as_bytes()),
        Err(e) => respond(out, 403, &[], format!("error: {e}\n").as_bytes()),
    }
}

/// Writes "written" to `path`: 200, or 403 with the error.
pub fn write_file(query: &str, out: ResponseOutparam) {
    let path = query_value(query, "path").unwrap_or("");
    match std::fs::write(path, "written") {
        Ok(()) => respond(out, 200, &[], b"written\n"),
        Err(e) => respond(out, 403, &[], format!("error: {e}\n").as_bytes()),
    }
}

/// GETs `url` (`scheme://authority/path`): "status N" and the body, or 502
/// with the error code the host gave.
pub fn fetch(query: &str, out: ResponseOutparam) {
    let url = query_value(query, "url").unwrap_or("");
    match get(url) {
        Ok((status, body)) => {
            let mut text = format!("status {status}\n").into_bytes();
            text.extend_from_slice(&body);
            respond(out, 200, &[], &text)
        }
        Err(why) => respond(out, 502, &[], format!("error: {why}\n").as_bytes()),
    }
}

/// Starts `n` GETs of `url` at once, then waits for them all: how many got
/// a response, and the error codes of the others.
pub fn fetch_many(query: &str, out: ResponseOutparam) {
    let url = query_value(query, "url").unwrap_or("");
    let n: usize = query_value(query, "n")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let pending: Vec<_> = (0..n).map(|_| start_get(url)).collect();
    let (mut answered, mut errors) = (0, Vec::new());
    for future in pending {
        match future.and_then(|f| wait(&f)) {
            Ok(_) => answered += 1,
            Err(why) => errors.push(why),
        }
    }
    errors.sort();
    errors.dedup();
    let text = format!("answered {answered}\nerrors {}\n", errors.join(" "));
    respond(out, 200, &[], text.as_bytes());
}

fn get(url: &str) -> Result<(u16, Vec<u8>), String> {
    let response = wait(&start_get(url)?)?;
    let status = response.status();
    let body = response.consume().map_err(|()| "body")?;
    let stream = body.stream().map_err(|()| "stream")?;
    let mut bytes = Vec::new();
    while let Ok(piece) = stream.blocking_read(65536) {
        bytes.extend_from_slice(&piece);
    }
    Ok((status, bytes))
}

fn wait(
    pending: &wasi::http::types::FutureIncomingResponse,
) -> Result<wasi::http::types::IncomingResponse, String> {
    pending.subscribe().block();
    pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "taken")?
        .map_err(|e| format!("{e:?}"))
}

fn start_get(url: &str) -> Result<wasi::http::types::FutureIncomingResponse, String> {
    let (scheme, rest) = url.split_once("://").ok_or("no scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = match scheme {
        "https" => Scheme::Https,
        _ => Scheme::Http,
    };
    request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    wasi::http::outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))
}

/// Tries a TCP connection to 127.0.0.1:`port` and a name lookup through
/// wasi:sockets, and reports both results.
pub fn socket(query: &str, out: ResponseOutparam) {
    use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let port: u16 = query_value(query, "port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(80);
    let network = wasi::sockets::instance_network::instance_network();
    let tcp = match wasi::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Err(e) => format!("create: {}", e.name()),
        Ok(socket) => {
            let address = IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port,
                address: (127, 0, 0, 1),
            });
            match socket.start_connect(&network, address) {
                Err(e) => format!("connect: {}", e.name()),
                Ok(()) => {
                    socket.subscribe().block();
                    match socket.finish_connect() {
                        Ok(_) => "connected".to_string(),
                        Err(e) => format!("connect: {}", e.name()),
                    }
                }
            }
        }
    };
    let lookup = match wasi::sockets::ip_name_lookup::resolve_addresses(&network, "localhost") {
        Err(e) => e.name().to_string(),
        Ok(stream) => {
            stream.subscribe().block();
            match stream.resolve_next_address() {
                Ok(Some(_)) => "resolved".to_string(),
                Ok(None) => "nothing".to_string(),
                Err(e) => e.name().to_string(),
            }
        }
    };
    respond(
        out,
        200,
        &[],
        format!("tcp: {tcp}\nlookup: {lookup}\n").as_bytes(),
    );
}
