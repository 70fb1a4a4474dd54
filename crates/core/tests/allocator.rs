//! `allocator::retain_freed_memory`, in a process of its own: its settings are process-wide,
//! and glibc's statistics count every thread's blocks.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use eks_audit_core::allocator::{MMAP_THRESHOLD, retain_freed_memory};

/// glibc's statistics: blocks mapped on their own, and bytes held by the arenas' heaps.
fn mapped_blocks_and_heap_bytes() -> (usize, usize) {
    // SAFETY: mallinfo2 only reads the allocator's counters, under its own locks.
    #[allow(unsafe_code)]
    let info = unsafe { libc::mallinfo2() };
    (info.hblks, info.arena)
}

/// A block written through, as the handler's buffers are, so its pages are really used.
fn filled(bytes: usize) -> Vec<u8> {
    std::hint::black_box(vec![1u8; bytes])
}

#[test]
fn freed_blocks_stay_with_the_process_for_the_next_invocation() {
    // glibc by default maps a block of a few MB on its own, and unmaps it when it is freed: the
    // next one is faulted in from the kernel again, page by page.
    let (mapped_before, _) = mapped_blocks_and_heap_bytes();
    let block = filled(8 << 20);
    assert_eq!(mapped_blocks_and_heap_bytes().0, mapped_before + 1);
    drop(block);
    assert_eq!(mapped_blocks_and_heap_bytes().0, mapped_before);

    assert!(retain_freed_memory(), "glibc refused a setting");

    // 24 MiB: above the thresholds glibc would have raised itself to after that free (8 MiB to
    // map, 16 MiB to trim), below ours.
    let bytes = 24 << 20;
    assert!(bytes < MMAP_THRESHOLD);
    let block = filled(bytes);
    let (mapped, heap_in_use) = mapped_blocks_and_heap_bytes();
    assert_eq!(mapped, mapped_before, "the block was mapped on its own");
    assert!(heap_in_use >= bytes, "the heap holds {heap_in_use} bytes");
    drop(block);
    let (mapped, heap_after_free) = mapped_blocks_and_heap_bytes();
    assert_eq!(mapped, mapped_before);
    assert!(
        heap_after_free >= bytes,
        "the heap gave the freed block back: {heap_after_free} bytes left"
    );

    // And the next block of that size reuses it rather than growing the heap.
    let block = filled(bytes);
    assert_eq!(
        mapped_blocks_and_heap_bytes(),
        (mapped_before, heap_after_free)
    );
    drop(block);
}
