//! `WasmInstanceReuse`: instances that serve more than one request.
//!
//! A fresh instance per request is the safe default, and for a small guest
//! it costs a few microseconds. An interpreter (componentize-py,
//! componentize-js) redoes its per-instance setup in every fresh instance:
//! milliseconds, most of such a request. A location that opts in keeps an
//! instance whose request ended cleanly and gives it to its next request.
//!
//! What makes that safe:
//! * An instance goes back only after a clean request: after a trap, a
//!   timeout, a guest error or a refused response it is dropped, so a guest
//!   never resumes from a state the host cut short.
//! * Whatever of a request the guest keeps (its body, its log) reaches the
//!   request through the exchange's `alive` flag, cleared when the request
//!   ends: a resource kept into the next request reads as failed.
//! * Its log and facts are swapped for each request
//!   ([`super::RequestState::next_request`]).
//! * An instance serves at most the directive's number of requests, so a
//!   slow leak in a guest ends there.
//! * Idle instances are per child and capped ([`set_capacity`]); when the
//!   instance pool is full, a fresh instance evicts the oldest idle one.
//!
//! An instance is only reused where the same component runs with the same
//! grants for the same section: see [`ReuseKey`].
//!
//! The idle instances here are 0.2 components' ([`super::serve`]) and 0.3
//! middlewares' ([`super::middleware`]), one request at a time on the
//! request's own thread. A 0.3 content component's shared instance lives
//! on a thread of its own instead ([`super::shared03`]).

use super::{RequestFacts, RequestState};
use crate::log::RequestLog;
use crate::stats::Meter;
use crate::ticker;
use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::Store;

/// Which instances a request may take: same component, same section, same
/// grants. The component is held, so that its address cannot be reused by
/// another one while an instance of it is idle.
pub struct ReuseKey {
    component: Arc<dyn Any + Send + Sync>,
    /// Everything else an instance is built from, as one string.
    config: String,
}

impl ReuseKey {
    /// The key of `component` run with `config` (the section and the grants
    /// that went into the instance's state).
    pub fn new(component: Arc<dyn Any + Send + Sync>, config: String) -> Self {
        ReuseKey { component, config }
    }

    pub(super) fn matches(&self, other: &ReuseKey) -> bool {
        Arc::ptr_eq(&self.component, &other.component) && self.config == other.config
    }
}

/// A location's reuse: its key and how many requests one instance serves.
pub struct Reuse {
    /// Which idle instances the request may take.
    pub key: ReuseKey,
    /// At least 2 (1 would be no reuse).
    pub max_requests: u32,
    /// How many requests one WASI 0.3 instance may serve at once
    /// (`concurrent=`); 0.2 instances serve one at a time.
    pub concurrency: u32,
    /// Where a 0.3 instance serving several requests at once logs what its
    /// guest writes, which belongs to none of them alone: the section's log.
    pub section_log: Arc<dyn crate::log::RequestLog>,
}

/// An instance between two requests, with its exports `E` (a 0.2
/// `Proxy`, a 0.3 `Service`).
pub struct Instance<E> {
    /// The store, with the request's state.
    pub store: Store<RequestState>,
    /// The instance's exports.
    pub exports: E,
    /// Requests it has served.
    pub served: u32,
}

struct Idle {
    key: ReuseKey,
    /// An `Instance<E>`: the key's component says which `E`.
    instance: Box<dyn Any + Send>,
}

/// The idle instances of this process, oldest first.
static IDLE: Mutex<Vec<Idle>> = Mutex::new(Vec::new());

/// How many instances may be idle at once in this process.
static CAPACITY: AtomicUsize = AtomicUsize::new(1);

/// How many instances may be idle at once in this process, 0.2 and 0.3
/// each.
pub(super) fn capacity() -> usize {
    CAPACITY.load(Ordering::Relaxed)
}

fn idle() -> std::sync::MutexGuard<'static, Vec<Idle>> {
    IDLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Lets up to `instances` instances wait idle in this process: the pool's
/// slots, so that one location whose every thread reuses never evicts.
pub fn set_capacity(instances: usize) {
    CAPACITY.store(instances.max(1), Ordering::Relaxed);
    crate::request_io::evict_idle_with(evict_oldest);
}

/// The most recently idle instance for `key`, if any; make it the
/// request's with [`Instance::serves`].
pub fn take<E: Send + 'static>(key: &ReuseKey) -> Option<Instance<E>> {
    let taken = {
        let mut idle = idle();
        let at = idle.iter().rposition(|entry| entry.key.matches(key))?;
        idle.remove(at).instance
    };
    // The same component has the same exports: a mismatch cannot happen,
    // and would only cost a fresh instance.
    taken.downcast().ok().map(|instance| *instance)
}

impl<E> Instance<E> {
    /// The idle instance serves another request: its facts, log, memory
    /// refusals and meter are the request's, and its guest is stopped at
    /// `deadline`.
    pub fn serves(
        mut self,
        facts: RequestFacts,
        log: Arc<dyn RequestLog>,
        memory_exceeded: Arc<AtomicBool>,
        meter: Arc<Meter>,
        deadline: Instant,
    ) -> Self {
        let state = self.store.data_mut();
        state.next_request(facts, log, memory_exceeded, meter);
        ticker::stop_at(&mut self.store, deadline);
        self
    }
}

/// Keeps `instance`, which served a request cleanly, for the next request
/// with `reuse`'s key, unless it has served its share. What its guest left
/// unfinished in its output is logged now, with the request that ends.
pub fn give_back<E: Send + 'static>(reuse: Reuse, mut instance: Instance<E>) {
    instance.store.data_mut().end_request();
    instance.served += 1;
    if instance.served >= reuse.max_requests {
        return;
    }
    let evicted = {
        let mut idle = idle();
        let evicted = (idle.len() >= CAPACITY.load(Ordering::Relaxed)).then(|| idle.remove(0));
        idle.push(Idle {
            key: reuse.key,
            instance: Box::new(instance),
        });
        evicted
    };
    // Dropped outside the lock: dropping a store resets its memory.
    drop(evicted);
}

/// Drops the oldest idle instance, giving its slots back to the pool.
/// False if none was idle. [`PoolRoom`](crate::request_io::PoolRoom) calls it for any
/// new instance (a legacy module's too) that finds the pool full.
pub fn evict_oldest() -> bool {
    let evicted = {
        let mut idle = idle();
        (!idle.is_empty()).then(|| idle.remove(0))
    };
    evicted.is_some()
}

#[cfg(test)]
mod tests {
    use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};
    use wasmtime::{PoolConcurrencyLimitError, Store};

    use crate::request_io::{ServeError, classify};

    /// `(module (func (export "f")))`
    const EXPORTS_F: &[u8] = &[
        0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0, 10, 4,
        1, 2, 0, 11,
    ];

    /// The pool's "full" error is recognisable whichever slot ran out: a
    /// store that ran async code keeps its fiber stack until it is dropped.
    #[test]
    fn a_full_pool_is_a_pool_concurrency_limit_error() {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_stacks(1)
            .total_core_instances(4)
            .total_memories(4)
            .total_tables(4);
        let mut config = Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, EXPORTS_F).unwrap();
        crate::runtime::block_on(async {
            let mut first = Store::new(&engine, ());
            run_f(&mut first, &module).await.unwrap();
            let mut second = Store::new(&engine, ());
            let e = run_f(&mut second, &module).await.unwrap_err();
            assert!(e.is::<PoolConcurrencyLimitError>(), "{e:?}");
            // Reported as the host's failure, not the guest's.
            assert!(matches!(classify(&e), ServeError::Internal(_)), "{e:?}");
            drop(first);
            run_f(&mut second, &module).await.unwrap();
        })
        .unwrap();
    }

    async fn run_f(store: &mut Store<()>, module: &Module) -> wasmtime::Result<()> {
        let instance = wasmtime::Instance::new_async(&mut *store, module, &[]).await?;
        let f = instance.get_typed_func::<(), ()>(&mut *store, "f")?;
        f.call_async(&mut *store, ()).await
    }
}
