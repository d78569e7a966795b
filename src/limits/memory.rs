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
        let mut tallies = Vec::with_capacity(counts.len());
        let mut writes: smallvec::SmallVec<[Value; 4]> = smallvec::SmallVec::new();
        for count in counts {
            let held = match count.limit {
                Limit::Rate { .. } => c.tat.get(&count.key).map(|t| Value::Tat(*t)),
                Limit::Quota { .. } => c
                    .quota
                    .get(&count.key)
                    .map(|&(end_ms, used)| Value::Used { end_ms, used }),
            };
            let (tally, value) = step(count, held, now_ms);
            tallies.push(tally);
            writes.push(value);
        }
        if tallies.iter().any(|t| !t.allowed) {
            return Ok(uncounted(tallies));
        }
        let more = then();
        let commit = match &more {
            Ok(more) => more.iter().all(|t| t.allowed),
            Err(_) => true,
        };
        if commit {
            // a key already held is written in place: no copy of it to make and free
            for (count, value) in counts.iter().zip(writes) {
                match value {
                    Value::Tat(tat) => match c.tat.get_mut(&count.key) {
                        Some(held) => *held = tat,
                        None => {
                            c.tat.insert(count.key.clone(), tat);
                        }
                    },
                    Value::Used { end_ms, used } => match c.quota.get_mut(&count.key) {
                        Some(held) => *held = (end_ms, used),
                        None => {
                            c.quota.insert(count.key.clone(), (end_ms, used));
                        }
                    },
                }
            }
        } else {
            tallies.iter_mut().for_each(|t| t.remaining += 1);
        }
        let more = more?;
        tallies.extend(more);
        Ok(tallies)
    }
}

impl Counters {
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
