//! What a `.wasm` file is served as: the one fact compiling, caching and
//! loading all key on.

use crate::world::{self, HttpWorld};

/// What a file is served as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A `wasi:http/incoming-handler` component (WASI 0.2, world
    /// `wasi:http/proxy`), named by `WasmComponent` or served as a file.
    Component,
    /// A `wasi:http/handler` component (WASI 0.3, world `wasi:http/service`):
    /// compiled and served by an engine of its own (`engine::config_for`).
    Component03,
    /// A WASI preview1 core module (`WasmModule`).
    Module,
}

impl Kind {
    /// The kind of the file in `bytes`, which a directive asked to serve as
    /// `self`: a component is a 0.3 one if it exports the 0.3 handler.
    pub fn of_file(self, bytes: &[u8]) -> Kind {
        match self {
            Kind::Component | Kind::Component03 => match world::of(bytes) {
                HttpWorld::Service03 => Kind::Component03,
                HttpWorld::Proxy02 | HttpWorld::None => Kind::Component,
            },
            Kind::Module => Kind::Module,
        }
    }

    /// The kind in a few words, for the log and the status page.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Component => "a WASI 0.2 component (wasi:http/proxy)",
            Kind::Component03 => "a WASI 0.3 component (wasi:http/service)",
            Kind::Module => "a WASI preview1 module",
        }
    }

    /// Whether it is a component, of either WASI version.
    pub fn is_component(self) -> bool {
        matches!(self, Kind::Component | Kind::Component03)
    }
}
