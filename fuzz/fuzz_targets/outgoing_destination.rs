//! The outgoing allow-list decision (`permitted_addresses`) for any URI a
//! guest could ask for and any addresses its name could resolve to, under
//! a fixed set of rules: a wildcard, one loopback address and port, and a
//! private network. Whatever the input, an address is only ever permitted
//! if it is public, or a rule names it with the request's scheme and port,
//! and a URI with userinfo is never sent.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mod_wasm_host::outgoing::{OutgoingRule, is_public, permitted_addresses};
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

static RULES: LazyLock<Vec<Arc<OutgoingRule>>> = LazyLock::new(|| {
    ["*://*:*", "http://127.0.0.1:8080", "https://10.0.0.0/8"]
        .iter()
        .map(|text| Arc::new(OutgoingRule::parse(text).unwrap()))
        .collect()
});

#[derive(Arbitrary, Debug)]
struct Input {
    uri: String,
    resolved: Vec<IpAddr>,
}

fuzz_target!(|input: Input| {
    let Ok(uri) = input.uri.parse::<http::Uri>() else {
        return;
    };
    let Ok(allowed) = permitted_addresses(&RULES, &uri, &input.resolved) else {
        return;
    };
    assert!(
        !uri.authority().is_some_and(|a| a.as_str().contains('@')),
        "userinfo allowed: {uri}"
    );
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    for ip in allowed {
        assert!(input.resolved.contains(&ip), "{ip} was never resolved");
        let named = match ip {
            IpAddr::V4(v4) => {
                (v4.octets() == [127, 0, 0, 1] && !https && port == 8080)
                    || (v4.octets()[0] == 10 && https && port == 443)
            }
            IpAddr::V6(_) => false,
        };
        assert!(is_public(ip) || named, "{uri} may reach {ip}");
    }
});
