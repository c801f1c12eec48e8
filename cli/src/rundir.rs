//! The private directory of one run: Apache's configuration, pid file,
//! mutexes and runtime files. Fresh for every run (so that two dev servers
//! never share one), removed when the run ends.

use std::ffi::{CString, OsString};
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct RunDir(PathBuf);

impl RunDir {
    /// A new `<prefix>-XXXXXX` in `$TMPDIR` (or /tmp), 0700; 0755 when
    /// `shared`, because Apache's children then run as another user.
    pub fn create(prefix: &str, shared: bool) -> io::Result<RunDir> {
        let base = std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let template = base.join(format!("{prefix}-XXXXXX"));
        let template = CString::new(template.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "TMPDIR has a NUL byte"))?;
        let mut bytes = template.into_bytes_with_nul();
        // SAFETY: bytes is a NUL-terminated template ending in XXXXXX, which
        // mkdtemp overwrites in place.
        let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
        if made.is_null() {
            return Err(io::Error::last_os_error());
        }
        bytes.pop();
        let dir = RunDir(PathBuf::from(OsString::from_vec(bytes)));
        if shared {
            fs::set_permissions(&dir.0, Permissions::from_mode(0o755))?;
        }
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0)
            && e.kind() != io::ErrorKind::NotFound
        {
            eprintln!("mod_wasm: could not remove {}: {e}", self.0.display());
        }
    }
}
