//! Apache's view of a request turned into the guest's `http::Request`
//! (`component::build_request`), from any bytes. It either refuses or keeps
//! the request exactly: the method, the target (but a fragment), and every
//! header but the hop-by-hop ones, in order and byte for byte; never a
//! panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mod_wasm_host::component::{RequestHead, build_request};
use mod_wasm_host::request_io::{BodySource, ReadError};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a [u8],
    https: bool,
    authority: &'a [u8],
    path_with_query: &'a [u8],
    headers: Vec<(&'a [u8], &'a [u8])>,
}

struct Empty;

impl BodySource for Empty {
    fn read(&mut self, _: &mut [u8]) -> Result<usize, ReadError> {
        Ok(0)
    }
}

/// The fields wasi:http withholds from a guest.
const WITHHELD: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
];

fuzz_target!(|input: Input<'_>| {
    let head = RequestHead {
        method: input.method,
        scheme: if input.https { b"https" } else { b"http" },
        authority: input.authority,
        path_with_query: input.path_with_query,
        headers: input.headers.iter().copied(),
    };
    let Ok((_, request)) = build_request(head, Empty) else {
        return;
    };
    assert_eq!(request.method().as_str().as_bytes(), input.method);
    // A request target has no fragment (RFC 9112 3.2); one sent anyway is
    // dropped, as the http crate parses it.
    if !input.path_with_query.contains(&b'#') {
        let target = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().as_bytes());
        assert_eq!(target, Some(input.path_with_query));
    }
    let kept: Vec<(String, &[u8])> = input
        .headers
        .iter()
        .map(|(name, value)| (String::from_utf8_lossy(name).to_ascii_lowercase(), *value))
        .filter(|(name, _)| !WITHHELD.contains(&name.as_str()))
        .collect();
    let got: Vec<(String, &[u8])> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes()))
        .collect();
    // `http::HeaderMap` iterates by name (first occurrence), then values.
    let mut expected = kept.clone();
    let order: Vec<String> = kept.iter().fold(Vec::new(), |mut names, (name, _)| {
        if !names.contains(name) {
            names.push(name.clone());
        }
        names
    });
    expected.sort_by_key(|(name, _)| order.iter().position(|n| n == name));
    assert_eq!(got, expected);
});
