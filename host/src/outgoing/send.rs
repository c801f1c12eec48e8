//! Sending an outgoing request that the rules allow: resolve, check every
//! address, connect to a checked one, TLS for https, then HTTP/1.1.

use super::is_public;
use super::rule::{OutgoingRule, Target};
use crate::log::{LogKind, RequestLog};
use crate::request_io::MAX_BODY_CHUNK;
use http::uri::Scheme;
use http_body_util::BodyExt;
use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::task::Poll;
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Connecting (DNS included) may take this long unless the guest asks for
/// less. Everything is also bounded by the request's `WasmTimeout`.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Outgoing requests one request may have open at once; more are refused
/// with `connection-limit-reached`, so that a guest cannot use up the
/// child's sockets.
pub(crate) const MAX_OPEN: usize = 8;

/// Refusals logged per request; one more line says the rest are not.
pub(crate) const MAX_LOGGED_REFUSALS: usize = 10;

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;
type Sent = Result<(http::Response<WasiBody>, IoFuture), Error>;

/// The `wasi:http` hooks of one request: outgoing requests go where the
/// location's rules allow, and nowhere else.
pub struct OutgoingHooks {
    rules: Vec<Arc<OutgoingRule>>,
    log: Arc<dyn RequestLog>,
    open: Arc<AtomicUsize>,
    refusals: Arc<AtomicUsize>,
}

impl OutgoingHooks {
    /// Hooks allowing what `rules` allow (nothing when empty); refusals are
    /// logged to `log`.
    pub fn new(rules: Vec<Arc<OutgoingRule>>, log: Arc<dyn RequestLog>) -> Self {
        OutgoingHooks {
            rules,
            log,
            open: Arc::default(),
            refusals: Arc::default(),
        }
    }
}

/// DNS lookups in flight in this process. A lookup cannot be cancelled (it
/// runs `getaddrinfo` on a blocking thread), so this bounds what guests
/// that give up on their lookups can leave queued.
static LOOKUPS: LazyLock<Arc<AtomicUsize>> = LazyLock::new(Arc::default);

/// The most lookups in flight per process.
pub(crate) const MAX_LOOKUPS: usize = 16;

/// One unit of a counted allowance (a request's open outgoing requests, the
/// process's DNS lookups), given back on drop.
struct Permit(Arc<AtomicUsize>);

impl Permit {
    /// A unit of `count`, unless `max` are taken.
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Permit> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(count.clone()))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Logs a refusal, up to [`MAX_LOGGED_REFUSALS`] per request.
fn log_refusal(log: &dyn RequestLog, refusals: &AtomicUsize, text: &str) {
    match refusals.fetch_add(1, Ordering::Relaxed) {
        n if n < MAX_LOGGED_REFUSALS => log.log(LogKind::OutgoingDenied, text.as_bytes()),
        MAX_LOGGED_REFUSALS => log.log(
            LogKind::OutgoingDenied,
            b"further refused outgoing requests of this request are not logged",
        ),
        _ => {}
    }
}

impl WasiHttpHooks for OutgoingHooks {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        MAX_BODY_CHUNK
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let rules = self.rules.clone();
        let log = self.log.clone();
        let refusals = self.refusals.clone();
        let destination = destination(request.uri());
        // The rules first: a denied request takes no slot.
        let checked = check(&rules, request.uri()).and_then(|checked| {
            let slot = Permit::take(&self.open, MAX_OPEN)
                .ok_or_else(|| Refusal::Limited(format!("{MAX_OPEN} are already open")))?;
            Ok((checked, slot))
        });
        Box::new(async move {
            let result = match checked {
                Ok((checked, slot)) => send(&rules, checked, request, options)
                    .await
                    .map(|(response, io)| (response, io, slot)),
                Err(refusal) => Err(refusal),
            };
            if let Err(Refusal::Denied(why) | Refusal::Prohibited(why) | Refusal::Limited(why)) =
                &result
            {
                let text = format!("outgoing request to {destination} refused: {why}");
                log_refusal(&*log, &refusals, &text);
            }
            let (response, io, slot) = result.map_err(Refusal::into_error)?;
            // The slot is held until the connection is done with.
            let io: IoFuture = Box::new(async move {
                let _slot = slot;
                Box::into_pin(io).await
            });
            Ok((response, io))
        })
    }
}

/// The URI for a log line, without any `user:password@` in it.
fn destination(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("?");
    let host = uri.host().unwrap_or("?");
    let port = uri.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    format!("{scheme}://{host}{port}{path}")
}

/// Why a request was not sent.
enum Refusal {
    /// No rule allows the destination.
    Denied(String),
    /// Rules allow the name, but only for public addresses, and it resolves
    /// to none.
    Prohibited(String),
    /// The request already has [`MAX_OPEN`] outgoing requests open.
    Limited(String),
    /// Allowed, but it failed (DNS, connect, TLS, HTTP).
    Failed(Error),
}

impl Refusal {
    fn into_error(self) -> Error {
        match self {
            Refusal::Denied(_) => Error::HttpRequestDenied,
            Refusal::Prohibited(_) => Error::DestinationIpProhibited,
            Refusal::Limited(_) => Error::ConnectionLimitReached,
            Refusal::Failed(error) => error,
        }
    }
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal::Failed(error)
    }
}

/// A destination the rules let the guest ask for.
struct Checked {
    https: bool,
    target: Target,
    port: u16,
    /// A name rule matched: public addresses may be reached.
    named: bool,
}

/// Whether the rules let the guest ask for `uri` at all. Names are checked
/// before any DNS lookup, so that a guest cannot use lookups of names nobody
/// allowed as a channel.
fn check(rules: &[Arc<OutgoingRule>], uri: &http::Uri) -> Result<Checked, Refusal> {
    let https = match uri.scheme() {
        Some(scheme) if *scheme == Scheme::HTTPS => true,
        Some(scheme) if *scheme == Scheme::HTTP => false,
        _ => return Err(Refusal::Denied("only http and https are supported".into())),
    };
    // `user@host` would be sent whole as the Host header, so that the
    // server sees a name no rule was checked against.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(Refusal::Denied(
            "an outgoing authority may not carry userinfo (user@host)".into(),
        ));
    }
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let target = Target::from_uri_host(host).map_err(|_| Error::HttpRequestUriInvalid)?;
    let named = rules
        .iter()
        .any(|rule| rule.matches_name(https, &target, port));
    let asked_for = match &target {
        Target::Name(_) => named,
        Target::Ip(ip) => named || rules.iter().any(|rule| rule.covers(https, *ip, port)),
    };
    if !asked_for {
        return Err(Refusal::Denied(if rules.is_empty() {
            "this location allows no outgoing requests (WasmAllowOutgoing)".into()
        } else {
            "no WasmAllowOutgoing rule of this location matches".into()
        }));
    }
    Ok(Checked {
        https,
        target,
        port,
        named,
    })
}

/// Whether a checked request may connect to `ip`: an address or network
/// rule names it, or a name rule matched and it is public.
fn reachable(rules: &[Arc<OutgoingRule>], https: bool, named: bool, ip: IpAddr, port: u16) -> bool {
    rules.iter().any(|rule| rule.covers(https, ip, port)) || (named && is_public(ip))
}

/// The addresses among `resolved` (what the host of `uri` resolved to; an
/// address literal resolves to itself) that a guest's request for `uri`
/// may connect to under `rules`, or why it may not be sent at all: the
/// whole allow-list decision, without the network. `send_request` makes
/// the same two checks around its lookup.
pub fn permitted_addresses(
    rules: &[Arc<OutgoingRule>],
    uri: &http::Uri,
    resolved: &[IpAddr],
) -> Result<Vec<IpAddr>, String> {
    let checked = check(rules, uri).map_err(|refusal| match refusal {
        Refusal::Denied(why) | Refusal::Prohibited(why) | Refusal::Limited(why) => why,
        Refusal::Failed(error) => error.to_string(),
    })?;
    Ok(resolved
        .iter()
        .copied()
        .filter(|&ip| reachable(rules, checked.https, checked.named, ip, checked.port))
        .collect())
}

async fn send(
    rules: &[Arc<OutgoingRule>],
    checked: Checked,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), Refusal> {
    let Checked {
        https,
        target,
        port,
        named,
    } = checked;
    let uri = request.uri().clone();
    let options = options.unwrap_or_default();
    let connect_timeout = options
        .connect_timeout
        .map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT));
    // One deadline for resolving, connecting and the TLS handshake.
    let deadline = tokio::time::Instant::now() + connect_timeout;
    let addresses = resolve(&target, port, deadline).await?;
    let allowed: Vec<SocketAddr> = addresses
        .iter()
        .copied()
        .filter(|a| reachable(rules, https, named, a.ip(), port))
        .collect();
    if allowed.is_empty() {
        return Err(Refusal::Prohibited(format!(
            "it resolves only to non-public addresses ({}), which only a WasmAllowOutgoing \
             rule naming the address or its network reaches",
            addresses
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let stream = tokio::time::timeout_at(deadline, connect(&allowed))
        .await
        .map_err(|_| Error::ConnectionTimeout)??;

    // The request line carries the path only; Host is already set.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let io = if https {
        let name = match &target {
            Target::Name(name) => rustls_pki_name(name)?,
            Target::Ip(ip) => tokio_rustls::rustls::pki_types::ServerName::from(*ip),
        };
        let handshake = tokio_rustls::TlsConnector::from(tls_config()).connect(name, stream);
        let tls = tokio::time::timeout_at(deadline, handshake)
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        exchange(TokioIo::new(tls), request, options).await?
    } else {
        exchange(TokioIo::new(stream), request, options).await?
    };
    Ok(io)
}

fn rustls_pki_name(
    name: &str,
) -> Result<tokio_rustls::rustls::pki_types::ServerName<'static>, Refusal> {
    tokio_rustls::rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|_| Refusal::Failed(Error::HttpRequestUriInvalid))
}

async fn resolve(
    target: &Target,
    port: u16,
    deadline: tokio::time::Instant,
) -> Result<Vec<SocketAddr>, Refusal> {
    let name = match target {
        Target::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
        Target::Name(name) => name.clone(),
    };
    let permit = Permit::take(&LOOKUPS, MAX_LOOKUPS).ok_or(Error::DnsTimeout)?;
    let lookup = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port))
            .map(|found| found.collect::<Vec<SocketAddr>>())
    });
    let addresses = tokio::time::timeout_at(deadline, lookup)
        .await
        .map_err(|_| Error::DnsTimeout)?
        .map_err(|_| Error::DnsTimeout)?
        .map_err(|e| Error::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        })?;
    if addresses.is_empty() {
        return Err(Error::DestinationNotFound.into());
    }
    Ok(addresses)
}

/// Tries each address in turn; the caller bounds the time.
async fn connect(addresses: &[SocketAddr]) -> Result<TcpStream, Refusal> {
    let mut last = Error::ConnectionRefused;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Error::Connect(e),
        }
    }
    Err(last.into())
}

/// Web PKI roots, built once per process.
fn tls_config() -> Arc<tokio_rustls::rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<tokio_rustls::rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = tokio_rustls::rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = tokio_rustls::rustls::crypto::ring::default_provider();
            Arc::new(
                tokio_rustls::rustls::ClientConfig::builder_with_provider(provider.into())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// HTTP/1.1 over `io`: the response head, and the connection's future, which
/// carries the response body.
async fn exchange<I>(
    io: I,
    request: http::Request<WasiBody>,
    options: RequestOptions,
) -> Result<(http::Response<WasiBody>, IoFuture), Refusal>
where
    I: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
{
    // No I/O happens here: the handshake only sets up the connection.
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(io)
        .await
        .map_err(Error::from)?;
    let first_byte = options
        .first_byte_timeout
        .unwrap_or(Duration::from_secs(600));

    // The connection must be driven while we wait for the head.
    let mut connection = Some(connection);
    let mut response = pin!(tokio::time::timeout(
        first_byte,
        sender.send_request(request)
    ));
    let response = poll_fn(|cx| {
        if let Poll::Ready(result) = response.as_mut().poll(cx) {
            return Poll::Ready(
                result
                    .map_err(|_| Error::ConnectionReadTimeout)?
                    .map_err(Error::from),
            );
        }
        if let Some(conn) = connection.as_mut()
            && let Poll::Ready(done) = Pin::new(conn).poll(cx)
        {
            connection = None;
            if let Err(e) = done {
                return Poll::Ready(Err(Error::from(e)));
            }
        }
        Poll::Pending
    })
    .await?;
    let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
    let io: IoFuture = Box::new(async move {
        match connection {
            Some(connection) => connection.await.map_err(Error::from),
            None => Ok(()),
        }
    });
    Ok((response, io))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(texts: &[&str]) -> Vec<Arc<OutgoingRule>> {
        texts
            .iter()
            .map(|t| Arc::new(OutgoingRule::parse(t).unwrap()))
            .collect()
    }

    fn ips(texts: &[&str]) -> Vec<IpAddr> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn userinfo_is_refused_before_anything_else() {
        let uri: http::Uri = "http://public.example.com@127.0.0.1:8080/".parse().unwrap();
        let why = permitted_addresses(&rules(&["*://*:*", "http://127.0.0.1:8080"]), &uri, &[])
            .unwrap_err();
        assert!(why.contains("userinfo"), "{why}");
    }

    #[test]
    fn a_wildcard_reaches_public_addresses_only() {
        let uri: http::Uri = "http://api.example.com/x".parse().unwrap();
        let resolved = ips(&["127.0.0.1", "10.1.2.3", "93.184.215.14", "::ffff:127.0.0.1"]);
        let allowed = permitted_addresses(&rules(&["*"]), &uri, &resolved).unwrap();
        assert_eq!(allowed, ips(&["93.184.215.14"]));
    }

    #[test]
    fn an_address_rule_reaches_its_address_on_its_port_only() {
        let local = rules(&["http://127.0.0.1:8080"]);
        let uri: http::Uri = "http://127.0.0.1:8080/".parse().unwrap();
        let allowed = permitted_addresses(&local, &uri, &ips(&["127.0.0.1"])).unwrap();
        assert_eq!(allowed, ips(&["127.0.0.1"]));
        let other_port: http::Uri = "http://127.0.0.1:8081/".parse().unwrap();
        assert!(permitted_addresses(&local, &other_port, &ips(&["127.0.0.1"])).is_err());
    }
}
