//! The glue the `#[handler]` attribute expands to: the host's request in,
//! the handler's response out through the `response-outparam`, and no trap
//! on any error.

use crate::fields::to_fields;
use crate::request::from_incoming;
use crate::response::internal_error;
use crate::{Error, IntoResponse, Request, Response};
use http::StatusCode;
use http::header::{CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
use std::future::Future;
use wasi::http::types::{
    ErrorCode, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Serves one request with a synchronous handler.
pub fn serve<R, F>(raw: IncomingRequest, out: ResponseOutparam, handler: F)
where
    R: IntoResponse,
    F: FnOnce(Request) -> R,
{
    let response = match from_incoming(raw) {
        Ok(request) => handler(request).into_response(),
        Err(error) => internal_error(&error),
    };
    respond(out, response);
}

/// Serves one request with an `async` handler, run by
/// [`block_on`](crate::block_on).
pub fn serve_async<R, F, Fut>(raw: IncomingRequest, out: ResponseOutparam, handler: F)
where
    R: IntoResponse,
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = R>,
{
    let response = match from_incoming(raw) {
        Ok(request) => match crate::block_on(handler(request)) {
            Ok(response) => response.into_response(),
            Err(error) => internal_error(&error),
        },
        Err(error) => internal_error(&error),
    };
    respond(out, response);
}

/// Hands the head to the host, then sends the body. A head the host refuses
/// becomes a 500; a body that fails half-way is left unfinished, which the
/// host turns into a cut response rather than a short one taken for whole.
fn respond(out: ResponseOutparam, response: Response) {
    let (mut parts, mut body) = response.into_parts();
    // A body in memory has a known size: say so, rather than chunk it.
    let status = parts.status;
    if let Some(len) = body.known_length()
        && !(status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED)
        && !parts.headers.contains_key(CONTENT_LENGTH)
        && !parts.headers.contains_key(TRANSFER_ENCODING)
    {
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
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
    let body = response.body().map_err(|()| Error::Body("already taken"))?;
    Ok((response, body))
}
