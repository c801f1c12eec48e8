//! File routes (`WasmFileRoutes`) for any URL path, against a small site
//! made once: a route never leaves the site's directory, never goes
//! through a hidden name, and its parameters decode back to the URL's
//! segments; `reachable` hides every hidden path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mod_wasm_rules::routes::{Reach, reachable, resolve};
use std::path::PathBuf;
use std::sync::LazyLock;

static SITE: LazyLock<PathBuf> = LazyLock::new(|| {
    let root = std::env::temp_dir().join(format!("mod_wasm-fuzz-routes-{}", std::process::id()));
    for dir in [
        "api",
        "users/[id]",
        "shops/[shop]/items",
        "public/css",
        ".secret",
        "[a]",
        "[b]",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for file in [
        "api/hello.wasm",
        "users/[id].wasm",
        "users/[id]/posts.wasm",
        "shops/[shop]/index.wasm",
        "shops/[shop]/items/[item].wasm",
        "public/index.html",
        "public/css/site.css",
        ".secret/key.wasm",
        "[a]/x.wasm",
        "[b]/y.wasm",
        "worker.toml",
    ] {
        std::fs::write(root.join(file), b"").unwrap();
    }
    root
});

fuzz_target!(|path: &[u8]| {
    let hidden = path.split(|&b| b == b'/').any(|s| s.starts_with(b"."));
    for is_dir in [false, true] {
        if hidden {
            assert_eq!(reachable(path, is_dir), Reach::Hidden);
        }
    }
    let Some(route) = resolve(&SITE, path) else {
        return;
    };
    assert!(!hidden, "a hidden path resolved: {route:?}");
    let below = route
        .file
        .strip_prefix(&*SITE)
        .expect("a route left the site");
    assert!(
        below
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_))),
        "{route:?}"
    );
    assert!(!below.starts_with("public") || !route.component);
    // Each parameter is one segment of the URL, as it was.
    let segments: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .collect();
    for (_, value) in form_urlencoded_pairs(&route.params) {
        assert!(
            segments.contains(&value.as_slice()),
            "{value:?} is no segment of {path:?}"
        );
    }
});

/// `name=value&...` decoded, with `+` and `%XX` as form encoding has them.
fn form_urlencoded_pairs(params: &str) -> Vec<(String, Vec<u8>)> {
    params
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_string(), decode(value.as_bytes()))
        })
        .collect()
}

fn decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            // byte_serialize writes every escape whole.
            b'%' if i + 2 < text.len() => {
                let hex = std::str::from_utf8(&text[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}
