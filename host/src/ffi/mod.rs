//! The C ABI that `mod_wasm/` calls.
//!
//! Conventions (after rustls-ffi): opaque handles, `mw_<type>_<verb>` names,
//! inputs first and outputs last, a buffer is always followed by its length,
//! every pointer checked for NULL, outputs written only on success, and every
//! body inside a panic boundary so that a bug here becomes an error code, not
//! a dead Apache child. Bytes cross as borrowed [`mw_bytes`] views, valid for
//! the duration of the call that receives them. The header
//! `host/include/mod_wasm_host.h` is generated from this module by cbindgen.
#![allow(non_camel_case_types, reason = "C names, as the header shows them")]

mod directive;
mod error;
mod exchange;
mod files;
mod host;
mod keyvalue;
mod middleware;
mod module;
mod sandbox;
mod stats;

pub use directive::*;
pub use exchange::*;
pub use files::*;
pub use host::*;
pub use keyvalue::*;
pub use middleware::*;
pub use module::*;
pub use sandbox::*;
pub use stats::*;

/// A borrowed view of bytes owned by the caller.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mw_bytes {
    /// The first byte; may be NULL when `len` is 0.
    pub ptr: *const u8,
    /// The number of bytes.
    pub len: usize,
}

impl mw_bytes {
    /// The bytes as a slice.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that stay valid for `'a`.
    pub(crate) unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: the caller's contract.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    pub(crate) fn of(bytes: &[u8]) -> Self {
        mw_bytes {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }
}

/// The `len` elements at `ptr` as a slice; empty when `ptr` is NULL.
///
/// # Safety
/// `ptr` is NULL, or points to `len` valid elements that outlive `'a`.
pub(crate) unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// One header field. Names and values are bytes, not necessarily UTF-8.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct mw_header {
    /// The field name.
    pub name: mw_bytes,
    /// The field value.
    pub value: mw_bytes,
}

/// How a file named by a directive was made ready.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mw_outcome {
    /// Compiled now (and stored in the cache directory, if there is one).
    Compiled = 0,
    /// This process had already compiled the unchanged file.
    Reused = 1,
    /// Loaded from the cache directory, which held code for its content.
    Loaded = 2,
}

impl From<crate::compile::Outcome> for mw_outcome {
    fn from(outcome: crate::compile::Outcome) -> Self {
        use crate::compile::Outcome;
        match outcome {
            Outcome::Compiled => mw_outcome::Compiled,
            Outcome::Cached => mw_outcome::Reused,
            Outcome::Loaded => mw_outcome::Loaded,
        }
    }
}

/// What a call returns.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mw_result {
    /// Success.
    Ok = 0,
    /// A required pointer was NULL.
    NullArgument = 1,
    /// A configured file is missing, not a component, or does not validate.
    InvalidComponent = 2,
    /// This child has not loaded the component (its load failed).
    NotLoaded = 3,
    /// The request could not be expressed as a wasi:http request.
    BadRequest = 4,
    /// The guest trapped, returned an error, or produced an invalid response.
    GuestFailed = 5,
    /// The guest returned without setting a response.
    NoResponse = 6,
    /// A callback of the exchange refused a head or data.
    SinkFailed = 7,
    /// The host could not serve: a resource that could not be had (a full
    /// instance pool, no runtime).
    Internal = 8,
    /// The request ran past its time limit; the guest was stopped.
    Timeout = 9,
    /// A directive's value is invalid.
    InvalidConfig = 10,
    /// The host panicked: a bug in mod_wasm, never the guest's doing. The
    /// message says where.
    Panic = 11,
}
