//! [`IntoResponse`]: what a handler may return.

use crate::{Body, Error};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};
use std::any::Any;
use std::fmt::Display;

/// A response with a [`Body`].
pub type Response<B = Body> = http::Response<B>;

/// Anything a handler can answer with.
///
/// | returned | status | `content-type` |
/// |---|---|---|
/// | `&'static str`, `String` | 200 | `text/plain; charset=utf-8` |
/// | `Vec<u8>`, `&'static [u8]`, `Bytes` | 200 | `application/octet-stream` |
/// | [`Body`], `()` | 200 | none |
/// | [`Json<T>`](crate::Json) | 200 | `application/json` |
/// | `StatusCode` | that | none, empty body |
/// | `(StatusCode, T)` | that | `T`'s |
/// | `(StatusCode, HeaderMap, T)` | that | `T`'s, then the map's headers |
/// | `http::Response<B>` for `B: Into<Body>` | its own | its own |
/// | `Result<T, E>` for `E: Display` | `T`'s, or 500 (400 for [`Error::Json`](crate::Error::Json)) | `Err`: text of the error to the error log, a plain 500 to the client; a body that is not the JSON asked for is the client's mistake, a 400 saying why |
pub trait IntoResponse {
    /// The response.
    fn into_response(self) -> Response;
}

impl<B: Into<Body>> IntoResponse for http::Response<B> {
    fn into_response(self) -> Response {
        self.map(Into::into)
    }
}

fn typed(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        typed(self.into(), TEXT)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        typed(self.into(), TEXT)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        typed(self.into(), BINARY)
    }
}

impl IntoResponse for &'static [u8] {
    fn into_response(self) -> Response {
        typed(self.into(), BINARY)
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response {
        typed(self.into(), BINARY)
    }
}

impl IntoResponse for Body {
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(Body::empty())
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self;
        response
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        let mut response = self.1.into_response();
        *response.status_mut() = self.0;
        response
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, HeaderMap, T) {
    fn into_response(self) -> Response {
        let (status, headers, inner) = self;
        let mut response = inner.into_response();
        *response.status_mut() = status;
        // Later names replace earlier ones, as `HeaderMap::extend` does.
        response.headers_mut().extend(headers);
        response
    }
}

impl<T: IntoResponse, E: Display + 'static> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(inner) => inner.into_response(),
            Err(error) => match (&error as &dyn Any).downcast_ref::<Error>() {
                // A request body that is not the JSON the handler asked
                // for is the client's mistake: 400, as axum's `Json`
                // rejection answers, and nothing in the error log.
                Some(Error::Json(why)) => (
                    StatusCode::BAD_REQUEST,
                    format!("the request body is not the JSON expected: {why}\n"),
                )
                    .into_response(),
                _ => internal_error(&error),
            },
        }
    }
}

/// A 500 for the client; the reason goes to stderr, which mod_wasm writes to
/// Apache's error log (and `wasmtime serve` to its terminal).
pub(crate) fn internal_error(error: &dyn Display) -> Response {
    eprintln!("handler error: {error}");
    (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n").into_response()
}

/// A JSON response: `Json(value)` serializes `value` with serde.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

#[cfg(feature = "json")]
impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match Body::to_json(&self.0) {
            Ok(body) => typed(body, "application/json"),
            Err(error) => internal_error(&error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_type(response: &Response) -> Option<&str> {
        response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap())
    }

    #[test]
    fn text_is_a_plain_text_200() {
        let response = "hello".into_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(content_type(&response), Some(TEXT));
        assert_eq!(response.into_body().into_string().unwrap(), "hello");
    }

    #[test]
    fn bytes_are_an_octet_stream() {
        assert_eq!(content_type(&vec![1u8].into_response()), Some(BINARY));
        assert_eq!(content_type(&Bytes::new().into_response()), Some(BINARY));
    }

    #[test]
    fn a_status_with_a_body_keeps_the_body_type() {
        let response = (StatusCode::CREATED, String::from("made")).into_response();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(content_type(&response), Some(TEXT));
    }

    #[test]
    fn extra_headers_replace_the_defaults() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        headers.insert("x-extra", HeaderValue::from_static("1"));
        let response = (StatusCode::OK, headers, "<p>hi</p>").into_response();
        assert_eq!(content_type(&response), Some("text/html"));
        assert_eq!(response.headers()["x-extra"], "1");
    }

    #[test]
    fn a_body_that_is_not_json_is_a_400_saying_why() {
        let result: Result<&str, Error> = Err(Error::Json("expected value at line 1".into()));
        let response = result.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let other: Result<&str, Error> = Err(Error::Stalled);
        assert_eq!(
            other.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn an_error_becomes_a_500_without_its_text() {
        let result: Result<&str, String> = Err("secret detail".into());
        let response = result.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().into_string().unwrap();
        assert!(!body.contains("secret"), "{body}");
    }

    #[test]
    fn a_bare_status_has_an_empty_body() {
        let response = StatusCode::NO_CONTENT.into_response();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(response.into_body().into_bytes().unwrap().is_empty());
    }

    #[test]
    fn a_response_of_anything_that_becomes_a_body_is_kept_as_it_is() {
        let response = http::Response::builder()
            .status(StatusCode::ACCEPTED)
            .header("x-a", "b")
            .body("queued")
            .unwrap()
            .into_response();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()["x-a"], "b");
        assert_eq!(content_type(&response), None);
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_is_serialized_with_its_type() {
        let response = Json(serde_json::json!({"a": 1})).into_response();
        assert_eq!(content_type(&response), Some("application/json"));
        assert_eq!(response.into_body().into_string().unwrap(), r#"{"a":1}"#);
    }
}
