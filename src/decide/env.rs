//! What `decide` needs from the world: the time, a request id, and counters. Behind a trait so
//! `explain` and `test` run on a virtual clock with in-memory counters, and the server on the
//! real clock with whichever store the operator chose.

use crate::auth::authorizer::{Answer, Call, Failure};
use crate::compile::Provider;
use crate::limits::memory::MemoryStore;
// Declared by the counters it abstracts over; named here too, as `Env` hands one out.
pub use crate::limits::Limiter;
pub use crate::upstream::state::Upstreams;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// `Sync`: the server holds its per-request world across the awaits of the request's effects
/// (see [`super::Drive`]), on whichever thread the runtime resumes it.
pub trait Env: Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A fresh request id: 32 lower-case hex characters.
    fn request_id(&self) -> super::RequestId;
    fn limiter(&self) -> &dyn Limiter;
    /// The backends' targets: health, balancing, breakers (see [`crate::upstream::state`]).
    fn upstreams(&self) -> &Upstreams;
    /// Whether `decide` records its steps in `Decision::trace`. `explain` and `test` show
    /// them; `serve` answers without, since formatting each step's detail costs more than
    /// deciding.
    fn keeps_trace(&self) -> bool {
        true
    }
    /// An external authorizer's answer to `call`, if one is at hand without waiting (see
    /// [`crate::auth::authorizer`]). `None`: `decide` stops with
    /// [`Outcome::NeedAuthorization`](super::Outcome::NeedAuthorization) and the caller makes
    /// the call. The default, for worlds that never call out, is a failure that says so.
    fn authorizer_answer(&self, provider: &Provider, call: &Call) -> Option<Answer> {
        let _ = call;
        Some(not_called(provider))
    }
}

/// The answer offline worlds give for an authorizer nobody stubbed: it answers as an
/// unreachable authorizer would (APIG.0616), and the trace says why.
pub fn not_called(provider: &Provider) -> Answer {
    Answer::Failed {
        failure: Failure::Unreachable,
        detail: format!(
            "not called: explain and test never call {} (stub its answer with `authorizer {} allow|deny|forbidden|…` in a .tests file)",
            crate::auth::authorizer::url(provider).unwrap_or("the authorizer"),
            provider.name
        ),
    }
}

/// The in-memory store under its older name: what `explain` and `rulegate test` count in.
pub type MemoryLimiter = MemoryStore;

/// A deterministic world: a clock that moves only when told, sequential request ids, and
/// in-memory counters. `explain` and policy tests run on it.
pub struct VirtualEnv {
    now_ms: AtomicI64,
    next_id: AtomicU64,
    limiter: MemoryStore,
    upstreams: Upstreams,
    /// Authorizer answers declared by a test, by provider name.
    authorizers: Mutex<HashMap<String, Answer>>,
}

impl VirtualEnv {
    pub fn new(now_ms: i64) -> Self {
        VirtualEnv {
            now_ms: AtomicI64::new(now_ms),
            next_id: AtomicU64::new(1),
            limiter: MemoryStore::new(),
            upstreams: Upstreams::new(),
            authorizers: Mutex::new(HashMap::new()),
        }
    }

    /// Have provider `name`'s authorizer answer `answer` (every call, whatever the identity
    /// values), or with `None` forget a stub so it is not called again.
    pub fn stub_authorizer(&self, name: &str, answer: Option<Answer>) {
        let mut stubs = self.authorizers.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Some(a) => stubs.insert(name.to_string(), a),
            None => stubs.remove(name),
        };
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

    fn request_id(&self) -> super::RequestId {
        super::RequestId::from_u128(self.next_id.fetch_add(1, Ordering::SeqCst).into())
    }

    fn limiter(&self) -> &dyn Limiter {
        &self.limiter
    }

    fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    fn authorizer_answer(&self, provider: &Provider, _call: &Call) -> Option<Answer> {
        let stubs = self.authorizers.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            stubs
                .get(&provider.name)
                .cloned()
                .unwrap_or_else(|| not_called(provider)),
        )
    }
}
