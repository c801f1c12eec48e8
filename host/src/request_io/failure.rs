//! Why a request did not end with a complete response, and the one place
//! that decides it from what Wasmtime returned, for both kinds of guest.

use crate::stats::ErrorKind;
use std::time::Duration;
use wasmtime::{PoolConcurrencyLimitError, Trap};

/// Why a request did not end with a complete response. Whether the head had
/// already been sent is the sink's knowledge, not ours.
#[derive(Debug, Clone)]
pub enum ServeError {
    /// The guest returned an error or produced an invalid response.
    Guest(String),
    /// The guest trapped.
    Trap(String),
    /// The guest ran into `WasmMemoryLimit`.
    Limit(String),
    /// The guest returned without ever setting its `response-outparam`.
    NoResponse,
    /// The request ran past its `WasmTimeout`; the guest was stopped.
    Timeout(String),
    /// The sink refused a head or data.
    Sink,
    /// The host failed (a panic in a task, no runtime, a full pool).
    Internal(String),
    /// Another request in the same shared instance broke it (a WASI 0.3
    /// instance serving several at once); the text says how.
    Shared(String),
}

impl ServeError {
    /// How the status page counts it; `None` for a refused response (the
    /// client went away, or an output filter failed), which is no fault of
    /// the guest.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ServeError::Guest(_) | ServeError::NoResponse => Some(ErrorKind::Guest),
            ServeError::Trap(_) => Some(ErrorKind::Trap),
            ServeError::Limit(_) => Some(ErrorKind::Limit),
            ServeError::Timeout(_) => Some(ErrorKind::Timeout),
            ServeError::Internal(_) => Some(ErrorKind::Host),
            ServeError::Shared(_) => Some(ErrorKind::Shared),
            ServeError::Sink => None,
        }
    }

    /// The error as the admin should read it, with the limit that caused it:
    /// a trap after the memory limiter refused growth is the memory limit
    /// (`memory_exceeded`), a stop is the timeout.
    pub fn explained(self, limits: Limits, memory_exceeded: bool) -> ServeError {
        match self {
            ServeError::Guest(why) | ServeError::Trap(why) if memory_exceeded => {
                ServeError::Limit(format!(
                    "the guest ran into WasmMemoryLimit ({} bytes per memory): {why}",
                    limits.memory
                ))
            }
            ServeError::Timeout(why) => ServeError::Timeout(format!(
                "the request ran past WasmTimeout ({:?}) and the guest was stopped: {why}",
                limits.timeout
            )),
            other => other,
        }
    }
}

/// The request's limits that an error may be explained by.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `WasmTimeout`.
    pub timeout: Duration,
    /// `WasmMemoryLimit`, bytes per memory.
    pub memory: usize,
}

/// What a trap or a guest error from Wasmtime means, as one line for the
/// error log (its wasm backtrace folded in). Before [`ServeError::explained`].
pub fn classify(error: &wasmtime::Error) -> ServeError {
    let text = format!("{error:#}");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if error.is::<PoolConcurrencyLimitError>() {
        return pool_full(text);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => ServeError::Timeout(text),
        Some(_) => ServeError::Trap(text),
        None => ServeError::Guest(text),
    }
}

/// Every slot of the child's instance pool is taken: the host's limit, not
/// the guest's fault, and so counted and logged as the host's.
pub fn pool_full(text: String) -> ServeError {
    ServeError::Internal(format!("this child's instance pool is full: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        timeout: Duration::from_millis(1500),
        memory: 1 << 20,
    };

    #[test]
    fn an_interrupt_is_the_timeout_and_names_it() {
        let error = classify(&wasmtime::Error::new(Trap::Interrupt)).explained(LIMITS, false);
        let ServeError::Timeout(text) = error else {
            panic!("{error:?}")
        };
        assert!(text.contains("WasmTimeout (1.5s)"), "{text}");
    }

    #[test]
    fn a_trap_after_a_refused_growth_is_the_memory_limit() {
        let trap = wasmtime::Error::new(Trap::UnreachableCodeReached);
        assert!(matches!(
            classify(&trap).explained(LIMITS, true),
            ServeError::Limit(text) if text.contains("1048576 bytes")
        ));
        assert!(matches!(
            classify(&trap).explained(LIMITS, false),
            ServeError::Trap(_)
        ));
        let plain = wasmtime::format_err!("no such export");
        assert!(matches!(classify(&plain), ServeError::Guest(_)));
    }
}
