//! The section's configuration variables (`wasi:config`, set with
//! `WasmConfigVar <name> <value>`): feature flags, URLs, keys. A nested
//! section's value wins over its parent's; another section's are not seen.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "wasi:config/imports@0.2.0-draft-2024-09-27",
    });
}

use bindings::wasi::config0_2_0_draft_2024_09_27::store;

/// The value of `name`, if the section sets it.
pub fn get(name: &str) -> Option<String> {
    store::get(name).ok().flatten()
}

/// Every variable of the section.
pub fn all() -> Vec<(String, String)> {
    store::get_all().unwrap_or_default()
}
