//! `WasmAllowOutgoing` rules: `[scheme://]host[:port]`.
//!
//! * scheme: `http`, `https` or `*`; omitted means either.
//! * host: `*` (any public host), `*.example.com` (any public host below
//!   example.com, not example.com itself), `example.com`, `192.0.2.7`,
//!   `[2001:db8::7]`, or a network in CIDR form: `10.0.0.0/8`,
//!   `[fd00::/8]`.
//! * port: a number or `*`; omitted means the scheme's default port (80 for
//!   http, 443 for https).
//!
//! Host names and `*` say which names a guest may ask for, and reach public
//! addresses only. Addresses and networks say which addresses may be
//! reached, and are the only way to reach a loopback or private one: a name
//! that an allowed DNS record points at 127.0.0.1 does not open the server's
//! own network.

use std::net::IpAddr;

/// One parsed rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingRule {
    scheme: SchemeRule,
    host: HostRule,
    port: PortRule,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SchemeRule {
    Any,
    Http,
    Https,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostRule {
    /// `*`
    Any,
    /// `*.example.com`, stored as `.example.com`.
    Below(String),
    /// An exact name, lower case, without a trailing dot.
    Name(String),
    /// An address (`prefix` = all bits) or a network.
    Net { network: IpAddr, prefix: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortRule {
    Default,
    Any,
    Exact(u16),
}

/// The host of an outgoing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A name to resolve (lower case, no trailing dot).
    Name(String),
    /// An address literal.
    Ip(IpAddr),
}

impl OutgoingRule {
    /// Parses one rule; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let fail = |why: &str| Err(format!("'{text}': {why}"));
        let (scheme, rest) = match text.split_once("://") {
            Some(("http", rest)) => (SchemeRule::Http, rest),
            Some(("https", rest)) => (SchemeRule::Https, rest),
            Some(("*", rest)) => (SchemeRule::Any, rest),
            Some((other, _)) => {
                return fail(&format!("the scheme '{other}' is not http, https or *"));
            }
            None => (SchemeRule::Any, text),
        };
        // A '/' may only start a CIDR prefix length (digits, then the port).
        if let Some((_, after)) = rest.split_once('/') {
            let after = after.trim_start_matches(|c: char| c.is_ascii_digit());
            let after = after.strip_prefix(']').unwrap_or(after);
            let prefix_only = after.is_empty()
                || after.strip_prefix(':').is_some_and(|port| {
                    port == "*" || (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
                });
            if !prefix_only || rest.ends_with('/') {
                return fail("a rule names a scheme, host and port, not a path");
            }
        }
        // The host ends at ']' for IPv6, else at the last ':'.
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let Some((host, after)) = inner.split_once(']') else {
                return fail("'[' without ']'");
            };
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return fail("unexpected text after ']'"),
                },
            }
        } else {
            // Without brackets an IPv6 address cannot be told from its
            // port: `::1` would read as `::` on port 1.
            if rest.matches(':').count() > 1 {
                return fail("an IPv6 address goes in brackets: [::1], [fd00::/8]:443");
            }
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => PortRule::Default,
            Some("*") => PortRule::Any,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => PortRule::Exact(port),
                _ => return fail(&format!("the port '{port}' is not 1-65535 or *")),
            },
        };
        let host = match parse_host(host) {
            Ok(host) => host,
            Err(why) => return fail(&why),
        };
        Ok(OutgoingRule { scheme, host, port })
    }

    /// Whether this rule lets a guest ask for `target` on `port` (`https`
    /// tells the scheme): `*`, `*.suffix` and exact names. What it reaches
    /// is then public addresses only.
    pub fn matches_name(&self, https: bool, target: &Target, port: u16) -> bool {
        if !self.scheme_and_port_match(https, port) {
            return false;
        }
        match (&self.host, target) {
            (HostRule::Any, _) => true,
            (HostRule::Below(suffix), Target::Name(name)) => name.ends_with(suffix.as_str()),
            (HostRule::Name(rule), Target::Name(name)) => rule == name,
            _ => false,
        }
    }

    /// Whether this rule is an address or network rule containing `ip`:
    /// such rules reach any address they name, private ones included.
    pub fn covers(&self, https: bool, ip: IpAddr, port: u16) -> bool {
        match self.host {
            HostRule::Net { network, prefix } => {
                self.scheme_and_port_match(https, port) && in_network(ip, network, prefix)
            }
            _ => false,
        }
    }

    fn scheme_and_port_match(&self, https: bool, port: u16) -> bool {
        let scheme_ok = match self.scheme {
            SchemeRule::Any => true,
            SchemeRule::Http => !https,
            SchemeRule::Https => https,
        };
        let port_ok = match self.port {
            PortRule::Any => true,
            PortRule::Exact(p) => p == port,
            PortRule::Default => port == if https { 443 } else { 80 },
        };
        scheme_ok && port_ok
    }
}

fn parse_host(host: &str) -> Result<HostRule, String> {
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if host == "*" {
        return Ok(HostRule::Any);
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        let name = normalize_name(suffix)?;
        return Ok(HostRule::Below(format!(".{name}")));
    }
    if host.contains('*') {
        return Err("'*' is only allowed as the whole host or as its first label ('*.')".into());
    }
    let (address, prefix) = match host.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (host, None),
    };
    if let Ok(network) = address.parse::<IpAddr>() {
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => return Err(format!("the prefix length '/{prefix}' is not 0-{bits}")),
            },
        };
        return Ok(HostRule::Net { network, prefix });
    }
    if prefix.is_some() {
        return Err(format!(
            "'{address}' is not an IP address, so it takes no prefix"
        ));
    }
    Ok(HostRule::Name(normalize_name(host)?))
}

/// Lower case, without a trailing dot; only the characters of DNS names.
fn normalize_name(name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(name)
    } else {
        Err(format!("'{name}' is not a host name"))
    }
}

impl Target {
    /// The host of a request URI (`uri.host()`, brackets and all).
    pub fn from_uri_host(host: &str) -> Result<Self, String> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Target::Ip(ip));
        }
        normalize_name(host).map(Target::Name)
    }
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Target {
        Target::Name(n.into())
    }

    fn ip(a: &str) -> Target {
        Target::Ip(a.parse().unwrap())
    }

    fn ip_addr(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    #[test]
    fn names_and_wildcards_match_names() {
        let exact = OutgoingRule::parse("https://API.example.com.").unwrap();
        assert!(exact.matches_name(true, &name("api.example.com"), 443));
        assert!(!exact.matches_name(false, &name("api.example.com"), 80));
        assert!(!exact.matches_name(true, &name("api.example.com"), 8443));
        assert!(!exact.covers(true, ip_addr("93.184.216.34"), 443));

        let below = OutgoingRule::parse("*.example.com:*").unwrap();
        assert!(below.matches_name(false, &name("a.b.example.com"), 8080));
        assert!(!below.matches_name(true, &name("example.com"), 443));
        assert!(!below.matches_name(true, &name("badexample.com"), 443));

        let any = OutgoingRule::parse("http://*").unwrap();
        assert!(any.matches_name(false, &ip("127.0.0.1"), 80));
        assert!(!any.matches_name(true, &ip("127.0.0.1"), 443));
        assert!(!any.covers(false, ip_addr("127.0.0.1"), 80));
    }

    #[test]
    fn addresses_and_networks_cover_addresses() {
        let loopback = OutgoingRule::parse("http://127.0.0.1:8080").unwrap();
        assert!(loopback.covers(false, ip_addr("127.0.0.1"), 8080));
        assert!(!loopback.covers(false, ip_addr("127.0.0.2"), 8080));
        assert!(!loopback.covers(true, ip_addr("127.0.0.1"), 8080));
        assert!(!loopback.matches_name(false, &name("localhost"), 8080));

        let net = OutgoingRule::parse("10.0.0.0/8:*").unwrap();
        assert!(net.covers(true, ip_addr("10.200.1.1"), 1));
        assert!(!net.covers(true, ip_addr("11.0.0.1"), 1));

        let v6 = OutgoingRule::parse("[fd00::/8]:443").unwrap();
        assert!(v6.covers(true, ip_addr("fd12::1"), 443));
        assert!(!v6.covers(true, ip_addr("fe80::1"), 443));

        let any_net = OutgoingRule::parse("0.0.0.0/0:*").unwrap();
        assert!(any_net.covers(false, ip_addr("192.168.0.1"), 5));
    }

    #[test]
    fn bad_rules_say_why() {
        for (text, why) in [
            ("ftp://example.com", "scheme"),
            ("example.com:0", "port"),
            ("example.com:http", "port"),
            ("exa*mple.com", "'*'"),
            ("10.0.0.0/33", "prefix"),
            ("example.com/8", "prefix"),
            ("http://example.com/path", "path"),
            ("http://", "missing"),
            ("[::1", "']'"),
            ("::1", "brackets"),
            (":::*", "brackets"),
            ("fd00::/8:443", "brackets"),
            ("bad name", "not a host name"),
        ] {
            let err = OutgoingRule::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn targets_from_uri_hosts() {
        assert_eq!(Target::from_uri_host("[::1]").unwrap(), ip("::1"));
        assert_eq!(
            Target::from_uri_host("Example.COM").unwrap(),
            name("example.com")
        );
    }
}
