//! File-based routes (`WasmFileRoutes On`), as Wasm Workers Server lays a
//! site out: a URL that names no file is looked up as a route in the
//! directory the directive's `<Directory>` section names.
//!
//! * `api/hello.wasm` serves `/api/hello`; `api/index.wasm` serves `/api`.
//! * A file or directory named `[name]` matches any one segment, which the
//!   guest receives as the route parameter `name`: `users/[id].wasm` serves
//!   `/users/42` with `id` = `42`.
//! * Literal names win over `[name]` ones; among several `[name]` entries in
//!   one directory, the first in byte order is tried first.
//! * Failing a route, `public/<path>` serves `/<path>` as a static file.
//!
//! Only the part of the path that names no file comes here (Apache maps the
//! rest as usual), and only names from the URL are joined, never `.` or
//! `..`: a route cannot leave the directory it starts from.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What a URL resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The file to serve.
    pub file: PathBuf,
    /// A component (`.wasm`), or a static file from `public/`.
    pub component: bool,
    /// The `[name]` segments it went through: name, and the segment
    /// percent-encoded (so that any byte of a URL travels in a header).
    pub params: Vec<(String, String)>,
}

/// The route for `path` (the request's path below `root`, as Apache decoded
/// it), if any.
pub fn resolve(root: &Path, path: &[u8]) -> Option<Route> {
    let segments: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .collect();
    if segments.is_empty() || segments.iter().any(|s| *s == b"." || *s == b"..") {
        return None;
    }
    let mut params = Vec::new();
    if let Some(file) = find(root, &segments, &mut params) {
        return Some(Route {
            file,
            component: true,
            params,
        });
    }
    let mut public = root.join("public");
    for segment in &segments {
        public.push(OsStr::from_bytes(segment));
    }
    public.is_file().then_some(Route {
        file: public,
        component: false,
        params: Vec::new(),
    })
}

/// At most this many component files are found below one directory, and
/// no deeper than this: a route tree is a site, not a file system.
const MAX_FILES: usize = 1000;
const MAX_DEPTH: usize = 16;

/// The component files routes can lead to below `root`, in byte order:
/// every `*.wasm` except in `public/` (static files) and in hidden
/// directories, without following symbolic links to directories.
pub fn component_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    collect(root, 0, &mut found);
    found
}

fn collect(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if found.len() >= MAX_FILES || name.as_bytes().starts_with(b".") {
            continue;
        }
        if kind.is_dir() && depth < MAX_DEPTH && !(depth == 0 && name == "public") {
            collect(&entry.path(), depth + 1, found);
        } else if !kind.is_dir() && Path::new(&name).extension() == Some(OsStr::new("wasm")) {
            found.push(entry.path());
        }
    }
}

/// The component for `segments` below `dir`; `params` gains the dynamic
/// segments on the way to it.
fn find(dir: &Path, segments: &[&[u8]], params: &mut Vec<(String, String)>) -> Option<PathBuf> {
    let (segment, rest) = segments.split_first()?;
    let name = OsStr::from_bytes(segment);
    if rest.is_empty() {
        let file = dir.join(with_wasm(name));
        if file.is_file() {
            return Some(file);
        }
        let index = dir.join(name).join("index.wasm");
        if index.is_file() {
            return Some(index);
        }
    } else {
        let literal = dir.join(name);
        if literal.is_dir()
            && let Some(file) = find(&literal, rest, params)
        {
            return Some(file);
        }
    }
    for (entry, param) in dynamic_entries(dir) {
        params.push((param, percent_encode(segment)));
        let path = dir.join(&entry);
        let found = if rest.is_empty() {
            let index = path.join("index.wasm");
            if path.extension() == Some(OsStr::new("wasm")) && path.is_file() {
                Some(path)
            } else {
                index.is_file().then_some(index)
            }
        } else if path.is_dir() {
            find(&path, rest, params)
        } else {
            None
        };
        if found.is_some() {
            return found;
        }
        params.pop();
    }
    None
}

/// `name.wasm`
fn with_wasm(name: &OsStr) -> OsString {
    let mut file = name.to_os_string();
    file.push(".wasm");
    file
}

/// The entries of `dir` named `[name]` or `[name].wasm`, in byte order, with
/// their parameter's name.
fn dynamic_entries(dir: &Path) -> Vec<(OsString, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(OsString, String)> = entries
        .filter_map(|entry| {
            let file_name = entry.ok()?.file_name();
            let param = param_name(file_name.as_bytes())?;
            Some((file_name, param))
        })
        .collect();
    found.sort();
    found
}

/// `id` for `[id]` or `[id].wasm`; names are letters, digits, `_` and `-`,
/// so that they can be part of a header name.
fn param_name(file_name: &[u8]) -> Option<String> {
    let stem = file_name.strip_suffix(b".wasm").unwrap_or(file_name);
    let name = stem.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let valid = !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    valid.then(|| String::from_utf8_lossy(name).into_owned())
}

/// Every byte but the URL's unreserved ones as `%XX`.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh site named `name` with the given files (relative paths).
    fn site(name: &str, files: &[&str]) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("mod_wasm-routes-{name}-{}", std::process::id()));
        _ = std::fs::remove_dir_all(&root);
        for file in files {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        root
    }

    fn route(root: &Path, path: &str) -> Option<(String, bool, Vec<(String, String)>)> {
        resolve(root, path.as_bytes()).map(|route| {
            let file = route.file.strip_prefix(root).unwrap();
            (file.display().to_string(), route.component, route.params)
        })
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn extensionless_urls_find_their_wasm_file_or_index() {
        let root = &site(
            "literal",
            &["api/hello.wasm", "api/index.wasm", "docs/index.wasm"],
        );
        assert_eq!(
            route(root, "/api/hello"),
            Some(("api/hello.wasm".into(), true, vec![]))
        );
        assert_eq!(
            route(root, "/docs"),
            Some(("docs/index.wasm".into(), true, vec![]))
        );
        assert_eq!(route(root, "/api/nope"), None);
        assert_eq!(route(root, "/api/hello/more"), None);
    }

    #[test]
    fn dynamic_segments_are_params_and_literals_win() {
        let root = &site(
            "dynamic",
            &[
                "users/[id].wasm",
                "users/me.wasm",
                "users/[id]/posts/[post].wasm",
                "shops/[shop]/index.wasm",
            ],
        );
        assert_eq!(
            route(root, "/users/42"),
            Some(("users/[id].wasm".into(), true, params(&[("id", "42")])))
        );
        assert_eq!(
            route(root, "/users/me"),
            Some(("users/me.wasm".into(), true, vec![]))
        );
        assert_eq!(
            route(root, "/users/a b/posts/7"),
            Some((
                "users/[id]/posts/[post].wasm".into(),
                true,
                params(&[("id", "a%20b"), ("post", "7")])
            ))
        );
        assert_eq!(
            route(root, "/shops/x"),
            Some((
                "shops/[shop]/index.wasm".into(),
                true,
                params(&[("shop", "x")])
            ))
        );
    }

    #[test]
    fn a_dead_end_literal_falls_back_to_a_dynamic_entry() {
        let root = &site("dead-end", &["a/b/other.wasm", "a/[x]/c.wasm"]);
        assert_eq!(
            route(root, "/a/b/c"),
            Some(("a/[x]/c.wasm".into(), true, params(&[("x", "b")])))
        );
    }

    #[test]
    fn public_files_are_static_and_nothing_leaves_the_root() {
        let root = &site("public", &["public/style.css", "hello.wasm"]);
        assert_eq!(
            route(root, "/style.css"),
            Some(("public/style.css".into(), false, vec![]))
        );
        assert_eq!(route(root, "/../hello"), None);
        assert_eq!(route(root, "/./hello"), None);
        assert_eq!(route(root, "/"), None);
    }

    #[test]
    fn component_files_leave_public_and_hidden_out() {
        let root = &site(
            "files",
            &[
                "b.wasm",
                "a/[id].wasm",
                "public/x.wasm",
                ".git/y.wasm",
                "a/readme.txt",
            ],
        );
        let files: Vec<_> = component_files(root)
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(files, ["a/[id].wasm", "b.wasm"]);
    }

    #[test]
    fn bad_param_names_are_literal_names() {
        assert_eq!(param_name(b"[id].wasm").as_deref(), Some("id"));
        assert_eq!(param_name(b"[user_id-2]").as_deref(), Some("user_id-2"));
        assert_eq!(param_name(b"[]"), None);
        assert_eq!(param_name(b"[a b]"), None);
        assert_eq!(param_name(b"id"), None);
    }
}
