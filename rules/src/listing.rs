//! The routes a `WasmFileRoutes` folder serves, as a list: what the dev
//! server prints at start-up and what the module compiles ahead. Built from
//! the same rules as [`crate::routes::resolve`], so that a listed URL is
//! one the module answers (a test holds the two together):
//!
//! - every `*.wasm` file outside the top-level `public/` and outside hidden
//!   names (`.git`, `.well-known`) is a route, its URL the file's path
//!   without `.wasm`;
//! - `index.wasm` serves its directory's URL, listed with the trailing
//!   slash that reaches it without a redirect (`api/index.wasm` is `/api/`:
//!   Apache's mod_dir sends `/api` there, as for any existing folder);
//! - a file or directory named `[name]` (name of `[A-Za-z0-9_-]`) is a
//!   dynamic segment, matching any one segment;
//! - `public/` holds static files, served for whatever no route matches.

use crate::MAX_WASM_BYTES;
use crate::routes::param_name;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// At most this many routes are found below one folder, and no deeper than
/// this: a route tree is a site, not a file system.
const MAX_FILES: usize = 1000;
const MAX_DEPTH: usize = 16;

/// What a site folder serves.
#[derive(Debug, Default)]
pub struct Listing {
    /// Sorted: parents before children, static segments before dynamic ones.
    pub routes: Vec<Entry>,
    /// Whether there is a top-level `public/` folder.
    pub has_public: bool,
    /// Folders that could not be read, with why; their routes are missing.
    pub unreadable: Vec<String>,
}

/// One route.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    /// The URL path, dynamic segments shown as `[name]`; a folder's index
    /// ends in `/`.
    pub url: String,
    /// The file, relative to the site folder, with `/` separators.
    pub file: String,
    segments: Vec<Segment>,
    /// An `index.wasm`.
    index: bool,
}

impl Entry {
    /// A URL that reaches this route, `value` standing in for every dynamic
    /// segment.
    pub fn example_url(&self, value: &str) -> String {
        let names: Vec<&str> = self
            .segments
            .iter()
            .map(|segment| match segment {
                Segment::Static(name) => name.as_str(),
                Segment::Dynamic(_) => value,
            })
            .collect();
        let slash = if self.index && !names.is_empty() {
            "/"
        } else {
            ""
        };
        format!("/{}{slash}", names.join("/"))
    }
}

/// One URL segment; the derived order puts static before dynamic, so that
/// `/users/me` is listed before `/users/[id]`, as it takes precedence.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Static(String),
    Dynamic(String),
}

impl Listing {
    /// Routes that share a URL (`api.wasm` and `api/index.wasm`): the site
    /// is ambiguous there, worth a warning.
    pub fn clashes(&self) -> Vec<(&str, Vec<&str>)> {
        let mut clashes: Vec<(&str, Vec<&str>)> = Vec::new();
        for pair in self.routes.windows(2) {
            // `api.wasm` and `api/index.wasm` both answer `/api`.
            if pair[0].segments != pair[1].segments {
                continue;
            }
            match clashes.last_mut() {
                Some((url, files)) if *url == pair[0].url => files.push(&pair[1].file),
                _ => clashes.push((&pair[0].url, vec![&pair[0].file, &pair[1].file])),
            }
        }
        clashes
    }

    /// Prints the listing, one route a line, URLs in a column.
    pub fn print(&self, out: &mut impl Write) -> io::Result<()> {
        const PUBLIC_URL: &str = "/*";
        let width = self
            .routes
            .iter()
            .map(|route| route.url.chars().count())
            .chain([PUBLIC_URL.len()])
            .max()
            .unwrap_or(0)
            .max(16);
        for route in &self.routes {
            writeln!(out, "  {:<width$}  => {}", route.url, route.file)?;
        }
        if self.has_public {
            writeln!(out, "  {PUBLIC_URL:<width$}  => public/ (static files)")?;
        }
        if self.routes.is_empty() && !self.has_public {
            writeln!(
                out,
                "  (nothing to serve yet: add *.wasm files or a public/ folder)"
            )?;
        }
        Ok(())
    }
}

/// Scans `site`. Only an unreadable `site` itself is an error; unreadable
/// folders inside it are reported in [`Listing::unreadable`].
pub fn scan(site: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    let mut visited = HashSet::new();
    let top = fs::metadata(site)?;
    visited.insert((top.dev(), top.ino()));
    walk(site, Path::new(""), 0, &mut visited, &mut listing)?;
    listing.routes.sort_by(|a, b| {
        a.segments
            .cmp(&b.segments)
            .then_with(|| a.file.cmp(&b.file))
    });
    Ok(listing)
}

fn walk(
    dir: &Path,
    relative: &Path,
    depth: usize,
    visited: &mut HashSet<(u64, u64)>,
    listing: &mut Listing,
) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name() else {
            continue;
        };
        // Hidden names are never routes (`resolve` refuses them).
        if name.as_bytes().starts_with(b".") || listing.routes.len() >= MAX_FILES {
            continue;
        }
        // `resolve` follows symbolic links (as Apache does with its default
        // FollowSymLinks), so the scan does too; a dangling link serves
        // nothing.
        let Ok(metadata) = fs::metadata(&path) else {
            continue;
        };
        let inner = relative.join(name);
        if metadata.is_dir() {
            if depth == 0 && name == "public" {
                listing.has_public = true;
                continue;
            }
            // A link back up the tree would loop forever.
            if depth >= MAX_DEPTH || !visited.insert((metadata.dev(), metadata.ino())) {
                continue;
            }
            if let Err(e) = walk(&path, &inner, depth + 1, visited, listing) {
                listing.unreadable.push(format!("{}: {e}", slashed(&inner)));
            }
        } else if metadata.is_file()
            && metadata.len() <= MAX_WASM_BYTES
            && let Some(route) = route_for(&inner)
        {
            listing.routes.push(route);
        }
    }
    Ok(())
}

/// The route of the file at `relative` (to the site folder), if it is one.
fn route_for(relative: &Path) -> Option<Entry> {
    let file = slashed(relative);
    let without_extension = file.strip_suffix(".wasm")?;
    let mut names: Vec<&str> = without_extension.split('/').collect();
    if names.last() == Some(&"") {
        return None; // a file named just ".wasm"
    }
    let index = names.last() == Some(&"index");
    if index {
        names.pop();
    }
    let segments: Vec<Segment> = names.iter().map(|name| segment(name)).collect();
    let slash = if index && !names.is_empty() { "/" } else { "" };
    Some(Entry {
        url: format!("/{}{slash}", names.join("/")),
        file,
        segments,
        index,
    })
}

fn segment(name: &str) -> Segment {
    match param_name(name.as_bytes()) {
        Some(param) => Segment::Dynamic(param),
        None => Segment::Static(name.to_owned()),
    }
}

fn slashed(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The component files routes can lead to below `root`, in byte order of
/// their paths: every `*.wasm` except in `public/` (static files) and in
/// hidden directories. The same walk as the dev server's listing.
pub fn component_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = scan(root)
        .map(|listing| {
            listing
                .routes
                .into_iter()
                .map(|r| root.join(r.file))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, files: &[&str]) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mod_wasm-listing-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for file in files {
            let path = dir.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"").unwrap();
        }
        dir
    }

    fn printed(listing: &Listing) -> String {
        let mut out = Vec::new();
        listing.print(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lists_routes_sorted_with_index_and_dynamic_segments() {
        let dir = site(
            "routes",
            &[
                "index.wasm",
                "api/hello.wasm",
                "api/index.wasm",
                "users/[id].wasm",
                "users/me.wasm",
                "users/[id]/posts.wasm",
                "[bad name].wasm",
                "notes.txt",
                "public/style.css",
                "public/app.wasm",
            ],
        );
        let listing = scan(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let urls: Vec<&str> = listing.routes.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "/",
                "/[bad name]",
                "/api/",
                "/api/hello",
                "/users/me",
                "/users/[id]",
                "/users/[id]/posts",
            ]
        );
        assert!(listing.has_public);
        assert!(listing.clashes().is_empty());
        assert_eq!(
            printed(&listing),
            "  /                  => index.wasm\n\
             \x20 /[bad name]        => [bad name].wasm\n\
             \x20 /api/              => api/index.wasm\n\
             \x20 /api/hello         => api/hello.wasm\n\
             \x20 /users/me          => users/me.wasm\n\
             \x20 /users/[id]        => users/[id].wasm\n\
             \x20 /users/[id]/posts  => users/[id]/posts.wasm\n\
             \x20 /*                 => public/ (static files)\n"
        );
    }

    #[test]
    fn reports_two_files_for_one_url() {
        let dir = site("clash", &["api.wasm", "api/index.wasm", "x.wasm"]);
        let listing = scan(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            listing.clashes(),
            [("/api", vec!["api.wasm", "api/index.wasm"])]
        );
        assert!(!listing.has_public);
    }

    #[test]
    fn says_when_there_is_nothing_to_serve() {
        let listing = Listing::default();
        assert!(printed(&listing).contains("nothing to serve yet"));
    }

    #[test]
    fn dynamic_segments_need_a_plain_name() {
        assert_eq!(segment("[id]"), Segment::Dynamic("id".into()));
        assert_eq!(segment("[user_id-2]"), Segment::Dynamic("user_id-2".into()));
        assert_eq!(segment("[]"), Segment::Static("[]".into()));
        assert_eq!(segment("[a.b]"), Segment::Static("[a.b]".into()));
        assert_eq!(segment("x[id]"), Segment::Static("x[id]".into()));
    }

    #[test]
    fn hidden_names_are_never_listed() {
        let dir = site("hidden", &[".well-known/x.wasm", ".git/y.wasm", "ok.wasm"]);
        let listing = scan(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let urls: Vec<&str> = listing.routes.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(urls, ["/ok"]);
    }

    /// The rule this module exists for: every listed URL is one the module
    /// resolves to that very file, unless it is the folder's own index
    /// (Apache's DirectoryIndex serves `/`) or the loser of a clash.
    #[test]
    fn every_listed_route_is_what_the_module_resolves() {
        let files = [
            "index.wasm",
            "api/hello.wasm",
            "api/index.wasm",
            "users/[id].wasm",
            "users/me.wasm",
            "users/[id]/posts.wasm",
            "users/[id]/posts/[post].wasm",
            "shops/[shop]/index.wasm",
            "[bad name].wasm",
            "a/b/other.wasm",
            "a/[x]/c.wasm",
            ".well-known/x.wasm",
            "public/app.wasm",
            "clash.wasm",
            "clash/index.wasm",
        ];
        let dir = site("agree", &files);
        let listing = scan(&dir).unwrap();
        let losers: Vec<&str> = listing
            .clashes()
            .iter()
            .flat_map(|(_, files)| files[1..].to_vec())
            .collect();
        let mut checked = 0;
        for route in &listing.routes {
            if route.url == "/" || losers.contains(&route.file.as_str()) {
                continue;
            }
            let url = route.example_url("v");
            let resolved = crate::routes::resolve(&dir, url.as_bytes())
                .unwrap_or_else(|| panic!("{url} ({}) does not resolve", route.file));
            assert_eq!(resolved.file, dir.join(&route.file), "{url}");
            assert!(resolved.component);
            checked += 1;
        }
        // Every file but the index, the hidden one, the public one and the
        // clash's loser.
        assert_eq!(checked, files.len() - 4);
        let served = component_files(&dir);
        assert_eq!(served.len(), listing.routes.len());
        fs::remove_dir_all(&dir).unwrap();
    }
}
