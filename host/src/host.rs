//! One configuration generation: the components its directives named.
//!
//! The C side creates a [`Host`] before Apache reads its configuration, adds
//! a component for every `WasmComponent` directive (compiling in the parent),
//! and calls [`Host::child_init`] in every child process, which loads each
//! distinct file once. Locations naming the same file share one
//! [`HostedComponent`].

use crate::compile::{self, Artifact, Outcome};
use crate::component::{ComponentLinker, RequestState};
use crate::{engine, ticker};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The components of one configuration generation.
#[derive(Default)]
pub struct Host {
    // Shared, because the C side holds a pointer to each entry while more
    // are added.
    components: Vec<Arc<HostedComponent>>,
    by_path: HashMap<PathBuf, usize>,
    engine: Option<Engine>,
}

/// A component named by one or more directives.
pub struct HostedComponent {
    artifact: Arc<Artifact>,
    /// Set in each child by [`Host::child_init`].
    pre: OnceLock<ProxyPre<RequestState>>,
}

impl Host {
    /// An empty generation.
    pub fn new() -> Self {
        Host::default()
    }

    /// Validates and compiles the component at `path` (or takes it from the
    /// cache) and returns its entry, shared with earlier directives that
    /// named the same file.
    pub fn add_component(
        &mut self,
        path: &Path,
    ) -> Result<(&Arc<HostedComponent>, Outcome), String> {
        let (artifact, outcome) = compile::component(path)?;
        let index = match self.by_path.get(&artifact.path) {
            Some(&index) => index,
            None => {
                self.by_path
                    .insert(artifact.path.clone(), self.components.len());
                self.components.push(Arc::new(HostedComponent {
                    artifact,
                    pre: OnceLock::new(),
                }));
                self.components.len() - 1
            }
        };
        Ok((&self.components[index], outcome))
    }

    /// Creates this process's engine and loads every component. A component
    /// that fails to load is reported and left unloaded (its requests fail);
    /// the others still serve.
    pub fn child_init(&mut self) -> Result<(), String> {
        if self.engine.is_some() {
            return Err("the components are already loaded in this process".into());
        }
        let engine = engine::new().map_err(|e| format!("cannot create the engine: {e:#}"))?;
        ticker::start(&engine).map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
        let linker =
            ComponentLinker::new(&engine).map_err(|e| format!("cannot build the linker: {e:#}"))?;
        let mut errors = Vec::new();
        for hosted in &self.components {
            // SAFETY: the bytes were produced by `Component::serialize` in
            // this process tree (the parent, before fork) with the same
            // engine configuration; they never came from a file.
            let loaded = unsafe { Component::deserialize(&engine, &hosted.artifact.serialized) }
                .map_err(|e| format!("{e:#}"))
                .and_then(|component| linker.pre_instantiate(&component));
            match loaded {
                Ok(pre) => _ = hosted.pre.set(pre),
                Err(why) => errors.push(format!("{}: {why}", hosted.artifact.path.display())),
            }
        }
        self.engine = Some(engine);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

impl HostedComponent {
    /// The pre-instantiated component, once this child has loaded it.
    pub fn pre(&self) -> Option<&ProxyPre<RequestState>> {
        self.pre.get()
    }
}
