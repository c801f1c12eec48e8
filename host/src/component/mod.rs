//! Component mode: serving a request with a `wasi:http/incoming-handler`
//! component (WASI 0.2).

mod apache;
mod body;
mod linker;
mod output;
mod request;
mod reuse;
mod room;
mod serve;
mod state;

pub use apache::RequestFacts;
pub use body::{BodySource, ReadError, RequestBody};
pub use linker::ComponentLinker;
pub use output::{GuestOutput, LineSink};
pub use request::{RequestHead, build as build_request};
pub use reuse::{Reuse, ReuseKey, set_capacity as set_reuse_capacity};
pub use room::PoolRoom;
pub(crate) use serve::pool_full;
pub use serve::{ResponseSink, ServeError, SinkError, serve};
pub use state::RequestState;
