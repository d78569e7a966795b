//! What `decide` needs from the world: the time, a request id, and counters. Behind a trait so
//! `explain` and `test` run on a virtual clock with in-memory counters, and the server on the
//! real clock with whichever store the operator chose.

use crate::limits::memory::MemoryStore;
use crate::limits::{Count, Tallies};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub trait Env {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A fresh request id: 32 lower-case hex characters.
    fn request_id(&self) -> String;
    fn limiter(&self) -> &dyn Limiter;
    /// Whether `decide` records its steps in `Decision::trace`. `explain` and `test` show
    /// them; `serve` answers without, since formatting each step's detail costs more than
    /// deciding.
    fn keeps_trace(&self) -> bool {
        true
    }
}

/// Counting for rate limits and quotas, and the signers' nonce cache.
pub trait Limiter {
    /// Count one request against every limit in `counts`, all or nothing (see
    /// [`crate::limits`]). `None` when the counters are remote and cannot be read without
    /// waiting: `decide` then stops with [`Outcome::NeedCounts`](super::Outcome::NeedCounts),
    /// and the caller fetches the tallies and decides again.
    fn count(&self, counts: &[Count], now_ms: i64) -> Option<Tallies>;
    /// Record `key` (a signer's nonce) for `ttl_ms`; false when it was already recorded and has
    /// not expired — a replay.
    fn first_use(&self, key: &str, ttl_ms: u64, now_ms: i64) -> bool;
}

/// The in-memory store under its older name: what `explain` and `rulegate test` count in.
pub type MemoryLimiter = MemoryStore;

/// A deterministic world: a clock that moves only when told, sequential request ids, and
/// in-memory counters. `explain` and policy tests run on it.
pub struct VirtualEnv {
    now_ms: AtomicI64,
    next_id: AtomicU64,
    limiter: MemoryStore,
}

impl VirtualEnv {
    pub fn new(now_ms: i64) -> Self {
        VirtualEnv {
            now_ms: AtomicI64::new(now_ms),
            next_id: AtomicU64::new(1),
            limiter: MemoryStore::new(),
        }
    }

    pub fn set_now_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Env for VirtualEnv {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn request_id(&self) -> String {
        format!("{:032x}", self.next_id.fetch_add(1, Ordering::SeqCst))
    }

    fn limiter(&self) -> &dyn Limiter {
        &self.limiter
    }
}
