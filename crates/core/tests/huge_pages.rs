//! `allocator::reserve_heap_in_huge_pages`, in a process of its own and on its main thread
//! (`harness = false`): it advises the main thread's heap, where the binaries' handlers
//! allocate, and the test harness would run it on a thread with an arena of its own.

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let outcome = linux::the_next_megabytes_of_the_heap_are_advised_into_huge_pages();
        println!("test the_next_megabytes_of_the_heap_are_advised_into_huge_pages ... {outcome}");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod linux {
    use eks_audit_core::allocator::{
        HUGE_PAGE_HEAP, reserve_heap_in_huge_pages, retain_freed_memory,
    };

    /// `ok`, or why nothing could be checked.
    pub fn the_next_megabytes_of_the_heap_are_advised_into_huge_pages() -> &'static str {
        assert!(retain_freed_memory(), "glibc refused a setting");
        // madvise(MADV_HUGEPAGE) is refused only by a kernel built without huge pages, which
        // has no such directory.
        let kernel_has_them = std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists();
        assert_eq!(reserve_heap_in_huge_pages(HUGE_PAGE_HEAP), kernel_has_them);
        if !kernel_has_them {
            return "skipped: this kernel has no transparent huge pages";
        }
        if !advice_is_applied() {
            // qemu-user (the aarch64 tests run under it) accepts madvise and passes it on to
            // nobody: there is nothing to see in the mappings.
            return "skipped: madvise(MADV_HUGEPAGE) is accepted here but not applied";
        }
        // Carved from the advised top of the heap, as the handler's buffers are after the call.
        let block = std::hint::black_box(vec![1u8; 16 << 20]);
        let flags = vm_flags_at(middle_of(&block));
        assert!(
            flags.contains(&"hg".to_owned()),
            "the heap under the block is not advised into huge pages: VmFlags {flags:?}"
        );
        "ok"
    }

    /// Whether MADV_HUGEPAGE shows in the mappings at all: tried on a mapping of our own.
    fn advice_is_applied() -> bool {
        let len = 4 << 20;
        // SAFETY: maps fresh anonymous memory, advises it and unmaps it; nothing else holds it,
        // and it is neither read nor written.
        #[allow(unsafe_code)]
        unsafe {
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            let prot = libc::PROT_READ | libc::PROT_WRITE;
            let mapping = libc::mmap(std::ptr::null_mut(), len, prot, flags, -1, 0);
            if mapping == libc::MAP_FAILED {
                return false;
            }
            let applied = libc::madvise(mapping, len, libc::MADV_HUGEPAGE) == 0
                && vm_flags_at(mapping.addr()).contains(&"hg".to_owned());
            libc::munmap(mapping, len);
            applied
        }
    }

    /// The `VmFlags` of the mapping that holds `address`, from `/proc/self/smaps`.
    fn vm_flags_at(address: usize) -> Vec<String> {
        let smaps =
            std::fs::read_to_string("/proc/self/smaps").expect("Linux has /proc/self/smaps");
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_once(' ').map(|(range, _)| range);
            if let Some((from, to)) = range.and_then(|range| range.split_once('-'))
                && let (Ok(from), Ok(to)) = (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                )
            {
                inside = (from..to).contains(&address);
            } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.split_whitespace().map(str::to_owned).collect();
            }
        }
        panic!("no mapping holds {address:#x}");
    }

    /// An address in the middle of a heap block: past its first 2 MiB, which the advice may
    /// not cover.
    fn middle_of(block: &[u8]) -> usize {
        block.as_ptr().addr() + block.len() / 2
    }
}
