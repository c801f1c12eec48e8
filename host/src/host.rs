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
//! use, by [`Host::module_for_htaccess`]. Components served as the
//! request's file are compiled in the parent when a `WasmFileRoutes`
//! directory holds them ([`Host::preload_routes`]), else (or once changed)
//! in the child that first serves them ([`Host::component_for_file`]).

use crate::cache::DiskCache;
use crate::compile::{self, Artifact, Code, Footprint, Kind, Outcome};
use crate::component::{ComponentLinker, ComponentPre};
use crate::engine::{Allocation, Capacity};
use crate::keyvalue::Store;
use crate::legacy::{LegacyState, ModuleLinker};
use crate::on_demand::OnDemand;
use crate::{engine, ticker};
use mod_wasm_rules::listing;
use mod_wasm_rules::reach::{self, Account};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::{Engine, InstancePre};

/// The components and modules of one configuration generation.
#[derive(Default)]
pub struct Host {
    components: Registry<ComponentPre>,
    modules: Registry<InstancePre<LegacyState>>,
    /// Modules named in `.htaccess` files, compiled in this child.
    htaccess_modules: OnDemand<HostedModule>,
    /// Components served as the request's file, compiled in this child.
    file_components: OnDemand<HostedComponent>,
    /// Set in each child by [`Host::child_init`]: the engine of 0.2
    /// components and modules, and the one of 0.3 components (instances
    /// allocated on demand), each with its component linker.
    engine: Option<Engine>,
    component_linker: Option<ComponentLinker>,
    engine03: Option<(Engine, ComponentLinker)>,
    capacity: Option<Capacity>,
    /// Where compiled code is kept across restarts; decided before the
    /// first file is added.
    disk_cache: Option<Option<DiskCache>>,
    /// Every `WasmDir`/`WasmMapDir` directory with the directive's place,
    /// for the start-up check that the children can reach them.
    grants: Vec<(PathBuf, String)>,
    /// `WasmKeyValueStore` stores, by the server (virtual host) that
    /// declared them (its address, only compared).
    stores: Vec<(usize, Arc<Store>)>,
}

/// What each request's slot in the instance pool holds at least, for the
/// guests no directive names, which a child compiles on demand (`.htaccess`
/// modules, components served as the request's file). Every component built
/// in this workspace fits, the Python and JavaScript examples included (a
/// pool sized for any one of them alone is this size). A bigger one must be
/// named by a `WasmComponent` or `WasmModule` somewhere for the pool to be
/// sized for it. The cost is address space only.
const UNSEEN_ROOM: Footprint = Footprint {
    memories: 2,
    tables: 4,
};

/// How [`Host::child_init`] set up a child, for its log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSetup {
    /// How instances are allocated.
    pub allocation: Allocation,
    /// What the pool was sized for.
    pub capacity: Capacity,
    /// Why there is no pool, if there is none although one was asked for
    /// (for the 0.2 engine, or else for the 0.3 one).
    pub pool_error: Option<String>,
}

/// A component or module named by one or more directives; `P` is what a
/// child pre-instantiates from it.
pub struct Hosted<P> {
    artifact: Arc<Artifact>,
    /// Set in each child by [`Host::child_init`].
    pre: OnceLock<P>,
    /// How long this child took to load it.
    loaded: OnceLock<Duration>,
}

/// A component named by one or more `WasmComponent` directives.
pub type HostedComponent = Hosted<ComponentPre>;

/// A WASI preview1 module named by one or more `WasmModule` directives.
pub type HostedModule = Hosted<InstancePre<LegacyState>>;

impl<P> Hosted<P> {
    pub(crate) fn new(artifact: Arc<Artifact>) -> Self {
        Hosted {
            artifact,
            pre: OnceLock::new(),
            loaded: OnceLock::new(),
        }
    }

    /// How long compiling took in the parent (or loading from the disk
    /// cache), and loading in this child (`None`: compiled here, or not
    /// loaded).
    pub fn times(&self) -> (Duration, Option<Duration>) {
        (self.artifact.prepared, self.loaded.get().copied())
    }

    /// What the file is.
    pub fn kind(&self) -> Kind {
        self.artifact.kind
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
            return Err(
                "must come before the first WasmComponent, WasmModule or WasmFileRoutes, \
                        which are compiled where they appear"
                    .into(),
            );
        }
        self.disk_cache = Some(dir.map(DiskCache::open).transpose()?);
        Ok(())
    }

    /// Remembers a granted directory and the directive that granted it.
    pub fn note_grant(&mut self, dir: PathBuf, place: String) {
        self.grants.push((dir, place));
    }

    /// A sentence for each granted directory `children` cannot reach (see
    /// [`reach::can_reach`]): a guest that opens it would fail on every
    /// request, while root, who read the configuration, could open it.
    pub fn unreachable_grants(&self, children: &Account) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.grants
            .iter()
            .filter(|(dir, place)| seen.insert((dir, place)) && !reach::can_reach(dir, children))
            .map(|(dir, place)| {
                format!(
                    "{place}: Apache's children run as {}, who cannot read {} or a folder \
                     above it; a guest that opens it fails (make it readable and searchable \
                     by that user)",
                    children.name,
                    dir.display()
                )
            })
            .collect()
    }

    /// Declares `store` for the server `server`; an error if that server
    /// already has a store with its label.
    pub fn add_store(&mut self, server: usize, store: Store) -> Result<(), String> {
        if let Some((_, earlier)) = self
            .stores
            .iter()
            .find(|(s, earlier)| *s == server && earlier.label() == store.label())
        {
            return Err(format!(
                "the store '{}' is already declared here ({})",
                store.label(),
                earlier.place()
            ));
        }
        self.stores.push((server, Arc::new(store)));
        Ok(())
    }

    /// The store labelled `label` that a section of `server` sees: the
    /// server's own, else the main server's (`main`).
    pub fn store(&self, server: usize, main: usize, label: &str) -> Option<Arc<Store>> {
        [server, main].into_iter().find_map(|wanted| {
            self.stores
                .iter()
                .find(|(s, store)| *s == wanted && store.label() == label)
                .map(|(_, store)| store.clone())
        })
    }

    /// A sentence for each SQLite store whose file `children` could not
    /// keep safely: its directory must exist (a missing one is created for
    /// them), belong to them and be writable by nobody else, for the file
    /// and its journal; so must the file, if it exists. `may_chown`: this
    /// process may give a directory it creates to `children` (it is root).
    pub fn unsafe_store_files(&self, children: &Account, gid: u32, may_chown: bool) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.stores
            .iter()
            .filter_map(|(_, store)| Some((store, store.file()?)))
            .filter(|(_, file)| seen.insert(file.to_path_buf()))
            .filter_map(|(store, file)| {
                crate::keyvalue::check_file(file, children, gid, may_chown)
                    .err()
                    .map(|why| format!("{}: {why}", store.place()))
            })
            .collect()
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

    /// Compiles (or takes from the cache) every component file that a
    /// `WasmFileRoutes` directory's routes can lead to, so that the children
    /// load them at start-up from the same cache as `WasmComponent` files
    /// rather than each compiling them on a first request. Returns how many
    /// are ready, and why the others are not: those are left to fail their
    /// own requests, never start-up.
    pub fn preload_routes(&mut self, dir: &Path) -> (usize, Vec<String>) {
        let mut ready = 0;
        let mut failed = Vec::new();
        for file in listing::component_files(dir) {
            match self.add_component(&file) {
                Ok(_) => ready += 1,
                Err(why) => failed.push(why),
            }
        }
        (ready, failed)
    }

    /// Validates and compiles the WASI preview1 module at `path` (or takes
    /// it from the cache), as [`Host::add_component`] does for components.
    pub fn add_module(&mut self, path: &Path) -> Result<(&Arc<HostedModule>, Outcome), String> {
        let (artifact, outcome) = compile::module(path, self.disk_cache())?;
        Ok((self.modules.add(artifact), outcome))
    }

    /// The module at `path` for a `WasmModule` read from an `.htaccess` file
    /// in this child: compiled with the child's engine on first use, and
    /// again when the file changed. Several threads may ask at once.
    pub fn module_for_htaccess(&self, path: &Path) -> Result<Arc<HostedModule>, String> {
        let (Some(engine), Some(capacity)) = (&self.engine, &self.capacity) else {
            return Err(
                "modules named in .htaccess files are loaded by the serving \
                        processes only"
                    .into(),
            );
        };
        if let Ok((canonical, _)) = compile::identify(path)
            && let Some(module) = self.modules.loaded(&canonical)
        {
            // Also named in the server's configuration: loaded at start-up.
            return Ok(module.clone());
        }
        let shown = path.display();
        self.htaccess_modules.get(path, |canonical, identity| {
            let started = Instant::now();
            let bytes = compile::read_checked(canonical, Kind::Module)
                .map_err(|why| format!("{shown} {why}"))?;
            let compiled = compile::compile(engine, &bytes, Kind::Module)
                .map_err(|why| format!("{shown}: {why}"))?;
            fits_the_pool(compiled.footprint, capacity, &shown, "WasmModule")?;
            let hosted = HostedModule::new(Arc::new(Artifact {
                path: canonical.to_path_buf(),
                kind: Kind::Module,
                code: Code::Bytes(compiled.serialized),
                footprint: compiled.footprint,
                identity,
                prepared: started.elapsed(),
            }));
            let pre =
                load_module(engine, &hosted.artifact).map_err(|why| format!("{shown}: {why}"))?;
            _ = hosted.pre.set(pre);
            Ok(hosted)
        })
    }

    /// The component in the file at `path`, served because a request named
    /// that file (`AddHandler wasm-handler .wasm`, `WasmFileRoutes`):
    /// compiled by this child on first use, and again when the file
    /// changed. A file that a `WasmComponent` also names is served as
    /// loaded at start-up. Several threads may ask at once.
    pub fn component_for_file(&self, path: &Path) -> Result<Arc<HostedComponent>, String> {
        let (Some(engine), Some(linker), Some(engine03), Some(capacity)) = (
            &self.engine,
            &self.component_linker,
            &self.engine03,
            &self.capacity,
        ) else {
            return Err("components named by a request are loaded by the serving \
                        processes only"
                .into());
        };
        // Loaded at start-up (named by a WasmComponent, or found below a
        // WasmFileRoutes directory), and not changed since.
        if let Ok((canonical, identity)) = compile::identify(path)
            && let Some(component) = self.components.loaded(&canonical)
            && component.artifact.identity == identity
        {
            return Ok(component.clone());
        }
        let shown = path.display();
        self.file_components.get(path, |canonical, identity| {
            let started = Instant::now();
            let bytes = compile::read_checked(canonical, Kind::Component)
                .map_err(|why| format!("{shown} {why}"))?;
            let kind = Kind::Component.of_file(&bytes);
            let (engine, linker) = match kind {
                Kind::Component03 => (&engine03.0, &engine03.1),
                _ => (engine, linker),
            };
            let component = Component::new(engine, &bytes)
                .map_err(|e| format!("{shown} is not a valid component: {e:#}"))?;
            let footprint = Footprint::of(component.resources_required());
            fits_the_pool(footprint, capacity, &shown, "WasmComponent")?;
            component
                .initialize_copy_on_write_image()
                .map_err(|e| format!("{shown}: cannot prepare its memory image: {e:#}"))?;
            let pre = linker
                .pre_instantiate(&component)
                .map_err(|why| format!("{shown} {why}"))?;
            let hosted = HostedComponent::new(Arc::new(Artifact {
                path: canonical.to_path_buf(),
                kind,
                // Never loaded again: the pre-instantiated component is kept.
                code: Code::Bytes(Vec::new()),
                footprint,
                identity,
                prepared: started.elapsed(),
            }));
            _ = hosted.pre.set(pre);
            Ok(hosted)
        })
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
        // As many idle instances as the pool has slots for requests.
        crate::component::set_reuse_capacity(capacity.requests as usize + 1);
        let (engine, allocation, pool_error) = engine::for_serving(capacity)
            .map_err(|e| format!("cannot create the engine: {e:#}"))?;
        // WASI 0.3 components get an engine of their own, for components
        // that a request may name as well as for those named at start-up.
        // It has a pool of its own only if the configuration names a 0.3
        // component: a server without one reserves nothing for them (and
        // a 0.3 file a request names is then instantiated on demand).
        let named03 = self
            .components
            .entries
            .iter()
            .any(|c| c.artifact.kind == Kind::Component03);
        let capacity03 = Capacity {
            requests: if named03 { capacity.requests } else { 0 },
            ..capacity
        };
        let (engine03, _, pool_error03) =
            engine::for_serving_kind(Kind::Component03, capacity03)
                .map_err(|e| format!("cannot create the WASI 0.3 engine: {e:#}"))?;
        // Said in the child's log line like the other pool's failure.
        let pool_error = match (pool_error, pool_error03) {
            (None, Some(why)) => Some(format!(
                "WASI 0.3 components, which are allocated one by one: {why}"
            )),
            (first, _) => first,
        };
        ticker::start(&[&engine, &engine03])
            .map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
        let linker = ComponentLinker::new(&engine, Kind::Component)
            .map_err(|e| format!("cannot build the linker: {e:#}"))?;
        let linker03 = ComponentLinker::new(&engine03, Kind::Component03)
            .map_err(|e| format!("cannot build the WASI 0.3 linker: {e:#}"))?;
        let mut errors = Vec::new();
        for hosted in &self.components.entries {
            let started = Instant::now();
            let (engine, linker) = match hosted.artifact.kind {
                Kind::Component03 => (&engine03, &linker03),
                _ => (&engine, &linker),
            };
            let loaded = load_component(engine, &hosted.artifact)
                .and_then(|component| linker.pre_instantiate(&component));
            match loaded {
                Ok(pre) => {
                    _ = hosted.pre.set(pre);
                    _ = hosted.loaded.set(started.elapsed());
                }
                Err(why) => errors.push(format!("{}: {why}", hosted.artifact.path.display())),
            }
        }
        for hosted in &self.modules.entries {
            let started = Instant::now();
            match load_module(&engine, &hosted.artifact) {
                Ok(pre) => {
                    _ = hosted.pre.set(pre);
                    _ = hosted.loaded.set(started.elapsed());
                }
                Err(why) => errors.push(format!("{}: {why}", hosted.artifact.path.display())),
            }
        }
        self.engine = Some(engine);
        self.component_linker = Some(linker);
        self.engine03 = Some((engine03, linker03));
        self.capacity = Some(capacity);
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
    /// memories and tables as the largest component or module has, and at
    /// least [`UNSEEN_ROOM`].
    fn capacity(&self, threads: u32) -> Capacity {
        let footprint = self
            .components
            .entries
            .iter()
            .map(|c| c.artifact.footprint)
            .chain(self.modules.entries.iter().map(|m| m.artifact.footprint))
            .fold(UNSEEN_ROOM, Footprint::max);
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

/// A file compiled in a child (`.htaccess`, file routes) must fit the slots
/// the child's pool was sized for at start-up from the files the
/// configuration named; `directive` is the one that would size it.
fn fits_the_pool(
    footprint: Footprint,
    capacity: &Capacity,
    shown: &std::path::Display<'_>,
    directive: &str,
) -> Result<(), String> {
    if footprint.memories > capacity.memories_per_request
        || footprint.tables > capacity.tables_per_request
    {
        return Err(format!(
            "{shown} needs {} memories and {} tables, more than the {} and {} this child's \
             instance pool has room for per request; name it in a {directive} directive so \
             that the pool is sized for it",
            footprint.memories,
            footprint.tables,
            capacity.memories_per_request,
            capacity.tables_per_request
        ));
    }
    Ok(())
}
