//! Counters in Redis (`serve --redis URL`), shared by every gateway that points at it: one
//! node, or a Redis Cluster.
//!
//! One decision is one `EVALSHA` of [`SCRIPT`]: every limit of the request is checked and, if
//! all pass, counted — atomically, since Redis runs a script alone. Rates take their clock
//! from Redis (`TIME`), so gateways with skewed clocks still share one GCRA timeline; quota
//! windows come from the gateway (they depend on the policy's time zone) and are part of the
//! key, which expires an hour after its window ends.
//!
//! In a cluster a script may touch only keys of one slot, so every key carries its counter
//! group as a hash tag (`keys.rs`): one request's batch and its nonce land in one slot and the
//! script stays one all-or-nothing call. Single-node key names are unchanged.
//!
//! Failure is quick and bounded: a call has [`Options::timeout`] to answer, connecting and
//! following cluster redirects included; a broken connection is dropped and re-dialled at
//! most every [`REDIAL_EVERY`], and while Redis (or the master holding a group's slot) is
//! down each limit applies its `on store error` choice.
//!
//! A request answered without the store is never charged later. A script written to a Redis
//! that is paused (SIGSTOP, a long fork, a stalled network) still runs when it resumes, long
//! after the gateway gave up and answered; so every call carries a deadline in Redis's own
//! clock, and a script that starts after it changes nothing. The deadline is the gateway's
//! give-up time less a grace of a quarter of the timeout (for the answer's trip back),
//! translated with a [`clock::RedisClock`] learnt from the node that runs the script (per
//! counter group in a cluster: `clock.rs`), never from the gateway's wall clock.
//!
//! The parts: `connect.rs` (what `--redis` names, and the connection), `keys.rs` (key
//! names and hash tags), `clock.rs` (Redis time), `script.rs` (the Lua and its reply).

mod clock;
mod connect;
mod keys;
mod script;

pub use connect::CLUSTER_SCHEME;
pub use script::SCRIPT;

use super::{Count, Counted, Store, StoreError, Tallies};
use clock::{Clocks, RedisClock};
use connect::{Conn, Target};
use keys::Keys;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after a failed dial the next request may dial again; until then requests fail at
/// once instead of each waiting for a connect timeout.
pub const REDIAL_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct Options {
    /// The `--redis` values: one plain URL for a single node; several seed URLs, or a
    /// [`CLUSTER_SCHEME`] URL, for a cluster (see `connect.rs`).
    pub urls: Vec<String>,
    /// For one script call, connecting and redirects included.
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    keys: Keys,
    script: redis::Script,
    probe: redis::Script,
    timeout: Duration,
    conn: Mutex<Option<Conn>>,
    /// Held while dialling, so concurrent requests wait for one dial instead of each
    /// failing or dialling; holds when the last dial failed.
    dial: tokio::sync::Mutex<Option<Instant>>,
    /// Whether the last call succeeded: a change is logged, not every failure.
    up: AtomicBool,
    clocks: Clocks,
}

impl RedisStore {
    /// Checks the URLs only: Redis need not be up when the gateway starts.
    pub fn new(opts: &Options) -> Result<RedisStore, String> {
        let target = Target::parse(&opts.urls, opts.timeout)?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                keys: target.keys(),
                target,
                script: redis::Script::new(SCRIPT),
                probe: redis::Script::new(script::PROBE),
                timeout: opts.timeout,
                conn: Mutex::new(None),
                dial: tokio::sync::Mutex::new(None),
                up: AtomicBool::new(true),
                clocks: Clocks::default(),
            }),
        })
    }

    /// Whether the counters are in a cluster, for the startup log.
    pub fn is_cluster(&self) -> bool {
        self.inner.keys == Keys::Tagged
    }

    /// Count the batch (all or nothing) in one script call.
    pub async fn count_async(&self, counts: &[Count]) -> Tallies {
        let result = self.call(counts).await;
        self.inner.health(&result);
        result
    }

    async fn call(&self, counts: &[Count]) -> Tallies {
        let inner = &self.inner;
        inner.keys.one_group(counts)?;
        let group = counts.first().map_or("", |c| &*c.group);
        let clock = inner.clocks.get(inner.keys.clock(group));
        let give_up = Instant::now() + inner.timeout;
        // The answer needs time to come back: a script must start this much before the
        // gateway stops waiting for it.
        let script_deadline = give_up - inner.timeout / 4;
        let mut invocation = script::invocation(&inner.script, inner.keys, counts);
        let call = async {
            let mut conn = inner.connection().await?;
            inner.learn_clock(&mut conn, group, &clock).await?;
            let deadline = clock
                .redis_us(script_deadline)
                .filter(|_| Instant::now() < script_deadline)
                .ok_or_else(|| StoreError("redis: no time left to count".into()))?;
            invocation.arg(deadline);
            let reply: Result<Vec<(i64, i64, i64)>, _> = invocation.invoke_async(&mut conn).await;
            let arrived = Instant::now();
            let reply = reply.map_err(|e| inner.failed(e))?;
            if let Some(&(_, redis_now, _)) = reply.first() {
                clock.learn(redis_now, arrived);
            }
            Ok(reply)
        };
        match tokio::time::timeout_at(give_up.into(), call).await {
            Ok(reply) => script::tallies(&reply?, counts.len()),
            Err(_) => Err(inner.timed_out()),
        }
    }

    /// Record a signer's nonce for `ttl_ms` (`SET … NX PX`): true on its first use, false when
    /// some gateway recorded it before and it has not expired. In a cluster the nonce lives in
    /// the slot of the request's counter `group` ([`Count::group`](super::Count::group)).
    pub async fn first_use_async(
        &self,
        group: &str,
        key: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let call = async {
            let mut conn = inner.connection().await?;
            let reply: Result<Option<String>, _> = redis::cmd("SET")
                .arg(inner.keys.nonce(group, key))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms.max(1))
                .query_async(&mut conn)
                .await;
            reply.map_err(|e| inner.failed(e))
        };
        let result = match tokio::time::timeout(inner.timeout, call).await {
            Ok(r) => r.map(|set| set.is_some()),
            Err(_) => Err(inner.timed_out()),
        };
        inner.health(&result.as_ref().map(|_| Vec::new()).map_err(Clone::clone));
        result
    }
}

impl Inner {
    async fn connection(&self) -> Result<Conn, StoreError> {
        if let Some(c) = self.held() {
            return Ok(c);
        }
        let mut failed_at = self.dial.lock().await;
        if let Some(c) = self.held() {
            return Ok(c); // dialled while this request waited
        }
        if failed_at.is_some_and(|t| t.elapsed() < REDIAL_EVERY) {
            return Err(StoreError("redis: unreachable".into()));
        }
        match self.target.connect(self.timeout).await {
            Ok(c) => {
                *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                *failed_at = None;
                Ok(c)
            }
            Err(e) => {
                *failed_at = Some(Instant::now());
                Err(StoreError(format!("redis: {e}")))
            }
        }
    }

    /// A first sample of Redis's clock, from the node that counts `group`, before its first
    /// script (later scripts' replies keep it fresh).
    async fn learn_clock(
        &self,
        conn: &mut Conn,
        group: &str,
        clock: &RedisClock,
    ) -> Result<(), StoreError> {
        if clock.redis_us(Instant::now()).is_some() {
            return Ok(());
        }
        let reply: Result<i64, _> = self
            .probe
            .key(self.keys.probe(group))
            .invoke_async(conn)
            .await;
        clock.learn(reply.map_err(|e| self.failed(e))?, Instant::now());
        Ok(())
    }

    fn held(&self) -> Option<Conn> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A call's error, dropping the connection if it cannot serve another call.
    fn failed(&self, e: redis::RedisError) -> StoreError {
        if self.target.drops_on(Some(&e)) {
            self.drop_connection();
        }
        StoreError(format!("redis: {e}"))
    }

    fn timed_out(&self) -> StoreError {
        if self.target.drops_on(None) {
            self.drop_connection();
        }
        StoreError(format!("redis: no answer within {:?}", self.timeout))
    }

    /// Log when Redis stops or starts answering (not every failed call).
    fn health(&self, result: &Tallies) {
        let up = result.is_ok();
        if self.up.swap(up, Ordering::Relaxed) != up {
            match result {
                Ok(_) => tracing::info!("redis answers again: limits are counted"),
                Err(e) => tracing::warn!("{e}: each limit applies its `on store error` choice"),
            }
        }
    }

    fn drop_connection(&self) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Store for RedisStore {
    fn count(&self, counts: &[Count], _now_ms: i64) -> Counted {
        let store = self.clone();
        let counts = counts.to_vec();
        Counted::Later(Box::pin(async move { store.count_async(&counts).await }))
    }
}
