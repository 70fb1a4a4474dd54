//! Counts the heap bytes each thread holds, and the most it held since [`reset`]: the global
//! allocator of the test binaries that bound memory (tests/limits.rs, and the collector's
//! bound in tests/aws). Counts are per thread, so tests running in parallel do not see each
//! other's allocations; a `current_thread` tokio test polls the SDK and the collector on its
//! own thread. Included with `#[path]`, as it installs a `#[global_allocator]`.
#![allow(
    unsafe_code,
    reason = "a global allocator implements the unsafe GlobalAlloc trait"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: isize) {
    let _ = HELD.try_with(|held| {
        held.set(held.get() + bytes);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(held.get())));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// const-initialized thread locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

pub fn reset() {
    PEAK.with(|peak| peak.set(HELD.with(Cell::get)));
}

/// The most this thread held since [`reset`], above what it held then.
pub fn since(base: isize) -> usize {
    (PEAK.with(Cell::get) - base).max(0) as usize
}

pub fn held() -> isize {
    HELD.with(Cell::get)
}
