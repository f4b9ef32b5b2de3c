//! The `virl` binary: the command line now; the studio joins it later.

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    virl_studio::cli::main()
}

/// candle allocates and frees tensors of many megabytes in every step.
/// glibc's malloc serves each block above 128 KiB with its own mmap and
/// unmaps it on free, so a training iteration spent about as much time in
/// page faults (sys) as in arithmetic (user). Raising the mmap threshold to
/// glibc's maximum (32 MiB) and never trimming the heap keeps those pages
/// for reuse: 3.55 → 2.87 s per imitation iteration on the 2-core VM
/// (BENCHMARKS.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator tunables; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
