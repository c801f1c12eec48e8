//! Outgoing HTTP requests (`wasi:http/outgoing-handler`) with the same
//! `http` types as the handler.
//!
//! mod_wasm sends a request only if the location allows its destination
//! (`WasmAllowOutgoing`); otherwise the call fails with
//! `HTTP-request-denied`, and the error log says why.

use crate::fields::{from_entries, to_fields};
use crate::request::to_wasi_method;
use crate::{Body, Error, Response, join, ready};
use http::StatusCode;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    FutureIncomingResponse, IncomingResponse, OutgoingBody, OutgoingRequest, Scheme,
};

/// Sends `request` (its URI must be absolute: `http://host[:port]/path`)
/// and waits for the response head; the response body streams in as it is
/// read.
///
/// ```no_run
/// # fn f() -> Result<(), mod_wasm_guest::Error> {
/// let request = mod_wasm_guest::http::Request::get("http://127.0.0.1:8080/hello").body(())?;
/// let text = mod_wasm_guest::client::send(request)?.into_body().into_string()?;
/// # Ok(()) }
/// ```
pub fn send<B: Into<Body>>(request: http::Request<B>) -> Result<Response, Error> {
    crate::block_on(send_async(request))?
}

/// Like [`send`], but other futures of the handler run while it waits
/// (two requests joined run at the same time).
pub async fn send_async<B: Into<Body>>(request: http::Request<B>) -> Result<Response, Error> {
    let (parts, body) = request.into_parts();
    let invalid = |what: &str| Error::InvalidRequest(what.to_string());
    let outgoing = OutgoingRequest::new(to_fields(&parts.headers)?);
    outgoing
        .set_method(&to_wasi_method(&parts.method))
        .map_err(|()| invalid("method"))?;
    let scheme = match parts.uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") | None => Scheme::Http,
        Some(other) => Scheme::Other(other.to_string()),
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    let authority = parts
        .uri
        .authority()
        .ok_or_else(|| invalid("the URI names no host"))?;
    outgoing
        .set_authority(Some(authority.as_str()))
        .map_err(|()| invalid("authority"))?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;

    let outgoing_body = outgoing.body().map_err(|()| Error::Body("already taken"))?;
    let future = outgoing_handler::handle(outgoing, None)
        .map_err(|code| Error::Outgoing(format!("{code:?}")))?;
    // The body goes out while the response is awaited: a large one streams,
    // and an upstream that answers before reading it all and closes (a 413)
    // is heard.
    let (sent, response) = join(send_body(body.into(), outgoing_body), response_of(&future)).await;
    match (response, sent) {
        (Ok(response), _) => into_response(response),
        // The body's own source failed: that is the cause.
        (Err(_), Err(error)) if !matches!(error, Error::Stream(_)) => Err(error),
        // A refused or failed request closes the body's stream: the
        // response's error says why.
        (Err(error), _) => Err(error),
    }
}

async fn send_body(body: Body, outgoing: OutgoingBody) -> Result<(), Error> {
    {
        let stream = outgoing
            .write()
            .map_err(|()| Error::Body("stream already taken"))?;
        body.send_to_async(&stream).await?;
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| Error::Outgoing(format!("{e:?}")))
}

async fn response_of(future: &FutureIncomingResponse) -> Result<IncomingResponse, Error> {
    loop {
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(Error::Outgoing(format!("{code:?}"))),
            Some(Err(())) => return Err(Error::Body("response already taken")),
            None => ready(future.subscribe()).await,
        }
    }
}

fn into_response(response: IncomingResponse) -> Result<Response, Error> {
    let status = StatusCode::from_u16(response.status())
        .map_err(|_| Error::InvalidStatus(response.status()))?;
    let headers = from_entries(response.headers().entries())?;
    let mut builder = http::Response::builder().status(status);
    if let Some(map) = builder.headers_mut() {
        *map = headers;
    }
    builder
        .body(Body::incoming_response(response))
        .map_err(|e| Error::InvalidRequest(e.to_string()))
}
