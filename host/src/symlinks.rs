//! Guests never create symbolic links, in any grant.
//!
//! A guest confined to a read-write `WasmDir` or `WasmMapDir` cannot follow
//! a link out of it (cap-std resolves every path inside the grant), but the
//! link stays on disk for everything that is not confined: Apache's static
//! handler through an `Alias`, a backup job, the next program reading the
//! folder. A link `../../../etc/passwd` planted there would turn them into
//! the guest's way out. Links whose targets resolve inside the grant would
//! be safe only until the tree around them changes, so none are allowed:
//! `symlink-at` (WASI 0.2 and 0.3) and `path_symlink` (preview1) answer
//! "not permitted", as for a read-only grant. Hard links stay: both ends are
//! inside the grant, and a hard link names no path.

use wasmtime::component::{Linker as ComponentLinker, Resource};
use wasmtime::{Linker as ModuleLinker, StoreContextMut};
use wasmtime_wasi::p2::bindings::filesystem::types::{Descriptor, ErrorCode};
use wasmtime_wasi::p3::bindings::filesystem::types::ErrorCode as ErrorCode03;

/// The `wasi:filesystem/types` version wasmtime-wasi defines; a guest's
/// import of any 0.2.x resolves to it.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// The same for WASI 0.3.
const FILESYSTEM_TYPES_03: &str = "wasi:filesystem/types@0.3.0";

/// preview1's `errno::perm`.
const ERRNO_PERM: i32 = 63;

/// Replaces `[method]descriptor.symlink-at` in a linker that has WASI 0.2.
pub fn refuse_in_components<T: 'static>(linker: &mut ComponentLinker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let defined = linker.instance(FILESYSTEM_TYPES)?.func_wrap(
        "[method]descriptor.symlink-at",
        |_: StoreContextMut<'_, T>,
         (_dir, _target, _link): (Resource<Descriptor>, String, String)| {
            Ok((Err::<(), _>(ErrorCode::NotPermitted),))
        },
    );
    linker.allow_shadowing(false);
    defined
}

/// Replaces WASI 0.3's `[method]descriptor.symlink-at` in a linker that
/// has it. The function is `async` in 0.3's WIT, so it is defined as a
/// concurrent host function, as wasmtime-wasi defines it.
pub fn refuse_in_components03<T: 'static>(linker: &mut ComponentLinker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let defined = linker.instance(FILESYSTEM_TYPES_03)?.func_wrap_concurrent(
        "[method]descriptor.symlink-at",
        |_,
         (_dir, _target, _link): (
            Resource<wasmtime_wasi::filesystem::Descriptor>,
            String,
            String,
        )| { Box::pin(async { Ok((Err::<(), _>(ErrorCode03::NotPermitted),)) }) },
    );
    linker.allow_shadowing(false);
    defined
}

/// Replaces `wasi_snapshot_preview1.path_symlink` in a linker that has
/// preview1.
pub fn refuse_in_modules<T: 'static>(linker: &mut ModuleLinker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let defined = linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "path_symlink",
            |_: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { ERRNO_PERM },
        )
        .map(|_| ());
    linker.allow_shadowing(false);
    defined
}
