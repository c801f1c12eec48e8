//! The vocabulary of one request's I/O, shared by both kinds of guest
//! ([`component`](crate::component) and [`legacy`](crate::legacy)) and by
//! the C ABI: where the request body comes from, where the response goes,
//! the guest's output streams, why a request failed, and room in the
//! instance pool. A leaf: it knows neither mode.

mod body;
mod failure;
mod lines;
mod room;
mod sink;
mod stream;

pub(crate) use body::MAX_BODY_CHUNK;
pub use body::{BodySource, ReadError};
pub use failure::{Limits, ServeError, classify, pool_full};
pub use lines::MAX_LOGGED;
pub use lines::{GuestOutput, LineSink};
pub use room::{PoolRoom, evict_idle_with};
pub use sink::{ResponseSink, SinkError};
pub use stream::{GuestStream, OutputTarget};
