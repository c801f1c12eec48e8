//! Where a component's response goes.

use http::HeaderMap;

/// The sink refused the bytes: the client went away, or the C side rejected
/// the head (it then knows the status to answer with).
#[derive(Debug)]
pub struct SinkError;

/// Where the response goes: in Apache, `request_rec` and the output filters.
pub trait ResponseSink {
    /// Status and headers, called once, before any data.
    fn send_head(&mut self, status: u16, headers: &HeaderMap) -> Result<(), SinkError>;
    /// A piece of the body. `flush` is set when the guest has nothing more
    /// ready right now, so the bytes should reach the client without waiting.
    fn send_data(&mut self, data: &[u8], flush: bool) -> Result<(), SinkError>;
    /// The trailer fields, after the last data.
    fn send_trailers(&mut self, trailers: &HeaderMap) -> Result<(), SinkError>;
}
