//! The request a handler gets, and the helpers people expect on it.

use crate::fields::from_entries;
use crate::{Body, Error};
use http::Method;
use wasi::http::types::{IncomingRequest, Method as WasiMethod, Scheme};

/// A request with a [`Body`].
pub type Request<B = Body> = http::Request<B>;

/// The request as the host handed it over: method, absolute URI
/// (`scheme://authority/path?query`), headers, and the body streaming in.
pub(crate) fn from_incoming(raw: IncomingRequest) -> Result<Request, Error> {
    let invalid = |what: &str| Error::InvalidRequest(what.to_string());
    let method = from_wasi_method(raw.method()).map_err(|_| invalid("method"))?;
    let path = raw.path_with_query().unwrap_or_else(|| "/".into());
    let mut uri = http::Uri::builder();
    if let Some(authority) = raw.authority() {
        let scheme = match raw.scheme() {
            Some(Scheme::Https) => "https".to_string(),
            Some(Scheme::Other(other)) => other,
            _ => "http".to_string(),
        };
        uri = uri.scheme(scheme.as_str()).authority(authority);
    }
    let uri = uri
        .path_and_query(path)
        .build()
        .map_err(|_| invalid("URI"))?;
    // The fields are a child of the request: read them and let them go
    // before the request is consumed.
    let headers = from_entries(raw.headers().entries())?;
    let params = route_params(&headers);
    let mut request = http::Request::builder().method(method).uri(uri);
    if !params.is_empty() {
        request = request.extension(Params(params));
    }
    if let Some(map) = request.headers_mut() {
        *map = headers;
    }
    request
        .body(Body::incoming(raw))
        .map_err(|e| Error::InvalidRequest(e.to_string()))
}

/// The request header in which mod_wasm hands a file route's dynamic
/// segments to the guest, form-urlencoded (`users/[id].wasm` serving
/// `/users/42` sends `mod-wasm-params: id=42`). Apache drops a client's own.
const PARAMS_HEADER: &str = "mod-wasm-params";

/// The dynamic segments of a file route, decoded, in path order.
fn route_params(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(PARAMS_HEADER)
        .iter()
        .flat_map(|value| form_urlencoded::parse(value.as_bytes()).into_owned())
        .collect()
}

pub(crate) fn from_wasi_method(method: WasiMethod) -> Result<Method, http::method::InvalidMethod> {
    Ok(match method {
        WasiMethod::Get => Method::GET,
        WasiMethod::Head => Method::HEAD,
        WasiMethod::Post => Method::POST,
        WasiMethod::Put => Method::PUT,
        WasiMethod::Delete => Method::DELETE,
        WasiMethod::Connect => Method::CONNECT,
        WasiMethod::Options => Method::OPTIONS,
        WasiMethod::Trace => Method::TRACE,
        WasiMethod::Patch => Method::PATCH,
        WasiMethod::Other(other) => Method::from_bytes(other.as_bytes())?,
    })
}

pub(crate) fn to_wasi_method(method: &Method) -> WasiMethod {
    match *method {
        Method::GET => WasiMethod::Get,
        Method::HEAD => WasiMethod::Head,
        Method::POST => WasiMethod::Post,
        Method::PUT => WasiMethod::Put,
        Method::DELETE => WasiMethod::Delete,
        Method::CONNECT => WasiMethod::Connect,
        Method::OPTIONS => WasiMethod::Options,
        Method::TRACE => WasiMethod::Trace,
        Method::PATCH => WasiMethod::Patch,
        ref other => WasiMethod::Other(other.as_str().to_string()),
    }
}

/// The path parameters of a request, in its extensions, percent-decoded:
/// those a [`Router`](crate::Router) matched, after the dynamic segments of
/// the file route mod_wasm took to this component (`users/[id].wasm` for
/// `/users/42` gives `id` = `42`; see the README's "A folder of components
/// is a site"). [`RequestExt::param`] reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

/// Conveniences on any `http::Request`.
pub trait RequestExt {
    /// The query string's pairs, percent-decoded, in order
    /// (`?a=1&b=x%20y` gives `[("a", "1"), ("b", "x y")]`).
    fn query_pairs(&self) -> Vec<(String, String)>;

    /// The first value of query parameter `name`, percent-decoded.
    fn query(&self, name: &str) -> Option<String>;

    /// The path parameter `name`: of a [`Router`](crate::Router) route
    /// (`id` in `/users/{id}`) or of a file route (`users/[id].wasm`).
    fn param(&self, name: &str) -> Option<&str>;

    /// Header `name`, if present and text.
    fn header_str(&self, name: &str) -> Option<&str>;
}

impl<B> RequestExt for http::Request<B> {
    fn query_pairs(&self) -> Vec<(String, String)> {
        let query = self.uri().query().unwrap_or("");
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    fn query(&self, name: &str) -> Option<String> {
        let query = self.uri().query()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    fn param(&self, name: &str) -> Option<&str> {
        let Params(params) = self.extensions().get::<Params>()?;
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn header_str(&self, name: &str) -> Option<&str> {
        self.headers().get(name)?.to_str().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str) -> Request<()> {
        http::Request::get(uri)
            .header("x-name", "value")
            .body(())
            .unwrap()
    }

    #[test]
    fn query_pairs_are_decoded_in_order() {
        let request = get("http://h/p?b=x%20y&a=1&a=2&plus=a+b");
        assert_eq!(
            request.query_pairs(),
            [("b", "x y"), ("a", "1"), ("a", "2"), ("plus", "a b")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(request.query("a").as_deref(), Some("1"));
        assert_eq!(request.query("missing"), None);
        assert!(get("/no-query").query_pairs().is_empty());
    }

    #[test]
    fn headers_read_as_text() {
        assert_eq!(get("/").header_str("X-Name"), Some("value"));
        assert_eq!(get("/").header_str("other"), None);
    }

    #[test]
    fn params_come_from_the_extension() {
        let mut request = get("/users/7");
        assert_eq!(request.param("id"), None);
        request
            .extensions_mut()
            .insert(Params(vec![("id".into(), "7".into())]));
        assert_eq!(request.param("id"), Some("7"));
    }

    #[test]
    fn route_params_come_from_their_header_decoded() {
        let mut headers = http::HeaderMap::new();
        headers.insert("mod-wasm-params", "userId=a+b%2F&post=7".parse().unwrap());
        headers.insert("x-other", "1".parse().unwrap());
        assert_eq!(
            route_params(&headers),
            [("userId", "a b/"), ("post", "7")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert!(route_params(&http::HeaderMap::new()).is_empty());
    }

    #[test]
    fn methods_round_trip_through_wasi() {
        for method in [
            Method::GET,
            Method::PATCH,
            Method::from_bytes(b"PURGE").unwrap(),
        ] {
            assert_eq!(from_wasi_method(to_wasi_method(&method)).unwrap(), method);
        }
    }
}
