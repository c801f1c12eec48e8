//! The one Wasmtime configuration shared by the compiling parent and the
//! serving children.
//!
//! Artifacts compiled in the parent are deserialized in the children, which
//! only works when both engines were built from the same settings: keep every
//! setting that affects code generation here and nowhere else.

use crate::kind::Kind;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Result,
};

/// The stack a guest and the host code it calls run on: 8 MiB, Linux's
/// default thread stack, which is what Apache's own code expects.
pub(crate) const DEFAULT_ASYNC_STACK_SIZE: usize = 8 << 20;

/// The configuration every mod_wasm engine is built from.
pub fn config() -> Config {
    let mut config = Config::new();
    // The parent compiles before it forks the children. Wasmtime's parallel
    // compiler runs a thread pool, and threads do not survive fork(): in the
    // feasibility spike a child that compiled again after the parent had
    // compiled in parallel hung forever. Compile on the calling thread.
    config.parallel_compilation(false);
    config.wasm_component_model(true);
    // Guests run on their own stacks, and Apache code runs there too when a
    // guest reads its request body (input filters, TLS, even an error
    // document's internal redirect). Give it the room of an ordinary thread
    // stack; only the pages touched are ever backed by memory.
    config.async_stack_size(DEFAULT_ASYNC_STACK_SIZE);
    // WasmTimeout: compiled code checks the engine's epoch at function
    // entries and loop headers, and one ticker thread per child advances it
    // (see `ticker`). Cheaper than fuel, and it needs no thread per request.
    config.epoch_interruption(true);
    // WASI 0.2 components and modules need none of the async component
    // model, and with it on every host call they make pays its task
    // bookkeeping (the A/B run in docs/wasi-0.3.md).
    config.concurrency_support(false);
    config
}

/// The configuration of the engine that compiles and serves files of
/// `kind`: [`config`], with the async component model for WASI 0.3
/// components. Code compiled by one of the two does not load in the other.
pub fn config_for(kind: Kind) -> Config {
    let mut config = config();
    if kind == Kind::Component03 {
        config
            .concurrency_support(true)
            .wasm_component_model_async(true);
    }
    config
}

/// A new engine from [`config`], allocating instances on demand: for
/// compiling, and wherever no pool can be had.
pub fn new() -> Result<Engine> {
    Engine::new(&config())
}

/// A new engine from [`config_for`] `kind`, allocating instances on demand.
pub fn new_for(kind: Kind) -> Result<Engine> {
    Engine::new(&config_for(kind))
}

/// Lets the children reset their pooled memories with `PAGEMAP_SCAN`: call in
/// the Apache parent, before it forks. Returns whether the kernel has it.
///
/// Wasmtime opens `/proc/self/pagemap` once per process and, through an
/// atfork handler, again in each forked child. An Apache child that opened it
/// itself could not: it runs as `User`, and a process that changed its user
/// from root is not dumpable, so its `/proc/self` files stay root's. Opened
/// in the parent, the handler reopens it in each child right after fork(),
/// while the child is still root, and the open file keeps working after the
/// child drops its privileges. Without it, every request's memory reset
/// wrote the whole keep-resident region (a third of a hello's CPU time in
/// Apache, measured with perf).
pub fn open_pagemap_before_fork() -> bool {
    PoolingAllocationConfig::is_pagemap_scan_available()
}

/// What one child process may run at once, to size its instance pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Requests served at the same time: the MPM's threads per child. Zero
    /// asks for no pool.
    pub requests: u32,
    /// Linear memories one request's guest may have (the most any loaded
    /// component or module defines).
    pub memories_per_request: u32,
    /// Tables one request's guest may have.
    pub tables_per_request: u32,
}

/// How a serving engine allocates instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// From a pool sized for [`Capacity`], reset between requests.
    Pooled,
    /// With mmap per instance, because the pool could not be reserved (the
    /// error says why).
    OnDemand,
}

/// Core instances one request may create: a component is several core
/// modules (the guest, its libc, adapters and shims); interpreters ship
/// dozens. Each slot reserves 1 MiB of address space, touched only as used.
const CORE_INSTANCES_PER_REQUEST: u32 = 64;

/// Linear memory the pool keeps mapped in a free slot rather than returning
/// to the kernel: a guest's next request finds its stack and heap already
/// there instead of faulting them in again. Only pages a guest touched are
/// resident, and `pagemap_scan` resets just those.
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;

/// The same for a guest's fiber stack.
const STACK_KEEP_RESIDENT: usize = 128 << 10;

/// An engine for a serving child: [`config`] with a pooling allocator sized
/// for `capacity`, or, if the pool's address space cannot be reserved (a
/// low `ulimit -v`), with on-demand allocation and the reason.
///
/// Pooled instances skip the mmap, mprotect and munmap calls of a fresh
/// instance (the memory, its copy-on-write image, tables, the fiber stack);
/// those calls also contend between threads of one process.
pub fn for_serving(capacity: Capacity) -> Result<(Engine, Allocation, Option<String>)> {
    for_serving_kind(Kind::Component, capacity)
}

/// [`for_serving`] for the engine of files of `kind` ([`config_for`]).
pub fn for_serving_kind(
    kind: Kind,
    capacity: Capacity,
) -> Result<(Engine, Allocation, Option<String>)> {
    if capacity.requests == 0 {
        return Ok((new_for(kind)?, Allocation::OnDemand, None));
    }
    let mut config = config_for(kind);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(capacity)));
    match Engine::new(&config) {
        Ok(engine) => Ok((engine, Allocation::Pooled, None)),
        Err(pooled) => Ok((
            new_for(kind)?,
            Allocation::OnDemand,
            Some(format!("{pooled:#}")),
        )),
    }
}

fn pool(capacity: Capacity) -> PoolingAllocationConfig {
    // A subrequest or an error document may be served while a request is
    // still holding its instance in the same process: one spare slot.
    let requests = capacity.requests + 1;
    let memories = capacity.memories_per_request.max(1);
    let tables = capacity.tables_per_request.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(requests)
        .total_core_instances(requests * CORE_INSTANCES_PER_REQUEST)
        .total_memories(requests * memories)
        .total_tables(requests * tables)
        // A store keeps its fiber stack until it is dropped, and the stack
        // is taken when the guest is first called, after instantiation:
        // idle instances (WasmInstanceReuse, at most `requests` of them)
        // must not leave a request without one.
        .total_stacks(requests * 2)
        .max_memories_per_module(memories)
        .max_tables_per_module(tables)
        // Tables grow up to the sandbox's limit; a slot reserves 8 bytes per
        // element of address space and backs only what a guest uses.
        .table_elements(crate::sandbox::MAX_TABLE_ELEMENTS)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(STACK_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(requests: u32) -> Capacity {
        Capacity {
            requests,
            memories_per_request: 1,
            tables_per_request: 2,
        }
    }

    #[test]
    fn a_child_gets_a_pool_for_its_threads() {
        let (_, allocation, why) = for_serving(capacity(4)).unwrap();
        assert_eq!((allocation, why), (Allocation::Pooled, None));
    }

    #[test]
    fn no_threads_means_no_pool() {
        let (_, allocation, why) = for_serving(capacity(0)).unwrap();
        assert_eq!((allocation, why), (Allocation::OnDemand, None));
    }

    #[test]
    fn a_pool_too_big_to_reserve_falls_back_with_the_reason() {
        // A million 4 GiB memories: far more address space than x86-64 has.
        let (_, allocation, why) = for_serving(capacity(1 << 20)).unwrap();
        assert_eq!(allocation, Allocation::OnDemand);
        assert!(why.is_some_and(|why| !why.is_empty()));
    }
}
