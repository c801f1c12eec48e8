//! A CGI program written to break its host, for
//! `tests/e2e/sandbox/test_hostile.py`: `attack=` in QUERY_STRING picks what it
//! writes. Its headers try to take the response's framing from Apache; the
//! test asserts that they never do.

use std::io::Write;

/// A whole response, as a smuggler would append it to a body.
const FORGED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-Forged: 1\r\n\r\nforged!";

fn main() {
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    let attack = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("attack="))
        .unwrap_or("");
    let mut out = std::io::stdout().lock();
    let body = [b"hello".as_slice(), FORGED].concat();
    let (head, body): (&[u8], &[u8]) = match attack {
        // Announces chunks, then writes none: the forged response would be
        // the next one on the connection.
        "chunked" => (
            b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
            &body,
        ),
        "length-abc" => (b"Content-Length: abc\r\n\r\n", &body),
        "length-negative" => (b"Content-Length: -5\r\n\r\n", &body),
        "length-plus" => (b"Content-Length: +5\r\n\r\n", &body),
        "length-over" => (
            b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
            &body,
        ),
        "length-under" => (
            b"Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\n",
            b"short\n",
        ),
        "two-lengths" => (b"Content-Length: 5\r\nContent-Length: 60\r\n\r\n", &body),
        "connection" => (
            b"Content-Type: text/plain\r\nConnection: keep-alive, x-secret\r\nKeep-Alive: \
              timeout=999\r\nUpgrade: h2c\r\n\r\n",
            b"hello\n",
        ),
        "symlink" => {
            let verdict = symlink("../../../../../../etc/passwd", "escape");
            // The grant is writable all the same: an ordinary file goes in.
            let plain = match std::fs::write("/data/plain", b"written") {
                Ok(()) => "written".to_string(),
                Err(e) => format!("refused: {e}"),
            };
            write!(
                out,
                "Content-Type: text/plain\r\n\r\nsymlink {verdict}\nplain file {plain}\n"
            )
            .unwrap();
            return;
        }
        _ => (b"Status: 404 Not Found\r\n\r\n", b"no such attack\n"),
    };
    // One write for head and body, as a program that prints it all at once.
    let _ = out.write_all(&[head, body].concat());
    let _ = out.flush();
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    /// preview1's `path_symlink(old_path, fd, new_path) -> errno`.
    #[link_name = "path_symlink"]
    fn wasi_path_symlink(
        old_path: *const u8,
        old_path_len: usize,
        fd: u32,
        new_path: *const u8,
        new_path_len: usize,
    ) -> u16;
}

/// Plants `link` → `target` in the first preopened directory (fd 3, the
/// location's writable grant).
fn symlink(target: &str, link: &str) -> String {
    // SAFETY: both strings are valid for the call.
    let errno =
        unsafe { wasi_path_symlink(target.as_ptr(), target.len(), 3, link.as_ptr(), link.len()) };
    match errno {
        0 => "created".into(),
        errno => format!("refused: errno {errno}"),
    }
}
