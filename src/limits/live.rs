//! The stores a running gateway counts in, and one request's view of them.
//!
//! Which store counts what is the operator's choice, made on the command line:
//!
//! | `serve` options | rates | quotas |
//! |---|---|---|
//! | neither | memory | memory (lost on restart; a warning says so) |
//! | `--state DIR` | memory | file store `DIR/counters.redb` |
//! | `--redis URL` (with or without `--state`) | Redis | Redis |
//! | `--redis` seeds of a Redis Cluster (several URLs, or `redis+cluster://…`) | Redis Cluster | Redis Cluster |
//!
//! With Redis every limit is shared, and counted in one script call per request; so are the
//! signers' nonces (a request replayed to another gateway is still a replay). In a cluster
//! a request's counts and nonce share one slot: see [`super::redis`].

use super::file::FileStore;
use super::memory::MemoryStore;
use super::redis::RedisStore;
use super::{Count, Limit, Limiter, Tallies};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the file store drops counters whose window ended.
const EVICT_EVERY: Duration = Duration::from_secs(600);

pub struct Stores {
    /// Rates without Redis, quotas without a state directory, and the signers' nonces
    /// without Redis (or while Redis cannot answer).
    memory: MemoryStore,
    file: Option<Arc<FileStore>>,
    redis: Option<RedisStore>,
}

impl Stores {
    pub fn open(
        state: Option<&Path>,
        redis: Option<&super::redis::Options>,
    ) -> Result<Stores, String> {
        let file = match state {
            Some(dir) => {
                let store = Arc::new(FileStore::open(dir)?);
                super::file::spawn_eviction(store.clone(), EVICT_EVERY);
                Some(store)
            }
            None => None,
        };
        let redis = redis.map(RedisStore::new).transpose()?;
        Ok(Stores {
            memory: MemoryStore::monotonic(),
            file,
            redis,
        })
    }

    /// Counters in memory only, as `explain` counts.
    pub fn in_memory() -> Stores {
        Stores {
            memory: MemoryStore::new(),
            file: None,
            redis: None,
        }
    }

    /// A one-line account of where the counts go, for the startup log.
    pub fn describe(&self) -> &'static str {
        match (&self.redis, &self.file) {
            (Some(r), _) if r.is_cluster() => "rates and quotas in a redis cluster",
            (Some(_), _) => "rates and quotas in redis",
            (None, Some(_)) => "rates in memory, quotas in the state file",
            (None, None) => "rates and quotas in memory (quotas restart from zero: see --state)",
        }
    }
}

/// What `decide` counts through for one request. With Redis, the first `decide` records the
/// batch and stops (`Outcome::NeedCounts`); [`RequestLimiter::fetch`] runs the script; the
/// second `decide` finds the same batch and gets its tallies.
pub struct RequestLimiter<'a> {
    stores: &'a Stores,
    /// The batch the last `decide` could not count.
    wanted: Mutex<Option<Vec<Count>>>,
    /// Its answer, for the next `decide`.
    fetched: Mutex<Option<(Vec<Count>, Tallies)>>,
    /// The nonce the last `decide` could not look up in Redis: its group and key, time to
    /// live, and the pipeline's clock then (for the memory fallback).
    wanted_nonce: Mutex<Option<(String, String, u64, i64)>>,
    /// Nonces this request already spent: `decide` may run twice (form bodies, remote counts)
    /// and the second run must not see its own nonce as a replay.
    spent: Mutex<Vec<(String, bool)>>,
}

impl<'a> RequestLimiter<'a> {
    pub fn new(stores: &'a Stores) -> Self {
        RequestLimiter {
            stores,
            wanted: Mutex::new(None),
            fetched: Mutex::new(None),
            wanted_nonce: Mutex::new(None),
            spent: Mutex::new(Vec::new()),
        }
    }

    /// Count the batch the last `decide` asked for in the remote store, so the next `decide`
    /// can use the answer. Returns false when nothing was asked for.
    pub async fn fetch(&self) -> bool {
        let Some(redis) = &self.stores.redis else {
            return false;
        };
        let nonce = lock(&self.wanted_nonce).take();
        if let Some((group, key, ttl_ms, now_ms)) = nonce {
            // While Redis cannot answer, this gateway's own memory guards against replays.
            let first = match redis.first_use_async(&group, &key, ttl_ms).await {
                Ok(first) => first,
                Err(e) => {
                    tracing::warn!("{e}; nonce checked in this gateway's memory only");
                    self.stores.memory.first_use(&key, ttl_ms, now_ms)
                }
            };
            lock(&self.spent).push((key, first));
            return true;
        }
        let Some(counts) = lock(&self.wanted).take() else {
            return false;
        };
        let tallies = redis.count_async(&counts).await;
        *lock(&self.fetched) = Some((counts, tallies));
        true
    }
}

impl Limiter for RequestLimiter<'_> {
    fn count(&self, counts: &[Count], now_ms: i64) -> Option<Tallies> {
        if self.stores.redis.is_some() {
            if let Some((asked, tallies)) = lock(&self.fetched).take() {
                if asked == counts {
                    return Some(tallies);
                }
            }
            *lock(&self.wanted) = Some(counts.to_vec());
            return None;
        }
        let Some(file) = &self.stores.file else {
            return Some(Ok(self.stores.memory.count_now(counts, now_ms)));
        };
        // Rates come first in a batch: the rates in memory, then — while those are held,
        // and only if they pass — the quotas in the file; the rates are spent only if the
        // quotas pass too.
        let split = counts
            .iter()
            .position(|c| matches!(c.limit, Limit::Quota { .. }))
            .unwrap_or(counts.len());
        let (rates, quotas) = counts.split_at(split);
        if quotas.is_empty() {
            return Some(Ok(self.stores.memory.count_now(rates, now_ms)));
        }
        Some(
            self.stores
                .memory
                .count_then(rates, now_ms, || file.count_now(quotas, now_ms)),
        )
    }

    fn first_use(&self, group: &str, key: &str, ttl_ms: u64, now_ms: i64) -> Option<bool> {
        let mut spent = lock(&self.spent);
        if let Some((_, first)) = spent.iter().find(|(k, _)| k == key) {
            return Some(*first);
        }
        if self.stores.redis.is_some() {
            *lock(&self.wanted_nonce) = Some((group.to_string(), key.to_string(), ttl_ms, now_ms));
            return None;
        }
        let first = self.stores.memory.first_use(key, ttl_ms, now_ms);
        spent.push((key.to_string(), first));
        Some(first)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
