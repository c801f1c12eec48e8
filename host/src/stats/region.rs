//! The counters' shared memory: one anonymous shared mapping, made by the
//! Apache parent before it forks, so that every child (of this and of later
//! generations) adds to the same counters and any child can show totals.
//!
//! The mapping holds a fixed number of slots, one per location and guest
//! file. A slot is claimed once, by whichever process first needs it, and
//! then only counted into: nothing is ever freed or moved, so no lock is
//! needed across processes. Counters are atomics, which work across
//! processes on shared memory.

use super::histogram::Histogram;
use super::stores::{STORE_SLOTS, StoreKind, StoreSlot};
use std::cell::UnsafeCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

/// Slots in the mapping. The last one counts whatever finds no free slot.
pub(crate) const SLOTS: usize = 512;

/// Bytes of a location or file name a slot keeps; longer names are cut.
pub(crate) const NAME_MAX: usize = 240;

/// How requests ended, as counted per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The guest trapped (a panic, an out-of-bounds access, `unreachable`).
    Trap = 0,
    /// The request ran past `WasmTimeout`.
    Timeout = 1,
    /// A limit refused the guest: `WasmMemoryLimit` while it ran, or
    /// `WasmMaxInstances` before it started.
    Limit = 2,
    /// The guest failed without trapping: no response, an error code
    /// instead of one, an invalid response, a non-zero exit status, bad
    /// CGI headers.
    Guest = 3,
    /// The host failed (not loaded in this child, an internal error).
    Host = 4,
    /// Another request in the same shared WASI 0.3 instance broke it (a
    /// trap, a guest running past its deadline): this one failed with it.
    Shared = 5,
}

impl ErrorKind {
    /// Every kind, in the order of their numbers.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Trap,
        ErrorKind::Timeout,
        ErrorKind::Limit,
        ErrorKind::Guest,
        ErrorKind::Host,
        ErrorKind::Shared,
    ];

    /// The kind's name on the status page.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Trap => "trap",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Limit => "limit",
            ErrorKind::Guest => "guest",
            ErrorKind::Host => "host",
            ErrorKind::Shared => "shared",
        }
    }
}

/// What kind of guest a slot counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    /// A wasi:http component (WASI 0.2).
    Component = 1,
    /// A WASI preview1 module (legacy mode).
    Module = 2,
    /// A wasi:http component (WASI 0.3).
    Component03 = 3,
}

/// A slot's state: FREE, READY, or being claimed by the process whose pid
/// is the state minus CLAIMED_BY (so that a claim its process never
/// finished can be taken over).
const FREE: u32 = 0;
const READY: u32 = 1;
const CLAIMED_BY: u32 = 2;

/// How many times a lookup yields to a claim in progress before it counts
/// into the overflow slot instead.
const CLAIM_WAITS: u32 = 1000;

/// Whether the process `pid` exists.
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks; any pid value is fine to ask about.
    let rv = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rv == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A name cut to [`NAME_MAX`] bytes.
#[repr(C)]
struct Name {
    len: AtomicU32,
    bytes: UnsafeCell<[u8; NAME_MAX]>,
}

/// What every kind of slot starts with: its state, the kind of thing it
/// counts, the generation that last named it, and its two names (for a
/// guest, its location and file; for a store, its label and backend).
#[repr(C)]
pub(crate) struct Names {
    state: AtomicU32,
    kind: AtomicU32,
    /// The configuration generation that last named this slot.
    generation: AtomicU64,
    first: Name,
    second: Name,
}

// SAFETY: every field but the names is atomic; a name is written only by
// the process that claimed the slot (moved it from FREE, or from a dead
// process's claim, to its own), and read only after it is READY
// (release/acquire on `state`).
unsafe impl Sync for Names {}

impl Names {
    pub(crate) fn first(&self) -> String {
        self.first.get()
    }

    pub(crate) fn second(&self) -> String {
        self.second.get()
    }

    pub(crate) fn kind(&self) -> u32 {
        self.kind.load(Ordering::Relaxed)
    }

    fn is(&self, first: &[u8], second: &[u8], kind: u32) -> bool {
        self.kind() == kind && self.first.equals(first) && self.second.equals(second)
    }

    fn shown(&self, generation: u64) -> bool {
        self.state.load(Ordering::Acquire) == READY
            && self.generation.load(Ordering::Relaxed) == generation
    }
}

/// A slot of any kind: found by its [`Names`].
pub(crate) trait Named {
    fn names(&self) -> &Names;
}

/// The counters of one location and guest file, in all processes.
#[repr(C)]
pub struct Slot {
    names: Names,
    /// Requests that ended (or were refused), errors included.
    pub(crate) requests: AtomicU64,
    pub(crate) errors: [AtomicU64; ErrorKind::ALL.len()],
    /// Requests being served now.
    pub(crate) in_use: AtomicI64,
    /// Bytes of linear memory the instances being served now hold.
    pub(crate) memory: AtomicI64,
    /// The most linear memory one request has held.
    pub(crate) peak_memory: AtomicU64,
    /// How long the parent took to compile the file (or to load it from
    /// the disk cache), and a child to load it, in microseconds.
    pub(crate) compile_us: AtomicU64,
    pub(crate) load_us: AtomicU64,
    pub(crate) latency: Histogram,
}

impl Named for Slot {
    fn names(&self) -> &Names {
        &self.names
    }
}

impl Slot {
    /// The location (the configuration section that chose the guest).
    pub fn location(&self) -> String {
        self.names.first()
    }

    /// The guest's file.
    pub fn file(&self) -> String {
        self.names.second()
    }

    /// Component or module.
    pub fn kind(&self) -> GuestKind {
        match self.names.kind() {
            2 => GuestKind::Module,
            3 => GuestKind::Component03,
            _ => GuestKind::Component,
        }
    }
}

impl Name {
    /// # Safety
    /// Only the process that claimed the slot, before marking it READY.
    unsafe fn set(&self, text: &[u8]) {
        let len = text.len().min(NAME_MAX);
        // SAFETY: the caller's contract: nobody reads or writes it now.
        unsafe { (&mut *self.bytes.get())[..len].copy_from_slice(&text[..len]) };
        self.len.store(len as u32, Ordering::Relaxed);
    }

    fn bytes(&self) -> &[u8] {
        let len = (self.len.load(Ordering::Relaxed) as usize).min(NAME_MAX);
        // SAFETY: read only once the slot is READY, after which nobody
        // writes it (see `Names`).
        unsafe { &(&*self.bytes.get())[..len] }
    }

    fn equals(&self, text: &[u8]) -> bool {
        self.bytes() == &text[..text.len().min(NAME_MAX)]
    }

    fn get(&self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

/// The whole mapping.
#[repr(C)]
pub struct Region {
    /// Bumped by the parent each time it reads the configuration.
    generation: AtomicU64,
    /// When the mapping was made (seconds since the epoch).
    started: AtomicU64,
    slots: [Slot; SLOTS],
    stores: [StoreSlot; STORE_SLOTS],
}

static REGION: OnceLock<&'static Region> = OnceLock::new();

/// The mapping, made on first use. The parent makes it (in its first
/// pre-config) before any child exists; a process that never forks (a
/// test, a benchmark) gets one of its own the same way.
pub fn region() -> &'static Region {
    REGION.get_or_init(|| {
        let size = std::mem::size_of::<Region>();
        // SAFETY: a new anonymous mapping, no address hint; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        // Without it there are no counters, and nothing else works either:
        // the only way this fails is an exhausted address space.
        assert!(
            ptr != libc::MAP_FAILED,
            "cannot map {size} bytes for the status counters"
        );
        // SAFETY: zeroed, page-aligned, shared memory of the right size:
        // all zeros is a valid Region (atomics at 0, every slot FREE). It is
        // never unmapped.
        let region: &'static Region = unsafe { &*ptr.cast::<Region>() };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        region.started.store(now, Ordering::Relaxed);
        region
    })
}

impl Region {
    /// Starts a configuration generation: slots named from now on are the
    /// ones the status page shows (with any still serving requests).
    pub fn next_generation(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The current configuration generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// When the counters started (seconds since the epoch).
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// The slot of `location` and `file`, claimed if new, and marked as
    /// part of the current generation. When every slot is taken, or a slot
    /// is being claimed so slowly that waiting longer would hold up a
    /// request, the last one, which counts for all of those (never a second
    /// slot for the same names).
    pub fn slot(&self, location: &str, file: &str, kind: GuestKind) -> &Slot {
        let names = [location.as_bytes(), file.as_bytes()];
        find(
            &self.slots,
            names,
            kind as u32,
            self.generation(),
            b"(other locations)",
        )
    }

    /// The counters of the store `label` kept in `backend`, found as
    /// [`Region::slot`] finds a guest's.
    pub fn store_slot(&self, label: &str, backend: &str, kind: StoreKind) -> &StoreSlot {
        let names = [label.as_bytes(), backend.as_bytes()];
        find(
            &self.stores,
            names,
            kind as u32,
            self.generation(),
            b"(other stores)",
        )
    }

    /// The slots to show: those the current configuration names (or, for
    /// files served on request, has served).
    pub fn shown(&self) -> impl Iterator<Item = &Slot> {
        let generation = self.generation();
        self.slots
            .iter()
            .filter(move |slot| slot.names.shown(generation))
    }

    /// The stores to show: those the current configuration declares.
    pub fn shown_stores(&self) -> impl Iterator<Item = &StoreSlot> {
        let generation = self.generation();
        self.stores
            .iter()
            .filter(move |slot| slot.names().shown(generation))
    }
}

/// The slot in `slots` named `names` (of `kind`), claimed if new; the last
/// slot, named `overflow`, when none is free or a claim takes too long.
fn find<'a, S: Named>(
    slots: &'a [S],
    [first, second]: [&[u8]; 2],
    kind: u32,
    generation: u64,
    overflow: &[u8],
) -> &'a S {
    let claim = std::process::id() + CLAIMED_BY;
    let (last, named) = slots.split_last().expect("a region has slots");
    for slot in named {
        let names = slot.names();
        let mut waited = 0;
        loop {
            match names.state.load(Ordering::Acquire) {
                READY if names.is(first, second, kind) => {
                    names.generation.store(generation, Ordering::Relaxed);
                    return slot;
                }
                READY => break,
                seen => {
                    // FREE, or claimed by a process that died before it
                    // finished (killed right then): ours to claim.
                    let claimable = seen == FREE || !alive(seen - CLAIMED_BY);
                    if claimable
                        && names
                            .state
                            .compare_exchange(seen, claim, Ordering::Acquire, Ordering::Relaxed)
                            .is_ok()
                    {
                        // SAFETY: this process claimed the slot.
                        unsafe {
                            names.first.set(first);
                            names.second.set(second);
                        }
                        names.kind.store(kind, Ordering::Relaxed);
                        names.generation.store(generation, Ordering::Relaxed);
                        names.state.store(READY, Ordering::Release);
                        return slot;
                    }
                    // Another process is writing its names: a claim takes
                    // microseconds, unless it was preempted.
                    waited += 1;
                    if waited > CLAIM_WAITS {
                        return overflow_slot(last, overflow, generation);
                    }
                    std::thread::yield_now();
                }
            }
        }
    }
    overflow_slot(last, overflow, generation)
}

/// The last slot, which counts for everything without one of its own.
fn overflow_slot<'a, S: Named>(slot: &'a S, name: &[u8], generation: u64) -> &'a S {
    let names = slot.names();
    if names.state.load(Ordering::Acquire) == FREE
        && names
            .state
            .compare_exchange(
                FREE,
                std::process::id() + CLAIMED_BY,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    {
        // SAFETY: this process claimed the slot.
        unsafe { names.first.set(name) };
        names.state.store(READY, Ordering::Release);
    }
    names.generation.store(generation, Ordering::Relaxed);
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_found_again_by_its_names() {
        let region = region();
        let a = region.slot("/region-a", "/x.wasm", GuestKind::Component);
        let b = region.slot("/region-b", "/x.wasm", GuestKind::Component);
        let m = region.slot("/region-a", "/x.wasm", GuestKind::Module);
        assert!(!std::ptr::eq(a, b) && !std::ptr::eq(a, m));
        assert!(std::ptr::eq(
            a,
            region.slot("/region-a", "/x.wasm", GuestKind::Component)
        ));
        assert_eq!(a.location(), "/region-a");
        assert_eq!(m.kind(), GuestKind::Module);
    }

    #[test]
    fn long_names_are_cut_and_still_found() {
        let long = "/l".repeat(NAME_MAX);
        let region = region();
        let slot = region.slot(&long, "f", GuestKind::Component);
        assert_eq!(slot.location().len(), NAME_MAX);
        assert!(std::ptr::eq(
            slot,
            region.slot(&long, "f", GuestKind::Component)
        ));
    }
}
