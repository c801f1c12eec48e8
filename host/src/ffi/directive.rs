//! The numeric directives' values (see [`crate::directive`]), for the C
//! side's directive handlers.

use super::error::{ErrorBuf, guarded};
use super::{mw_bytes, mw_result};
use crate::directive;
use std::ffi::c_char;

/// Which directive a value is for.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum mw_number {
    /// `WasmTimeout`: seconds in, milliseconds out.
    Timeout,
    /// `WasmMemoryLimit`: a size in, bytes out.
    MemoryLimit,
    /// `WasmMaxInstances`: a count.
    Count,
    /// `WasmInstanceReuse`: `Off` (1) or a count.
    CountOrOff,
}

/// Reads `text` as the value `kind` says into `*value_out`, or says in `err`
/// why it is not one (a sentence to follow the directive's name).
///
/// # Safety
/// `text` is valid; `value_out` is writable; `err` has `err_len` writable
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mw_parse_number(
    kind: mw_number,
    text: mw_bytes,
    value_out: *mut u64,
    err: *mut c_char,
    err_len: usize,
) -> mw_result {
    let err = ErrorBuf::new(err, err_len);
    guarded(err, || {
        if value_out.is_null() {
            return err.fail(mw_result::NullArgument, "NULL argument");
        }
        // SAFETY: the caller's contract.
        let text = String::from_utf8_lossy(unsafe { text.as_slice() });
        let parsed = match kind {
            mw_number::Timeout => directive::timeout_ms(&text),
            mw_number::MemoryLimit => directive::memory_limit(&text),
            mw_number::Count => directive::count(&text, false).map(u64::from),
            mw_number::CountOrOff => directive::count(&text, true).map(u64::from),
        };
        match parsed {
            Ok(value) => {
                // SAFETY: the caller's contract.
                unsafe { *value_out = value };
                mw_result::Ok
            }
            Err(why) => err.fail(mw_result::InvalidConfig, &why),
        }
    })
}
