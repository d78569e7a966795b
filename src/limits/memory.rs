//! Counters in process memory: GCRA TATs and quota windows under one lock, plus the signers'
//! nonce cache. The default store for rates; `explain` and `rulegate test` count here too.

use super::{step, uncounted, Count, Counted, Limit, Store, Tallies, Tally, Value};
use std::collections::HashMap;
use std::sync::Mutex;

/// Maps are swept of idle entries when they reach this size and each time it doubles, so a
/// sweep costs O(1) amortised and the maps stay bounded by the keys active within a period.
const SWEEP_FROM: usize = 4096;

/// How far behind the latest counted time a monotonic store still takes a reading for a
/// request that reached the lock late (see [`MemoryStore::monotonic`]).
const MAX_REORDER_MS: i64 = 1000;

#[derive(Default)]
pub struct MemoryStore {
    counters: Mutex<Counters>,
    /// Count a request no earlier than the latest counted before it (see
    /// [`MemoryStore::monotonic`]).
    monotonic: bool,
    /// nonce → expiry (ms)
    nonces: Mutex<HashMap<String, i64>>,
}

#[derive(Default)]
struct Counters {
    /// rate key → TAT (µs). A TAT at or before now is the same as no entry: idle.
    tat: HashMap<String, i64>,
    /// quota key → (window end ms, used)
    quota: HashMap<String, (i64, u64)>,
    next_sweep: usize,
    /// The latest time a batch was counted at (ms), for a monotonic store.
    latest_ms: i64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store for a live clock: a batch is counted at no earlier a time than the one counted
    /// before it. `serve` reads the clock before it takes the store's lock, so on a
    /// multi-thread runtime two requests reach the lock in either order. Counted as read, a
    /// request read a millisecond before the one counted ahead of it meets a TAT later than
    /// its own time by that millisecond: a rate faster than one a millisecond refused it
    /// though the rate held (`gcra.rs`: its tolerance is under a millisecond; about one
    /// request in 30,000 at 50k req/s on two threads). `explain` and `rulegate test` count on
    /// the times their requests give. A reading more than [`MAX_REORDER_MS`] behind is a
    /// clock stepped back, not a late thread: it is taken as it is, as a store that is not
    /// monotonic would (held to the latest instead, every key, new ones too, would count at
    /// one instant until the clock caught up).
    pub fn monotonic() -> Self {
        MemoryStore {
            monotonic: true,
            ..Self::default()
        }
    }

    /// Record `key` (a signer's nonce) for `ttl_ms`; false when it was already recorded and
    /// has not expired — a replay.
    pub fn first_use(&self, key: &str, ttl_ms: u64, now_ms: i64) -> bool {
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        // Expired entries go when the map doubles, so it stays bounded by the TTL's traffic.
        if nonces.len() >= SWEEP_FROM && nonces.len().is_power_of_two() {
            nonces.retain(|_, expiry| *expiry > now_ms);
        }
        match nonces.get(key) {
            Some(expiry) if *expiry > now_ms => false,
            _ => {
                nonces.insert(key.to_string(), now_ms + ttl_ms as i64);
                true
            }
        }
    }

    /// Keys held now (rates and quotas): what eviction keeps bounded.
    pub fn len(&self) -> usize {
        let c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        c.tat.len() + c.quota.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch, all or nothing (see [`Store::count`]).
    pub fn count_now(&self, counts: &[Count], now_ms: i64) -> Vec<Tally> {
        // nothing is counted elsewhere, so nothing can fail
        self.count_then(counts, now_ms, || Ok(Vec::new()))
            .unwrap_or_default()
    }

    /// The batch, then — only if all of it passes, and while its counters are held — `then`,
    /// which counts the request's other limits in another store. This batch is counted when
    /// `then` passes too (or fails to count: the request is likely to pass on its limits'
    /// `on store error`), so a request refused there spends nothing here. Returns this
    /// batch's tallies followed by `then`'s.
    pub fn count_then(
        &self,
        counts: &[Count],
        now_ms: i64,
        then: impl FnOnce() -> Tallies,
    ) -> Tallies {
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let now_ms = match self.monotonic {
            // within a second of the latest: the order threads reached the lock in; further
            // back, the clock itself was stepped, and the latest reading is forgotten (held to
            // it, every key would count at one instant until the clock caught up)
            true if now_ms < c.latest_ms && c.latest_ms - now_ms <= MAX_REORDER_MS => c.latest_ms,
            true => {
                c.latest_ms = now_ms;
                now_ms
            }
            false => now_ms,
        };
        c.sweep(now_ms.saturating_mul(1000), now_ms);
        match counts {
            [count] => c.count_one(count, now_ms, then),
            _ => c.count_all(counts, now_ms, then),
        }
    }
}

/// When every tally of a batch passed, `then`; whether to write the batch (it passed, and
/// so did `then`, or `then` failed to count), and the whole answer: this batch's tallies
/// followed by `then`'s.
fn settle(mut tallies: Vec<Tally>, then: impl FnOnce() -> Tallies) -> (bool, Tallies) {
    if tallies.iter().any(|t| !t.allowed) {
        return (false, Ok(uncounted(tallies)));
    }
    let more = then();
    let commit = match &more {
        Ok(more) => more.iter().all(|t| t.allowed),
        Err(_) => true,
    };
    if !commit {
        tallies.iter_mut().for_each(|t| t.remaining += 1);
    }
    let answer = more.map(|more| {
        tallies.extend(more);
        tallies
    });
    (commit, answer)
}

/// A counter's value as one of the maps holds it.
trait Stored: Copy {
    fn value(self) -> Value;
    /// `None`: a value of the other map's kind (never: a count's step keeps its kind).
    fn of(value: Value) -> Option<Self>;
}

impl Stored for i64 {
    fn value(self) -> Value {
        Value::Tat(self)
    }
    fn of(value: Value) -> Option<i64> {
        match value {
            Value::Tat(tat) => Some(tat),
            Value::Used { .. } => None,
        }
    }
}

impl Stored for (i64, u64) {
    fn value(self) -> Value {
        Value::Used {
            end_ms: self.0,
            used: self.1,
        }
    }
    fn of(value: Value) -> Option<(i64, u64)> {
        match value {
            Value::Used { end_ms, used } => Some((end_ms, used)),
            Value::Tat(_) => None,
        }
    }
}

/// A batch of one count against its counter in `map`: looked up once, then read and written
/// in place. (A batch of several reads every counter before it writes any, so each is looked
/// up twice; one lookup less is a SipHash less, about 290 instructions a limited request:
/// with the batch's bookkeeping, the gateway request's count went from 1,100 to 640.)
fn count_one_in<V: Stored>(
    map: &mut HashMap<String, V>,
    count: &Count,
    now_ms: i64,
    then: impl FnOnce() -> Tallies,
) -> Tallies {
    let held = map.get_mut(&count.key);
    let (tally, value) = step(count, held.as_deref().map(|v| v.value()), now_ms);
    let (commit, answer) = settle(vec![tally], then);
    if let (true, Some(value)) = (commit, V::of(value)) {
        match held {
            Some(held) => *held = value,
            None => {
                map.insert(count.key.clone(), value);
            }
        }
    }
    answer
}

/// Write `value` as `key`'s counter: a key already held is written in place, with no copy
/// of it to make and free.
fn put<V: Stored>(map: &mut HashMap<String, V>, key: &str, value: V) {
    match map.get_mut(key) {
        Some(held) => *held = value,
        None => {
            map.insert(key.to_string(), value);
        }
    }
}

impl Counters {
    /// A batch of one count (a route's rate, or an app's: most batches).
    fn count_one(&mut self, count: &Count, now_ms: i64, then: impl FnOnce() -> Tallies) -> Tallies {
        match count.limit {
            Limit::Rate { .. } => count_one_in(&mut self.tat, count, now_ms, then),
            Limit::Quota { .. } => count_one_in(&mut self.quota, count, now_ms, then),
        }
    }

    /// A batch of several counts: every counter read, then (when all pass) every one written.
    fn count_all(
        &mut self,
        counts: &[Count],
        now_ms: i64,
        then: impl FnOnce() -> Tallies,
    ) -> Tallies {
        let mut tallies = Vec::with_capacity(counts.len());
        let mut writes: smallvec::SmallVec<[Value; 4]> = smallvec::SmallVec::new();
        for count in counts {
            let held = match count.limit {
                Limit::Rate { .. } => self.tat.get(&count.key).map(|t| t.value()),
                Limit::Quota { .. } => self.quota.get(&count.key).map(|q| q.value()),
            };
            let (tally, value) = step(count, held, now_ms);
            tallies.push(tally);
            writes.push(value);
        }
        let (commit, answer) = settle(tallies, then);
        if commit {
            for (count, value) in counts.iter().zip(writes) {
                match value {
                    Value::Tat(tat) => put(&mut self.tat, &count.key, tat),
                    Value::Used { end_ms, used } => {
                        put(&mut self.quota, &count.key, (end_ms, used))
                    }
                }
            }
        }
        answer
    }

    /// Evict idle keys: a TAT in the past (a full bucket) and a quota whose window ended.
    fn sweep(&mut self, now_us: i64, now_ms: i64) {
        let len = self.tat.len() + self.quota.len();
        if len < SWEEP_FROM.max(self.next_sweep) {
            return;
        }
        self.tat.retain(|_, tat| *tat > now_us);
        self.quota.retain(|_, (end, _)| *end > now_ms);
        self.next_sweep = 2 * (self.tat.len() + self.quota.len());
    }
}

impl Store for MemoryStore {
    fn count(&self, counts: &[Count], now_ms: i64) -> Counted {
        Counted::Now(Ok(self.count_now(counts, now_ms)))
    }
}

impl super::Limiter for MemoryStore {
    fn count(&self, counts: &[Count], now_ms: i64) -> Option<Tallies> {
        Some(Ok(self.count_now(counts, now_ms)))
    }

    fn first_use(&self, _group: &str, key: &str, ttl_ms: u64, now_ms: i64) -> Option<bool> {
        Some(MemoryStore::first_use(self, key, ttl_ms, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(key: &str, limit: u64, burst: u64) -> Count {
        Count {
            key: key.into(),
            limit: Limit::Rate {
                limit,
                period_ms: 60_000,
                burst,
            },
            fail_open: true,
            group: "g".into(),
        }
    }

    fn quota(key: &str, limit: u64, start_ms: i64, end_ms: i64) -> Count {
        Count {
            key: key.into(),
            limit: Limit::Quota {
                limit,
                start_ms,
                end_ms,
            },
            fail_open: true,
            group: "g".into(),
        }
    }

    #[test]
    fn gcra_spaces_requests_and_reports_retry_after() {
        let m = MemoryStore::new();
        let r = [rate("k", 60, 0)]; // one per second
        assert!(m.count_now(&r, 0)[0].allowed);
        let refused = m.count_now(&r, 10)[0];
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 990);
        assert!(m.count_now(&r, 1000)[0].allowed);
    }

    /// A million a second admits up to a thousand requests in each millisecond (`gcra.rs`);
    /// a request read a millisecond before ten others but counted after them is within the
    /// rate, and a live store counts it so.
    #[test]
    fn a_live_store_counts_a_request_read_before_the_last_one_at_the_last_ones_time() {
        let r = [rate("k", 60_000_000, 0)]; // a million a second
        for (store, passes) in [
            (MemoryStore::monotonic(), true),
            (MemoryStore::new(), false),
        ] {
            for _ in 0..10 {
                assert!(store.count_now(&r, 1001)[0].allowed);
            }
            assert_eq!(store.count_now(&r, 1000)[0].allowed, passes);
        }
    }

    #[test]
    fn a_live_store_takes_a_clock_stepped_back_by_more_than_a_second_as_it_is() {
        let r = [rate("k", 600, 0)]; // ten a second
        let m = MemoryStore::monotonic();
        assert!(m.count_now(&[rate("other", 600, 0)], 60_000)[0].allowed);
        // the clock was a minute ahead and is corrected: a new key at its rate passes
        for i in 0..50 {
            assert!(m.count_now(&r, 1_000 + i * 100)[0].allowed, "request {i}");
        }
    }

    #[test]
    fn a_refused_batch_moves_no_counter() {
        let m = MemoryStore::new();
        let day = 86_400_000;
        let batch = [rate("r", 600, 100), quota("q", 1, 0, day)];
        let first = m.count_now(&batch, 0);
        assert!(first.iter().all(|t| t.allowed));
        assert_eq!(first[0].remaining, 100);
        let second = m.count_now(&batch, 0);
        assert!(second[0].allowed && !second[1].allowed);
        // the rate was not spent by the refused request
        assert_eq!(second[0].remaining, 100);
        assert_eq!(m.count_now(&batch[..1], 0)[0].remaining, 99);
    }

    #[test]
    fn a_refusal_in_the_other_store_spends_nothing_here() {
        let m = MemoryStore::new();
        let refused = Tally {
            allowed: false,
            remaining: 0,
            retry_after_ms: 0,
        };
        let r = [rate("r", 600, 100)];
        let t = m.count_then(&r, 0, || Ok(vec![refused])).unwrap();
        assert_eq!((t[0].allowed, t[0].remaining, t[1]), (true, 101, refused));
        assert_eq!(m.count_now(&r, 0)[0].remaining, 100);
    }

    proptest::proptest! {
        /// A batch of one, counted through its one lookup, answers and stores what the
        /// general path (read every counter, then write every one) does: rates and quotas,
        /// new keys and held ones, refusals, and every answer the other store may give.
        #[test]
        fn a_batch_of_one_counts_as_a_batch_of_several_does(
            steps in proptest::collection::vec((0..3usize, 0..2u8, 0..3u8, 0..1500i64), 1..40),
        ) {
            let (mut one, mut all) = (Counters::default(), Counters::default());
            let day = 86_400_000;
            for (key, kind, other, at) in steps {
                let key = format!("k{key}");
                let count = match kind {
                    0 => rate(&key, 600, 1),
                    _ => quota(&key, 3, 0, if at > 700 { 2 * day } else { day }),
                };
                let then = || match other {
                    0 => Ok(Vec::new()),
                    1 => Ok(vec![Tally { allowed: false, remaining: 0, retry_after_ms: 0 }]),
                    _ => Err(crate::limits::StoreError("down".into())),
                };
                let by_one = format!("{:?}", one.count_one(&count, at, then));
                let by_all = format!("{:?}", all.count_all(std::slice::from_ref(&count), at, then));
                proptest::prop_assert_eq!(by_one, by_all);
                proptest::prop_assert_eq!(&one.tat, &all.tat);
                proptest::prop_assert_eq!(&one.quota, &all.quota);
            }
        }
    }

    #[test]
    fn quota_resets_with_a_new_window() {
        let m = MemoryStore::new();
        let day = 86_400_000;
        let q = |start| [quota("a", 2, start, start + day)];
        assert!(m.count_now(&q(day), day + 5)[0].allowed);
        assert!(m.count_now(&q(day), 2 * day - 1)[0].allowed);
        assert!(!m.count_now(&q(day), 2 * day - 1)[0].allowed);
        assert!(m.count_now(&q(2 * day), 2 * day)[0].allowed);
    }

    #[test]
    fn idle_keys_are_evicted() {
        let m = MemoryStore::new();
        for i in 0..3 * SWEEP_FROM {
            m.count_now(&[rate(&format!("ip{i}"), 60, 0)], i as i64);
        }
        // one per second: each key is idle a second after its request
        assert!(
            m.len() < 2 * SWEEP_FROM,
            "{} keys held after sweeping",
            m.len()
        );
    }
}
