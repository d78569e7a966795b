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

use super::gcra::Gcra;
use super::{uncounted, Count, Counted, Limit, Store, StoreError, Tallies, Tally};
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The check-then-count script. KEYS[i] is a counter; ARGV[3i-2..3i] is `r`, T (µs), τ (µs)
/// for a rate, or `q`, limit, expiry (ms since the epoch) for a quota. Returns one
/// `{allowed, remaining, retry_after_µs}` per key. The GCRA arithmetic is `gcra.rs`'s.
pub const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out, writes, ok = {}, {}, true
for i, key in ipairs(KEYS) do
  local kind, a, b = ARGV[3*i-2], tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local held = redis.call('GET', key)
  if kind == 'r' then
    local tat = math.max(tonumber(held) or now, now)
    if now < tat - b then
      ok = false
      out[i] = {0, 0, tat - b - now}
    else
      local new = tat + a
      out[i] = {1, math.floor((a + b - (new - now)) / a), 0}
      writes[i] = new
    end
  else
    local used = tonumber(held) or 0
    if used >= a then
      ok = false
      out[i] = {0, 0, 0}
    else
      out[i] = {1, a - used - 1, 0}
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
        let inner = &self.inner;
        let call = async {
            let mut conn = inner.connection().await?;
            let reply: Result<Vec<(i64, i64, i64)>, _> = invocation.invoke_async(&mut conn).await;
            reply.map_err(|e| {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    inner.drop_connection();
                }
                StoreError(format!("redis: {e}"))
            })
        };
        let reply = match tokio::time::timeout(inner.timeout, call).await {
            Ok(r) => r?,
            Err(_) => {
                inner.drop_connection();
                return Err(StoreError(format!(
                    "redis: no answer within {:?}",
                    inner.timeout
                )));
            }
        };
        if reply.len() != counts.len() {
            return Err(StoreError(format!(
                "redis: {} answers for {} counts",
                reply.len(),
                counts.len()
            )));
        }
        Ok(uncounted(
            reply
                .into_iter()
                .map(|(allowed, remaining, retry_us)| Tally {
                    allowed: allowed == 1,
                    remaining: remaining.max(0) as u64,
                    retry_after_ms: (retry_us.max(0) as u64).div_ceil(1000),
                })
                .collect(),
        ))
    }
}

impl RedisStore {
    /// Record a signer's nonce for `ttl_ms` (`SET … NX PX`): true on its first use, false when
    /// some gateway recorded it before and it has not expired.
    pub async fn first_use_async(&self, key: &str, ttl_ms: u64) -> Result<bool, StoreError> {
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
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
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
