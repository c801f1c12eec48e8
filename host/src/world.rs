//! Which `wasi:http` world a component serves, read from its top-level
//! exports before anything compiles it: a WASI 0.3 component (its handler
//! is an async function) does not even validate on the engine 0.2
//! components get, which leaves the async component model off (see
//! `engine::config_for`), so the engine is picked by this.

use wasmparser::{Parser, Payload};

/// The `wasi:http` handler a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpWorld {
    /// `wasi:http/incoming-handler@0.2.x` (world `wasi:http/proxy`).
    Proxy02,
    /// `wasi:http/handler@0.3.x` (world `wasi:http/service`).
    Service03,
    /// Neither (or the file could not be read as a component).
    None,
}

const PROXY_02: &str = "wasi:http/incoming-handler@0.2.";
const SERVICE_03: &str = "wasi:http/handler@0.3.";

/// The world of the component in `bytes`, by its top-level export names
/// (those of components nested inside it are not its own).
pub fn of(bytes: &[u8]) -> HttpWorld {
    let mut depth = 0usize;
    let mut world = HttpWorld::None;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return world;
        };
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth == 0 => break,
            Payload::End(_) => depth -= 1,
            Payload::ComponentExportSection(exports) if depth == 0 => {
                for export in exports.into_iter().flatten() {
                    let name = export.name.name;
                    if name.starts_with(SERVICE_03) {
                        world = HttpWorld::Service03;
                    } else if name.starts_with(PROXY_02) && world == HttpWorld::None {
                        world = HttpWorld::Proxy02;
                    }
                }
            }
            _ => {}
        }
    }
    world
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        Component, ComponentExportKind, ComponentExportSection, ComponentInstanceSection,
        NestedComponentSection,
    };

    /// A component exporting an empty instance under each of `names`, and
    /// holding `inner` as a nested component.
    fn exporting(names: &[&str], inner: Option<&Component>) -> Component {
        let mut component = Component::new();
        if let Some(inner) = inner {
            component.section(&NestedComponentSection(inner));
        }
        let mut instances = ComponentInstanceSection::new();
        instances.export_items::<&str, [(&str, ComponentExportKind, u32); 0]>([]);
        component.section(&instances);
        let mut exports = ComponentExportSection::new();
        for name in names {
            exports.export(*name, ComponentExportKind::Instance, 0, None);
        }
        component.section(&exports);
        component
    }

    #[test]
    fn tells_the_worlds_apart_by_the_handler_exported() {
        let world = |names: &[&str]| of(&exporting(names, None).finish());
        assert_eq!(
            world(&["wasi:http/incoming-handler@0.2.6"]),
            HttpWorld::Proxy02
        );
        assert_eq!(world(&["wasi:http/handler@0.3.0"]), HttpWorld::Service03);
        assert_eq!(world(&["wasi:http/handler@0.3.1"]), HttpWorld::Service03);
        assert_eq!(world(&["wasi:cli/run@0.2.6"]), HttpWorld::None);
        // A 0.3 release candidate is told apart too (Wasmtime 48 links 0.3.0).
        assert_eq!(
            world(&["wasi:http/handler@0.3.0-rc-2025-09-16"]),
            HttpWorld::Service03
        );
        assert_eq!(of(b"not wasm"), HttpWorld::None);
    }

    #[test]
    fn a_nested_components_exports_are_not_the_components_own() {
        let inner = exporting(&["wasi:http/handler@0.3.0"], None);
        let outer = exporting(&["wasi:http/incoming-handler@0.2.6"], Some(&inner));
        assert_eq!(of(&outer.finish()), HttpWorld::Proxy02);
        let outer = exporting(&["wasi:cli/run@0.2.6"], Some(&inner));
        assert_eq!(of(&outer.finish()), HttpWorld::None);
    }
}
