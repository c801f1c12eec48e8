//! `wasi:config/store` for components: the section's `WasmConfigVar`
//! variables, read-only. Two versions of the interface, the same answers:
//! `0.2.0-draft-2024-09-27` (what Spin's SDKs import) and `0.2.0-rc.1`
//! (what wasmtime-wasi-config 48 serves, so components built against it
//! link here too).

use super::RequestState;
use wasmtime::component::{HasSelf, Linker};

mod draft {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasi:config/imports@0.2.0-draft-2024-09-27",
    });
}

mod rc1 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasi:config/imports@0.2.0-rc.1",
    });
}

/// Adds both versions of `wasi:config/store` to `linker`.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    draft::Imports::add_to_linker::<RequestState, HasSelf<RequestState>>(linker, |state| state)?;
    rc1::Imports::add_to_linker::<RequestState, HasSelf<RequestState>>(linker, |state| state)
}

impl draft::wasi::config0_2_0_draft_2024_09_27::store::Host for RequestState {
    fn get(
        &mut self,
        key: String,
    ) -> Result<Option<String>, draft::wasi::config0_2_0_draft_2024_09_27::store::Error> {
        Ok(self.config_var(&key))
    }

    fn get_all(
        &mut self,
    ) -> Result<Vec<(String, String)>, draft::wasi::config0_2_0_draft_2024_09_27::store::Error>
    {
        Ok(self.config_vars().to_vec())
    }
}

impl rc1::wasi::config0_2_0_rc_1::store::Host for RequestState {
    fn get(
        &mut self,
        key: String,
    ) -> Result<Option<String>, rc1::wasi::config0_2_0_rc_1::store::Error> {
        Ok(self.config_var(&key))
    }

    fn get_all(
        &mut self,
    ) -> Result<Vec<(String, String)>, rc1::wasi::config0_2_0_rc_1::store::Error> {
        Ok(self.config_vars().to_vec())
    }
}
