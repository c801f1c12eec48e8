// `alt_entry` is called through WasmEntryPoint: a command module exports
// only `_start` unless told otherwise.
fn main() {
    println!("cargo:rustc-link-arg-bins=--export=alt_entry");
}
