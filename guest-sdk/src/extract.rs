//! What a `#[handler]` function may take as its request: the streaming
//! [`Request`], or an `http::Request` whose body was read whole into text
//! or bytes, as Wasm Workers Server's Rust kit hands a worker
//! `Request<String>`.

use crate::{Body, Bytes, Error, IntoResponse, Request, Response};
use http::StatusCode;

/// A request type a `#[handler]` function can take. When the conversion
/// fails, its `Err` is the response sent instead of calling the handler.
pub trait FromRequest: Sized {
    /// Converts the request as received.
    #[allow(
        clippy::result_large_err,
        reason = "the Err is the response itself, made at most once per request"
    )]
    fn from_request(request: Request) -> Result<Self, Response>;
}

impl FromRequest for Request {
    fn from_request(request: Request) -> Result<Self, Response> {
        Ok(request)
    }
}

impl FromRequest for http::Request<Bytes> {
    fn from_request(request: Request) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let bytes = read_whole(body)?;
        Ok(http::Request::from_parts(parts, bytes))
    }
}

impl FromRequest for http::Request<Vec<u8>> {
    fn from_request(request: Request) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let bytes = read_whole(body)?;
        Ok(http::Request::from_parts(parts, bytes.into()))
    }
}

/// A body that is not UTF-8 is the client's mistake: 400.
impl FromRequest for http::Request<String> {
    fn from_request(request: Request) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let bytes = read_whole(body)?;
        let text = String::from_utf8(bytes.into()).map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                "the request body is not UTF-8 text\n",
            )
                .into_response()
        })?;
        Ok(http::Request::from_parts(parts, text))
    }
}

/// The whole body; a body that broke off is a 500 (its reason goes to the
/// error log, as any handler error does).
#[allow(clippy::result_large_err, reason = "as FromRequest::from_request")]
fn read_whole(body: Body) -> Result<Bytes, Response> {
    body.into_bytes()
        .map_err(|error: Error| Err::<(), _>(error).into_response())
}
