//! The routes a site folder serves, found the way the module's
//! `WasmFileRoutes On` finds them, so that the listing printed at start-up
//! is what Apache will answer:
//!
//! - every `*.wasm` file outside the top-level `public/` is a route, its URL
//!   the file's path without `.wasm`;
//! - `index.wasm` serves its directory's URL (`api/index.wasm` is `/api`);
//! - a file or directory named `[name]` (name of `[A-Za-z0-9_-]`) is a
//!   dynamic segment, matching any one segment;
//! - `public/` holds static files, served for whatever no route matches.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a site folder serves.
#[derive(Debug, Default)]
pub struct Listing {
    /// Sorted: parents before children, static segments before dynamic ones.
    pub routes: Vec<Route>,
    pub has_public: bool,
    /// Folders that could not be read, with why; their routes are missing.
    pub unreadable: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    /// The URL path, dynamic segments shown as `[name]`.
    pub url: String,
    /// The file, relative to the site folder, with `/` separators.
    pub file: String,
    segments: Vec<Segment>,
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
            if pair[0].url != pair[1].url {
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
    walk(site, Path::new(""), &mut visited, &mut listing, true)?;
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
    visited: &mut HashSet<(u64, u64)>,
    listing: &mut Listing,
    top: bool,
) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        // Apache follows symbolic links (Options FollowSymLinks, its
        // default), so the scan does too; a dangling link serves nothing.
        let Ok(metadata) = fs::metadata(&path) else {
            continue;
        };
        let inner = relative.join(&name);
        if metadata.is_dir() {
            if top && name == "public" {
                listing.has_public = true;
                continue;
            }
            // A link back up the tree would loop forever.
            if !visited.insert((metadata.dev(), metadata.ino())) {
                continue;
            }
            if let Err(e) = walk(&path, &inner, visited, listing, false) {
                listing.unreadable.push(format!("{}: {e}", slashed(&inner)));
            }
        } else if metadata.is_file()
            && let Some(route) = route_for(&inner)
        {
            listing.routes.push(route);
        }
    }
    Ok(())
}

/// The route of the file at `relative` (to the site folder), if it is one.
fn route_for(relative: &Path) -> Option<Route> {
    let file = slashed(relative);
    let without_extension = file.strip_suffix(".wasm")?;
    let mut names: Vec<&str> = without_extension.split('/').collect();
    if names.last() == Some(&"") {
        return None; // a file named just ".wasm"
    }
    if names.last() == Some(&"index") {
        names.pop();
    }
    let segments: Vec<Segment> = names.iter().map(|name| segment(name)).collect();
    Some(Route {
        url: format!("/{}", names.join("/")),
        file,
        segments,
    })
}

fn segment(name: &str) -> Segment {
    let dynamic = name
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .filter(|inner| {
            !inner.is_empty()
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    match dynamic {
        Some(inner) => Segment::Dynamic(inner.to_owned()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, files: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mod_wasm-cli-{name}-{}", std::process::id()));
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
                "/api",
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
             \x20 /api               => api/index.wasm\n\
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
}
