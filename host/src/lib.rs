//! The Rust half of mod_wasm.
//!
//! Apache's C module (`mod_wasm/`) parses directives, owns the request and
//! moves bytes between bucket brigades and this crate. Everything that knows
//! about WebAssembly lives here, behind the C ABI in [`ffi`]. Rust never
//! calls Apache directly and never writes to stdout or stderr: bytes and
//! errors travel back through the callbacks and buffers that the C side
//! passes in. `docs/architecture.md` has the same story with the C side's
//! half in full.
//!
//! # Start-up, in the parent, then in each child
//!
//! 1. `wasm_pre_config` (C) creates a [`host::Host`] through
//!    `ffi::mw_host_new`: one configuration generation, replaced on every
//!    restart.
//! 2. Each `WasmComponent`/`WasmModule` directive (C, `config.c`) calls
//!    `mw_host_add_component`/`mw_host_add_module`, which
//!    [`compile`] the file while the configuration is read, so that a bad
//!    file stops start-up (and `apachectl -t`) with the directive's file and
//!    line. What the file is ([`kind::Kind`]: a WASI 0.2 or 0.3 component,
//!    told apart by its exports before compiling, or a module) picks the
//!    engine configuration it is compiled for ([`engine::config_for`]). `WasmFileRoutes` compiles its folder ahead the same way
//!    ([`host::Host::preload_routes`]).
//! 3. A compiled artifact is stored in, or loaded from, the [`cache`]
//!    directory (`WasmCacheDir`, else `mod_wasm` below Apache's runtime
//!    directory), keyed by the file's bytes and the engine's settings.
//! 4. After the fork, `wasm_child_init` (C) calls `mw_host_child_init` →
//!    [`host::Host::child_init`]: the child's two [`engine`]s (0.2
//!    components and modules; 0.3 components) with instance pools sized for
//!    its threads (plus mod_http2's workers), the epoch [`ticker`], and
//!    every artifact loaded and pre-instantiated.
//!
//! # The life of a component request
//!
//! 1. `wasm_handler` (C, `mod_wasm.c`) takes requests whose handler is
//!    `wasm-handler` and calls `mw_serve_component` (`component.c`), which
//!    fills an `mw_request` (method, target, headers, facts) and the
//!    callbacks of an `mw_exchange` (`exchange.c`: read the body, send the
//!    head, send data, log).
//! 2. `ffi::mw_component_serve` (`ffi/host.rs`) turns them into a
//!    [`component::Call`]: the request built by
//!    [`component::build_request`], its body a [`request_io::BodySource`]
//!    and its response a [`request_io::ResponseSink`] over the C callbacks
//!    (`ffi/exchange.rs`), the [`sandbox::Sandbox`] of the location.
//! 3. [`component::serve`] takes an instance (a new one from the pool, or an
//!    idle one under `WasmInstanceReuse`) and polls the guest's
//!    `incoming-handler` inside the request's own future, on the request's
//!    thread, until it returns or the deadline stops it.
//! 4. The head, then each piece of the body, cross back through the sink to
//!    `send_head`/`send_data` in `component.c`, and `mw_pass_out`
//!    (`exchange.c`) passes them down Apache's output filters, bounded by the
//!    declared Content-Length and the time left.
//! 5. `mw_finish` (`exchange.c`) turns the result into a status, a log line
//!    and the status page's counters ([`stats`]).
//!
//! A WASI 0.3 component takes the same steps, with [`component::serve03`]
//! in step 3: a fresh instance, its `wasi:http/handler` called inside the
//! store's event loop, which also pulls the body the guest writes after it
//! returned (`docs/wasi-0.3.md`).
//!
//! A legacy request (`WasmModule`) goes `mw_serve_module` (`legacy.c`, CGI
//! variables, arguments, stdout parsed as a CGI head) → `ffi::mw_module_serve`
//! → [`legacy::run`], with stdin and stdout in place of the request and the
//! response, and ends in the same `mw_finish`.
//!
//! # What a guest can count on
//!
//! By default every request gets a fresh instance: nothing a guest keeps in
//! its globals survives the request. Under `WasmInstanceReuse N` an
//! instance may serve up to N requests of its location in one child, one at
//! a time, so globals (and memory) persist between them; a request that
//! fails drops its instance.
//!
//! # Modules
//!
//! * [`request_io`] is the vocabulary both modes share (body source,
//!   response sink, output streams, why a request failed, pool room); it
//!   depends on neither mode.
//! * [`component`] and [`legacy`] serve one request each way.
//! * [`sandbox::Sandbox`] is what one request's guest may use: its time and
//!   memory limits and the capabilities its location grants, including the
//!   [`outgoing`] HTTP rules.
//! * The rules the CLI shares (file routes, the cache directory's safety)
//!   live in the `mod-wasm-rules` crate.
#![deny(missing_docs)]

pub mod cache;
pub mod compile;
pub mod component;
pub mod directive;
pub mod engine;
pub mod ffi;
pub mod host;
pub mod keyvalue;
pub mod kind;
pub mod legacy;
pub mod log;
mod on_demand;
pub mod outgoing;
pub mod request_io;
mod runtime;
pub mod sandbox;
pub mod stats;
mod symlinks;
pub mod ticker;
mod world;
