//! What only Apache knows (`mod-wasm:host` in wit/host.wit): its error log
//! at Apache's levels, and facts about the request that are not in its
//! headers.
//!
//! A component that calls anything here imports `mod-wasm:host` and runs
//! where that is provided (mod_wasm); one that does not stays a plain
//! `wasi:http/proxy` component.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "mod-wasm:host/imports",
    });
}

use bindings::mod_wasm::host::{log as host_log, request_info};

/// The error log, at Apache's levels; `LogLevel` (for the module `wasm`,
/// per server or section) decides what is written.
pub mod log {
    use super::host_log;

    pub use super::host_log::Level;

    /// Whether a message at `level` would be written.
    pub fn enabled(level: Level) -> bool {
        host_log::enabled(level)
    }

    /// Writes `message` at `level`, tagged with the request and location.
    pub fn write(level: Level, message: &str) {
        host_log::write(level, message);
    }

    /// `error` level.
    pub fn error(message: &str) {
        write(Level::Error, message);
    }

    /// `warn` level.
    pub fn warn(message: &str) {
        write(Level::Warn, message);
    }

    /// `notice` level.
    pub fn notice(message: &str) {
        write(Level::Notice, message);
    }

    /// `info` level.
    pub fn info(message: &str) {
        write(Level::Info, message);
    }

    /// `debug` level.
    pub fn debug(message: &str) {
        write(Level::Debug, message);
    }
}

/// The client's IP address as Apache sees it (after mod_remoteip).
pub fn client_addr() -> String {
    request_info::client_addr()
}

/// The user an Apache authentication module verified, if any.
pub fn user() -> Option<String> {
    request_info::user()
}

/// Whether the client's connection is TLS.
pub fn tls() -> bool {
    request_info::tls()
}

/// The path of the `<Location>` or `<Directory>` that chose this component.
pub fn location() -> String {
    request_info::location()
}

/// Apache's id for the request (what `%L` prints in its logs).
pub fn request_id() -> String {
    request_info::request_id()
}
