//! Process-wide allocator tuning for binaries (a library never calls this itself).
//!
//! glibc raises its mmap threshold each time a large buffer is freed, after which buffers of
//! that size come from the heap and stay cached when freed. A node agent that loads an index
//! or fills packs would then keep tens of MB it no longer uses: measured 53 resident bytes per
//! indexed blob against 46 actually held (`cargo run --release -p cairn-benches --bin
//! index-memory`). A fixed 1 MiB threshold sends every large buffer to its own mapping, which
//! returns to the OS when freed.

/// Call once at program start. A no-op except on Linux with glibc.
pub fn return_large_frees_to_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads
    // allocate and takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
