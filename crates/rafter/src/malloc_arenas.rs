//! Caps glibc's malloc arenas for a member process. glibc gives each new
//! thread its own arena (up to 8 per core), and the store's page cache is
//! filled by whichever thread reads a page: Tokio's blocking pool, the
//! apply thread, the gRPC workers. A page evicted from the cache is freed
//! into the arena that allocated it, where it stays in the process's
//! resident memory while another thread's arena grows for the next page.
//! Measured on a member holding a million keys: one `Maintenance.Status`
//! (which reads every page of the store once) raised its RSS from 94 to
//! 158 MiB with the default arenas, and not at all with two
//! (benchmarks/NOTES.md, change 4). Set before any thread starts; other
//! allocators and C libraries are left alone.

/// Arenas a member's threads share.
const MAX_ARENAS: i32 = 2;

/// Caps the arenas (glibc only).
pub fn limit() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's parameters; it is
        // called before the process starts any other thread.
        let accepted = unsafe { libc::mallopt(libc::M_ARENA_MAX, MAX_ARENAS) };
        if accepted != 1 {
            eprintln!("rafter: glibc refused M_ARENA_MAX={MAX_ARENAS}; memory may fragment");
        }
    }
}
