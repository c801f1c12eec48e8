//! Turning Apache's view of a request into the `http` types wasi:http wants.

use super::RequestBody;
use crate::request_io::BodySource;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderName, HeaderValue, Method, Uri};
use wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// A request head as Apache received it. Header names and values are bytes:
/// they need not be UTF-8.
pub struct RequestHead<'a, H> {
    /// The method, including extension methods.
    pub method: &'a [u8],
    /// `http` or `https`.
    pub scheme: &'a [u8],
    /// `host[:port]`, from the Host header or the server name.
    pub authority: &'a [u8],
    /// The request target as received: path and query.
    pub path_with_query: &'a [u8],
    /// Every header in order.
    pub headers: H,
}

/// Builds the request for the guest, or says which part is not valid HTTP.
pub fn build<'a, H, S>(
    head: RequestHead<'a, H>,
    body: S,
) -> Result<(Scheme, http::Request<RequestBody<S>>), String>
where
    H: Iterator<Item = (&'a [u8], &'a [u8])>,
    S: BodySource,
{
    let method = Method::from_bytes(head.method).map_err(|_| "invalid method".to_string())?;
    let (scheme, uri_scheme) = match head.scheme {
        b"https" => (Scheme::Https, http::uri::Scheme::HTTPS),
        _ => (Scheme::Http, http::uri::Scheme::HTTP),
    };
    let authority = Authority::try_from(head.authority)
        .map_err(|_| format!("invalid authority {:?}", lossy(head.authority)))?;
    let path = PathAndQuery::try_from(head.path_with_query)
        .map_err(|_| format!("invalid request target {:?}", lossy(head.path_with_query)))?;
    let uri = Uri::builder()
        .scheme(uri_scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|e| format!("invalid request URI: {e}"))?;

    let mut request = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(RequestBody::new(body))
        .map_err(|e| format!("invalid request: {e}"))?;
    let headers = request.headers_mut();
    for (name, value) in head.headers {
        let name = HeaderName::from_bytes(name)
            .map_err(|_| format!("invalid header name {:?}", lossy(name)))?;
        // wasi:http withholds hop-by-hop fields and Host (the authority
        // carries it). Dropped here rather than by wasmtime-wasi-http, whose
        // removal would reorder the remaining fields.
        if DEFAULT_FORBIDDEN_HEADERS.contains(&name) {
            continue;
        }
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("invalid value for header {name}"))?;
        headers.append(name, value);
    }
    Ok((scheme, request))
}

/// A request's trailer section for the guest: the fields that are valid
/// HTTP, in order, without those wasi:http withholds. A field that is not
/// valid is left out rather than failing a request whose body is already
/// read.
pub fn trailers<'a>(fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in fields {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            && !DEFAULT_FORBIDDEN_HEADERS.contains(&name)
        {
            map.append(name, value);
        }
    }
    map
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_io::ReadError;

    struct Empty;
    impl BodySource for Empty {
        fn read(&mut self, _: &mut [u8]) -> Result<usize, ReadError> {
            Ok(0)
        }
    }

    fn head<'a>(
        method: &'a [u8],
        path: &'a [u8],
        headers: &'a [(&'a [u8], &'a [u8])],
    ) -> RequestHead<'a, impl Iterator<Item = (&'a [u8], &'a [u8])>> {
        RequestHead {
            method,
            scheme: b"https",
            authority: b"example.test:8443",
            path_with_query: path,
            headers: headers.iter().copied(),
        }
    }

    #[test]
    fn keeps_method_target_and_repeated_headers() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"host", b"example.test"),
            (b"x-a", b"1"),
            (b"x-b", b"\xff\xfe"),
            (b"x-a", b"2"),
            (b"connection", b"keep-alive"),
            (b"accept", b"*/*"),
        ];
        let (scheme, req) = build(head(b"PURGE", b"/p/a%20b?q=1&q=2", headers), Empty).unwrap();
        assert!(matches!(scheme, Scheme::Https));
        assert_eq!(req.method().as_str(), "PURGE");
        assert_eq!(
            req.uri().to_string(),
            "https://example.test:8443/p/a%20b?q=1&q=2"
        );
        let values: Vec<_> = req.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(req.headers()["x-b"].as_bytes(), b"\xff\xfe");
        let names: Vec<_> = req.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-a", "x-b", "accept"]);
    }

    #[test]
    fn trailers_keep_valid_fields_in_order_and_drop_the_rest() {
        let fields: &[(&[u8], &[u8])] = &[
            (b"x-sum", b"1"),
            (b"bad name", b"2"),
            (b"connection", b"close"),
            (b"x-sum", b"3"),
        ];
        let map = trailers(fields.iter().copied());
        let values: Vec<_> = map.get_all("x-sum").iter().collect();
        assert_eq!(values, ["1", "3"]);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn rejects_a_header_name_with_a_space() {
        let headers: &[(&[u8], &[u8])] = &[(b"bad name", b"1")];
        let err = build(head(b"GET", b"/", headers), Empty).err().unwrap();
        assert!(err.contains("bad name"), "{err}");
    }
}
