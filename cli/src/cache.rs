//! Where compiled code is kept between runs (`WasmCacheDir`), so that a
//! restarted dev server loads in milliseconds what took seconds to compile.
//! The module runs native code from that folder, so it refuses one owned by
//! somebody else or writable by group or others; this picks one it accepts,
//! or none.

use std::fs::{self, DirBuilder, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::account::{self, ChildUser};
use mod_wasm_rules::cache_dir;

pub enum Cache {
    Dir(PathBuf),
    /// `WasmCacheDir off`, and why.
    Off(String),
}

/// The per-user cache (`$XDG_CACHE_HOME/mod_wasm`, else
/// `$HOME/.cache/mod_wasm`) if it is usable; as root, whose home is usually
/// private to root, `/var/cache/mod_wasm` next, because the children (another
/// user) map the cache's files.
pub fn choose(children: Option<&ChildUser>) -> Cache {
    let mut refused = Vec::new();
    for dir in candidates(account::is_root()) {
        match prepare(&dir, children) {
            Ok(()) => return Cache::Dir(dir),
            Err(why) => refused.push(format!("{}: {why}", dir.display())),
        }
    }
    if refused.is_empty() {
        refused.push("neither XDG_CACHE_HOME nor HOME is set".to_owned());
    }
    Cache::Off(refused.join("; "))
}

fn candidates(root: bool) -> Vec<PathBuf> {
    let absolute = |name| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    let mut dirs = Vec::new();
    if let Some(xdg) = absolute("XDG_CACHE_HOME") {
        dirs.push(xdg.join(cache_dir::DEFAULT_DIR_NAME));
    } else if let Some(home) = absolute("HOME") {
        dirs.push(home.join(".cache").join(cache_dir::DEFAULT_DIR_NAME));
    }
    let system = PathBuf::from("/var/cache/mod_wasm");
    if root && !dirs.contains(&system) {
        dirs.push(system);
    }
    dirs
}

/// Creates `dir` if needed (0755: the children read it) and checks it as
/// the module will, plus that the children can get to it.
fn prepare(dir: &Path, children: Option<&ChildUser>) -> Result<(), String> {
    let out_of_reach =
        |user: &ChildUser| format!("Apache's children ({}) cannot reach it", user.name);
    // Creates nothing (in root's home, say) that would not be used.
    if let Some(user) = children
        && let Some(existing) = dir.ancestors().find(|a| a.exists())
        && !account::can_reach(existing, user)
    {
        return Err(out_of_reach(user));
    }
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match DirBuilder::new().mode(0o755).create(dir) {
        // The umask may have taken bits the children need.
        Ok(()) => fs::set_permissions(dir, Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot set its mode: {e}"))?,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create it: {e}")),
    }
    let metadata = fs::metadata(dir).map_err(|e| e.to_string())?;
    // The module's own rule: a folder it would refuse is no use.
    if let Some(why) = cache_dir::refusal(&metadata, cache_dir::effective_user()) {
        return Err(why);
    }
    if let Some(user) = children
        && !account::can_reach(dir, user)
    {
        return Err(out_of_reach(user));
    }
    Ok(())
}
