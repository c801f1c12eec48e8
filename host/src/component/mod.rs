//! Component mode: serving a request with a `wasi:http/incoming-handler`
//! component (WASI 0.2).

mod apache;
mod body;
mod config_vars;
mod handoff;
mod keyvalue;
mod linker;
mod middleware;
mod next;
mod request;
mod reuse;
mod serve;
mod serve03;
mod shared03;
mod state;

pub use apache::RequestFacts;
pub use body::RequestBody;
pub use linker::{ComponentLinker, ComponentPre};
pub use middleware::{Middleware, Started};
pub use next::NextRequest;
pub use request::{RequestHead, build as build_request, trailers as request_trailers};
pub use reuse::{Reuse, ReuseKey, set_capacity as set_reuse_capacity};
pub use serve::{Call, serve};
pub use serve03::serve as serve03;
pub use state::RequestState;
