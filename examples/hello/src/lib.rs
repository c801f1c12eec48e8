use mod_wasm_guest::{Request, handler};
#[handler]
fn handle(req: Request) -> String {
    format!(
        "Hello from WebAssembly! You asked for {}\n",
        req.uri().path()
    )
}
