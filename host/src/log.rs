//! The host's messages about one request, and where they go (in Apache, the
//! error log, with the request's location; the C side picks tag and level
//! from the kind).

use crate::request_io::LineSink;
use std::sync::{Arc, RwLock};

/// What a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    /// A line the guest wrote to stderr.
    GuestStderr,
    /// A line the guest wrote to stdout (a component's response is not its
    /// stdout, so this is a diagnostic too).
    GuestStdout,
    /// The guest wrote more than a request may log; the text names the
    /// stream. Later lines are dropped.
    OutputSuppressed,
    /// An outgoing HTTP request was refused; the text says which and why.
    OutgoingDenied,
    /// A key-value operation failed; the text names the store and why.
    StoreFailed,
    /// The guest opened a store its section does not grant.
    StoreRefused,
}

/// The log of one request.
pub trait RequestLog: Send + Sync + 'static {
    /// Logs `text` (one line, no line ending).
    fn log(&self, kind: LogKind, text: &[u8]);

    /// Logs a message the guest wrote through `mod-wasm:host/log` at
    /// Apache's `level` (0 `emerg` to 15 `trace8`).
    fn guest_log(&self, level: u8, text: &[u8]);
}

/// The log of whichever request an instance serves now. A reused instance
/// (`WasmInstanceReuse`) opens its streams once; what it writes in a later
/// request belongs to that request.
pub struct RelayLog(RwLock<Arc<dyn RequestLog>>);

impl RelayLog {
    /// A relay to `log` until [`RelayLog::switch`].
    pub fn new(log: Arc<dyn RequestLog>) -> Arc<Self> {
        Arc::new(RelayLog(RwLock::new(log)))
    }

    /// From now on, messages go to `log`.
    pub fn switch(&self, log: Arc<dyn RequestLog>) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = log;
    }

    fn current(&self) -> Arc<dyn RequestLog> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl RequestLog for RelayLog {
    fn log(&self, kind: LogKind, text: &[u8]) {
        self.current().log(kind, text);
    }

    fn guest_log(&self, level: u8, text: &[u8]) {
        self.current().guest_log(level, text);
    }
}

/// One of the guest's output streams, as lines into a [`RequestLog`].
pub struct StreamLog {
    log: Arc<dyn RequestLog>,
    kind: LogKind,
}

impl StreamLog {
    /// Lines of the stream `kind` (stdout or stderr) into `log`.
    pub fn new(log: Arc<dyn RequestLog>, kind: LogKind) -> Self {
        StreamLog { log, kind }
    }
}

/// What Rust's standard library prints after a panic message. The guest
/// cannot act on it (its environment is the admin's `WasmEnv`, and a
/// backtrace needs debug info the guest's build stripped), and in Apache's
/// error log it reads as advice to the admin about Apache: left out.
const RUST_BACKTRACE_HINT: &[u8] = b"note: run with `RUST_BACKTRACE=1` environment variable";

impl LineSink for StreamLog {
    fn line(&mut self, line: &[u8]) {
        if self.kind == LogKind::GuestStderr && line.starts_with(RUST_BACKTRACE_HINT) {
            return;
        }
        self.log.log(self.kind, line);
    }

    fn suppressed(&mut self) {
        let stream: &[u8] = match self.kind {
            LogKind::GuestStdout => b"stdout",
            _ => b"stderr",
        };
        self.log.log(LogKind::OutputSuppressed, stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<Vec<u8>>>);

    impl RequestLog for Collect {
        fn log(&self, _: LogKind, text: &[u8]) {
            self.0.lock().unwrap().push(text.to_vec());
        }
        fn guest_log(&self, _: u8, _: &[u8]) {}
    }

    #[test]
    fn the_rust_backtrace_hint_is_left_out_of_stderr_only() {
        let log = Arc::new(Collect::default());
        let mut stderr = StreamLog::new(log.clone(), LogKind::GuestStderr);
        stderr.line(b"thread '<unnamed>' panicked at src/lib.rs:3:5:");
        stderr
            .line(b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace");
        let mut stdout = StreamLog::new(log.clone(), LogKind::GuestStdout);
        stdout.line(b"note: run with `RUST_BACKTRACE=1` environment variable, said stdout");
        let lines = log.0.lock().unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(b"thread"));
        assert!(lines[1].ends_with(b"said stdout"));
    }
}
