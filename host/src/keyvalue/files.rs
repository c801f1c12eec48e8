//! Whether the children may keep a SQLite store's file where it is named:
//! checked in the parent once `User` is known, because root read the
//! configuration and the children write the file.

use mod_wasm_rules::reach::{Account, can_reach};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Writable by group or others.
const SHARED_WRITE: u32 = 0o022;

/// Checks `file`'s directory (creating it for `children` if missing, and
/// handing it to them when `may_chown`) and the file if it exists. The
/// error says what is wrong and what to do.
pub fn check_file(
    file: &Path,
    children: &Account,
    gid: u32,
    may_chown: bool,
) -> Result<(), String> {
    let dir = file.parent().unwrap_or(Path::new("/"));
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the store's directory {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
        if may_chown {
            std::os::unix::fs::chown(dir, Some(children.uid), Some(gid))
                .map_err(|e| format!("cannot give {} to {}: {e}", dir.display(), children.name))?;
        }
    }
    let owned = |path: &Path, what: &str| -> Result<(), String> {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
        if meta.uid() != children.uid || meta.mode() & SHARED_WRITE != 0 {
            return Err(format!(
                "{what} {} must belong to {}, who runs Apache's children and writes the store, \
                 and be writable by nobody else (it belongs to user id {} with mode {:o})",
                path.display(),
                children.name,
                meta.uid(),
                meta.mode() & 0o7777
            ));
        }
        Ok(())
    };
    owned(dir, "the store's directory")?;
    if !can_reach(dir, children) {
        return Err(format!(
            "{} cannot reach the store's directory {} (a folder above it is closed to them)",
            children.name,
            dir.display()
        ));
    }
    if file.exists() {
        owned(file, "the store's file")?;
    }
    Ok(())
}
