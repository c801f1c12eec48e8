//! A CGI program: answers with the CGI variables it was given, its query
//! and its request body. `?status=404` (any code) sets the `Status:` header.

use std::io::{Read, Write};

fn main() -> std::io::Result<()> {
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    let status = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("status="))
        .and_then(|code| code.parse::<u16>().ok())
        .unwrap_or(200);
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body)?;

    let mut out = std::io::stdout().lock();
    write!(out, "Status: {status}\r\nContent-Type: text/plain\r\n\r\n")?;
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (name, value) in vars {
        writeln!(out, "{name}={value}")?;
    }
    writeln!(out, "query: {query}")?;
    writeln!(out, "body ({} bytes):", body.len())?;
    out.write_all(&body)?;
    Ok(())
}
