//! The private Apache configuration of one `mod_wasm serve` run: everything
//! Apache writes (pid file, mutexes, runtime files) goes to a fresh
//! directory, logs go to the terminal, and the site folder is served through
//! the module's file routes.

use std::path::Path;

/// Debian's shared modules; `mod_log_config` and `mod_unixd` are built into
/// its apache2 (`apache2 -l`), the rest must be loaded.
pub const MODULES_DIR: &str = "/usr/lib/apache2/modules";
const SHARED_MODULES: &[(&str, &str)] = &[
    ("mpm_event_module", "mod_mpm_event.so"),
    // Apache refuses every request when no authorization module is loaded.
    ("authz_core_module", "mod_authz_core.so"),
    // AddHandler and TypesConfig (Content-Type of the static files).
    ("mime_module", "mod_mime.so"),
    // DirectoryIndex.
    ("dir_module", "mod_dir.so"),
];
/// Debian's apache2 depends on media-types, which installs it.
const MIME_TYPES: &str = "/etc/mime.types";

pub struct Settings<'a> {
    /// The run's private directory (ServerRoot, pid file, mutexes).
    pub dir: &'a Path,
    pub site: &'a Path,
    /// `host:port` for Listen, the host already bracketed if IPv6.
    pub listen: &'a str,
    pub module: &'a Path,
    pub modules_dir: &'a Path,
    /// The compiled-code cache, or None for `WasmCacheDir off`.
    pub cache: Option<&'a Path>,
    /// The user and group id the children switch to, when started as root.
    pub user: Option<(&'a str, u32)>,
    /// What the components may use besides the site.
    pub grants: &'a Grants,
}

/// What `--allow-outgoing`, `--env` and `--dir` grant the components: the
/// same directives an admin writes in a site's section.
#[derive(Debug, Default, PartialEq)]
pub struct Grants {
    /// `WasmAllowOutgoing` destinations, as given (the module checks them
    /// at start-up, with its own error).
    pub outgoing: Vec<String>,
    /// `WasmEnv` names and values.
    pub env: Vec<(String, String)>,
    /// `WasmDir` / `WasmMapDir` grants.
    pub dirs: Vec<DirGrant>,
}

/// One folder a component may open.
#[derive(Debug, PartialEq)]
pub struct DirGrant {
    /// The folder on this machine.
    pub host: std::path::PathBuf,
    /// Where the component sees it; `None`: at the same path.
    pub guest: Option<String>,
    /// Read-only (`ro`).
    pub read_only: bool,
}

/// `NAME=VALUE` for `--env`.
pub fn env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--env {text:?}: give NAME=VALUE"))?;
    let plain = name
        .bytes()
        .enumerate()
        .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
    if name.is_empty() || !plain {
        return Err(format!(
            "--env {text:?}: a variable's name is letters, digits and _, not starting with a digit"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `PATH[:GUEST_PATH][:ro]` for `--dir`; PATH is made absolute here, as
/// Apache would read a relative one below its (private) ServerRoot.
pub fn dir(text: &str) -> Result<DirGrant, String> {
    let (rest, read_only) = match text.strip_suffix(":ro") {
        Some(rest) => (rest, true),
        None => (text.strip_suffix(":rw").unwrap_or(text), false),
    };
    let (host, guest) = match rest.split_once(':') {
        Some((host, guest)) => (host, Some(guest)),
        None => (rest, None),
    };
    if guest.is_some_and(|g| !g.starts_with('/')) {
        return Err(format!("--dir {text:?}: the guest path must be absolute"));
    }
    let host = std::fs::canonicalize(host).map_err(|e| format!("--dir {text:?}: {host}: {e}"))?;
    if !host.is_dir() {
        return Err(format!(
            "--dir {text:?}: {} is not a folder",
            host.display()
        ));
    }
    Ok(DirGrant {
        host,
        guest: guest.map(str::to_owned),
        read_only,
    })
}

/// The grants as directives for the site's section.
fn grant_directives(grants: &Grants) -> Result<String, String> {
    let mut text = String::new();
    for destination in &grants.outgoing {
        text += &format!("    WasmAllowOutgoing {}\n", quote_text(destination)?);
    }
    for (name, value) in &grants.env {
        text += &format!("    WasmEnv {name} {}\n", quote_text(value)?);
    }
    for dir in &grants.dirs {
        let mode = if dir.read_only { "ro" } else { "rw" };
        let host = quote(&dir.host)?;
        text += &match &dir.guest {
            Some(guest) => format!("    WasmMapDir {} {host} {mode}\n", quote_text(guest)?),
            None => format!("    WasmDir {host} {mode}\n"),
        };
    }
    Ok(text)
}

/// `text` in double quotes, refused if Apache could not read it back.
fn quote_text(text: &str) -> Result<String, String> {
    if text.contains(['"', '\\']) || text.chars().any(char::is_control) {
        return Err(format!(
            "{text:?} has a quote, a backslash or a control character, which Apache's \
             configuration cannot hold"
        ));
    }
    Ok(format!("\"{text}\""))
}

/// The configuration text, or why a path cannot be written into it.
pub fn text(s: &Settings) -> Result<String, String> {
    let dir = quote(s.dir)?;
    let site = quote(s.site)?;
    // <Directory> treats these as a pattern, which would not match the
    // folder itself.
    if s.site.to_string_lossy().contains(['*', '?', '[']) {
        return Err(format!(
            "the site folder {} has *, ? or [ in its path, which Apache's <Directory> \
             reads as a pattern: serve it from a path without them",
            s.site.display()
        ));
    }
    let mut text = format!(
        "# Written by mod_wasm serve; removed when it stops.\n\
         ServerRoot {dir}\n\
         ServerName 127.0.0.1\n\
         Listen {listen}\n\
         PidFile \"{pid}\"\n\
         DefaultRuntimeDir {dir}\n\
         Mutex \"file:{mutex}\"\n\
         ErrorLog /dev/stderr\n\
         LogLevel warn\n\
         GracefulShutdownTimeout 5\n",
        listen = s.listen,
        pid = unquoted(&s.dir.join("httpd.pid"))?,
        mutex = unquoted(s.dir)?,
    );
    for (name, file) in SHARED_MODULES {
        let path = quote(&s.modules_dir.join(file))?;
        text += &format!("LoadModule {name} {path}\n");
    }
    text += &format!("LoadModule wasm_module {}\n", quote(s.module)?);
    text += &format!(
        "TypesConfig {MIME_TYPES}\n\
         # Requests on stdout, so that the developer sees them.\n\
         CustomLog /dev/stdout \"%h \\\"%r\\\" %>s %b %D\"\n\
         # One child: a development server, and one process to watch.\n\
         StartServers 1\n\
         ServerLimit 1\n\
         ThreadsPerChild 4\n\
         MaxRequestWorkers 4\n\
         MinSpareThreads 1\n\
         MaxSpareThreads 4\n"
    );
    // Before the site: the module compiles what it serves where it reads it.
    match s.cache {
        Some(cache) => text += &format!("WasmCacheDir {}\n", quote(cache)?),
        None => text += "WasmCacheDir off\n",
    }
    if let Some((user, gid)) = s.user {
        // Apache refuses to run its children as root. The name was checked
        // to be a plain one (account::children_user).
        text += &format!("User {user}\nGroup #{gid}\n");
    }
    text += &format!(
        "DocumentRoot {site}\n\
         <Directory />\n\
         \x20   Require all denied\n\
         </Directory>\n\
         <Directory {site}>\n\
         \x20   Require all granted\n\
         \x20   Options +ExecCGI -Indexes\n\
         \x20   AddHandler wasm-handler .wasm\n\
         \x20   WasmFileRoutes On\n\
         \x20   DirectoryIndex index.wasm index.html\n\
         \x20   WasmTimeout 30\n\
         \x20   WasmMemoryLimit 256M\n\
         {grants}\
         </Directory>\n",
        grants = grant_directives(s.grants)?,
    );
    Ok(text)
}

/// `path` in double quotes, as Apache reads a directive's argument.
pub fn quote(path: &Path) -> Result<String, String> {
    Ok(format!("\"{}\"", unquoted(path)?))
}

/// `path` as it can stand inside double quotes: Apache has no escape for a
/// newline, and reads `\"` as a quote, so paths with either are refused.
fn unquoted(path: &Path) -> Result<&str, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))?;
    if text.contains(['"', '\\']) || text.chars().any(char::is_control) {
        return Err(format!(
            "{text:?} has a double quote, a backslash or a control character (a newline?), \
             which cannot be written into Apache's configuration"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_private_configuration() {
        let text = text(&Settings {
            dir: Path::new("/tmp/mod_wasm-serve-x"),
            site: Path::new("/home/me/my site"),
            listen: "127.0.0.1:8080",
            module: Path::new("/opt/mod_wasm.so"),
            modules_dir: Path::new(MODULES_DIR),
            cache: Some(Path::new("/root/.cache/mod_wasm")),
            user: Some(("www-data", 33)),
            grants: &Grants::default(),
        })
        .unwrap();
        assert_eq!(
            text,
            r#"# Written by mod_wasm serve; removed when it stops.
ServerRoot "/tmp/mod_wasm-serve-x"
ServerName 127.0.0.1
Listen 127.0.0.1:8080
PidFile "/tmp/mod_wasm-serve-x/httpd.pid"
DefaultRuntimeDir "/tmp/mod_wasm-serve-x"
Mutex "file:/tmp/mod_wasm-serve-x"
ErrorLog /dev/stderr
LogLevel warn
GracefulShutdownTimeout 5
LoadModule mpm_event_module "/usr/lib/apache2/modules/mod_mpm_event.so"
LoadModule authz_core_module "/usr/lib/apache2/modules/mod_authz_core.so"
LoadModule mime_module "/usr/lib/apache2/modules/mod_mime.so"
LoadModule dir_module "/usr/lib/apache2/modules/mod_dir.so"
LoadModule wasm_module "/opt/mod_wasm.so"
TypesConfig /etc/mime.types
# Requests on stdout, so that the developer sees them.
CustomLog /dev/stdout "%h \"%r\" %>s %b %D"
# One child: a development server, and one process to watch.
StartServers 1
ServerLimit 1
ThreadsPerChild 4
MaxRequestWorkers 4
MinSpareThreads 1
MaxSpareThreads 4
WasmCacheDir "/root/.cache/mod_wasm"
User www-data
Group #33
DocumentRoot "/home/me/my site"
<Directory />
    Require all denied
</Directory>
<Directory "/home/me/my site">
    Require all granted
    Options +ExecCGI -Indexes
    AddHandler wasm-handler .wasm
    WasmFileRoutes On
    DirectoryIndex index.wasm index.html
    WasmTimeout 30
    WasmMemoryLimit 256M
</Directory>
"#
        );
    }

    #[test]
    fn without_root_or_cache() {
        let text = text(&Settings {
            dir: Path::new("/tmp/d"),
            site: Path::new("/s"),
            listen: "[::1]:9000",
            module: Path::new("/m.so"),
            modules_dir: Path::new(MODULES_DIR),
            cache: None,
            user: None,
            grants: &Grants::default(),
        })
        .unwrap();
        assert!(text.contains("Listen [::1]:9000\n"));
        assert!(text.contains("WasmCacheDir off\n"));
        assert!(!text.contains("User"));
        assert!(text.find("WasmCacheDir").unwrap() < text.find("<Directory").unwrap());
    }

    #[test]
    fn refuses_paths_it_cannot_quote() {
        for site in ["/a\"b", "/a\nb", "/a\\b", "/a[b]", "/a*"] {
            let refused = text(&Settings {
                dir: Path::new("/tmp/d"),
                site: Path::new(site),
                listen: "127.0.0.1:8080",
                module: Path::new("/m.so"),
                modules_dir: Path::new(MODULES_DIR),
                cache: None,
                user: None,
                grants: &Grants::default(),
            });
            assert!(refused.is_err(), "{site:?}");
        }
    }

    #[test]
    fn grants_become_the_site_sections_directives() {
        let grants = Grants {
            outgoing: vec!["https://api.example.com".into()],
            env: vec![env("GREETING=hello there").unwrap()],
            dirs: vec![
                DirGrant {
                    host: "/srv/data".into(),
                    guest: None,
                    read_only: true,
                },
                DirGrant {
                    host: "/srv/up".into(),
                    guest: Some("/uploads".into()),
                    read_only: false,
                },
            ],
        };
        let text = text(&Settings {
            dir: Path::new("/tmp/d"),
            site: Path::new("/s"),
            listen: "127.0.0.1:8080",
            module: Path::new("/m.so"),
            modules_dir: Path::new(MODULES_DIR),
            cache: None,
            user: None,
            grants: &grants,
        })
        .unwrap();
        assert!(text.contains(
            "    WasmMemoryLimit 256M\n\
             \x20   WasmAllowOutgoing \"https://api.example.com\"\n\
             \x20   WasmEnv GREETING \"hello there\"\n\
             \x20   WasmDir \"/srv/data\" ro\n\
             \x20   WasmMapDir \"/uploads\" \"/srv/up\" rw\n\
             </Directory>\n"
        ));
    }

    #[test]
    fn refuses_grants_it_cannot_write() {
        assert!(env("1X=a").is_err());
        assert!(env("NOVALUE").is_err());
        assert_eq!(env("A_1=x=y").unwrap(), ("A_1".into(), "x=y".into()));
        assert!(dir("/tmp:relative").is_err());
        assert!(dir("/no/such/folder/here").is_err());
        let grant = dir("/tmp:/scratch:ro").unwrap();
        assert_eq!(grant.guest.as_deref(), Some("/scratch"));
        assert!(grant.read_only);
        let grants = Grants {
            env: vec![("A".into(), "quote\"".into())],
            ..Grants::default()
        };
        assert!(grant_directives(&grants).is_err());
    }
}
