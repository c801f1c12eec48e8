//! The files of this repository a guest build needs, compiled into the
//! program so that `mod_wasm build-python` / `build-js` work outside the
//! repository: the WIT of the world mod_wasm serves (wit/), and the
//! adapters that turn wasi:http into WSGI and into a fetch handler
//! (guest-sdk/).

use std::fs;
use std::path::Path;

/// wit/ as (path below it, text).
const WIT: &[(&str, &str)] = &[
    ("host.wit", include_str!("../../wit/host.wit")),
    ("deps/cli.wit", include_str!("../../wit/deps/cli.wit")),
    ("deps/clocks.wit", include_str!("../../wit/deps/clocks.wit")),
    (
        "deps/config-rc1.wit",
        include_str!("../../wit/deps/config-rc1.wit"),
    ),
    ("deps/config.wit", include_str!("../../wit/deps/config.wit")),
    (
        "deps/filesystem.wit",
        include_str!("../../wit/deps/filesystem.wit"),
    ),
    ("deps/http.wit", include_str!("../../wit/deps/http.wit")),
    ("deps/io.wit", include_str!("../../wit/deps/io.wit")),
    (
        "deps/keyvalue.wit",
        include_str!("../../wit/deps/keyvalue.wit"),
    ),
    ("deps/random.wit", include_str!("../../wit/deps/random.wit")),
    (
        "deps/sockets.wit",
        include_str!("../../wit/deps/sockets.wit"),
    ),
];

/// The world a built app targets: wasi:http, mod-wasm:host, wasi:keyvalue
/// and wasi:config, so an app can keep state and read its settings.
pub const WORLD: &str = "mod-wasm:host/stateful-guest";

pub const WSGI_ADAPTER: &str = include_str!("../../guest-sdk/python/mod_wasm_wsgi.py");
pub const FETCH_ADAPTER: &str = include_str!("../../guest-sdk/js/fetch-adapter.js");

/// Writes wit/ into `dir`.
pub fn write_wit(dir: &Path) -> Result<(), String> {
    for (name, text) in WIT {
        write(&dir.join(name), text)?;
    }
    Ok(())
}

pub fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wit_file_of_the_repository_is_compiled_in() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk: Vec<String> = fs::read_dir(root.join("deps"))
            .unwrap()
            .map(|entry| format!("deps/{}", entry.unwrap().file_name().to_string_lossy()))
            .collect();
        on_disk.push("host.wit".to_owned());
        on_disk.sort();
        let mut compiled: Vec<String> = WIT.iter().map(|(name, _)| name.to_string()).collect();
        compiled.sort();
        assert_eq!(compiled, on_disk);
    }
}
