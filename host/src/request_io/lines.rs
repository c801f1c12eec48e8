//! The guest's stdout and stderr, line by line, to wherever the host logs
//! (in Apache, the error log). A Rust guest's panic message arrives this
//! way. A component's stdout is not its response, so anything written there
//! is a diagnostic too.

use super::SinkError;
use super::stream::OutputTarget;
use std::sync::{Arc, Mutex};

/// A longer line is logged in pieces of this size, so that a guest cannot
/// make the host buffer without bound by never writing a newline.
const MAX_LINE: usize = 4096;

/// Bytes one stream of one request may log. A guest that writes more (a
/// loop printing until its timeout) would flood the error log: the rest is
/// dropped, and one line says so.
pub const MAX_LOGGED: usize = 64 * 1024;

/// Where complete stderr lines go.
pub trait LineSink: Send + 'static {
    /// One line, without its line ending.
    fn line(&mut self, line: &[u8]);
    /// Called once when the stream went over [`MAX_LOGGED`]; later lines are
    /// dropped.
    fn suppressed(&mut self);
}

/// Bytes in, lines out.
struct Lines {
    sink: Box<dyn LineSink>,
    partial: Vec<u8>,
    logged: usize,
}

impl Lines {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..end]);
            self.emit();
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            self.emit();
            self.partial = rest;
        }
    }

    fn emit(&mut self) {
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        // Blank lines carry nothing worth a log line.
        if !self.partial.is_empty() && self.logged <= MAX_LOGGED {
            self.logged += self.partial.len();
            if self.logged <= MAX_LOGGED {
                self.sink.line(&self.partial);
            } else {
                self.sink.suppressed();
            }
        }
        self.partial.clear();
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.emit();
        }
    }
}

/// One of the guest's output streams as lines (wrap it in
/// [`GuestStream`](super::GuestStream) for WASI): every stream WASI
/// opens on it shares one line buffer.
#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<Lines>>);

impl GuestOutput {
    /// A stderr whose lines go to `sink`; what is left of an unfinished line
    /// goes there when the last stream is dropped.
    pub fn new(sink: impl LineSink) -> Self {
        GuestOutput(Arc::new(Mutex::new(Lines {
            sink: Box::new(sink),
            partial: Vec::new(),
            logged: 0,
        })))
    }

    /// The request ends but the stream goes on (`WasmInstanceReuse`): an
    /// unfinished line is logged now, with the request it belongs to, and
    /// the next request may log [`MAX_LOGGED`] bytes again.
    pub fn end_request(&self) {
        let mut lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !lines.partial.is_empty() {
            lines.emit();
        }
        lines.logged = 0;
    }

    fn push(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(bytes);
    }
}

impl OutputTarget for GuestOutput {
    fn push(&self, bytes: &[u8]) -> Result<(), SinkError> {
        GuestOutput::push(self, bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<Vec<u8>>>>);

    impl LineSink for Collect {
        fn line(&mut self, line: &[u8]) {
            self.0.lock().unwrap().push(line.to_vec());
        }
        fn suppressed(&mut self) {
            self.0.lock().unwrap().push(b"<suppressed>".to_vec());
        }
    }

    #[test]
    fn stops_logging_after_the_cap_and_says_so_once() {
        let lines = Collect::default();
        let stderr = GuestOutput::new(lines.clone());
        let line = [b'y'; 1000];
        for _ in 0..200 {
            stderr.push(&line);
            stderr.push(b"\n");
        }
        let lines = lines.0.lock().unwrap();
        assert_eq!(lines.len(), MAX_LOGGED / 1000 + 1);
        assert_eq!(lines.last().unwrap(), b"<suppressed>");
    }

    #[test]
    fn splits_lines_across_writes_and_flushes_the_rest_on_drop() {
        let lines = Collect::default();
        let stderr = GuestOutput::new(lines.clone());
        stderr.push(b"\none\r\ntw");
        stderr.push(b"o\nthree");
        assert_eq!(*lines.0.lock().unwrap(), [b"one".to_vec(), b"two".to_vec()]);
        drop(stderr);
        assert_eq!(lines.0.lock().unwrap().len(), 3);
        assert_eq!(lines.0.lock().unwrap()[2], b"three");
    }

    #[test]
    fn a_request_end_logs_the_unfinished_line_and_resets_the_cap() {
        let lines = Collect::default();
        let stderr = GuestOutput::new(lines.clone());
        stderr.push(&vec![b'y'; MAX_LOGGED + 1]);
        stderr.push(b"\n");
        stderr.push(b"dropped\n");
        let logged = lines.0.lock().unwrap().len();
        stderr.end_request();
        stderr.push(b"next request\nunfinished");
        stderr.end_request();
        let lines = lines.0.lock().unwrap();
        assert_eq!(
            lines[logged..],
            [b"next request".to_vec(), b"unfinished".to_vec()]
        );
    }

    #[test]
    fn cuts_a_line_without_end_into_pieces() {
        let lines = Collect::default();
        let stderr = GuestOutput::new(lines.clone());
        stderr.push(&vec![b'x'; MAX_LINE * 2 + 10]);
        assert_eq!(lines.0.lock().unwrap().len(), 2);
        assert!(lines.0.lock().unwrap().iter().all(|l| l.len() == MAX_LINE));
    }
}
