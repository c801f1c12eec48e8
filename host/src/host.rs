//! One configuration generation: the components and modules its directives
//! named.
//!
//! The C side creates a [`Host`] before Apache reads its configuration, adds
//! a component for every `WasmComponent` directive and a module for every
//! `WasmModule` (compiling in the parent), and calls [`Host::child_init`] in
//! every child process, which loads each distinct file once. Locations
//! naming the same file share one entry.
//!
//! `WasmModule` may also appear in `.htaccess` files, which Apache reads in
//! the children while serving: those modules are compiled there, on first
//! use, by [`Host::module_for_htaccess`].

use crate::cache::DiskCache;
use crate::compile::{self, Artifact, Code, FileIdentity, Footprint, Kind, Outcome};
use crate::component::{ComponentLinker, RequestState};
use crate::engine::{Allocation, Capacity};
use crate::legacy::{LegacyState, ModuleLinker};
use crate::{engine, ticker};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::component::Component;
use wasmtime::{Engine, InstancePre};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The components and modules of one configuration generation.
#[derive(Default)]
pub struct Host {
    components: Registry<ProxyPre<RequestState>>,
    modules: Registry<InstancePre<LegacyState>>,
    /// Modules named in `.htaccess` files, compiled in this child, by
    /// canonical path. A replaced file's module is dropped from here at
    /// once, and freed when the last request holding it ends.
    htaccess_modules: Mutex<HtaccessModules>,
    engine: Option<Engine>,
    /// Where compiled code is kept across restarts; decided before the
    /// first file is added.
    disk_cache: Option<Option<DiskCache>>,
}

/// How [`Host::child_init`] set up a child, for its log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSetup {
    /// How instances are allocated.
    pub allocation: Allocation,
    /// What the pool was sized for.
    pub capacity: Capacity,
    /// Why there is no pool, if there is none although one was asked for.
    pub pool_error: Option<String>,
}

/// `.htaccess` modules by canonical path, with the identity of the file they
/// were compiled from.
type HtaccessModules = HashMap<PathBuf, (FileIdentity, Arc<HostedModule>)>;

/// A component or module named by one or more directives; `P` is what a
/// child pre-instantiates from it.
pub struct Hosted<P> {
    artifact: Arc<Artifact>,
    /// Set in each child by [`Host::child_init`].
    pre: OnceLock<P>,
}

/// A component named by one or more `WasmComponent` directives.
pub type HostedComponent = Hosted<ProxyPre<RequestState>>;

/// A WASI preview1 module named by one or more `WasmModule` directives.
pub type HostedModule = Hosted<InstancePre<LegacyState>>;

impl<P> Hosted<P> {
    fn new(artifact: Arc<Artifact>) -> Self {
        Hosted {
            artifact,
            pre: OnceLock::new(),
        }
    }

    /// The pre-instantiated component or module, once this child has loaded
    /// it.
    pub fn pre(&self) -> Option<&P> {
        self.pre.get()
    }
}

/// The distinct files of one kind, in the order first named. Entries are
/// shared, because the C side holds a pointer to each while more are added.
struct Registry<P> {
    entries: Vec<Arc<Hosted<P>>>,
    by_path: HashMap<PathBuf, usize>,
}

impl<P> Default for Registry<P> {
    fn default() -> Self {
        Registry {
            entries: Vec::new(),
            by_path: HashMap::new(),
        }
    }
}

impl<P> Registry<P> {
    /// The entry for `artifact`'s file: the one an earlier directive made,
    /// or a new one.
    fn add(&mut self, artifact: Arc<Artifact>) -> &Arc<Hosted<P>> {
        let index = match self.by_path.get(&artifact.path) {
            Some(&index) => index,
            None => {
                self.by_path
                    .insert(artifact.path.clone(), self.entries.len());
                self.entries.push(Arc::new(Hosted::new(artifact)));
                self.entries.len() - 1
            }
        };
        &self.entries[index]
    }

    /// The loaded entry for the file at `canonical`, if a directive named it.
    fn loaded(&self, canonical: &Path) -> Option<&Arc<Hosted<P>>> {
        let entry = &self.entries[*self.by_path.get(canonical)?];
        entry.pre().is_some().then_some(entry)
    }
}

impl Host {
    /// An empty generation.
    pub fn new() -> Self {
        Host::default()
    }

    /// Keeps compiled code in `dir` (`WasmCacheDir`), or nowhere but in
    /// memory if `None`. Only before the first file is added: files already
    /// compiled were stored elsewhere.
    pub fn set_cache_dir(&mut self, dir: Option<&Path>) -> Result<(), String> {
        if !self.components.entries.is_empty() || !self.modules.entries.is_empty() {
            return Err("must come before the first WasmComponent or WasmModule, \
                        which are compiled where they appear"
                .into());
        }
        self.disk_cache = Some(dir.map(DiskCache::open).transpose()?);
        Ok(())
    }

    /// Whether the cache directory has been decided (by [`Host::set_cache_dir`]).
    pub fn cache_dir_decided(&self) -> bool {
        self.disk_cache.is_some()
    }

    fn disk_cache(&self) -> Option<&DiskCache> {
        self.disk_cache.as_ref().and_then(Option::as_ref)
    }

    /// Validates and compiles the component at `path` (or takes it from the
    /// cache) and returns its entry, shared with earlier directives that
    /// named the same file.
    pub fn add_component(
        &mut self,
        path: &Path,
    ) -> Result<(&Arc<HostedComponent>, Outcome), String> {
        let (artifact, outcome) = compile::component(path, self.disk_cache())?;
        Ok((self.components.add(artifact), outcome))
    }

    /// Validates and compiles the WASI preview1 module at `path` (or takes
    /// it from the cache), as [`Host::add_component`] does for components.
    pub fn add_module(&mut self, path: &Path) -> Result<(&Arc<HostedModule>, Outcome), String> {
        let (artifact, outcome) = compile::module(path, self.disk_cache())?;
        Ok((self.modules.add(artifact), outcome))
    }

    /// The module at `path` for a `WasmModule` read from an `.htaccess` file
    /// in this child: compiled with the child's engine on first use, and
    /// again when the file changed. Several threads may ask at once; the
    /// compiling happens outside the lock, so a slow compile holds up only
    /// the requests that wait for it.
    pub fn module_for_htaccess(&self, path: &Path) -> Result<Arc<HostedModule>, String> {
        let Some(engine) = &self.engine else {
            return Err(
                "modules named in .htaccess files are loaded by the serving \
                        processes only"
                    .into(),
            );
        };
        let (canonical, identity) = compile::identify(path)?;
        if let Some(module) = self.modules.loaded(&canonical) {
            // Also named in the server's configuration: loaded at start-up.
            return Ok(module.clone());
        }
        let cached = |modules: &HtaccessModules| {
            modules
                .get(&canonical)
                .filter(|(cached, _)| *cached == identity)
                .map(|(_, module)| module.clone())
        };
        if let Some(module) = cached(&self.lock_htaccess_modules()) {
            return Ok(module);
        }
        let shown = path.display();
        let bytes = std::fs::read(&canonical).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let compiled = compile::compile(engine, &bytes, Kind::Module)
            .map_err(|why| format!("{shown}: {why}"))?;
        let hosted = Arc::new(HostedModule::new(Arc::new(Artifact {
            path: canonical.clone(),
            code: Code::Bytes(compiled.serialized),
            footprint: compiled.footprint,
        })));
        let pre = load_module(engine, &hosted.artifact).map_err(|why| format!("{shown}: {why}"))?;
        _ = hosted.pre.set(pre);
        let mut modules = self.lock_htaccess_modules();
        // Another thread may have compiled the same file meanwhile.
        if let Some(module) = cached(&modules) {
            return Ok(module);
        }
        modules.insert(canonical, (identity, hosted.clone()));
        Ok(hosted)
    }

    fn lock_htaccess_modules(&self) -> std::sync::MutexGuard<'_, HtaccessModules> {
        self.htaccess_modules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates this process's engine, with an instance pool for `threads`
    /// requests at once (the MPM's threads per child; 0 for no pool), and
    /// loads every component and module. One that fails to load is reported and left
    /// unloaded (its requests fail); the others still serve.
    pub fn child_init(&mut self, threads: u32) -> Result<ChildSetup, String> {
        if self.engine.is_some() {
            return Err("the components are already loaded in this process".into());
        }
        let capacity = self.capacity(threads);
        let (engine, allocation, pool_error) = engine::for_serving(capacity)
            .map_err(|e| format!("cannot create the engine: {e:#}"))?;
        ticker::start(&engine).map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
        let linker =
            ComponentLinker::new(&engine).map_err(|e| format!("cannot build the linker: {e:#}"))?;
        let mut errors = Vec::new();
        for hosted in &self.components.entries {
            let loaded = load_component(&engine, &hosted.artifact)
                .and_then(|component| linker.pre_instantiate(&component));
            match loaded {
                Ok(pre) => _ = hosted.pre.set(pre),
                Err(why) => errors.push(format!("{}: {why}", hosted.artifact.path.display())),
            }
        }
        for hosted in &self.modules.entries {
            match load_module(&engine, &hosted.artifact) {
                Ok(pre) => _ = hosted.pre.set(pre),
                Err(why) => errors.push(format!("{}: {why}", hosted.artifact.path.display())),
            }
        }
        self.engine = Some(engine);
        if errors.is_empty() {
            Ok(ChildSetup {
                allocation,
                capacity,
                pool_error,
            })
        } else {
            Err(errors.join("; "))
        }
    }

    /// The pool one child needs: `threads` requests, each with as many
    /// memories and tables as the largest component or module has (and
    /// room for `.htaccess` modules, unknown until they are named).
    fn capacity(&self, threads: u32) -> Capacity {
        let htaccess_room = Footprint {
            memories: 1,
            tables: 1,
        };
        let footprint = self
            .components
            .entries
            .iter()
            .map(|c| c.artifact.footprint)
            .chain(self.modules.entries.iter().map(|m| m.artifact.footprint))
            .fold(htaccess_room, Footprint::max);
        Capacity {
            requests: threads,
            memories_per_request: footprint.memories,
            tables_per_request: footprint.tables,
        }
    }
}

/// Loads a component compiled for `engine`'s configuration, and makes its
/// memory images now rather than in its first request.
fn load_component(engine: &Engine, artifact: &Artifact) -> Result<Component, String> {
    let component = artifact
        .code
        .component(engine)
        .map_err(|e| format!("{e:#}"))?;
    component
        .initialize_copy_on_write_image()
        .map_err(|e| format!("cannot prepare its memory image: {e:#}"))?;
    Ok(component)
}

/// Deserializes and pre-instantiates a module compiled for `engine`'s
/// configuration.
fn load_module(engine: &Engine, artifact: &Artifact) -> Result<InstancePre<LegacyState>, String> {
    let module = artifact.code.module(engine).map_err(|e| format!("{e:#}"))?;
    module
        .initialize_copy_on_write_image()
        .map_err(|e| format!("cannot prepare its memory image: {e:#}"))?;
    ModuleLinker::new(engine)
        .map_err(|e| format!("cannot build the linker: {e:#}"))?
        .pre_instantiate(&module)
}
