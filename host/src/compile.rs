//! Validating and compiling `.wasm` files in the Apache parent.
//!
//! Apache reads its configuration twice at start-up and again on every
//! graceful restart. Compiling is expensive, so artifacts are cached for the
//! life of the process, keyed by the file's identity (device, inode, size and
//! modification time): an unchanged file is compiled once per process tree, a
//! replaced one is compiled again. The children inherit the cache through
//! fork() and only deserialize.

use crate::component::ComponentLinker;
use crate::engine;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmtime::component::Component;

/// A compiled, validated component, ready to be deserialized by a child.
pub struct Artifact {
    /// The canonical path of the source file.
    pub path: PathBuf,
    /// Output of `Component::serialize` for an engine built from
    /// [`engine::config`].
    pub serialized: Vec<u8>,
}

/// What a file looked like when it was compiled.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        FileIdentity {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.size(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
        }
    }
}

/// Canonical path to the artifact compiled from the file as it was then.
type Cache = HashMap<PathBuf, (FileIdentity, Arc<Artifact>)>;

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// How a call to [`component`] was satisfied, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file was compiled now.
    Compiled,
    /// An artifact for the unchanged file was already in the cache.
    Cached,
}

/// Validates and compiles the component at `path`, or returns the cached
/// artifact for it. The error is a sentence for the admin that names the
/// path.
pub fn component(path: &Path) -> Result<(Arc<Artifact>, Outcome), String> {
    let shown = path.display();
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("cannot open {shown}: {e}"))?;
    let metadata =
        std::fs::metadata(&canonical).map_err(|e| format!("cannot open {shown}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let identity = FileIdentity::of(&metadata);

    // Config reading is single-threaded; the lock only makes that explicit.
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some((cached, artifact)) = cache.get(&canonical)
        && *cached == identity
    {
        return Ok((artifact.clone(), Outcome::Cached));
    }

    let bytes = std::fs::read(&canonical).map_err(|e| format!("cannot read {shown}: {e}"))?;
    check_layer(&bytes).map_err(|why| format!("{shown} {why}"))?;
    let serialized = compile_serially(&bytes).map_err(|why| format!("{shown}: {why}"))?;
    let artifact = Arc::new(Artifact {
        path: canonical.clone(),
        serialized,
    });
    cache.insert(canonical, (identity, artifact.clone()));
    Ok((artifact, Outcome::Compiled))
}

/// Tells a component from a core module or a file that is not Wasm at all,
/// before the compiler gives a less helpful answer.
fn check_layer(bytes: &[u8]) -> Result<(), &'static str> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: &[u8] = &[1, 0, 0, 0];
    const COMPONENT_LAYER: &[u8] = &[1, 0];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("is not a WebAssembly file");
    }
    if &bytes[4..8] == CORE_MODULE {
        return Err("is a core WebAssembly module, not a component \
                    (WASI preview1 modules are served with WasmModule)");
    }
    if &bytes[6..8] != COMPONENT_LAYER {
        return Err("is not a WebAssembly component of a version this Wasmtime understands");
    }
    Ok(())
}

/// Compiles and links `bytes` against the same imports a child provides, and
/// checks the export, so that everything a child would find wrong is found
/// here, at start-up.
fn compile_serially(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let engine = engine::new().map_err(|e| format!("cannot create a Wasmtime engine: {e:#}"))?;
    let result = (|| {
        let component =
            Component::new(&engine, bytes).map_err(|e| format!("does not compile: {e:#}"))?;
        ComponentLinker::new(&engine)
            .map_err(|e| format!("cannot build the linker: {e:#}"))?
            .pre_instantiate(&component)?;
        component
            .serialize()
            .map_err(|e| format!("cannot serialize the compiled component: {e:#}"))
    })();
    // Wasmtime installed its trap handlers when the engine was created. The
    // children must install their own after fork(), chained to the handlers
    // Apache sets up there, so take ours out of the parent again. Every other
    // handle to this engine was dropped inside the closure above.
    //
    // SAFETY: this is the only engine in the parent (configuration reading is
    // single-threaded and engines are never kept there), no wasm code was run
    // on any thread, and nothing installed signal handlers since this engine
    // was created.
    unsafe { engine.unload_process_handlers() };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_core_modules_from_components() {
        assert_eq!(
            check_layer(b"hello world"),
            Err("is not a WebAssembly file")
        );
        assert!(
            check_layer(b"\0asm\x01\0\0\0")
                .unwrap_err()
                .contains("core")
        );
        assert!(check_layer(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(check_layer(b"\0asm\x0d\0\x02\0").is_err());
    }

    #[test]
    fn names_the_path_when_the_file_is_missing() {
        let err = component(Path::new("/nonexistent/app.wasm")).err().unwrap();
        assert!(err.contains("/nonexistent/app.wasm"), "{err}");
    }
}
