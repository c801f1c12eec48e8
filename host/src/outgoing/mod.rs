//! Outgoing HTTP (`wasi:http/outgoing-handler`): denied unless the location
//! allows the destination with `WasmAllowOutgoing`.
//!
//! A rule names a scheme, a host and a port. Wildcard rules (`*`,
//! `*.example.com`) only ever reach public addresses, whatever a name
//! resolves to; loopback and private addresses must be listed explicitly, by
//! exact host name or by address. The host resolves the name itself and
//! connects to an address it checked, so a guest cannot slip past the rules
//! through DNS.

mod address;
mod rule;
mod send;

pub use address::is_public;
pub use rule::{OutgoingRule, Target};
pub use send::{OutgoingHooks, permitted_addresses};
