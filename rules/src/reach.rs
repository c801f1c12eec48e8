//! Whether Apache's children can get to a path. Started by root, Apache
//! reads its configuration (and checks every `WasmDir`) as root, then its
//! children switch to `User`: a directory root can open may be closed to
//! them, and a guest granted it fails on every request. The module warns at
//! start-up and the dev server before it starts Apache, by this one rule.

use std::ffi::CStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A user and the groups it belongs to.
#[derive(Clone, Debug)]
pub struct Account {
    /// Its name, for messages (the number if it has none).
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group and its supplementary groups.
    pub groups: Vec<u32>,
}

impl Account {
    /// The account with user id `uid` and primary group `gid`, with the
    /// supplementary groups the group database gives it.
    pub fn of(uid: u32, gid: u32) -> Account {
        let mut account = Account {
            name: uid.to_string(),
            uid,
            groups: vec![gid],
        };
        // SAFETY: getpwuid has no preconditions; its static result is read
        // at once (the callers look accounts up while single-threaded: the
        // Apache parent reading its configuration, the CLI at start).
        let entry = unsafe { libc::getpwuid(uid) };
        if entry.is_null() {
            return account;
        }
        // SAFETY: non-null, so it points to a passwd entry whose name is a
        // C string.
        let name = unsafe { CStr::from_ptr((*entry).pw_name) };
        account.name = name.to_string_lossy().into_owned();
        let mut groups = vec![0 as libc::gid_t; 64];
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `name` is a C string and `groups` has `count` slots; on
        // failure (more groups than slots) `count` is not used.
        let found =
            unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if found >= 0 {
            groups.truncate(usize::try_from(count).unwrap_or(0));
            account.groups = groups;
        }
        account
    }
}

/// Whether `account` can get to `path`: every folder above it searchable
/// and `path` itself readable (and searchable if a folder). Judged by the
/// mode bits, as the kernel does without ACLs; root gets everywhere.
pub fn can_reach(path: &Path, account: &Account) -> bool {
    if account.uid == 0 {
        return true;
    }
    let allows = |path: &Path, want: u32| {
        fs::metadata(path).is_ok_and(|m| {
            let mode = m.mode();
            let bits = if m.uid() == account.uid {
                mode >> 6
            } else if account.groups.contains(&m.gid()) {
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

    fn nobody() -> Account {
        Account {
            name: "nobody".into(),
            uid: 65534,
            groups: vec![65534],
        }
    }

    #[test]
    fn a_private_folder_above_is_out_of_reach() {
        let dir = std::env::temp_dir().join(format!("mod_wasm-rules-reach-{}", std::process::id()));
        fs::create_dir_all(dir.join("inner")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.join("inner"), fs::Permissions::from_mode(0o755)).unwrap();
        let open = can_reach(&dir.join("inner"), &nobody());
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let closed = can_reach(&dir.join("inner"), &nobody());
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        let group = fs::metadata(&dir).unwrap().gid();
        let member = Account {
            groups: vec![65534, group],
            ..nobody()
        };
        let as_member = can_reach(&dir.join("inner"), &member);
        fs::remove_dir_all(&dir).unwrap();
        // The temporary directory itself may be private (TMPDIR).
        if can_reach(&std::env::temp_dir(), &nobody()) {
            assert!(open);
            assert!(as_member, "a supplementary group's bits apply");
        }
        assert!(!closed);
    }

    #[test]
    fn an_account_is_named_from_the_user_database() {
        assert_eq!(Account::of(0, 0).name, "root");
        assert_eq!(Account::of(4_000_000_000, 1).name, "4000000000");
    }
}
