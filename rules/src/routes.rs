//! File-based routes (`WasmFileRoutes On`), as Wasm Workers Server lays a
//! site out: a URL that names no file is looked up as a route in the
//! directory the directive's `<Directory>` section names.
//!
//! * `api/hello.wasm` serves `/api/hello`; `shops/[shop]/index.wasm` serves
//!   `/shops/x`. (An existing directory is Apache's to map: its
//!   `index.wasm` is reached through `DirectoryIndex`.)
//! * A file or directory named `[name]` matches any one segment, which the
//!   guest receives as the route parameter `name`: `users/[id].wasm` serves
//!   `/users/42` with `id` = `42`.
//! * Literal names win over `[name]` ones; among several `[name]` entries in
//!   one directory, the first in byte order is tried first.
//! * Failing a route, `public/<path>` serves `/<path>` as a static file.
//! * Nothing else in the folder is served (a wws worker's `.toml` holds its
//!   secrets): [`reachable`] says what a URL naming an existing file may
//!   reach.
//!
//! Only the part of the path that names no file comes here (Apache maps the
//! rest as usual), and only names from the URL are joined, never `.`, `..`
//! or a hidden name: a route cannot leave the directory it starts from.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The request header a route's parameters reach the guest in
/// ([`Route::params`]; guest-sdk reads it as `Params`).
pub const PARAMS_HEADER: &str = "mod-wasm-params";

/// Whether a client's header `name` would pass for [`PARAMS_HEADER`], in
/// any case and with `_` for `-` (as CGI-style adapters read names): the
/// module drops such a field, so that a guest can trust the one it gets.
pub fn is_params_header(name: &[u8]) -> bool {
    let normal = |b: &u8| match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    };
    name.iter().map(normal).eq(PARAMS_HEADER.bytes())
}

/// What a URL resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The file to serve.
    pub file: PathBuf,
    /// A component (`.wasm`), or a static file from `public/`.
    pub component: bool,
    /// The `[name]` segments it went through, as a form-urlencoded
    /// `name=value&...` string (so that any byte of a URL, and the name's
    /// case, travel in one header).
    pub params: String,
}

/// What a URL that names an existing file below a routes directory may
/// reach; `path` is the file's path below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A `.wasm` file outside `public/`: a component.
    Component,
    /// A file or directory in `public/`: static.
    Public,
    /// A directory outside `public/` (its index may be a route).
    Directory,
    /// Anything else: hidden, like everything but routes and `public/` in
    /// a Wasm Workers Server site.
    Hidden,
}

/// What the existing file (or directory, `is_dir`) at `path` below a routes
/// directory may be served as.
pub fn reachable(path: &[u8], is_dir: bool) -> Reach {
    let segments: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .collect();
    if segments.iter().any(|s| s.starts_with(b".")) {
        return Reach::Hidden;
    }
    match segments.first() {
        Some(&b"public") => Reach::Public,
        _ if is_dir => Reach::Directory,
        _ if segments.last().is_some_and(|s| s.ends_with(b".wasm")) => Reach::Component,
        _ => Reach::Hidden,
    }
}

/// The route for `path` (the request's path below `root`, as Apache decoded
/// it), if any.
pub fn resolve(root: &Path, path: &[u8]) -> Option<Route> {
    let segments: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .collect();
    if segments.is_empty() || segments.iter().any(|s| s.starts_with(b".")) {
        return None;
    }
    let mut params = Vec::new();
    // public/ holds static files, never routes.
    if segments[0] != b"public"
        && let Some(file) = find(root, &segments, &mut params)
    {
        let params = params
            .iter()
            .map(|(name, value)| {
                format!(
                    "{name}={}",
                    form_urlencoded::byte_serialize(value).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("&");
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
        params: String::new(),
    })
}

/// The component for `segments` below `dir`; `params` gains the dynamic
/// segments on the way to it.
fn find(dir: &Path, segments: &[&[u8]], params: &mut Vec<(String, Vec<u8>)>) -> Option<PathBuf> {
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
        params.push((param, segment.to_vec()));
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
pub(crate) fn param_name(file_name: &[u8]) -> Option<String> {
    let stem = file_name.strip_suffix(b".wasm").unwrap_or(file_name);
    let name = stem.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let valid = !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    valid.then(|| String::from_utf8_lossy(name).into_owned())
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

    fn route(root: &Path, path: &str) -> Option<(String, bool, String)> {
        resolve(root, path.as_bytes()).map(|route| {
            let file = route.file.strip_prefix(root).unwrap();
            (file.display().to_string(), route.component, route.params)
        })
    }

    fn params(encoded: &str) -> String {
        encoded.to_string()
    }

    #[test]
    fn extensionless_urls_find_their_wasm_file_or_index() {
        let root = &site(
            "literal",
            &["api/hello.wasm", "api/index.wasm", "docs/index.wasm"],
        );
        assert_eq!(
            route(root, "/api/hello"),
            Some(("api/hello.wasm".into(), true, params("")))
        );
        assert_eq!(
            route(root, "/docs"),
            Some(("docs/index.wasm".into(), true, params("")))
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
            Some(("users/[id].wasm".into(), true, params("id=42")))
        );
        assert_eq!(
            route(root, "/users/me"),
            Some(("users/me.wasm".into(), true, params("")))
        );
        assert_eq!(
            route(root, "/users/a b/posts/7"),
            Some((
                "users/[id]/posts/[post].wasm".into(),
                true,
                params("id=a+b&post=7")
            ))
        );
        assert_eq!(
            route(root, "/shops/x"),
            Some(("shops/[shop]/index.wasm".into(), true, params("shop=x")))
        );
    }

    #[test]
    fn a_dead_end_literal_falls_back_to_a_dynamic_entry() {
        let root = &site("dead-end", &["a/b/other.wasm", "a/[x]/c.wasm"]);
        assert_eq!(
            route(root, "/a/b/c"),
            Some(("a/[x]/c.wasm".into(), true, params("x=b")))
        );
    }

    #[test]
    fn public_files_are_static_and_nothing_leaves_the_root() {
        let root = &site("public", &["public/style.css", "hello.wasm"]);
        assert_eq!(
            route(root, "/style.css"),
            Some(("public/style.css".into(), false, params("")))
        );
        assert_eq!(route(root, "/../hello"), None);
        assert_eq!(route(root, "/./hello"), None);
        assert_eq!(route(root, "/"), None);
    }

    #[test]
    fn public_and_hidden_names_are_never_routes() {
        let root = &site("never", &["public/x.wasm", ".git/y.wasm", "[id].wasm"]);
        // public/x is no route to public/x.wasm; .git/y is [id] at best.
        assert_eq!(route(root, "/public/x"), None);
        assert_eq!(route(root, "/.git/y"), None);
        assert_eq!(route(root, "/.env"), None);
        assert_eq!(
            route(root, "/x"),
            Some(("[id].wasm".into(), true, params("id=x")))
        );
    }

    #[test]
    fn only_routes_and_public_are_reachable() {
        assert_eq!(reachable(b"/api/hello.wasm", false), Reach::Component);
        assert_eq!(reachable(b"/public/style.css", false), Reach::Public);
        assert_eq!(reachable(b"/public/x.wasm", false), Reach::Public);
        assert_eq!(reachable(b"/api", true), Reach::Directory);
        assert_eq!(reachable(b"/", true), Reach::Directory);
        assert_eq!(reachable(b"/api/hello.toml", false), Reach::Hidden);
        assert_eq!(reachable(b"/.env", false), Reach::Hidden);
        assert_eq!(reachable(b"/.git", true), Reach::Hidden);
        assert_eq!(reachable(b"/src/lib.rs", false), Reach::Hidden);
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
        let files: Vec<_> = crate::listing::component_files(root)
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(files, ["a/[id].wasm", "b.wasm"]);
    }

    #[test]
    fn every_spelling_of_the_params_header_is_one() {
        for name in [
            "mod-wasm-params",
            "Mod-Wasm-Params",
            "MOD_WASM_PARAMS",
            "mod_wasm-params",
        ] {
            assert!(is_params_header(name.as_bytes()), "{name}");
        }
        for name in [
            "mod-wasm-param",
            "mod-wasm-paramss",
            "x-mod-wasm-params",
            "",
        ] {
            assert!(!is_params_header(name.as_bytes()), "{name}");
        }
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
