//! Error messages into caller buffers, and the panic boundary.

use super::mw_result;
use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

/// A caller's buffer for a NUL-terminated error message.
#[derive(Clone, Copy)]
pub(crate) struct ErrorBuf {
    ptr: *mut c_char,
    len: usize,
}

impl ErrorBuf {
    pub(crate) fn new(ptr: *mut c_char, len: usize) -> Self {
        ErrorBuf { ptr, len }
    }

    /// Writes as much of `message` as fits, always NUL-terminated, cut at a
    /// character boundary.
    pub(crate) fn write(&self, message: &str) {
        if self.ptr.is_null() || self.len == 0 {
            return;
        }
        let mut end = message.len().min(self.len - 1);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        // SAFETY: the caller promised `len` writable bytes at `ptr`, and
        // `end < len`.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), self.ptr.cast::<u8>(), end);
            *self.ptr.add(end) = 0;
        }
    }

    /// Writes `message` and returns `result`, for `return err.fail(...)`.
    pub(crate) fn fail(&self, result: mw_result, message: &str) -> mw_result {
        self.write(message);
        result
    }
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `body` so that a panic becomes [`mw_result::Panic`] with the
/// panic's message in `err`, instead of unwinding into C.
pub(crate) fn guarded(err: ErrorBuf, body: impl FnOnce() -> mw_result) -> mw_result {
    static QUIET_PANICS: Once = Once::new();
    // Rust must not print to Apache's stderr: keep the message for the
    // caller's buffer instead.
    QUIET_PANICS.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(info.to_string()));
        }))
    });
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(_) => {
            let message = LAST_PANIC.with(|last| last.borrow_mut().take());
            err.write(&format!(
                "internal error in mod_wasm: {}",
                message.as_deref().unwrap_or("panic")
            ));
            mw_result::Panic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_a_character_boundary() {
        let mut buf = [0x55 as c_char; 5];
        ErrorBuf::new(buf.as_mut_ptr(), buf.len()).write("abé€");
        let bytes: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
        assert_eq!(&bytes[..4], b"ab\xc3\xa9");
        assert_eq!(bytes[4], 0);
    }

    #[test]
    fn a_panic_has_its_own_code_and_its_message() {
        let mut buf = [0 as c_char; 128];
        let result = guarded(ErrorBuf::new(buf.as_mut_ptr(), buf.len()), || {
            panic!("boom in a test")
        });
        assert_eq!(result, mw_result::Panic);
        let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        assert!(text.to_string_lossy().contains("boom in a test"));
    }
}
