//! `mod_wasm serve SITE_DIR`: a development server. It lists the routes a
//! folder of components serves, writes a private Apache configuration that
//! serves the folder through mod_wasm's file routes, and runs Apache in the
//! foreground until Ctrl-C.
//!
//! `mod_wasm build-python` and `mod_wasm build-js` build existing WSGI and
//! fetch-handler apps into components (build_python.rs, build_js.rs).

mod account;
mod apache;
mod build_js;
mod build_python;
mod cache;
mod config;
mod guest_files;
mod rundir;
mod toolchain;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cache::Cache;
use mod_wasm_rules::listing;
use rundir::RunDir;

const USAGE: &str = "\
Usage: mod_wasm serve [OPTIONS] SITE_DIR
       mod_wasm build-python [OPTIONS] MODULE:APP -o OUT.wasm
       mod_wasm build-js APP.js -o OUT.wasm
       mod_wasm COMMAND --help

Serve:

Serves SITE_DIR with Apache httpd and mod_wasm, for development, until
Ctrl-C. Every *.wasm file is a route: api/hello.wasm answers /api/hello,
index.wasm its folder's URL, a file or folder named [name] any one
segment. public/ holds static files, served where no route matches.

Options:
  --port N          the port to listen on (default 8080)
  --host ADDRESS    the address to listen on (default 127.0.0.1)
  --module PATH     mod_wasm.so (default: $MOD_WASM_SO, else ../apache/ next
                    to this program, else /usr/lib/apache2/modules/)
  --apache PATH     Apache's program (default /usr/sbin/apache2)
  --user NAME       started as root, the user Apache's children run as
                    (default www-data)
  --allow-outgoing DEST
                    let the components send HTTP requests to DEST
                    ([scheme://]host[:port], as WasmAllowOutgoing); repeatable
  --env NAME=VALUE  an environment variable for the components (WasmEnv);
                    repeatable
  --dir PATH[:GUEST_PATH][:ro]
                    let the components open the folder PATH, at GUEST_PATH
                    (default: the same path), read-only with :ro (WasmDir,
                    WasmMapDir); repeatable
  -h, --help        this help
";
const DEFAULT_PORT: u16 = 8080;
const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_APACHE: &str = "/usr/sbin/apache2";
const INSTALLED_MODULE: &str = "/usr/lib/apache2/modules/mod_wasm.so";

#[derive(Debug, PartialEq)]
enum Command {
    Help,
    Serve(Options),
    BuildPython(build_python::Options),
    BuildJs(build_js::Options),
    BuildHelp(&'static str),
}

#[derive(Debug, PartialEq)]
struct Options {
    port: u16,
    host: String,
    module: Option<PathBuf>,
    apache: Option<PathBuf>,
    user: Option<String>,
    grants: config::Grants,
    site: PathBuf,
}

/// Why the run ends early, and its exit code: 2 for what the user asked
/// (bad arguments, no such folder), 1 for what is missing or broken.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    fn other(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    let result = match parse(args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Command::Serve(options)) => serve(options),
        Ok(Command::BuildHelp(usage)) => {
            print!("{usage}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Command::BuildPython(options)) => build_python::build(&options)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Failure::other),
        Ok(Command::BuildJs(options)) => build_js::build(&options)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Failure::other),
        Err(message) => Err(Failure::usage(format!(
            "{message}\n(mod_wasm --help shows how to use it)"
        ))),
    };
    result.unwrap_or_else(|failure| {
        eprintln!("mod_wasm: {}", failure.message);
        ExitCode::from(failure.code)
    })
}

/// The command line, parsed by hand: a handful of options is not worth a
/// dependency.
fn parse(args: Vec<OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    match args.next().as_deref().and_then(OsStr::to_str) {
        Some("-h" | "--help" | "help") => return Ok(Command::Help),
        Some("serve") => {}
        Some(build @ ("build-python" | "build-js")) => {
            let rest: Vec<OsString> = args.collect();
            let usage = if build == "build-js" {
                build_js::USAGE
            } else {
                build_python::USAGE
            };
            if rest.iter().any(|arg| arg == "-h" || arg == "--help") {
                return Ok(Command::BuildHelp(usage));
            }
            return if build == "build-js" {
                build_js::parse(rest.into_iter()).map(Command::BuildJs)
            } else {
                build_python::parse(rest.into_iter()).map(Command::BuildPython)
            };
        }
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("which command? (serve, build-python, build-js)".to_owned()),
    }
    let mut options = Options {
        port: DEFAULT_PORT,
        host: DEFAULT_HOST.to_owned(),
        module: None,
        apache: None,
        user: None,
        grants: config::Grants::default(),
        site: PathBuf::new(),
    };
    let mut site = None;
    let mut only_operands = false;
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if only_operands || !bytes.starts_with(b"-") || bytes == b"-" {
            if site.replace(PathBuf::from(&arg)).is_some() {
                return Err("serve takes one SITE_DIR".to_owned());
            }
            continue;
        }
        if bytes == b"--" {
            only_operands = true;
            continue;
        }
        // --name VALUE or --name=VALUE
        let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
            Some(at) => (&bytes[..at], Some(OsStr::from_bytes(&bytes[at + 1..]))),
            None => (bytes, None),
        };
        let name = String::from_utf8_lossy(name).into_owned();
        let mut value = || {
            inline
                .map(OsStr::to_owned)
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let text = |value: OsString| {
            value
                .into_string()
                .map_err(|v| format!("{name} {v:?}: not valid UTF-8"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--port" => options.port = port(&text(value()?)?)?,
            "--host" => options.host = text(value()?)?,
            "--module" => options.module = Some(value()?.into()),
            "--apache" => options.apache = Some(value()?.into()),
            "--user" => options.user = Some(text(value()?)?),
            "--allow-outgoing" => options.grants.outgoing.push(text(value()?)?),
            "--env" => options.grants.env.push(config::env(&text(value()?)?)?),
            "--dir" => options.grants.dirs.push(config::dir(&text(value()?)?)?),
            _ => return Err(format!("unknown option {name}")),
        }
    }
    options.site = site.ok_or("serve needs the SITE_DIR to serve")?;
    Ok(Command::Serve(options))
}

fn port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!(
            "--port {text:?}: a port is a number from 1 to 65535"
        )),
    }
}

/// The host as Listen and URLs write it (IPv6 in brackets), checked to be
/// safe in the configuration.
fn listen_host(host: &str) -> Result<String, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V6(address)) => Ok(format!("[{address}]")),
        Ok(IpAddr::V4(address)) => Ok(address.to_string()),
        Err(_)
            if !bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
        {
            Ok(bare.to_owned())
        }
        Err(_) => Err(format!(
            "--host {host:?} is neither an IP address nor a host name"
        )),
    }
}

fn serve(options: Options) -> Result<ExitCode, Failure> {
    let site = fs::canonicalize(&options.site)
        .map_err(|e| Failure::usage(format!("cannot serve {}: {e}", options.site.display())))?;
    if !site.is_dir() {
        return Err(Failure::usage(format!(
            "cannot serve {}: not a folder",
            options.site.display()
        )));
    }
    let host = listen_host(&options.host).map_err(Failure::usage)?;
    let module = find_module(options.module)?;
    let apache = find_apache(options.apache)?;
    let children = account::children_user(options.user.as_deref()).map_err(Failure::usage)?;
    if children.is_none() && options.user.is_some() {
        eprintln!("mod_wasm: not started as root: --user is ignored, Apache runs as you");
    }
    if let Some(user) = &children
        && !account::can_reach(&site, user)
    {
        eprintln!(
            "mod_wasm: warning: Apache's children run as {} and cannot read {} (check it \
             and the folders above it): neither its components nor its static files can \
             be served",
            user.name,
            site.display()
        );
    }
    if let Some(user) = &children {
        for dir in &options.grants.dirs {
            if !account::can_reach(&dir.host, user) {
                eprintln!(
                    "mod_wasm: warning: Apache's children run as {} and cannot reach {} \
                     (--dir): a component that opens it will fail",
                    user.name,
                    dir.host.display()
                );
            }
        }
    }

    let listing = listing::scan(&site)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", site.display())))?;
    for (url, files) in listing.clashes() {
        eprintln!(
            "mod_wasm: warning: {url} is served by more than one file: {}",
            files.join(", ")
        );
    }
    for unreadable in &listing.unreadable {
        eprintln!("mod_wasm: warning: cannot read {unreadable}: its routes are missing");
    }
    let cache = cache::choose(children.as_ref());

    // From here on there is a directory to remove: a stop signal must not
    // end this process before it has done so.
    apache::catch_stop_signals()
        .map_err(|e| Failure::other(format!("cannot catch signals: {e}")))?;
    let run_dir = RunDir::create("mod_wasm-serve", children.is_some())
        .map_err(|e| Failure::other(format!("cannot create a temporary directory: {e}")))?;
    let conf = run_dir.path().join("httpd.conf");
    let listen = format!("{host}:{}", options.port);
    let text = config::text(&config::Settings {
        dir: run_dir.path(),
        site: &site,
        listen: &listen,
        module: &module,
        modules_dir: Path::new(config::MODULES_DIR),
        cache: match &cache {
            Cache::Dir(dir) => Some(dir),
            Cache::Off(_) => None,
        },
        user: children.as_ref().map(|user| (user.name.as_str(), user.gid)),
        grants: &options.grants,
    })
    .map_err(Failure::usage)?;
    fs::write(&conf, text)
        .map_err(|e| Failure::other(format!("cannot write {}: {e}", conf.display())))?;

    print_banner(&site, &listen, &apache, &listing, &cache, &conf)
        .map_err(|e| Failure::other(format!("cannot write to stdout: {e}")))?;
    if apache::stop_requested() {
        return Ok(ExitCode::SUCCESS);
    }
    let ended = apache::run(&apache, &conf)
        .map_err(|e| Failure::other(format!("cannot run {}: {e}", apache.display())))?;
    drop(run_dir);
    match ended {
        apache::Ended::Stopped => Ok(ExitCode::SUCCESS),
        apache::Ended::Exited(status) => {
            let code = status
                .code()
                .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s))
                .unwrap_or(1);
            if code != 0 {
                eprintln!("mod_wasm: Apache stopped by itself ({status}); its messages are above");
            }
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
    }
}

fn print_banner(
    site: &Path,
    listen: &str,
    apache: &Path,
    listing: &listing::Listing,
    cache: &Cache,
    conf: &Path,
) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "mod_wasm: serving {} on http://{listen} with Apache ({})",
        site.display(),
        apache.display()
    )?;
    listing.print(&mut out)?;
    match cache {
        Cache::Dir(dir) => writeln!(out, "Compiled code is cached in {}.", dir.display())?,
        Cache::Off(why) => writeln!(out, "Compiled code is not cached ({why}).")?,
    }
    writeln!(out, "Apache's configuration: {}", conf.display())?;
    writeln!(out, "Ctrl-C stops it.")?;
    // Whoever reads this through a pipe waits for it before Apache starts.
    out.flush()
}

/// `--module`, else `$MOD_WASM_SO`, else where the build puts it next to
/// this program (target/release/mod_wasm, target/apache/mod_wasm.so), else
/// where a package would install it.
fn find_module(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(path) = given {
        return existing_file(&path, "--module");
    }
    if let Some(path) = std::env::var_os("MOD_WASM_SO").filter(|v| !v.is_empty()) {
        return existing_file(Path::new(&path), "MOD_WASM_SO");
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("../apache/mod_wasm.so")));
    let candidates: Vec<PathBuf> = beside
        .into_iter()
        .chain([PathBuf::from(INSTALLED_MODULE)])
        .collect();
    for candidate in &candidates {
        if candidate.is_file() {
            return existing_file(candidate, "mod_wasm.so");
        }
    }
    Err(Failure::other(format!(
        "cannot find mod_wasm.so (looked for {}): build it with `make build`, or name it \
         with --module PATH or MOD_WASM_SO",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    )))
}

fn find_apache(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    let (path, named_by) = match given {
        Some(path) => (path, "--apache"),
        None => (PathBuf::from(DEFAULT_APACHE), "Apache"),
    };
    let apache = existing_file(&path, named_by).map_err(|mut failure| {
        failure.message += " (apt-get install apache2, or name it with --apache PATH)";
        failure
    })?;
    let mpm = Path::new(config::MODULES_DIR).join("mod_mpm_event.so");
    if !mpm.is_file() {
        return Err(Failure::other(format!(
            "{} is missing: this needs Debian's apache2 modules",
            mpm.display()
        )));
    }
    Ok(apache)
}

/// `path` made absolute, if it is a file.
fn existing_file(path: &Path, named_by: &str) -> Result<PathBuf, Failure> {
    match fs::canonicalize(path) {
        Ok(absolute) if absolute.is_file() => Ok(absolute),
        Ok(_) => Err(Failure::other(format!(
            "{named_by}: {} is not a file",
            path.display()
        ))),
        Err(e) => Err(Failure::other(format!(
            "{named_by}: {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn parses_serve_with_options() {
        assert_eq!(
            parsed(&[
                "serve",
                "--port",
                "9000",
                "--host=::1",
                "--user",
                "me",
                "site"
            ]),
            Ok(Command::Serve(Options {
                port: 9000,
                host: "::1".into(),
                module: None,
                apache: None,
                user: Some("me".into()),
                grants: config::Grants::default(),
                site: "site".into(),
            }))
        );
        let Ok(Command::Serve(options)) = parsed(&["serve", "--", "-odd"]) else {
            panic!()
        };
        assert_eq!(options.site, Path::new("-odd"));
        assert_eq!(options.port, DEFAULT_PORT);
    }

    #[test]
    fn help_and_errors() {
        assert_eq!(parsed(&["--help"]), Ok(Command::Help));
        assert_eq!(parsed(&["serve", "--help"]), Ok(Command::Help));
        assert!(parsed(&[]).is_err());
        assert!(parsed(&["run", "x"]).is_err());
        assert!(parsed(&["serve"]).is_err());
        assert!(parsed(&["serve", "a", "b"]).is_err());
        assert!(parsed(&["serve", "--bogus", "a"]).is_err());
        assert!(parsed(&["serve", "a", "--port"]).is_err());
        assert!(parsed(&["serve", "--port", "0", "a"]).is_err());
        assert!(parsed(&["serve", "--port", "70000", "a"]).is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(listen_host("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(listen_host("::1").unwrap(), "[::1]");
        assert_eq!(listen_host("[::1]").unwrap(), "[::1]");
        assert_eq!(listen_host("localhost").unwrap(), "localhost");
        assert!(listen_host("a b").is_err());
        assert!(listen_host("").is_err());
    }
}
