//! The process's allocator, mimalloc, and [`return_freed_pages`].
//!
//! mimalloc, not glibc malloc: renders run on many blocking threads, each with a glibc arena
//! that kept the freed pages of large decodes (the hostile suite peaked at 520 MiB on glibc).
//! mimalloc gives freed pages back too, but lazily: a thread purges its free pages on its own
//! later allocations, after a delay. A render thread that goes idle after a 120 MiB decode keeps
//! those pages resident, outside the memory budget, while the next render on another thread
//! reserves the same bytes again: resident memory was the budget plus every idle thread's last
//! job (548 MiB in CI's hostile suite against a 512 MiB bound). The render pool calls
//! [`return_freed_pages`] at the end of each job, before it gives the job's reservation back,
//! so what the budget lends out is what is resident.
#![allow(unsafe_code)]

pub use mimalloc::MiMalloc;

/// Returns the pages this thread has freed, and the process's freed large blocks, to the OS now
/// (mimalloc's `mi_collect(force = true)`). Costs well under a millisecond: call it after work
/// that allocated megabytes, not per request.
pub fn return_freed_pages() {
    // SAFETY: mi_collect takes no pointers and has no preconditions; it may be called from any
    // thread at any time (mimalloc documents it for exactly this use).
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static ALLOCATOR: MiMalloc = MiMalloc;

    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn pages_freed_by_a_job_leave_the_process_when_it_ends() {
        // As a render does: a large buffer written on a worker thread, freed there, and the
        // thread then idle (it allocates nothing more that would purge it).
        let (freed, done) = std::sync::mpsc::channel::<()>();
        let (measured, wait) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let block = vec![7u8; 96 << 20];
            std::hint::black_box(&block);
            drop(block);
            freed.send(()).unwrap();
            wait.recv().unwrap();
            return_freed_pages();
        });
        done.recv().unwrap();
        let before = resident_kib();
        measured.send(()).unwrap();
        worker.join().unwrap();
        let after = resident_kib();
        assert!(
            before >= after + (64 << 10),
            "resident {before} KiB after the free, {after} KiB after return_freed_pages"
        );
    }
}
