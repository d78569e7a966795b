//! The Lua the store runs: the check-then-count script, the clock probe, and how a batch
//! becomes a script call and its reply tallies.

use super::super::gcra::Gcra;
use super::super::{uncounted, Count, Limit, StoreError, Tallies, Tally};
use super::keys::Keys;

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

/// The script's reply as tallies: a script that started too late counted nothing, which the
/// gateway treats as any other store error.
pub fn tallies(reply: &[(i64, i64, i64)], counts: usize) -> Tallies {
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

/// Redis's `TIME` in µs, run as a script so that a cluster routes it by its key to the node
/// whose clock the group's deadlines are written in. It writes nothing.
pub const PROBE: &str = r#"
local t = redis.call('TIME')
return tonumber(t[1]) * 1000000 + tonumber(t[2])
"#;

/// The script's keys and arguments for a batch, all but the deadline (known only once a
/// connection has taught the clock).
pub fn invocation<'a>(
    script: &'a redis::Script,
    keys: Keys,
    counts: &[Count],
) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for c in counts {
        invocation.key(keys.count(c));
        match c.limit {
            Limit::Rate {
                limit,
                period_ms,
                burst,
            } => {
                let g = Gcra::new(limit, period_ms, burst);
                invocation.arg("r").arg(g.interval_us).arg(g.tolerance_us);
            }
            Limit::Quota { limit, end_ms, .. } => {
                invocation
                    .arg("q")
                    .arg(limit)
                    .arg(end_ms.saturating_add(3_600_000));
            }
        }
    }
    invocation
}
