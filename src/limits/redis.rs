//! Counters in Redis (`serve --redis URL`), shared by every gateway that points at it.
//!
//! One decision is one `EVALSHA` of [`SCRIPT`]: every limit of the request is checked and, if
//! all pass, counted — atomically, since Redis runs a script alone. Rates take their clock
//! from Redis (`TIME`), so gateways with skewed clocks still share one GCRA timeline; quota
//! windows come from the gateway (they depend on the policy's time zone) and are part of the
//! key, which expires an hour after its window ends.
//!
//! Failure is quick and bounded: a call has [`Options::timeout`] to answer; a broken
//! connection is dropped and re-dialled at most every [`REDIAL_EVERY`], and while Redis is
//! down each limit applies its `on store error` choice.
//!
//! A request answered without the store is never charged later. A script written to a Redis
//! that is paused (SIGSTOP, a long fork, a stalled network) still runs when it resumes, long
//! after the gateway gave up and answered; so every call carries a deadline in Redis's own
//! clock, and a script that starts after it changes nothing. The deadline is the gateway's
//! give-up time less a grace of a quarter of the timeout (for the answer's trip back),
//! translated with [`RedisClock`]: an offset learnt from Redis's `TIME` against this process's
//! monotonic clock, never from the gateway's wall clock, so skewed or unsynchronised gateway
//! clocks do not matter.

use super::gcra::Gcra;
use super::{uncounted, Count, Counted, Limit, Store, StoreError, Tallies, Tally};
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The check-then-count script. KEYS[i] is a counter; ARGV[3i-2..3i] is `r`, T (µs), τ (µs)
/// for a rate, or `q`, limit, expiry (ms since the epoch) for a quota. Returns one
/// `{allowed, remaining, retry_after_µs}` per key. The GCRA arithmetic is `gcra.rs`'s.
///
/// The last ARGV is the call's deadline in Redis time (µs): a script that starts later does
/// nothing. The first reply is `{ran (1) or too late (0), Redis's TIME in µs, 0}`, the
/// tallies follow it.
pub const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if now > tonumber(ARGV[#ARGV]) then
  return {{0, now, 0}}
end
local out, writes, ok = {{1, now, 0}}, {}, true
for i, key in ipairs(KEYS) do
  local kind, a, b = ARGV[3*i-2], tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local held = redis.call('GET', key)
  if kind == 'r' then
    local tat = math.max(tonumber(held) or now, now)
    if now < tat - b then
      ok = false
      out[i + 1] = {0, 0, tat - b - now}
    else
      local new = tat + a
      out[i + 1] = {1, math.floor((a + b - (new - now)) / a), 0}
      writes[i] = new
    end
  else
    local used = tonumber(held) or 0
    if used >= a then
      ok = false
      out[i + 1] = {0, 0, 0}
    else
      out[i + 1] = {1, a - used - 1, 0}
      writes[i] = used + 1
    end
  end
end
if ok then
  for i, key in ipairs(KEYS) do
    if ARGV[3*i-2] == 'r' then
      local ttl = math.ceil((writes[i] - now) / 1000) + 1
      redis.call('SET', key, string.format('%d', writes[i]), 'PX', string.format('%d', ttl))
    else
      redis.call('SET', key, string.format('%d', writes[i]), 'PXAT', ARGV[3*i])
    end
  end
end
return out
"#;

/// How long after a failed dial the next request may dial again; until then requests fail at
/// once instead of each waiting for a connect timeout.
pub const REDIAL_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    /// For one script call, connecting included.
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    script: redis::Script,
    timeout: Duration,
    conn: Mutex<Option<MultiplexedConnection>>,
    /// Held while dialling, so concurrent requests wait for one dial instead of each
    /// failing or dialling; holds when the last dial failed.
    dial: tokio::sync::Mutex<Option<Instant>>,
    /// Whether the last call succeeded: a change is logged, not every failure.
    up: AtomicBool,
    clock: RedisClock,
}

/// How long a learnt offset stands before a looser sample may replace it: a tighter sample
/// always does at once.
const RELEARN_EVERY: Duration = Duration::from_secs(10);

/// Redis's clock as this gateway can bound it. A reply carrying Redis's `TIME` R that arrives
/// at local instant t was produced no later than t, so R − t is a lower bound of the offset
/// from the local monotonic clock to Redis's, and `local instant + bound` is never later in
/// Redis time than that instant really is. Every dial and every script reply gives a sample;
/// the tightest (largest) of the last [`RELEARN_EVERY`] is kept, so a reply that waited in a
/// queue does not shorten later deadlines, and a step back of Redis's clock is followed
/// within that period (until then a late script could count by at most the step's size).
struct RedisClock {
    epoch: Instant,
    /// (offset in µs, when it was learnt); `None` until the first sample.
    learnt: Mutex<Option<(i64, Instant)>>,
}

impl RedisClock {
    fn new() -> RedisClock {
        RedisClock {
            epoch: Instant::now(),
            learnt: Mutex::new(None),
        }
    }

    fn local_us(&self, at: Instant) -> i64 {
        at.saturating_duration_since(self.epoch).as_micros() as i64
    }

    /// Redis said `redis_us` in a reply that arrived at `arrived`.
    fn learn(&self, redis_us: i64, arrived: Instant) {
        let sample = redis_us.saturating_sub(self.local_us(arrived));
        let mut learnt = self.learnt.lock().unwrap_or_else(|e| e.into_inner());
        let keep = learnt.is_some_and(|(offset, at)| {
            offset > sample && arrived.saturating_duration_since(at) < RELEARN_EVERY
        });
        if !keep {
            *learnt = Some((sample, arrived));
        }
    }

    /// A local instant in Redis time (µs), never later than Redis's clock at that instant.
    fn redis_us(&self, at: Instant) -> Option<i64> {
        let learnt = *self.learnt.lock().unwrap_or_else(|e| e.into_inner());
        learnt.map(|(offset, _)| self.local_us(at).saturating_add(offset))
    }
}

impl RedisStore {
    /// Checks the URL only: Redis need not be up when the gateway starts.
    pub fn new(opts: &Options) -> Result<RedisStore, String> {
        let client = redis::Client::open(opts.url.as_str())
            .map_err(|e| format!("--redis {}: {e}", opts.url))?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                script: redis::Script::new(SCRIPT),
                timeout: opts.timeout,
                conn: Mutex::new(None),
                dial: tokio::sync::Mutex::new(None),
                up: AtomicBool::new(true),
                clock: RedisClock::new(),
            }),
        })
    }

    /// Count the batch (all or nothing) in one script call.
    pub async fn count_async(&self, counts: &[Count]) -> Tallies {
        let result = self.call(counts).await;
        self.inner.health(&result);
        result
    }

    async fn call(&self, counts: &[Count]) -> Tallies {
        let inner = &self.inner;
        let give_up = Instant::now() + inner.timeout;
        // The answer needs time to come back: a script must start this much before the
        // gateway stops waiting for it.
        let script_deadline = give_up - inner.timeout / 4;
        let mut invocation = self.invocation(counts);
        let call = async {
            let mut conn = inner.connection().await?;
            let deadline = inner
                .clock
                .redis_us(script_deadline)
                .filter(|_| Instant::now() < script_deadline)
                .ok_or_else(|| StoreError("redis: no time left to count".into()))?;
            invocation.arg(deadline);
            let reply: Result<Vec<(i64, i64, i64)>, _> = invocation.invoke_async(&mut conn).await;
            let arrived = Instant::now();
            let reply = reply.map_err(|e| {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    inner.drop_connection();
                }
                StoreError(format!("redis: {e}"))
            })?;
            if let Some(&(_, redis_now, _)) = reply.first() {
                inner.clock.learn(redis_now, arrived);
            }
            Ok(reply)
        };
        match tokio::time::timeout_at(give_up.into(), call).await {
            Ok(reply) => tallies(&reply?, counts.len()),
            Err(_) => {
                inner.drop_connection();
                Err(StoreError(format!(
                    "redis: no answer within {:?}",
                    inner.timeout
                )))
            }
        }
    }

    /// The script's keys and arguments for a batch, all but the deadline (known only once a
    /// connection has taught the clock).
    fn invocation(&self, counts: &[Count]) -> redis::ScriptInvocation<'_> {
        let mut invocation = self.inner.script.prepare_invoke();
        for c in counts {
            match c.limit {
                Limit::Rate {
                    limit,
                    period_ms,
                    burst,
                } => {
                    let g = Gcra::new(limit, period_ms, burst);
                    invocation
                        .key(format!("rulegate:{}", c.key))
                        .arg("r")
                        .arg(g.interval_us)
                        .arg(g.tolerance_us);
                }
                Limit::Quota {
                    limit,
                    start_ms,
                    end_ms,
                } => {
                    invocation
                        .key(format!("rulegate:{}|{start_ms}", c.key))
                        .arg("q")
                        .arg(limit)
                        .arg(end_ms.saturating_add(3_600_000));
                }
            }
        }
        invocation
    }
}

/// The script's reply as tallies: a script that started too late counted nothing, which the
/// gateway treats as any other store error.
fn tallies(reply: &[(i64, i64, i64)], counts: usize) -> Tallies {
    let Some((&(ran, _, _), tallies)) = reply.split_first() else {
        return Err(StoreError("redis: an empty answer".into()));
    };
    if ran != 1 {
        return Err(StoreError(
            "redis: the script started after its deadline and counted nothing".into(),
        ));
    }
    if tallies.len() != counts {
        return Err(StoreError(format!(
            "redis: {} answers for {counts} counts",
            tallies.len()
        )));
    }
    Ok(uncounted(
        tallies
            .iter()
            .map(|&(allowed, remaining, retry_us)| Tally {
                allowed: allowed == 1,
                remaining: remaining.max(0) as u64,
                retry_after_ms: (retry_us.max(0) as u64).div_ceil(1000),
            })
            .collect(),
    ))
}

impl RedisStore {
    /// Record a signer's nonce for `ttl_ms` (`SET … NX PX`): true on its first use, false when
    /// some gateway recorded it before and it has not expired.
    /// `group` is the request's counter group ([`Count::group`](super::Count::group)).
    pub async fn first_use_async(
        &self,
        _group: &str,
        key: &str,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let call = async {
            let mut conn = inner.connection().await?;
            let reply: Result<Option<String>, _> = redis::cmd("SET")
                .arg(format!("rulegate:nonce|{key}"))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms.max(1))
                .query_async(&mut conn)
                .await;
            reply.map_err(|e| {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    inner.drop_connection();
                }
                StoreError(format!("redis: {e}"))
            })
        };
        let result = match tokio::time::timeout(inner.timeout, call).await {
            Ok(r) => r.map(|set| set.is_some()),
            Err(_) => {
                inner.drop_connection();
                Err(StoreError(format!(
                    "redis: no answer within {:?}",
                    inner.timeout
                )))
            }
        };
        inner.health(&result.as_ref().map(|_| Vec::new()).map_err(Clone::clone));
        result
    }
}

impl Inner {
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
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
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout);
        match self.dial(&config).await {
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

    /// A new connection, and a first sample of Redis's clock from it.
    async fn dial(
        &self,
        config: &redis::AsyncConnectionConfig,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let mut c = self
            .client
            .get_multiplexed_async_connection_with_config(config)
            .await?;
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut c).await?;
        let redis_us = secs.saturating_mul(1_000_000).saturating_add(micros);
        self.clock.learn(redis_us, Instant::now());
        Ok(c)
    }

    fn held(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample is Redis's time less the instant its reply arrived; the tightest recent one
    /// is kept (a reply that queued says less), and a deadline converts with it.
    #[test]
    fn the_clock_keeps_the_tightest_lower_bound_of_redis_time() {
        let clock = RedisClock::new();
        assert_eq!(clock.redis_us(Instant::now()), None);
        let t = clock.epoch + Duration::from_secs(1);
        clock.learn(5_000_000, t); // offset 4 s
        clock.learn(4_500_000, t + Duration::from_millis(100)); // queued: offset 3.4 s
        assert_eq!(
            clock.redis_us(t + Duration::from_secs(2)),
            Some(7_000_000),
            "the looser sample does not replace a recent tighter one"
        );
        clock.learn(8_000_000, t + Duration::from_secs(3)); // 4 s again: the bound is renewed
        assert_eq!(clock.redis_us(t + Duration::from_secs(3)), Some(8_000_000));
        // an old bound gives way to a looser fresh one (Redis's clock may have stepped back)
        let later = t + RELEARN_EVERY + Duration::from_secs(5);
        clock.learn(1_000_000, later);
        assert_eq!(clock.redis_us(later), Some(1_000_000));
    }
}
