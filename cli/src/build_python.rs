//! `mod_wasm build-python MODULE:APP`: an unmodified WSGI app (Flask,
//! Django's WSGI handler, Bottle, ...) and its pure-Python requirements into
//! one component, with componentize-py and guest-sdk/python/mod_wasm_wsgi.py
//! (docs/existing-apps.md).

use std::ffi::OsString;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::guest_files::{self, WORLD, WSGI_ADAPTER};
use crate::rundir::RunDir;
use crate::toolchain;

pub const USAGE: &str = "\
Usage: mod_wasm build-python [OPTIONS] MODULE:APP -o OUT.wasm

Builds the WSGI application APP of the Python module MODULE (found in
--path) into a wasi:http component for WasmComponent. The app is imported
at build time, so its imports cost nothing per request.

Options:
  -r, --requirements FILE  pip requirements to install with it (pure
                    Python: C extensions are removed, see the README)
  --path DIR        the folder holding MODULE (default: the current one)
  -o, --output OUT  the component to write
";

#[derive(Debug, PartialEq)]
pub struct Options {
    module: String,
    app: String,
    requirements: Option<PathBuf>,
    path: PathBuf,
    output: PathBuf,
}

pub fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Options, String> {
    let (mut target, mut requirements, mut path, mut output) = (None, None, None, None);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.to_str() {
            Some("-r" | "--requirements") => requirements = Some(value("--requirements")?),
            Some("--path") => path = Some(value("--path")?),
            Some("-o" | "--output") => output = Some(value("--output")?),
            Some(flag) if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            Some(given) if target.is_none() => target = Some(given.to_owned()),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let target = target.ok_or("which app? (MODULE:APP, e.g. app:app)")?;
    let (module, app) = target
        .split_once(':')
        .ok_or_else(|| format!("{target:?} is not MODULE:APP"))?;
    let dotted = |text: &str| !text.is_empty() && text.split('.').all(is_identifier);
    if !dotted(module) || !is_identifier(app) {
        return Err(format!("{target:?} is not MODULE:APP with Python names"));
    }
    Ok(Options {
        module: module.to_owned(),
        app: app.to_owned(),
        requirements,
        path: path.unwrap_or_else(|| PathBuf::from(".")),
        output: output.ok_or("where to? (-o OUT.wasm)")?,
    })
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

pub fn build(options: &Options) -> Result<(), String> {
    let tools = toolchain::tools_dir()?;
    let venv = toolchain::python_venv(&tools)?;
    let site = match &options.requirements {
        Some(file) => Some(requirements(&venv, &tools, file)?),
        None => None,
    };
    let dir =
        RunDir::create("mod_wasm-build", false).map_err(|e| format!("a build folder: {e}"))?;
    let wit = dir.path().join("wit");
    guest_files::write_wit(&wit)?;
    let adapter = dir.path().join("adapter");
    guest_files::write(&adapter.join("mod_wasm_wsgi.py"), WSGI_ADAPTER)?;
    // Its own name, so it never shadows the app's module (often `app`).
    let entry = format!(
        "import mod_wasm_wsgi\nfrom {} import {} as _app\n\
         IncomingHandler = mod_wasm_wsgi.incoming_handler(_app)\n",
        options.module, options.app
    );
    guest_files::write(&adapter.join("mod_wasm_entry.py"), &entry)?;

    let mut args: Vec<OsString> = [
        "-d".into(),
        wit.into(),
        "-w".into(),
        WORLD.into(),
        "componentize".into(),
    ]
    .into();
    for path in [Some(adapter), Some(options.path.clone()), site]
        .into_iter()
        .flatten()
    {
        args.extend(["-p".into(), path.into_os_string()]);
    }
    args.extend([
        "mod_wasm_entry".into(),
        "-o".into(),
        options.output.clone().into(),
    ]);
    toolchain::run(venv.join("bin/componentize-py"), args, None)
}

/// The folder the requirements in `file` are installed in, shared by every
/// build with the same requirements: installed once, then reused offline.
fn requirements(venv: &Path, tools: &Path, file: &Path) -> Result<PathBuf, String> {
    let text = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    toolchain::pinned("COMPONENTIZE_PY_VERSION").hash(&mut hasher);
    let site = tools.join(format!("site-packages/{:016x}", hasher.finish()));
    if site.is_dir() {
        return Ok(site);
    }
    // Installed beside it and renamed when whole: an interrupted install
    // never passes for a finished one.
    let partial = site.with_extension(format!("partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    let pip_args: [OsString; 6] = [
        "install".into(),
        "--quiet".into(),
        "--target".into(),
        partial.clone().into(),
        "-r".into(),
        file.into(),
    ];
    toolchain::run(venv.join("bin/pip"), pip_args, None)?;
    for removed in remove_native_extensions(&partial)? {
        eprintln!(
            "mod_wasm: removed {removed}: a native extension cannot load in Wasm; \
             its package must fall back to pure Python (markupsafe does) or fail at build time"
        );
    }
    fs::rename(&partial, &site).map_err(|e| format!("{}: {e}", site.display()))?;
    Ok(site)
}

/// Deletes the compiled extension modules below `dir`, returning their
/// paths below it.
fn remove_native_extensions(dir: &Path) -> Result<Vec<String>, String> {
    let mut removed = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = fs::read_dir(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "so") {
                fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                removed.push(
                    path.strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Options, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn takes_module_app_requirements_and_output() {
        let options = parsed(&["app:app", "-r", "req.txt", "-o", "out.wasm"]).unwrap();
        assert_eq!(
            (options.module.as_str(), options.app.as_str()),
            ("app", "app")
        );
        assert_eq!(options.requirements, Some(PathBuf::from("req.txt")));
        assert_eq!(options.path, PathBuf::from("."));
        assert_eq!(options.output, PathBuf::from("out.wasm"));
        assert_eq!(
            parsed(&["pkg.web:wsgi", "-o", "x"]).unwrap().module,
            "pkg.web"
        );
    }

    #[test]
    fn refuses_what_is_not_a_python_name() {
        assert!(parsed(&["app", "-o", "x"]).is_err());
        assert!(parsed(&["app:", "-o", "x"]).is_err());
        assert!(parsed(&["app:x; import os", "-o", "x"]).is_err());
        assert!(parsed(&["1app:app", "-o", "x"]).is_err());
        assert!(parsed(&["app:app"]).is_err());
    }
}
