//! Rate limits and quotas: what one request counts ([`Count`]), what a store answers
//! ([`Tally`]), and the stores that keep the counters.
//!
//! `decide` builds every count of a request at once (the route's rates, then the app's and its
//! plans' rates, then their quotas) and hands them to the [`Limiter`] of
//! its [`Env`](crate::decide::Env). A store counts a batch **all or nothing**: when one limit
//! refuses, none of the batch's counters moves, so a refused request costs the client nothing.
//!
//! Three stores implement [`Store`]:
//! * [`memory::MemoryStore`]: process memory; the default for rates, and what `explain` and
//!   `rulegate test` count in. Idle keys are evicted.
//! * [`file::FileStore`]: an embedded redb file under `serve --state DIR`; the default for
//!   quotas, so a restart (even `kill -9`) loses no count.
//! * [`redis::RedisStore`]: `serve --redis URL`, for several gateways sharing counters: one
//!   Lua script per decision, a short timeout; one node or a Redis Cluster, where each
//!   request's keys share a slot through their [`Count::group`] hash tag.
//!
//! The first two answer at once, inside `decide`. Redis cannot (decide is synchronous and the
//! server may run on a single-threaded runtime): its [`Store::count`] returns a future, `decide`
//! stops with `Outcome::NeedCounts`, the server awaits the future and decides again with the
//! answer (see `docs/design-notes.md`, "Limits and stores").

pub mod calendar;
pub mod file;
pub mod gcra;
pub mod live;
pub mod memory;
pub mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// Counting for rate limits and quotas, and the signers' nonce cache: what `decide` asks of
/// its [`Env`](crate::decide::Env). Declared here, beside the stores that implement it, so
/// that the counters do not depend on the pipeline that calls them.
pub trait Limiter {
    /// Count one request against every limit in `counts`, all or nothing (see
    /// [`crate::limits`]). `None` when the counters are remote and cannot be read without
    /// waiting: `decide` then stops with [`Outcome::NeedCounts`](crate::decide::Outcome::NeedCounts),
    /// and the caller fetches the tallies and decides again.
    fn count(&self, counts: &[Count], now_ms: i64) -> Option<Tallies>;
    /// Record `key` (a signer's nonce) for `ttl_ms`; false when it was already recorded and has
    /// not expired — a replay. `None` when nonces are kept in a remote store and this one has
    /// not been asked yet: `decide` stops with [`Outcome::NeedCounts`](crate::decide::Outcome::NeedCounts)
    /// as for counts, and the answer is at hand the next time.
    /// `group` is the counter group of the request's service (see [`Count::group`]).
    fn first_use(&self, group: &str, key: &str, ttl_ms: u64, now_ms: i64) -> Option<bool>;
}

/// One counter that one request moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// Namespaced: `rate|<rule id>|<value>` or `quota|<service>/<owner>|<app key>`. The rule id
    /// and owner make two rules never share a counter; the value is what the rule counts per
    /// (client IP, app key, header value, or empty for the route as a whole).
    pub key: String,
    pub limit: Limit,
    /// `on store error allow`: when the store cannot answer, pass uncounted.
    pub fail_open: bool,
    /// The counter group: every count of one batch (and the batch's nonce) has the same
    /// group, and no counter is ever counted under two groups. The compiler groups services
    /// that share a counter (`compile::groups`); Redis Cluster makes the group each key's hash
    /// tag, so one request's batch lands in one slot.
    pub group: std::sync::Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// GCRA: `limit` requests per `period_ms`, `burst` more at once.
    Rate {
        limit: u64,
        period_ms: u64,
        burst: u64,
    },
    /// At most `limit` requests in the calendar window `[start_ms, end_ms)`.
    Quota {
        limit: u64,
        start_ms: i64,
        end_ms: i64,
    },
}

/// A store's answer for one count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub allowed: bool,
    /// Requests the limit still admits after this one (when it was counted).
    pub remaining: u64,
    /// When refused by a rate: how long until one request would pass.
    pub retry_after_ms: u64,
}

/// The store could not count (unreachable, timed out, I/O error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The answer for a batch: one tally per count, in order.
pub type Tallies = Result<Vec<Tally>, StoreError>;

/// A store's answer to [`Store::count`]: now, or once the returned future resolves.
pub enum Counted {
    Now(Tallies),
    Later(Pin<Box<dyn Future<Output = Tallies> + Send + 'static>>),
}

/// Where counters live.
pub trait Store: Send + Sync {
    /// Count one request against every limit in `counts`, all or nothing: when a limit
    /// refuses, no counter moves, and each allowed tally reports what remains without this
    /// request. `now_ms` is the caller's clock (a remote store may use its own).
    fn count(&self, counts: &[Count], now_ms: i64) -> Counted;
}

/// A counter's stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    /// A rate's theoretical arrival time (µs).
    Tat(i64),
    /// A quota's window (by its end, ms) and the requests counted in it.
    Used { end_ms: i64, used: u64 },
}

/// One count against its stored value (`None`: never counted, or evicted): its tally, and
/// the value to store if the whole batch passes. The local stores' shared arithmetic.
pub(crate) fn step(count: &Count, held: Option<Value>, now_ms: i64) -> (Tally, Value) {
    match count.limit {
        Limit::Rate {
            limit,
            period_ms,
            burst,
        } => {
            let tat = match held {
                Some(Value::Tat(t)) => Some(t),
                _ => None,
            };
            let s = gcra::Gcra::new(limit, period_ms, burst).step(tat, now_ms.saturating_mul(1000));
            let tally = Tally {
                allowed: s.allowed,
                remaining: s.remaining,
                retry_after_ms: (s.retry_after_us as u64).div_ceil(1000),
            };
            (tally, Value::Tat(s.new_tat_us))
        }
        Limit::Quota { limit, end_ms, .. } => {
            let used = match held {
                Some(Value::Used { end_ms: e, used }) if e == end_ms => used,
                _ => 0,
            };
            let allowed = used < limit;
            let tally = Tally {
                allowed,
                remaining: if allowed { limit - used - 1 } else { 0 },
                retry_after_ms: 0,
            };
            (
                tally,
                Value::Used {
                    end_ms,
                    used: used + 1,
                },
            )
        }
    }
}

/// Tallies of a batch that one limit refused: nothing was counted, so each limit that would
/// have passed still has this request's unit left.
pub(crate) fn uncounted(mut tallies: Vec<Tally>) -> Vec<Tally> {
    if tallies.iter().any(|t| !t.allowed) {
        for t in tallies.iter_mut().filter(|t| t.allowed) {
            t.remaining += 1;
        }
    }
    tallies
}
