//! Key-value stores (`wasi:keyvalue@0.2.0-draft2`): state that outlives the
//! instance, shared by every child of the server, and by several servers
//! when the store is on Redis.
//!
//! The admin declares a store and grants it to the section
//! (`WasmKeyValueStore counter sqlite:`, `WasmKeyValue counter`); the guest
//! opens it by that label:
//!
//! ```no_run
//! use mod_wasm_guest::kv::Store;
//! # fn visits() -> Result<i64, mod_wasm_guest::Error> {
//! let store = Store::open("counter")?;
//! let visits = store.increment("visits", 1)?;
//! # Ok(visits)
//! # }
//! ```
//!
//! Every failure is an [`Error::Store`](crate::Error::Store): a label the
//! section does not grant, a value over the store's `max-value`, a backend
//! that is down. The host has logged the cause.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "wasi:keyvalue/imports@0.2.0-draft2",
    });
}

use crate::Error;
use bindings::wasi::keyvalue::{atomics, batch, store};

/// An open store.
pub struct Store(store::Bucket);

fn failed(error: store::Error) -> Error {
    Error::Store(match error {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied: the section does not grant it".into(),
        store::Error::Other(why) => why,
    })
}

impl Store {
    /// Opens the store `label` granted to this section.
    pub fn open(label: &str) -> Result<Store, Error> {
        store::open(label).map(Store).map_err(failed)
    }

    /// The value at `key`, if there is one.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.0.get(key).map_err(failed)
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        self.0.set(key, value.as_ref()).map_err(failed)
    }

    /// Removes `key`; one that is absent is fine.
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        self.0.delete(key).map_err(failed)
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        self.0.exists(key).map_err(failed)
    }

    /// Every key, page after page.
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.0.list_keys(cursor.as_deref()).map_err(failed)?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Adds `delta` to the number at `key` (0 if absent) in one atomic
    /// step, and returns the sum. The number is kept as decimal text, so
    /// [`Store::get`] reads it as `b"42"`.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        atomics::increment(&self.0, key, delta).map_err(failed)
    }

    /// Replaces the value at `key` with `change(current)`, atomically: if
    /// another request wrote in between, `change` runs again on the new
    /// value. Returns what was written.
    pub fn update(
        &self,
        key: &str,
        mut change: impl FnMut(Option<&[u8]>) -> Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        let mut cas = atomics::Cas::new(&self.0, key).map_err(failed)?;
        loop {
            let current = cas.current().map_err(failed)?;
            let next = change(current.as_deref());
            match atomics::swap(cas, &next) {
                Ok(()) => return Ok(next),
                Err(atomics::CasError::CasFailed(again)) => cas = again,
                Err(atomics::CasError::StoreError(error)) => return Err(failed(error)),
            }
        }
    }

    /// The values at `keys`, in their order, read at one moment where the
    /// backend allows it.
    pub fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
        let found = batch::get_many(&self.0, &keys).map_err(failed)?;
        Ok(found.into_iter().map(|(_, value)| value).collect())
    }

    /// Sets every pair, all of them or none.
    pub fn set_many(&self, pairs: &[(&str, &[u8])]) -> Result<(), Error> {
        let pairs: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_vec()))
            .collect();
        batch::set_many(&self.0, &pairs).map_err(failed)
    }

    /// Removes every key, all of them or none.
    pub fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        let keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
        batch::delete_many(&self.0, &keys).map_err(failed)
    }

    /// The value at `key` as JSON, if there is one.
    #[cfg(feature = "json")]
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.get(key)? {
            // What the store holds is not the client's mistake: not a 400.
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Store(format!("the value at {key:?} is not that JSON: {e}"))),
            None => Ok(None),
        }
    }

    /// Sets `key` to `value` as JSON.
    #[cfg(feature = "json")]
    pub fn set_json<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), Error> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Json(e.to_string()))?;
        self.set(key, bytes)
    }
}
