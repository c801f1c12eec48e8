//! `mod_wasm build-js APP.js`: an unmodified fetch-handler app (Hono, or
//! any module exporting `fetch` or adding a `fetch` event listener) into
//! one component: bundled by esbuild with its npm dependencies, then
//! componentize-js with guest-sdk/js/fetch-adapter.js
//! (docs/existing-apps.md).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::guest_files::{self, FETCH_ADAPTER, WORLD};
use crate::rundir::RunDir;
use crate::toolchain;

pub const USAGE: &str = "\
Usage: mod_wasm build-js APP.js -o OUT.wasm

Builds the web-standard fetch handler in APP.js (its default export's
fetch(request), as Hono's `export default app`, or a `fetch` event
listener) into a wasi:http component for WasmComponent. APP.js's imports
are bundled from its node_modules (run npm install first).

Options:
  -o, --output OUT  the component to write
";

#[derive(Debug, PartialEq)]
pub struct Options {
    app: PathBuf,
    output: PathBuf,
}

pub fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Options, String> {
    let (mut app, mut output) = (None, None);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("-o" | "--output") => {
                output = Some(
                    args.next()
                        .map(PathBuf::from)
                        .ok_or("--output needs a value")?,
                )
            }
            Some(flag) if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if app.is_none() => app = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(Options {
        app: app.ok_or("which app? (APP.js)")?,
        output: output.ok_or("where to? (-o OUT.wasm)")?,
    })
}

pub fn build(options: &Options) -> Result<(), String> {
    let app = std::fs::canonicalize(&options.app)
        .map_err(|e| format!("{}: {e}", options.app.display()))?;
    let bin = toolchain::js_tools(&toolchain::tools_dir()?)?;
    let dir =
        RunDir::create("mod_wasm-build", false).map_err(|e| format!("a build folder: {e}"))?;
    let wit = dir.path().join("wit");
    guest_files::write_wit(&wit)?;
    guest_files::write(&dir.path().join("fetch-adapter.js"), FETCH_ADAPTER)?;
    // The adapter is imported first: it must see a `fetch` listener the
    // app adds while it evaluates.
    let app_path = js_string(&app.to_string_lossy());
    let entry = format!(
        "import {{ incomingHandlerFor }} from './fetch-adapter.js';\n\
         import * as app from {app_path};\n\
         export const incomingHandler = incomingHandlerFor(app);\n"
    );
    guest_files::write(&dir.path().join("entry.js"), &entry)?;
    let bundle = dir.path().join("bundle.js");
    let mut esbuild: Vec<OsString> = [
        "entry.js",
        "--bundle",
        "--format=esm",
        "--platform=neutral",
        "--main-fields=module,main",
        // The WIT interfaces are the component's imports, not npm packages.
        "--external:wasi:*",
        "--external:mod-wasm:*",
        "--log-level=warning",
    ]
    .map(OsString::from)
    .into();
    esbuild.push(format!("--outfile={}", bundle.display()).into());
    toolchain::run(bin.join("esbuild"), esbuild, Some(dir.path()))?;
    let componentize: Vec<OsString> = [
        bundle.into_os_string(),
        "-w".into(),
        wit.into_os_string(),
        "-n".into(),
        WORLD.into(),
        // Ours, not StarlingMonkey's: see fetch-adapter.js.
        "-d".into(),
        "fetch-event".into(),
        "-o".into(),
        std::path::absolute(&options.output)
            .map_err(|e| e.to_string())?
            .into_os_string(),
    ]
    .into();
    toolchain::run(bin.join("componentize-js"), componentize, Some(dir.path()))
}

/// `text` as a JavaScript string literal.
fn js_string(text: &str) -> String {
    let mut literal = String::from("'");
    for c in text.chars() {
        match c {
            '\\' | '\'' => {
                literal.push('\\');
                literal.push(c);
            }
            '\n' => literal.push_str("\\n"),
            '\r' => literal.push_str("\\r"),
            c => literal.push(c),
        }
    }
    literal.push('\'');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_app_and_the_output() {
        let options = parse(["app.js", "-o", "out.wasm"].iter().map(OsString::from)).unwrap();
        assert_eq!(options.app, PathBuf::from("app.js"));
        assert_eq!(options.output, PathBuf::from("out.wasm"));
        assert!(parse(["app.js"].iter().map(OsString::from)).is_err());
        assert!(parse(["-o", "x"].iter().map(OsString::from)).is_err());
    }

    #[test]
    fn quotes_a_path_for_javascript() {
        assert_eq!(js_string(r"/a/it's\x.js"), r"'/a/it\'s\\x.js'");
    }
}
