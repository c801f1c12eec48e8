//! Who Apache's children run as, and what they can reach. Started by root,
//! Apache reads its configuration (and the module compiles) as root, then
//! its children switch to `User`: they serve the site's static files and
//! map the compiled-code cache, so both must be reachable by that user.

use mod_wasm_rules::reach::{self, Account};
use std::ffi::CString;
use std::path::Path;

/// The default `User` when started as root: Debian's Apache user.
const DEFAULT_USER: &str = "www-data";

pub struct ChildUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The user the children switch to: `requested` or www-data when running
/// as root, None otherwise (Apache then keeps its own user for them).
pub fn children_user(requested: Option<&str>) -> Result<Option<ChildUser>, String> {
    if !is_root() {
        return Ok(None);
    }
    let name = requested.unwrap_or(DEFAULT_USER);
    // Written unquoted into the configuration: plain names only.
    let plain = !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !plain {
        return Err(format!("--user {name:?} is not a plain user name"));
    }
    let c_name = CString::new(name).map_err(|_| format!("--user {name:?}: invalid"))?;
    // SAFETY: c_name is a valid C string; getpwnam's static result is read
    // before any other passwd call, and this program has one thread here.
    let entry = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if entry.is_null() {
        return Err(format!(
            "there is no user {name} for Apache's children to run as \
             (Apache refuses to run them as root): pick one with --user NAME"
        ));
    }
    // SAFETY: non-null, so it points to a passwd entry (see above).
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    if uid == 0 {
        return Err(format!(
            "--user {name} is root, and Apache refuses to run its children as root"
        ));
    }
    Ok(Some(ChildUser {
        name: name.to_owned(),
        uid,
        gid,
    }))
}

/// Whether `user` can get to `path` (the module's own rule, which also
/// counts the user's supplementary groups).
pub fn can_reach(path: &Path, user: &ChildUser) -> bool {
    reach::can_reach(path, &Account::of(user.uid, user.gid))
}
