//! Where a request's body comes from, for either kind of guest.

/// Why reading the request body failed. The C side keeps the details (it
/// knows the HTTP status, e.g. 413 for `LimitRequestBody`).
#[derive(Debug)]
pub struct ReadError;

/// Where request body bytes come from: in Apache, `ap_get_brigade` on the
/// request's input filters.
pub trait BodySource: Send + 'static {
    /// Blocks until at least one byte is read into `buf`, or returns 0 at
    /// the end of the body.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError>;

    /// The request's trailer fields, asked once `read` returned 0; `None`
    /// when it had none.
    fn trailers(&mut self) -> Option<http::HeaderMap> {
        None
    }
}

/// The largest single write to an outgoing body (the response's, or an
/// outgoing request's) the host buffers: with the sandbox's
/// `MAX_RESOURCES` it bounds what unsent bodies can pin in the host.
pub(crate) const MAX_BODY_CHUNK: usize = 64 * 1024;
