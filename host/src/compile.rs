//! Validating and compiling `.wasm` files in the Apache parent.
//!
//! Apache reads its configuration twice at start-up and again on every
//! graceful restart. Compiling is expensive, so artifacts are cached twice:
//! for the life of the process, keyed by the file's identity (device, inode,
//! size and modification time), and on disk across restarts, keyed by the
//! file's content (see [`crate::cache`]). An unchanged file is compiled once,
//! a replaced one again. The children inherit the artifacts through fork()
//! and only load them: from the cache file, mapped, or from memory when
//! there is no cache directory.

use crate::cache::DiskCache;
use crate::component::ComponentLinker;
use crate::engine;
pub use crate::kind::Kind;
use crate::legacy::ModuleLinker;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::{Engine, Module, ResourcesRequired};

/// A compiled, validated component or module, ready to be loaded by a
/// child.
pub struct Artifact {
    /// The canonical path of the source file.
    pub path: PathBuf,
    /// What it is, which says the engine it was compiled for.
    pub kind: Kind,
    /// The compiled code, for an engine built from [`engine::config_for`]
    /// its kind.
    pub code: Code,
    /// What one instance needs from an instance pool.
    pub footprint: Footprint,
    /// The source file as it was when compiled.
    pub(crate) identity: FileIdentity,
    /// How long compiling it (or loading it from the disk cache) took.
    pub prepared: Duration,
}

/// Where an artifact's compiled code is.
pub enum Code {
    /// In a file of the disk cache, to be mapped.
    File(PathBuf),
    /// Output of `Component::serialize` or `Module::serialize`, held in
    /// memory (no disk cache, or compiled by a child).
    Bytes(Vec<u8>),
}

/// The linear memories and tables one instance of a component or module
/// defines, to size the instance pool by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Linear memories.
    pub memories: u32,
    /// Tables.
    pub tables: u32,
}

impl Footprint {
    /// What is assumed when Wasmtime cannot tell (a component that
    /// instantiates imported modules, which no linker of ours provides).
    const UNKNOWN: Footprint = Footprint {
        memories: 4,
        tables: 4,
    };

    pub(crate) fn of(resources: Option<ResourcesRequired>) -> Self {
        resources.map_or(Footprint::UNKNOWN, |r| Footprint {
            memories: r.num_memories,
            tables: r.num_tables,
        })
    }

    /// The larger of each count.
    pub fn max(self, other: Footprint) -> Footprint {
        Footprint {
            memories: self.memories.max(other.memories),
            tables: self.tables.max(other.tables),
        }
    }
}

/// A freshly compiled component or module.
pub(crate) struct Compiled {
    /// Output of `serialize`.
    pub serialized: Vec<u8>,
    /// What one instance of it needs.
    pub footprint: Footprint,
}

/// What a file looked like when it was compiled.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
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

/// Canonical path and kind to the artifact compiled from the file as it was
/// then.
type Cache = HashMap<(PathBuf, Kind), (FileIdentity, Arc<Artifact>)>;

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// How a call to [`component`] was satisfied, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file was compiled now.
    Compiled,
    /// This process already had an artifact for the unchanged file.
    Cached,
    /// The disk cache had the artifact for the file's content.
    Loaded,
}

/// Validates and compiles the component at `path`, or returns the cached
/// artifact for it; `disk` is the cache directory, if any. The error is a
/// sentence for the admin that names the path.
pub fn component(
    path: &Path,
    disk: Option<&DiskCache>,
) -> Result<(Arc<Artifact>, Outcome), String> {
    artifact(path, Kind::Component, disk)
}

/// Validates and compiles the WASI preview1 module at `path`, or returns the
/// cached artifact for it, as [`component`] does for components.
pub fn module(path: &Path, disk: Option<&DiskCache>) -> Result<(Arc<Artifact>, Outcome), String> {
    artifact(path, Kind::Module, disk)
}

/// The canonical path of the regular file at `path`, and its identity now.
pub(crate) fn identify(path: &Path) -> Result<(PathBuf, FileIdentity), String> {
    let shown = path.display();
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("cannot open {shown}: {e}"))?;
    let metadata =
        std::fs::metadata(&canonical).map_err(|e| format!("cannot open {shown}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    Ok((canonical, FileIdentity::of(&metadata)))
}

fn artifact(
    path: &Path,
    kind: Kind,
    disk: Option<&DiskCache>,
) -> Result<(Arc<Artifact>, Outcome), String> {
    let shown = path.display();
    let (canonical, identity) = identify(path)?;

    // Config reading is single-threaded; the lock only makes that explicit.
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    let key = (canonical, kind);
    if let Some((cached, artifact)) = cache.get(&key)
        && *cached == identity
        && artifact.code.is_available(disk)
    {
        return Ok((artifact.clone(), Outcome::Cached));
    }

    let started = Instant::now();
    let bytes = std::fs::read(&key.0).map_err(|e| format!("cannot read {shown}: {e}"))?;
    check_layer(&bytes, kind).map_err(|why| format!("{shown} {why}"))?;
    let file_kind = kind.of_file(&bytes);
    let (code, footprint, outcome) = with_parent_engine(file_kind, |engine| {
        build(engine, &key.0, &bytes, file_kind, disk)
    })
    .map_err(|why| format!("{shown}: {why}"))?;
    let artifact = Arc::new(Artifact {
        path: key.0.clone(),
        kind: file_kind,
        code,
        footprint,
        identity,
        prepared: started.elapsed(),
    });
    cache.insert(key, (identity, artifact.clone()));
    Ok((artifact, outcome))
}

impl Code {
    /// The compiled component, for an engine built from [`engine::config`]
    /// (the allocator may differ). Files are mapped, not copied.
    pub fn component(&self, engine: &Engine) -> wasmtime::Result<Component> {
        // SAFETY: a file is in a cache directory only Apache's own user can
        // write (checked by `DiskCache::open`), where it was stored from
        // `Component::serialize`; bytes came from `Component::serialize` in
        // this process tree. Wasmtime checks the version and settings of
        // both.
        unsafe {
            match self {
                Code::File(file) => Component::deserialize_file(engine, file),
                Code::Bytes(bytes) => Component::deserialize(engine, bytes),
            }
        }
    }

    /// The compiled module, as [`Code::component`] for components.
    pub fn module(&self, engine: &Engine) -> wasmtime::Result<Module> {
        // SAFETY: as in `Code::component`, with `Module::serialize`.
        unsafe {
            match self {
                Code::File(file) => Module::deserialize_file(engine, file),
                Code::Bytes(bytes) => Module::deserialize(engine, bytes),
            }
        }
    }

    /// Whether a child can still load this code: a cache file may have been
    /// deleted, or the cache directory changed, since it was made.
    fn is_available(&self, disk: Option<&DiskCache>) -> bool {
        match self {
            Code::File(file) => {
                disk.is_some_and(|d| file.parent() == Some(d.dir())) && file.is_file()
            }
            Code::Bytes(_) => disk.is_none(),
        }
    }
}

/// The artifact of `bytes` (read from `source`): loaded from the disk cache
/// if it holds one, compiled otherwise (and stored there).
fn build(
    engine: &Engine,
    source: &Path,
    bytes: &[u8],
    kind: Kind,
    disk: Option<&DiskCache>,
) -> Result<(Code, Footprint, Outcome), String> {
    let Some(disk) = disk else {
        let compiled = compile(engine, bytes, kind)?;
        return Ok((
            Code::Bytes(compiled.serialized),
            compiled.footprint,
            Outcome::Compiled,
        ));
    };
    let entry = disk.entry(source, bytes, kind, engine);
    // An entry that does not load (truncated by a full disk, or made by a
    // Wasmtime that writes the same key differently) is compiled again and
    // replaced.
    if entry.is_file()
        && let Ok(footprint) = load_file(engine, &entry, kind)
    {
        return Ok((Code::File(entry), footprint, Outcome::Loaded));
    }
    let compiled = compile(engine, bytes, kind)?;
    disk.store(&entry, &compiled.serialized)?;
    Ok((Code::File(entry), compiled.footprint, Outcome::Compiled))
}

/// Loads a cache file as the child will, and links it, so that a file the
/// child could not use is found now.
fn load_file(engine: &Engine, file: &Path, kind: Kind) -> Result<Footprint, String> {
    let code = Code::File(file.to_path_buf());
    match kind {
        Kind::Component | Kind::Component03 => {
            let component = code.component(engine).map_err(|e| format!("{e:#}"))?;
            ComponentLinker::new(engine, kind)
                .map_err(|e| format!("cannot build the linker: {e:#}"))?
                .pre_instantiate(&component)?;
            Ok(Footprint::of(component.resources_required()))
        }
        Kind::Module => {
            let module = code.module(engine).map_err(|e| format!("{e:#}"))?;
            ModuleLinker::new(engine)
                .map_err(|e| format!("cannot build the linker: {e:#}"))?
                .pre_instantiate(&module)?;
            Ok(Footprint::of(Some(module.resources_required())))
        }
    }
}

// The largest `.wasm` file a child reads to compile on demand (a component
// file, an `.htaccess` module): the 18 MB Python example is far below it; a
// video someone served with `SetHandler wasm-handler` is not read at all.
use mod_wasm_rules::MAX_WASM_BYTES;

/// The bytes of the `.wasm` file at `path` if it is one of `kind` and at
/// most [`MAX_WASM_BYTES`]: only its first 8 bytes are read otherwise. The
/// error completes a sentence that starts with the file's name.
pub(crate) fn read_checked(path: &Path, kind: Kind) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    if size > MAX_WASM_BYTES {
        return Err(format!("is larger than {} MiB", MAX_WASM_BYTES >> 20));
    }
    let mut head = [0; 8];
    file.read_exact(&mut head)
        .map_err(|_| "is not a WebAssembly file".to_string())?;
    check_layer(&head, kind)?;
    let mut bytes = head.to_vec();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    Ok(bytes)
}

/// Tells a component from a core module or a file that is not Wasm at all,
/// before the compiler gives a less helpful answer.
fn check_layer(bytes: &[u8], kind: Kind) -> Result<(), &'static str> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: &[u8] = &[1, 0, 0, 0];
    const COMPONENT_LAYER: &[u8] = &[1, 0];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("is not a WebAssembly file");
    }
    let core = &bytes[4..8] == CORE_MODULE;
    match kind {
        Kind::Component | Kind::Component03 if core => {
            Err("is a core WebAssembly module, not a component \
                 (WASI preview1 modules are served with WasmModule)")
        }
        Kind::Component | Kind::Component03 if &bytes[6..8] != COMPONENT_LAYER => {
            Err("is not a WebAssembly component of a version this Wasmtime understands")
        }
        Kind::Module if !core && &bytes[6..8] == COMPONENT_LAYER => {
            Err("is a WebAssembly component, not a WASI preview1 module \
                 (components are served with WasmComponent)")
        }
        Kind::Module if !core => {
            Err("is not a core WebAssembly module of a version this Wasmtime understands")
        }
        _ => Ok(()),
    }
}

/// Compiles `bytes` as `kind` with `engine` and links it against the same
/// imports a child provides, checking the exports it must have, so that
/// everything a child would find wrong is found when the file is named.
pub(crate) fn compile(engine: &Engine, bytes: &[u8], kind: Kind) -> Result<Compiled, String> {
    match kind {
        Kind::Component | Kind::Component03 => {
            let component =
                Component::new(engine, bytes).map_err(|e| format!("does not compile: {e:#}"))?;
            ComponentLinker::new(engine, kind)
                .map_err(|e| format!("cannot build the linker: {e:#}"))?
                .pre_instantiate(&component)?;
            Ok(Compiled {
                serialized: component
                    .serialize()
                    .map_err(|e| format!("cannot serialize the compiled component: {e:#}"))?,
                footprint: Footprint::of(component.resources_required()),
            })
        }
        Kind::Module => {
            let module =
                Module::new(engine, bytes).map_err(|e| format!("does not compile: {e:#}"))?;
            ModuleLinker::new(engine)
                .map_err(|e| format!("cannot build the linker: {e:#}"))?
                .pre_instantiate(&module)?;
            Ok(Compiled {
                serialized: module
                    .serialize()
                    .map_err(|e| format!("cannot serialize the compiled module: {e:#}"))?,
                footprint: Footprint::of(Some(module.resources_required())),
            })
        }
    }
}

/// Runs `work` in the parent with a throwaway engine for files of `kind`.
fn with_parent_engine<R>(
    kind: Kind,
    work: impl FnOnce(&Engine) -> Result<R, String>,
) -> Result<R, String> {
    let engine =
        engine::new_for(kind).map_err(|e| format!("cannot create a Wasmtime engine: {e:#}"))?;
    let result = work(&engine);
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
        let component = Kind::Component;
        assert_eq!(
            check_layer(b"hello world", component),
            Err("is not a WebAssembly file")
        );
        assert!(
            check_layer(b"\0asm\x01\0\0\0", component)
                .unwrap_err()
                .contains("core")
        );
        assert!(check_layer(b"\0asm\x0d\0\x01\0", component).is_ok());
        assert!(check_layer(b"\0asm\x0d\0\x02\0", component).is_err());
    }

    #[test]
    fn tells_components_from_core_modules() {
        let module = Kind::Module;
        assert!(check_layer(b"\0asm\x01\0\0\0", module).is_ok());
        assert!(
            check_layer(b"\0asm\x0d\0\x01\0", module)
                .unwrap_err()
                .contains("WasmComponent")
        );
        assert!(check_layer(b"\0asm\x02\0\0\0", module).is_err());
        assert!(check_layer(b"#!/bin/sh", module).is_err());
    }

    #[test]
    fn names_the_path_when_the_file_is_missing() {
        let err = component(Path::new("/nonexistent/app.wasm"), None)
            .err()
            .unwrap();
        assert!(err.contains("/nonexistent/app.wasm"), "{err}");
    }
}
