//! How the process's allocator treats the memory an invocation frees.
//!
//! An invocation allocates megabytes (inflated payloads, the NDJSON of each record, the
//! response's base64) and frees them when it ends. glibc's malloc gives large blocks back to the
//! kernel as they are freed: blocks above its mmap threshold (128 KiB at first) are unmapped,
//! and the heap's free top is trimmed above its trim threshold. The next invocation then faults
//! every one of those pages in again, zeroed by the kernel: on the typical bench payload about
//! 2,500 page faults, a quarter of the handler's wall-clock time (README "Performance").
//!
//! [`retain_freed_memory`] keeps what was freed for the next allocation instead. A warm Lambda
//! holds its high-water mark, which its configured memory already reserves; freed memory is
//! reused before the heap extends. A long-running `eks-audit collect` keeps its high-water mark
//! too, within the bound its options set (`--concurrency` objects of `--max-object-bytes`);
//! objects over the mmap threshold are still given back when freed.
//!
//! A fresh process still faults in every page it first touches: `eks-audit invoke` on the
//! typical event takes ~3,200 faults, most of the ~10 ms between a warm handler and the whole
//! process. [`reserve_heap_in_huge_pages`] asks the kernel to back the heap's next megabytes
//! with transparent huge pages, a fault per 2 MiB instead of per 4 KiB, as glibc does for its
//! whole heap when told by `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, which a process can only be
//! given by whoever starts it. The price: a process holds whole huge pages (a couple of MB more
//! at its peak), and on a host whose memory is fragmented a fault may wait while the kernel
//! compacts memory for a huge page (THP `defrag` in `madvise` mode); a Lambda's fresh
//! execution environment has free huge pages.
//!
//! The binaries make both settings first thing, in that order, through [`configure`], and the
//! benches too, so that they measure what ships.

/// What [`configure`] obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Configured {
    /// Whether the allocator keeps freed memory ([`retain_freed_memory`]).
    pub retained: bool,
    /// Whether the kernel took the advice to back the heap with huge pages
    /// ([`reserve_heap_in_huge_pages`]).
    pub huge_pages: bool,
}

/// [`retain_freed_memory`], then [`reserve_heap_in_huge_pages`] for [`HUGE_PAGE_HEAP`]: the
/// order the second needs. Call it on the thread the handler will run on, before any other
/// thread starts.
pub fn configure() -> Configured {
    let retained = retain_freed_memory();
    let huge_pages = reserve_heap_in_huge_pages(HUGE_PAGE_HEAP);
    Configured {
        retained,
        huge_pages,
    }
}

/// glibc's own ceiling for its dynamic mmap threshold on 64-bit targets
/// (`DEFAULT_MMAP_THRESHOLD_MAX`): blocks below it come from the heap and are reused; larger
/// ones, far beyond any buffer of a 6 MB invocation, are still mapped and unmapped.
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// Free memory at the top of the heap beyond which glibc would give it back: high enough that
/// it never does in a process of this size.
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// Tells the allocator to keep freed memory for reuse (see the module). Returns whether it
/// took both settings; on targets other than Linux with glibc it does nothing and returns
/// `false`.
///
/// Call it before other threads start: glibc reads these settings without a lock.
pub fn retain_freed_memory() -> bool {
    imp::retain_freed_memory()
}

/// How much of the heap the binaries ask [`reserve_heap_in_huge_pages`] for: more than `invoke`
/// touches on the typical event (~20 MB), below [`MMAP_THRESHOLD`] so that it is the heap's.
pub const HUGE_PAGE_HEAP: usize = 24 << 20;

/// Asks the kernel to back the next `bytes` of the heap (in whole 2 MiB pages) with transparent
/// huge pages, where the kernel grants them on request (`madvise` mode, the usual default).
/// Returns whether the kernel took the advice; on targets other than Linux with glibc it does
/// nothing and returns `false`. Memory is still taken only as it is touched, a huge page at a
/// time.
///
/// Call it after [`retain_freed_memory`], which keeps the advised block in the heap when it is
/// freed here, and before other threads start, on the thread whose heap it is.
pub fn reserve_heap_in_huge_pages(bytes: usize) -> bool {
    imp::reserve_heap_in_huge_pages(bytes)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::{MMAP_THRESHOLD, TRIM_THRESHOLD};

    /// The transparent huge page of x86_64 and of aarch64 with 4 KiB pages (Lambda's).
    const HUGE_PAGE: usize = 2 << 20;

    pub fn reserve_heap_in_huge_pages(bytes: usize) -> bool {
        if bytes >= MMAP_THRESHOLD {
            return false;
        }
        // A block from the top of the heap, never touched: advised, then freed back to the top,
        // from which the next allocations are carved.
        // SAFETY: malloc returns a block of `bytes` or null; the block is neither read nor
        // written, only advised and freed once.
        #[allow(unsafe_code)]
        let block = unsafe { libc::malloc(bytes) }.cast::<u8>();
        if block.is_null() {
            return false;
        }
        let start = block.addr().next_multiple_of(HUGE_PAGE) - block.addr();
        let end = (block.addr() + bytes) / HUGE_PAGE * HUGE_PAGE - block.addr();
        let advised = end > start && {
            // SAFETY: [start, end) lies within the block, and whole pages: madvise only
            // changes how the kernel backs them, not their contents.
            #[allow(unsafe_code)]
            let result = unsafe {
                libc::madvise(
                    block.wrapping_add(start).cast(),
                    end - start,
                    libc::MADV_HUGEPAGE,
                )
            };
            result == 0
        };
        // SAFETY: the block came from malloc above and is freed once.
        #[allow(unsafe_code)]
        unsafe {
            libc::free(block.cast())
        };
        advised
    }

    pub fn retain_freed_memory() -> bool {
        let mmap = set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        let trim = set(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        mmap && trim
    }

    fn set(parameter: libc::c_int, bytes: usize) -> bool {
        let Ok(value) = libc::c_int::try_from(bytes) else {
            return false;
        };
        // SAFETY: mallopt only records a tuning parameter under the main arena's lock; it
        // touches no memory of ours, and refuses a value it does not accept by returning 0.
        #[allow(unsafe_code)]
        let accepted = unsafe { libc::mallopt(parameter, value) };
        accepted == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn retain_freed_memory() -> bool {
        false
    }

    pub fn reserve_heap_in_huge_pages(_bytes: usize) -> bool {
        false
    }
}
