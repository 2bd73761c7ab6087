//! Keeping freed memory in the process, so training steps stop paying for page faults.
//!
//! A HardNet step allocates activation and im2col buffers of tens of megabytes, frees them, and
//! allocates the same sizes again on the next step. glibc serves every block above 32 MiB (its
//! largest mmap threshold) with a fresh `mmap` and returns it with `munmap` on free, so each step
//! touches hundreds of megabytes of new pages that the kernel must fault in and zero: measured on
//! the development machine, that was ~40% of a HardNet train step's time (1 thread, 128 pairs:
//! 6.4 s with the default settings, 3.9 s after [`keep_freed_memory`]).

/// Makes the C allocator serve large blocks from its heap and keep freed memory for reuse instead
/// of unmapping it. Process-wide, so binaries call it once at start-up (the `desdis` command and
/// the project's tasks do); a library user may call it too. Returns whether the settings took
/// effect (only on Linux with glibc; elsewhere it does nothing and returns `false`).
pub fn keep_freed_memory() -> bool {
    imp::keep_freed_memory()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::os::raw::c_int;

    // Parameter numbers from glibc's <malloc.h>.
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_TOP_PAD: c_int = -2;
    const M_MMAP_MAX: c_int = -4;

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }

    pub fn keep_freed_memory() -> bool {
        // SAFETY: mallopt only changes allocator tuning parameters; it is safe to call at any
        // time, and these values are within the documented ranges.
        unsafe {
            // No mmap'd blocks: every block comes from the heap, where freed memory is reused.
            let no_mmap = mallopt(M_MMAP_MAX, 0) == 1;
            // Never give the top of the heap back to the kernel on free ...
            let no_trim = mallopt(M_TRIM_THRESHOLD, c_int::MAX) == 1;
            // ... and grow it in large steps, so growing costs few system calls.
            let pad = mallopt(M_TOP_PAD, 64 << 20) == 1;
            no_mmap && no_trim && pad
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn keep_freed_memory() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn settings_take_effect_and_large_blocks_still_work() {
        assert!(super::keep_freed_memory());
        let big = vec![1u8; 100 << 20];
        assert_eq!(big.iter().map(|&b| b as usize).sum::<usize>(), 100 << 20);
    }
}
