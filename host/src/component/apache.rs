//! `mod-wasm:host` (wit/host.wit): what only Apache can tell a component —
//! its error log at Apache's levels, and facts about the request that are
//! not in its headers.

use super::RequestState;
use wasmtime::component::{HasSelf, Linker};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "mod-wasm:host/imports",
});

use mod_wasm::host::log::{self, Level};
use mod_wasm::host::request_info;

/// What Apache knows about one request beyond its head, as the C side
/// passes it.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// The client's address (`r->useragent_ip`).
    pub client_addr: String,
    /// The authenticated user (`r->user`), if any.
    pub user: Option<String>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The section that chose the component.
    pub location: String,
    /// Apache's request id (`%L`).
    pub request_id: String,
    /// The most verbose level `LogLevel` lets through for this request:
    /// 0 (`emerg`) to 15 (`trace8`), as Apache numbers them.
    pub log_level: u8,
}

/// Apache's number for `level` (`APLOG_EMERG` is 0, `APLOG_TRACE8` 15).
pub fn apache_level(level: Level) -> u8 {
    level as u8
}

/// Adds `mod-wasm:host` to `linker`. Components that do not import it are
/// unaffected.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    Imports::add_to_linker::<RequestState, HasSelf<RequestState>>(linker, |state| state)
}

/// Whether Apache writes a message at `level` under `LogLevel`
/// `log_level`: `notice` always, as Apache does for its own.
fn written(level: Level, log_level: u8) -> bool {
    level == Level::Notice || apache_level(level) <= log_level
}

impl log::Host for RequestState {
    fn enabled(&mut self, level: Level) -> bool {
        written(level, self.facts().log_level)
    }

    fn write(&mut self, level: Level, message: String) {
        if written(level, self.facts().log_level) {
            let level = apache_level(level);
            self.log().guest_log(level, one_line(&message).as_bytes());
        }
    }
}

/// `message` with control characters escaped (`\n`, `\x1b`), so that one
/// message is one line of the log and cannot forge another.
fn one_line(message: &str) -> String {
    let mut line = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => line.push_str(&format!("\\x{:02x}", c as u32)),
            c => line.push(c),
        }
    }
    line
}

impl request_info::Host for RequestState {
    fn client_addr(&mut self) -> String {
        self.facts().client_addr.clone()
    }

    fn user(&mut self) -> Option<String> {
        self.facts().user.clone()
    }

    fn tls(&mut self) -> bool {
        self.facts().tls
    }

    fn location(&mut self) -> String {
        self.facts().location.clone()
    }

    fn request_id(&mut self) -> String {
        self.facts().request_id.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_one_line_with_its_controls_escaped() {
        assert_eq!(one_line("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            one_line("two\nlines\r\tand \u{1b}[31m"),
            "two\\nlines\\r\\tand \\x1b[31m"
        );
    }

    #[test]
    fn log_level_decides_but_notice_is_always_written() {
        let warn = apache_level(Level::Warn);
        assert!(written(Level::Error, warn) && written(Level::Warn, warn));
        assert!(!written(Level::Info, warn) && !written(Level::Trace1, warn));
        assert!(written(Level::Notice, apache_level(Level::Emerg)));
    }

    #[test]
    fn levels_are_numbered_as_apache_numbers_them() {
        assert_eq!(apache_level(Level::Emerg), 0);
        assert_eq!(apache_level(Level::Error), 3);
        assert_eq!(apache_level(Level::Warn), 4);
        assert_eq!(apache_level(Level::Debug), 7);
        assert_eq!(apache_level(Level::Trace8), 15);
    }
}
