//! The legacy-mode hello: a plain WASI program whose stdout is the response
//! body, as with VMware's mod_wasm.

fn main() {
    println!("Hello from a WASI preview1 module!");
}
