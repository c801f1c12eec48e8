//! The on-disk cache of compiled components and modules (`WasmCacheDir`).
//!
//! Compiling an interpreter-sized component takes Cranelift tens of seconds;
//! loading its compiled form takes milliseconds. The parent stores each
//! artifact in a file named after a hash of everything that decides the
//! machine code: the `.wasm` file's bytes, what it is served as, and the
//! engine's compatibility hash (Wasmtime version, target, code-generation
//! settings). A changed `.wasm` file, a Wasmtime upgrade or a new setting
//! therefore miss the cache and compile again; nothing else does.
//!
//! Children map these files (`Component::deserialize_file`) rather than copy
//! them, so the compiled code is in memory once for the whole server.
//!
//! Loading a file from here runs its contents as native code. The directory
//! must therefore be writable only by the user that starts Apache: one
//! writable by anybody else is refused.

use crate::kind::Kind;
use mod_wasm_rules::cache_dir;
use sha2::{Digest, Sha256};
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use wasmtime::Engine;

/// What the cache files are called: `<stem>-<hash>.cwasm`.
const EXTENSION: &str = "cwasm";

/// A directory of compiled artifacts, checked to be safe to load code from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// The cache in `dir`, created (mode 0755, so that the children's user
    /// can read it) with its parents if missing. Fails with a sentence if it
    /// cannot be created or is not safe: not a directory, not owned by this
    /// process's user, or writable by group or others.
    pub fn open(dir: &Path) -> Result<DiskCache, String> {
        let shown = dir.display();
        if !dir.is_absolute() {
            return Err(format!("{shown} is not an absolute path"));
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| format!("cannot create {shown}: {e}"))?;
        let metadata = fs::metadata(dir).map_err(|e| format!("cannot open {shown}: {e}"))?;
        if let Some(why) = cache_dir::refusal(&metadata, cache_dir::effective_user()) {
            return Err(format!(
                "{shown} is refused: {why}; compiled code is only loaded from a directory \
                 nobody else can write"
            ));
        }
        Ok(DiskCache {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact of `source` (the `.wasm` file's canonical path and
    /// its bytes), compiled as `kind` by `engine`, is or will be stored.
    pub fn entry(&self, source: &Path, bytes: &[u8], kind: Kind, engine: &Engine) -> PathBuf {
        let mut key = KeyHasher(Sha256::new());
        key.0.update(match kind {
            Kind::Component => b"component\0".as_slice(),
            Kind::Component03 => b"component 0.3\0".as_slice(),
            Kind::Module => b"module\0".as_slice(),
        });
        engine.precompile_compatibility_hash().hash(&mut key);
        // Our own version too: the same bytes may be validated differently
        // (a linker with other imports) by another mod_wasm.
        key.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        key.0.update(b"\0");
        key.0.update(bytes);
        let digest = key.0.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        // The stem only helps an admin tell the files apart.
        let stem: String = source
            .file_stem()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(64)
            .collect();
        self.dir.join(format!("{stem}-{hex}.{EXTENSION}"))
    }

    /// Stores `serialized` at `entry` (from [`DiskCache::entry`]) so that no
    /// reader ever sees a partial file: written to a temporary file in the
    /// same directory, then renamed over. Readable by everybody (the
    /// children run as another user), writable by nobody.
    pub fn store(&self, entry: &Path, serialized: &[u8]) -> Result<(), String> {
        let temporary = entry.with_extension(format!("{EXTENSION}.{}.tmp", std::process::id()));
        let written = write_new(&temporary, serialized).and_then(|()| {
            fs::set_permissions(&temporary, Permissions::from_mode(0o444))?;
            fs::rename(&temporary, entry)
        });
        written.map_err(|e| {
            _ = fs::remove_file(&temporary);
            format!("cannot store compiled code in {}: {e}", entry.display())
        })
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Feeds a `Hash` value into the key's digest (the engine's compatibility
/// hash is only available as `impl Hash`).
struct KeyHasher(Sha256);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Never asked: the digest is taken from the inner SHA-256.
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mod_wasm-cache-{name}-{}", std::process::id()));
        _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn keys_follow_content_kind_and_engine() {
        let dir = scratch("keys");
        let cache = DiskCache::open(&dir).unwrap();
        let engine = crate::engine::new().unwrap();
        let app = Path::new("/srv/app.wasm");
        let a = cache.entry(app, b"one", Kind::Component, &engine);
        assert_eq!(a, cache.entry(app, b"one", Kind::Component, &engine));
        assert!(a.file_name().unwrap().to_str().unwrap().starts_with("app-"));
        assert_ne!(a, cache.entry(app, b"two", Kind::Component, &engine));
        assert_ne!(a, cache.entry(app, b"one", Kind::Module, &engine));
        let mut other = crate::engine::config();
        other.epoch_interruption(false);
        let other = Engine::new(&other).unwrap();
        assert_ne!(a, cache.entry(app, b"one", Kind::Component, &other));
        _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_a_directory_others_can_write() {
        let dir = scratch("mode");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o777)).unwrap();
        let err = DiskCache::open(&dir).unwrap_err();
        assert!(err.contains("writable by group or others"), "{err}");
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        assert!(DiskCache::open(&dir).is_ok());
        _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn stores_whole_read_only_files() {
        let dir = scratch("store");
        let cache = DiskCache::open(&dir).unwrap();
        let entry = dir.join("x-00.cwasm");
        cache.store(&entry, b"compiled").unwrap();
        assert_eq!(fs::read(&entry).unwrap(), b"compiled");
        assert_eq!(fs::metadata(&entry).unwrap().mode() & 0o777, 0o444);
        // Replacing an entry works although the old file is read-only.
        cache.store(&entry, b"again").unwrap();
        assert_eq!(fs::read(&entry).unwrap(), b"again");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary left");
        _ = fs::remove_dir_all(&dir);
    }
}
