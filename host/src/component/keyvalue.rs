//! `wasi:keyvalue@0.2.0-draft2` (wit/deps/keyvalue.wit) for components:
//! `store`, `atomics` and `batch` on the stores a section grants
//! (`WasmKeyValue`), which `crate::keyvalue` keeps.
//!
//! A guest opens a bucket by a store's label. A label the section does not
//! grant is `access-denied`, whether or not it exists elsewhere: a guest
//! learns nothing of other sections' stores. Every failure reaches the
//! guest as the interface's `error` (never a trap) and the error log as a
//! line naming the store and the cause.

use super::RequestState;
use crate::keyvalue::{Session, Store};
use crate::log::LogKind;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::WasiView;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wasi:keyvalue/imports@0.2.0-draft2",
    with: {
        "wasi:keyvalue/store.bucket": Bucket,
        "wasi:keyvalue/atomics.cas": Cas,
    },
});

use wasi::keyvalue::store::{Error, KeyResponse};
use wasi::keyvalue::{atomics, batch, store};

/// An open bucket: the index of its store among the request's grants.
pub struct Bucket(usize);

/// A compare-and-swap begun: the value `key` held when it began.
pub struct Cas {
    store: usize,
    key: String,
    current: Option<Vec<u8>>,
}

/// The stores a request's guest may open, and what it has used of each.
pub struct Grants {
    stores: Vec<Arc<Store>>,
    ops_left: Vec<u32>,
    timeout: Duration,
    deadline: Instant,
}

impl Grants {
    /// `stores` for a request that may run for `timeout` from now.
    pub fn new(stores: Vec<Arc<Store>>, timeout: Duration) -> Self {
        let ops_left = stores.iter().map(|store| store.limits().max_ops).collect();
        Grants {
            stores,
            ops_left,
            timeout,
            deadline: Instant::now() + timeout,
        }
    }

    /// The instance serves another request (`WasmInstanceReuse`): the
    /// allowance and the deadline are that request's. (A shared WASI 0.3
    /// instance serving several at once counts them together.)
    pub fn next_request(&mut self) {
        *self = Grants::new(std::mem::take(&mut self.stores), self.timeout);
    }
}

/// Adds `wasi:keyvalue` to `linker`. Components that do not import it are
/// unaffected.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    Imports::add_to_linker::<RequestState, HasSelf<RequestState>>(linker, |state| state)
}

impl RequestState {
    /// Runs `operation` on the store at `index` within the request's
    /// allowance; a failure is logged with the store and becomes `other`.
    fn on_store<T>(
        &mut self,
        index: usize,
        operation: impl FnOnce(&mut Session<'_>) -> Result<T, String>,
    ) -> Result<T, Error> {
        let grants = self.grants();
        let Some(store) = grants.stores.get(index).cloned() else {
            return Err(Error::Other("the bucket is not open".into()));
        };
        let mut session = Session {
            store: &store,
            ops_left: &mut grants.ops_left[index],
            deadline: grants.deadline,
        };
        operation(&mut session).map_err(|why| {
            let line = format!("{}: {why}", store.describe());
            self.log().log(LogKind::StoreFailed, line.as_bytes());
            Error::Other(why)
        })
    }

    /// [`Self::on_store`] on the store of an open bucket.
    fn on_bucket<T>(
        &mut self,
        bucket: &Resource<Bucket>,
        operation: impl FnOnce(&mut Session<'_>) -> Result<T, String>,
    ) -> Result<T, Error> {
        let index = self.bucket(bucket)?;
        self.on_store(index, operation)
    }

    fn bucket(&mut self, bucket: &Resource<Bucket>) -> Result<usize, Error> {
        self.ctx()
            .table
            .get(bucket)
            .map(|bucket| bucket.0)
            .map_err(|e| Error::Other(e.to_string()))
    }
}

impl store::Host for RequestState {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, Error> {
        let found = self
            .grants()
            .stores
            .iter()
            .position(|store| store.label() == identifier);
        let Some(index) = found else {
            let line = format!(
                "the guest opened the store '{identifier}', which its section does not grant \
                 (WasmKeyValue)"
            );
            self.log().log(LogKind::StoreRefused, line.as_bytes());
            return Err(Error::AccessDenied);
        };
        self.ctx()
            .table
            .push(Bucket(index))
            .map_err(|e| Error::Other(e.to_string()))
    }
}

impl store::HostBucket for RequestState {
    fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.on_bucket(&bucket, |session| session.get(&key))
    }

    fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.on_bucket(&bucket, |session| session.set(&key, &value))
    }

    fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), Error> {
        self.on_bucket(&bucket, |session| session.delete(&key))
    }

    fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, Error> {
        self.on_bucket(&bucket, |session| session.exists(&key))
    }

    fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Result<KeyResponse, Error> {
        let (keys, cursor) =
            self.on_bucket(&bucket, |session| session.list_keys(cursor.as_deref()))?;
        Ok(KeyResponse { keys, cursor })
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.ctx().table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for RequestState {
    fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Result<i64, Error> {
        self.on_bucket(&bucket, |session| session.increment(&key, delta))
    }

    fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let taken = self
            .ctx()
            .table
            .delete(cas)
            .map_err(|e| atomics::CasError::StoreError(Error::Other(e.to_string())))?;
        let swapped = self
            .on_store(taken.store, |session| {
                session.swap_if(&taken.key, taken.current.as_deref(), &value)
            })
            .map_err(atomics::CasError::StoreError)?;
        if swapped {
            return Ok(());
        }
        // Someone else wrote first: a new cas on what the key holds now,
        // for the guest to try again from.
        let current = self
            .on_store(taken.store, |session| session.get(&taken.key))
            .map_err(atomics::CasError::StoreError)?;
        let again = Cas { current, ..taken };
        let again = self
            .ctx()
            .table
            .push(again)
            .map_err(|e| atomics::CasError::StoreError(Error::Other(e.to_string())))?;
        Err(atomics::CasError::CasFailed(again))
    }
}

impl atomics::HostCas for RequestState {
    fn new(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Resource<Cas>, Error> {
        let index = self.bucket(&bucket)?;
        let current = self.on_store(index, |session| session.get(&key))?;
        self.ctx()
            .table
            .push(Cas {
                store: index,
                key,
                current,
            })
            .map_err(|e| Error::Other(e.to_string()))
    }

    fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>, Error> {
        self.ctx()
            .table
            .get(&cas)
            .map(|cas| cas.current.clone())
            .map_err(|e| Error::Other(e.to_string()))
    }

    fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.ctx().table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for RequestState {
    fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, Error> {
        let values = self.on_bucket(&bucket, |session| session.get_many(&keys))?;
        Ok(keys.into_iter().zip(values).collect())
    }

    fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Error> {
        self.on_bucket(&bucket, |session| session.set_many(&key_values))
    }

    fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Result<(), Error> {
        self.on_bucket(&bucket, |session| session.delete_many(&keys))
    }
}
