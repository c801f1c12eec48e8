//! The host's messages about one request, and where they go (in Apache, the
//! error log, with the request's location; the C side picks tag and level
//! from the kind).

use crate::component::LineSink;
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

impl LineSink for StreamLog {
    fn line(&mut self, line: &[u8]) {
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
