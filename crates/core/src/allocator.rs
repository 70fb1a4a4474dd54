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
//! objects over the mmap threshold are still given back when freed. The binaries call it first
//! thing, and the benches too, so that they measure what ships.

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

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::{MMAP_THRESHOLD, TRIM_THRESHOLD};

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
}
