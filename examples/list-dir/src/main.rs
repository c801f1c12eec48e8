//! Lists the directory given as its first argument (`WasmArg`), default
//! `/data`, as the guest sees it through `WasmDir`/`WasmMapDir`.

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/data".into());
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            // Goes to Apache's error log; no output at all gives a 500.
            eprintln!("cannot list {dir}: {e}");
            std::process::exit(1);
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => format!("{name}/"),
                _ => name,
            }
        })
        .collect();
    names.sort();
    println!("{dir}:");
    for name in names {
        println!("  {name}");
    }
}
