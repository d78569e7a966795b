//! Handing a policy load's transient memory back to the system.
//!
//! Loading a policy allocates several times what the compiled snapshot keeps: the policy
//! texts, every statement's AST, the diagnostics' sources, the tree builders. Freed, that
//! memory stays with mimalloc: it purges free pages only after a delay and only when the
//! allocator is called again, so an idle gateway that has just loaded 100k routes kept its
//! peak (530 MB) as resident memory, twice what it uses. Once a load or reload is done, the
//! gateway asks mimalloc to purge now.
//!
//! mimalloc keeps a heap per thread, and a block freed by another thread goes back to the heap
//! that allocated it, which takes it back only when its own thread allocates or collects. A
//! snapshot is freed wherever its last reader lets go of it, so a snapshot loaded on one
//! thread and replaced from another was never given back (a 100k-route set replaced by a
//! 1k-route one stayed at 243 MB). So every load runs on one thread ([`on_loader`]), which
//! collects its own heap after each load and again once it has been idle for a second (by
//! then the last request holding the replaced snapshot has ended).
//!
//! mimalloc is also built without transparent huge pages (libmimalloc-sys's `no_thp`, in
//! Cargo.toml): it asks for them on its 1 GiB arena, and every 2 MiB region it touched then
//! became wholly resident — 12 MiB of a gateway serving the example policies' 27.
//!
//! Hand-written because it is one call: the `mimalloc` crate exposes no collect.

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// `f` run on the policy loader thread (started on first use), its result handed back.
pub fn on_loader<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> LoaderResult<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    let sent = loader()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(job)
        .is_ok();
    LoaderResult(sent.then_some(rx))
}

/// What a job on the loader thread returns, once it has run.
pub struct LoaderResult<T>(Option<mpsc::Receiver<T>>);

impl<T> LoaderResult<T> {
    /// Wait for the job (blocking: call it off the async workers). `None` if the loader thread
    /// is gone (a job panicked).
    pub fn wait(self) -> Option<T> {
        self.0?.recv().ok()
    }
}

fn loader() -> &'static Mutex<mpsc::Sender<Job>> {
    static LOADER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    LOADER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("rulegate-policy".into())
            .spawn(move || run_loader(rx))
            .expect("start the policy loader thread");
        Mutex::new(tx)
    })
}

fn run_loader(jobs: mpsc::Receiver<Job>) {
    let mut freed_since_collect = false;
    loop {
        let next = if freed_since_collect {
            jobs.recv_timeout(Duration::from_secs(1))
        } else {
            jobs.recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        };
        match next {
            Ok(job) => {
                job();
                release_freed();
                freed_since_collect = true;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                release_freed();
                freed_since_collect = false;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Return the memory freed since the last purge to the system (mimalloc's `mi_collect`).
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time;
    // with mimalloc not the global allocator (the library's tests) it purges an empty heap.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
