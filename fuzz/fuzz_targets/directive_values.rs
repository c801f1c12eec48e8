//! The numeric directives' values (`WasmTimeout`, `WasmMemoryLimit`,
//! `WasmMaxInstances`, `WasmInstanceReuse`) from any text: accepted values
//! are within the documented ranges, and a refusal names the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mod_wasm_host::directive::{count, memory_limit, timeout_ms};

fuzz_target!(|text: &str| {
    match timeout_ms(text) {
        Ok(ms) => assert!((1..=86_400_000).contains(&ms), "{text:?} -> {ms}"),
        Err(why) => assert!(why.contains(text)),
    }
    match memory_limit(text) {
        Ok(bytes) => assert!(((64 << 10)..=(4 << 30)).contains(&bytes), "{text:?} -> {bytes}"),
        Err(why) => assert!(why.contains(text)),
    }
    for off in [false, true] {
        match count(text, off) {
            Ok(n) => assert!((1..=1_000_000).contains(&n), "{text:?} -> {n}"),
            Err(why) => assert!(why.contains(text)),
        }
    }
});
