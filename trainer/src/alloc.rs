//! Allocator settings for processes that train or run the CNN.
//!
//! burn's CPU backend allocates every activation and gradient afresh, each batch: megabytes
//! at a time (a 64 x 16 x 64 x 64 f32 activation is 16 MB). glibc's malloc serves blocks
//! that large with `mmap` and gives them back with `munmap` when freed (and trims the heap's
//! free top back to the OS), so the next batch faults every page in again and the kernel
//! zeroes it: measured on the `bench_train` workload, 1.2-1.5 million page faults and 4-5 s
//! of system time against 13 s of user time. [`tune_allocator`] keeps such blocks in the
//! heap (the mmap threshold at its largest, 32 MiB; no trimming; a 64 MiB top pad): about
//! 450 thousand faults and 1.3 s of system time on the same run.
//!
//! The cost: the process keeps the memory of its largest batch once freed (a training
//! worker's next batch and next trial reuse it); the server, which mostly does other work,
//! does not call it.
//!
//! Only glibc's malloc is tuned; elsewhere (musl, other systems) this does nothing.

/// The largest mmap threshold glibc accepts on 64-bit systems (`DEFAULT_MMAP_THRESHOLD_MAX`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 * 1024 * 1024;

/// Tunes the process's allocator for training (see the module docs). Call it early in
/// `main`, before other threads start. Returns whether every setting was taken.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let settings = [
            (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (libc::M_TRIM_THRESHOLD, libc::c_int::MAX),
            (libc::M_TOP_PAD, 64 * 1024 * 1024),
        ];
        settings.iter().all(|&(param, value)| {
            // SAFETY: mallopt only changes malloc's tunables (it takes malloc's own lock);
            // the values are in the ranges glibc documents for these parameters.
            #[allow(unsafe_code)]
            let ok = unsafe { libc::mallopt(param, value) };
            ok == 1
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_every_setting() {
        assert!(super::tune_allocator());
        // Large blocks still allocate and free.
        let v = vec![1u8; 48 * 1024 * 1024];
        assert_eq!(
            v.iter().map(|&b| usize::from(b)).sum::<usize>(),
            48 * 1024 * 1024
        );
    }
}
