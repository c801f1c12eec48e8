//! The registry tools `mod_wasm build-python` and `build-js` run, fetched
//! on first use into one tools folder and reused from there, so a second
//! build needs no network: componentize-py in a venv (PyPI),
//! componentize-js and esbuild (npm). Versions: guest-sdk/toolchain.env.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

const PINS: &str = include_str!("../../guest-sdk/toolchain.env");

/// The version `name` is pinned to in guest-sdk/toolchain.env.
pub fn pinned(name: &str) -> &'static str {
    PINS.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim())
        .unwrap_or_else(|| panic!("guest-sdk/toolchain.env pins no {name}"))
}

/// `$MOD_WASM_TOOLS`, else `$XDG_CACHE_HOME/mod_wasm`, else
/// `~/.cache/mod_wasm`.
pub fn tools_dir() -> Result<PathBuf, String> {
    let from = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(dir) = from("MOD_WASM_TOOLS") {
        return Ok(dir);
    }
    if let Some(dir) = from("XDG_CACHE_HOME") {
        return Ok(dir.join("mod_wasm"));
    }
    from("HOME")
        .map(|home| home.join(".cache/mod_wasm"))
        .ok_or_else(|| "set MOD_WASM_TOOLS (or HOME) to a folder for the build tools".to_owned())
}

/// Runs `program args`, in `dir` if given; an error names the command.
pub fn run<I, S>(program: impl AsRef<OsStr>, args: I, dir: Option<&Path>) -> Result<(), String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = program.as_ref();
    let mut command = Command::new(program);
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{} failed ({status})", program.to_string_lossy())),
        Err(e) => Err(format!("cannot run {}: {e}", program.to_string_lossy())),
    }
}

/// Whether `program --version` prints `version`.
fn has_version(program: &Path, version: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(version))
}

/// The tools' Python venv (componentize-py, and the pip that fetches an
/// app's requirements), made on first use.
pub fn python_venv(tools: &Path) -> Result<PathBuf, String> {
    let venv = tools.join("py");
    let componentize = venv.join("bin/componentize-py");
    let version = pinned("COMPONENTIZE_PY_VERSION");
    if !has_version(&componentize, version) {
        eprintln!(
            "mod_wasm: fetching componentize-py {version} from PyPI into {}",
            venv.display()
        );
        run(
            "python3",
            [OsStr::new("-m"), OsStr::new("venv"), venv.as_os_str()],
            None,
        )?;
        let package = format!("componentize-py=={version}");
        run(venv.join("bin/pip"), ["install", "--quiet", &package], None)?;
    }
    Ok(venv)
}

/// The tools' npm folder with componentize-js and esbuild; returns its
/// `node_modules/.bin`.
pub fn js_tools(tools: &Path) -> Result<PathBuf, String> {
    let prefix = tools.join("js");
    let bin = prefix.join("node_modules/.bin");
    let componentize = pinned("COMPONENTIZE_JS_VERSION");
    let esbuild = pinned("ESBUILD_VERSION");
    if !has_version(&bin.join("componentize-js"), componentize)
        || !has_version(&bin.join("esbuild"), esbuild)
    {
        eprintln!(
            "mod_wasm: fetching componentize-js {componentize} and esbuild {esbuild} from npm"
        );
        std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        run(
            "npm",
            [
                OsStr::new("install"),
                OsStr::new("--prefix"),
                prefix.as_os_str(),
                OsStr::new("--no-audit"),
                OsStr::new("--no-fund"),
                OsStr::new("--loglevel=error"),
                OsStr::new(&format!("@bytecodealliance/componentize-js@{componentize}")),
                OsStr::new(&format!("esbuild@{esbuild}")),
            ],
            None,
        )?;
    }
    Ok(bin)
}
