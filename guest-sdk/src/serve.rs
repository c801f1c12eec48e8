//! The glue the `#[handler]` attribute expands to: the host's request in,
//! the handler's response out through the `response-outparam`, and no trap
//! on any error.

use crate::fields::to_fields;
use crate::request::from_incoming;
use crate::response::internal_error;
use crate::{Error, FromRequest, IntoResponse, Response};
use http::header::{CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
use http::{Method, StatusCode};
use std::future::Future;
use wasi::http::types::{
    ErrorCode, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Serves one request with a synchronous handler.
pub fn serve<T, R, F>(raw: IncomingRequest, out: ResponseOutparam, handler: F)
where
    T: FromRequest,
    R: IntoResponse,
    F: FnOnce(T) -> R,
{
    let (response, head_only) = match from_incoming(raw) {
        Ok(request) => {
            let head_only = request.method() == Method::HEAD;
            match T::from_request(request) {
                Ok(request) => (handler(request).into_response(), head_only),
                Err(rejected) => (rejected, head_only),
            }
        }
        Err(error) => (internal_error(&error), false),
    };
    respond(out, response, head_only);
}

/// Serves one request with an `async` handler, run by
/// [`block_on`](crate::block_on).
pub fn serve_async<T, R, F, Fut>(raw: IncomingRequest, out: ResponseOutparam, handler: F)
where
    T: FromRequest,
    R: IntoResponse,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = R>,
{
    let (response, head_only) = match from_incoming(raw) {
        Ok(request) => {
            let head_only = request.method() == Method::HEAD;
            match T::from_request(request) {
                Ok(request) => match crate::block_on(handler(request)) {
                    Ok(response) => (response.into_response(), head_only),
                    Err(error) => (internal_error(&error), head_only),
                },
                Err(rejected) => (rejected, head_only),
            }
        }
        Err(error) => (internal_error(&error), false),
    };
    respond(out, response, head_only);
}

/// Hands the head to the host, then sends the body. A head the host refuses
/// becomes a 500; a body that fails half-way is left unfinished, which the
/// host turns into a cut response rather than a short one taken for whole.
fn respond(out: ResponseOutparam, response: Response, head_only: bool) {
    let (mut parts, mut body) = response.into_parts();
    let status = parts.status;
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    match parts.headers.get(CONTENT_LENGTH) {
        // A body in memory has a known size: say so, rather than chunk it
        // (for HEAD too: its body is sent, and Apache drops it).
        None if !no_body && !parts.headers.contains_key(TRANSFER_ENCODING) => {
            if let Some(len) = body.known_length() {
                parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
            }
        }
        // The host holds a body to its Content-Length. An answer that has
        // none may declare the length of a body it does not carry (a 304, a
        // proxied HEAD): that length cannot go out with it.
        Some(declared) if no_body || (head_only && body.is_incoming()) => {
            let carried = body.known_length().map(HeaderValue::from);
            if carried.as_ref() != Some(declared) {
                parts.headers.remove(CONTENT_LENGTH);
            }
        }
        _ => {}
    }
    let (head, outgoing_body) = match head(&parts) {
        Ok(head) => head,
        Err(error) => {
            let why = format!("the response head was refused: {error}");
            let (fallback, fallback_body) = internal_error(&why).into_parts();
            body = fallback_body;
            match head(&fallback) {
                Ok(head) => head,
                Err(_) => {
                    ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(why))));
                    return;
                }
            }
        }
    };
    ResponseOutparam::set(out, Ok(head));
    let sent = outgoing_body
        .write()
        .map_err(|()| Error::Body("stream already taken"))
        .and_then(|stream| body.send_to(&stream));
    match sent {
        Ok(()) => {
            if let Err(error) = OutgoingBody::finish(outgoing_body, None) {
                eprintln!("handler error: the response could not be finished: {error:?}");
            }
        }
        Err(error) => eprintln!("handler error: the response body failed: {error}"),
    }
}

fn head(parts: &http::response::Parts) -> Result<(OutgoingResponse, OutgoingBody), Error> {
    let response = OutgoingResponse::new(to_fields(&parts.headers)?);
    response
        .set_status_code(parts.status.as_u16())
        .map_err(|()| Error::InvalidStatus(parts.status.as_u16()))?;
    let body = response
        .body()
        .map_err(|()| Error::Body("unavailable: already taken, or an invalid Content-Length"))?;
    Ok((response, body))
}
