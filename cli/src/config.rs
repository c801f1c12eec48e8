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
         LogLevel warn\n",
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
         </Directory>\n"
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
            });
            assert!(refused.is_err(), "{site:?}");
        }
    }
}
