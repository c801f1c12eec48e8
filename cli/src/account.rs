//! Who Apache's children run as, and what they can reach. Started by root,
//! Apache reads its configuration (and the module compiles) as root, then
//! its children switch to `User`: they serve the site's static files and
//! map the compiled-code cache, so both must be reachable by that user.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::MetadataExt;
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

/// Whether `user` can get to `path`: every folder above it searchable and
/// `path` itself readable (and searchable if a folder). Judged by the mode
/// bits and the user's primary group, which is enough for a warning.
pub fn can_reach(path: &Path, user: &ChildUser) -> bool {
    let allows = |path: &Path, want: u32| {
        fs::metadata(path).is_ok_and(|m| {
            let mode = m.mode();
            let bits = if m.uid() == user.uid {
                mode >> 6
            } else if m.gid() == user.gid {
                mode >> 3
            } else {
                mode
            };
            bits & want == want
        })
    };
    const READ: u32 = 4;
    const SEARCH: u32 = 1;
    let own = if path.is_dir() { READ | SEARCH } else { READ };
    allows(path, own) && path.ancestors().skip(1).all(|dir| allows(dir, SEARCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_folder_is_out_of_reach() {
        let nobody = ChildUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
        };
        let dir = std::env::temp_dir().join(format!("mod_wasm-cli-reach-{}", std::process::id()));
        fs::create_dir_all(dir.join("inner")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.join("inner"), fs::Permissions::from_mode(0o755)).unwrap();
        let open = can_reach(&dir.join("inner"), &nobody);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let closed = can_reach(&dir.join("inner"), &nobody);
        fs::remove_dir_all(&dir).unwrap();
        // The temporary directory itself may be private (TMPDIR).
        if can_reach(&std::env::temp_dir(), &nobody) {
            assert!(open);
        }
        assert!(!closed);
    }
}
