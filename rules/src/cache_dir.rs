//! Which directory compiled code may be loaded from (`WasmCacheDir`).
//!
//! Loading a compiled artifact runs its contents as native code, so the
//! directory must be writable by nobody but the user Apache starts as.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// The directory's name under Apache's runtime directory when no
/// `WasmCacheDir` is configured (the C side asks for it through the
/// header, as `MW_DEFAULT_CACHE_DIR_NAME`).
pub const DEFAULT_DIR_NAME: &str = "mod_wasm";

/// Why a directory with `metadata` is not safe to load code from for the
/// user `euid`, in a few words; `None` if it is.
pub fn refusal(metadata: &Metadata, euid: u32) -> Option<String> {
    if !metadata.is_dir() {
        return Some("it is not a directory".to_owned());
    }
    if metadata.uid() != euid {
        return Some(format!(
            "it belongs to user {}, not to the user Apache starts as ({euid})",
            metadata.uid()
        ));
    }
    if metadata.mode() & 0o022 != 0 {
        return Some(format!(
            "it is writable by group or others (mode {:o})",
            metadata.mode() & 0o7777
        ));
    }
    None
}

/// This process's effective user.
pub fn effective_user() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_an_own_directory_nobody_else_can_write_is_safe() {
        let dir = std::env::temp_dir().join(format!("mod_wasm-rules-cache-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let me = effective_user();
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        assert_eq!(refusal(&fs::metadata(&dir).unwrap(), me), None);
        let other = refusal(&fs::metadata(&dir).unwrap(), me + 1).unwrap();
        assert!(other.contains("belongs to user"), "{other}");
        fs::set_permissions(&dir, Permissions::from_mode(0o775)).unwrap();
        let group = refusal(&fs::metadata(&dir).unwrap(), me).unwrap();
        assert!(group.contains("mode 775"), "{group}");
        let file = dir.join("f");
        fs::write(&file, b"").unwrap();
        assert!(refusal(&fs::metadata(&file).unwrap(), me).is_some());
        fs::remove_dir_all(&dir).unwrap();
    }
}
