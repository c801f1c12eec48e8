//! A WASI preview1 program for the legacy-mode tests. The behaviour is
//! argv[1] (`WasmArg`), else `mode=` in QUERY_STRING (CGI mode); its
//! parameters come from the query, else from the environment (`WasmEnv`,
//! upper-cased names).

use std::io::{Read, Write};

fn main() {
    let mode = std::env::args()
        .nth(1)
        .or_else(|| param("mode"))
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    match mode.as_str() {
        "hello" => out.write_all(b"hello from a legacy module\n").unwrap(),
        "args" => {
            for arg in std::env::args() {
                writeln!(out, "{arg}").unwrap();
            }
        }
        "env" => {
            for (name, value) in sorted_env() {
                writeln!(out, "{name}={value}").unwrap();
            }
        }
        "cgi-env" => {
            write!(out, "Content-Type: text/plain\r\n\r\n").unwrap();
            for (name, value) in sorted_env() {
                writeln!(out, "{name}={value}").unwrap();
            }
        }
        "echo" => {
            write!(out, "Content-Type: application/octet-stream\n\n").unwrap();
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = std::io::stdin().read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).unwrap();
            }
        }
        "big" => {
            let mib: usize = number("mib", 1);
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..mib * 16 {
                out.write_all(&chunk).unwrap();
            }
        }
        "slow" => {
            out.write_all(b"first\n").unwrap();
            out.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(number("ms", 1000)));
            out.write_all(b"second\n").unwrap();
        }
        "status" => write!(
            out,
            "Status: {} Made Up\nContent-Type: text/plain\nX-Guest: yes\n\nstatus body\n",
            number::<u16>("code", 200)
        )
        .unwrap(),
        "location" => write!(
            out,
            "Location: {}\n\nthis body is dropped\n",
            param("to").unwrap_or_else(|| "/".into())
        )
        .unwrap(),
        "lastmod" => write!(
            out,
            "Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\nContent-Type: text/plain\n\n\
             modified body\n"
        )
        .unwrap(),
        "malformed" => out
            .write_all(b"this line is not a header\n\nbody\n")
            .unwrap(),
        "noheaders" => out.write_all(b"Content-Type: text/plain\n").unwrap(),
        "longhead" => {
            out.write_all(b"X-Long: ").unwrap();
            for _ in 0..100 {
                out.write_all(&[b'a'; 1024]).unwrap();
            }
        }
        "trap" => trap(),
        "trap-after" => {
            write!(out, "Content-Type: text/plain\n\n").unwrap();
            out.write_all(&vec![b'y'; 256 * 1024]).unwrap();
            out.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            trap();
        }
        "exit" => std::process::exit(number("code", 3)),
        "exit-after" => {
            out.write_all(b"partial output\n").unwrap();
            out.flush().unwrap();
            std::process::exit(number("code", 3));
        }
        "stderr" => {
            eprintln!("legacy guest says hello on stderr");
            out.write_all(b"see the error log\n").unwrap();
        }
        "spin" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_millis(number("ms", 1000)));
            out.write_all(b"slept\n").unwrap();
        }
        "alloc" => {
            let bytes = number::<usize>("mib", 1) << 20;
            let block = vec![1u8; bytes];
            writeln!(out, "allocated {}", std::hint::black_box(block).len()).unwrap();
        }
        "read" => match std::fs::read(param("path").unwrap_or_default()) {
            Ok(bytes) => out.write_all(&bytes).unwrap(),
            Err(e) => writeln!(out, "error: {e}").unwrap(),
        },
        "write" => {
            let path = param("path").unwrap_or_default();
            match std::fs::write(&path, b"written by the guest\n") {
                Ok(()) => writeln!(out, "wrote {path}").unwrap(),
                Err(e) => writeln!(out, "error: {e}").unwrap(),
            }
        }
        other => writeln!(out, "unknown mode '{other}'").unwrap(),
    }
}

/// Called instead of `_start` through `WasmEntryPoint alt_entry`.
#[unsafe(no_mangle)]
pub extern "C" fn alt_entry() {
    std::io::stdout()
        .write_all(b"hello from alt_entry\n")
        .unwrap();
}

fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    unreachable!()
}

fn sorted_env() -> Vec<(String, String)> {
    let mut env: Vec<_> = std::env::vars().collect();
    env.sort();
    env
}

/// `name` from QUERY_STRING, else the upper-cased environment variable.
fn param(name: &str) -> Option<String> {
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
        .or_else(|| std::env::var(name.to_uppercase()).ok())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> T {
    param(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}
