//! `WasmAllowOutgoing` rule text and the address classification. A rule
//! either parses or says why not, never panics, and is either an address
//! rule or a name rule, never both; `is_public` never calls an address of
//! the ranges the standard library knows as local public.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mod_wasm_host::outgoing::{OutgoingRule, is_public};
use std::net::IpAddr;

#[derive(Arbitrary, Debug)]
struct Input {
    rule: String,
    ip: IpAddr,
    https: bool,
    port: u16,
}

fuzz_target!(|input: Input| {
    let v4 = match input.ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    if let Some(v4) = v4 {
        let local = v4.is_loopback()
            || v4.is_private()
            || v4.is_link_local()
            || v4.is_unspecified()
            || v4.is_broadcast()
            || v4.is_multicast()
            || v4.is_documentation();
        assert!(
            !(local && is_public(input.ip)),
            "{} counted as public",
            input.ip
        );
    }
    if let IpAddr::V6(v6) = input.ip {
        let local = v6.is_loopback()
            || v6.is_unspecified()
            || v6.is_multicast()
            || v6.is_unique_local()
            || v6.is_unicast_link_local();
        assert!(
            !(local && is_public(input.ip)),
            "{} counted as public",
            input.ip
        );
    }
    match OutgoingRule::parse(&input.rule) {
        Err(why) => assert!(why.starts_with('\''), "unhelpful error: {why}"),
        Ok(rule) => {
            // Address and network rules cover addresses and never match a
            // name; name rules never cover an address (they reach public
            // addresses only, after a lookup).
            let name = mod_wasm_host::outgoing::Target::Name("example.com".into());
            if rule.covers(input.https, input.ip, input.port) {
                assert!(
                    !rule.matches_name(input.https, &name, input.port),
                    "'{}' is both an address and a name rule",
                    input.rule
                );
            }
        }
    }
});
