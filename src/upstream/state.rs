//! The gateway's knowledge of its backends' targets: which are healthy, how busy, where the
//! round robin stands, whether a breaker is open. `decide` reads and moves it through
//! [`crate::decide::Env`], so `serve` keeps one [`Upstreams`] for the process and `explain`
//! and `rulegate test` keep one on their virtual clock.
//!
//! A backend's state is kept under its key (`service/backend`) across reloads. A reload that
//! changes the backend realigns it ([`Targeting::fingerprint`] differs): a target that stays
//! (same URL) keeps its health; the round robin restarts; the breaker keeps its phase and
//! window only if its definition is unchanged. Realignment only goes forward
//! ([`Targeting::generation`]): a request still running on the replaced snapshot counts in its
//! target's health but never turns the state back to the old definition. State is per
//! gateway process: two gateways behind one load balancer each count what they see
//! (documented in the README).
//!
//! Each backend's state sits behind its own mutex, held only to pick or to count: a few
//! hundred instructions, never across an await.

use super::balance::{self, Ring, Smooth, Strategy};
use super::breaker::{self, Admit, Transition};
use super::health::{Active, Attempted, Change, Passive, TargetHealth};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

/// How a backend's targets take requests, as compiled.
#[derive(Debug)]
pub struct Targeting {
    /// `service/backend`.
    pub key: String,
    pub urls: Vec<String>,
    /// Per target; zero drains it (no new requests; those in flight finish).
    pub weights: Vec<u32>,
    pub balance: Strategy,
    /// For `balance hash …`.
    pub ring: Option<Ring>,
    pub health: Option<Active>,
    pub passive: Passive,
    pub breaker: Option<breaker::Config>,
    /// `retries N budget P%`.
    pub retry_budget: Option<u32>,
    /// Of everything above but the key: equal fingerprints need no realignment.
    pub fingerprint: u64,
    /// Which compile made it: a later compile's definition wins over an earlier one's, so
    /// requests still running on the previous snapshot after a reload never turn the state
    /// back to the old definition.
    pub generation: u64,
    /// The state this backend was first found under, and in which [`Upstreams`]: looked up
    /// by key once, not on every request (`serve` has one `Upstreams`; a policy test's other
    /// worlds look up by key).
    found: std::sync::OnceLock<Found>,
}

#[derive(Debug)]
struct Found {
    /// [`Upstreams::id`].
    owner: u64,
    state: Arc<Mutex<BackendState>>,
}

/// Compiles, counted: see [`Targeting::generation`].
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Targeting {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: String,
        urls: Vec<String>,
        weights: Vec<u32>,
        balance: Strategy,
        health: Option<Active>,
        passive: Passive,
        breaker: Option<breaker::Config>,
        retry_budget: Option<u32>,
    ) -> Targeting {
        let ring = matches!(balance, Strategy::Hash(_)).then(|| {
            let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
            Ring::new(&refs, &weights)
        });
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            &urls,
            &weights,
            &balance,
            &health,
            &passive,
            &breaker,
            retry_budget,
        )
            .hash(&mut h);
        Targeting {
            key,
            urls,
            weights,
            balance,
            ring,
            health,
            passive,
            breaker,
            retry_budget,
            fingerprint: h.finish(),
            generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            found: std::sync::OnceLock::new(),
        }
    }
}

impl Targeting {
    /// Whether an answer's latency counts (a breaker trips on answers slower than a bound):
    /// otherwise the forward does not time it.
    pub fn times_answers(&self) -> bool {
        self.breaker
            .as_ref()
            .is_some_and(|b| b.trip.slower_than_ms.is_some())
    }

    /// What differs from a plain round robin over equal targets, one line per statement, for
    /// the compiled tree.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.weights.iter().any(|w| *w != 1) {
            let w: Vec<String> = self.weights.iter().map(u32::to_string).collect();
            lines.push(format!("weights {}", w.join(" ")));
        }
        match &self.balance {
            Strategy::RoundRobin => {}
            Strategy::LeastRequests => lines.push("balance least-requests".into()),
            Strategy::Hash(on) => lines.push(format!("balance hash {on}")),
        }
        if let Some(h) = &self.health {
            lines.push(format!(
                "health http {} every {} timeout {} healthy {} unhealthy {} status {}..{}",
                h.path,
                ms(h.every_ms),
                ms(h.timeout_ms),
                h.healthy,
                h.unhealthy,
                h.status.start(),
                h.status.end()
            ));
        }
        if self.passive != Passive::IMPLICIT {
            let p = &self.passive;
            let status = p.status.as_ref().map_or(String::new(), |r| {
                format!(" status {}..{}", r.start(), r.end())
            });
            lines.push(format!(
                "passive unhealthy {}{status} cooldown {}",
                p.unhealthy,
                ms(p.cooldown_ms)
            ));
        }
        if let Some(b) = &self.breaker {
            lines.push(format!("breaker {b}"));
        }
        if let Some(p) = self.retry_budget {
            lines.push(format!("retry budget {p}%"));
        }
        lines
    }
}

/// `1500ms`, `10s`: a duration as the policy language writes it.
pub fn ms(ms: u64) -> String {
    match ms % 1000 {
        0 => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// At least this many retries may be in flight to a backend whatever its budget says, so a
/// quiet backend can still retry (Envoy's `min_retry_concurrency` default).
pub const MIN_RETRY_CONCURRENCY: u64 = 3;

/// Whether an attempt that ended so may be retried on another target (within the backend's
/// `retries` and budget): a refused connection sent nothing, so any request may; a connection
/// lost before the answer, only a `replayable` request (idempotent, without a body); a
/// timeout never (the backend may still be working on it), nor an answer.
pub fn retryable(how: Attempted, replayable: bool) -> bool {
    match how {
        Attempted::ConnectFailed => true,
        Attempted::Reset => replayable,
        Attempted::TimedOut | Attempted::Answered { .. } => false,
    }
}

/// Whether a request can be sent again after its connection was lost: an idempotent method
/// and no body (serve's attempts and the policy tests' scripted backends ask the same).
pub fn replayable(method: &str, has_body: bool) -> bool {
    !has_body && matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
}

/// Every backend's state, by key.
pub struct Upstreams {
    /// Unique in the process: what a [`Targeting`]'s cached state is checked against.
    id: u64,
    backends: RwLock<HashMap<String, Arc<Mutex<BackendState>>>>,
}

impl Default for Upstreams {
    fn default() -> Self {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Upstreams {
            id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            backends: RwLock::default(),
        }
    }
}

/// One backend's state.
#[derive(Debug)]
struct BackendState {
    fingerprint: u64,
    generation: u64,
    urls: Vec<Arc<str>>,
    smooth: Smooth,
    targets: Vec<TargetState>,
    /// Requests in flight to any target, and how many of them are retries.
    live: u64,
    retries: u64,
    breaker: Option<(breaker::Config, breaker::State)>,
    /// How often the breaker entered each phase: open, half-open, closed.
    transitions: [u64; 3],
}

#[derive(Debug, Clone, Default)]
struct TargetState {
    health: TargetHealth,
    inflight: u64,
    /// When the next active probe is due; `None` until the first is scheduled.
    next_probe: Option<i64>,
}

/// A target chosen for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub target: usize,
    /// The request is one of a half-open breaker's probes.
    pub probe: bool,
}

/// What the backend's state says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Target(Pick),
    /// The breaker is open (or half-open with its probes out): the downgrade answers.
    BreakerOpen,
    /// No target can take it: every one is drained, down or ejected.
    NoTarget,
}

/// A choice and what it changed, for the trace, the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    pub choice: Choice,
    pub breaker: Option<breaker::Phase>,
    pub transition: Option<Transition>,
}

/// What counting a result changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    pub health: Option<Change>,
    pub breaker: Option<Transition>,
}

/// A target as `/config` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetView {
    pub url: String,
    pub available: bool,
    /// The active checks' verdict.
    pub healthy: bool,
    pub ejected_until: Option<i64>,
    pub inflight: u64,
}

/// A backend as `/config` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendView {
    pub key: String,
    pub breaker: Option<breaker::Phase>,
    /// How often the breaker entered open, half-open and closed.
    pub transitions: [u64; 3],
    pub targets: Vec<TargetView>,
}

impl BackendState {
    fn new(t: &Targeting) -> BackendState {
        BackendState {
            fingerprint: t.fingerprint,
            generation: t.generation,
            urls: t.urls.iter().map(|u| Arc::from(u.as_str())).collect(),
            smooth: Smooth::default(),
            targets: vec![TargetState::default(); t.urls.len()],
            live: 0,
            retries: 0,
            breaker: t.breaker.clone().map(|c| (c, breaker::State::default())),
            transitions: [0; 3],
        }
    }

    /// Count (and log) a breaker's change of phase; every change passes here, whichever call
    /// made it.
    #[inline]
    fn noted(&mut self, key: &str, t: Option<Transition>) -> Option<Transition> {
        t.map(|t| self.count_transition(key, t))
    }

    #[cold]
    fn count_transition(&mut self, key: &str, t: Transition) -> Transition {
        let (i, to) = match t {
            Transition::Opened { .. } => (0, "open"),
            Transition::HalfOpened => (1, "half-open"),
            Transition::Closed => (2, "closed"),
        };
        self.transitions[i] += 1;
        tracing::warn!(backend = %key, to, "circuit breaker changed");
        t
    }

    /// Bring the state in line with a (re)compiled backend: targets that stay keep their
    /// health and counts; the breaker keeps its state if its definition is unchanged. Whether
    /// the state now follows `t`: `false` for an older definition than the state's (a request
    /// still running on the snapshot a reload replaced), which leaves the state alone.
    #[inline]
    fn align(&mut self, t: &Targeting) -> bool {
        if self.fingerprint == t.fingerprint {
            self.generation = self.generation.max(t.generation);
            return true;
        }
        self.realign(t)
    }

    #[cold]
    fn realign(&mut self, t: &Targeting) -> bool {
        if t.generation < self.generation {
            return false;
        }
        let mut old: HashMap<Arc<str>, TargetState> =
            self.urls.drain(..).zip(self.targets.drain(..)).collect();
        self.targets = t
            .urls
            .iter()
            .map(|u| old.remove(u.as_str()).unwrap_or_default())
            .collect();
        self.urls = t.urls.iter().map(|u| Arc::from(u.as_str())).collect();
        self.smooth = Smooth::default();
        self.breaker = match (self.breaker.take(), &t.breaker) {
            (Some((c, s)), Some(new)) if c == *new => Some((c, s)),
            (_, new) => new.clone().map(|c| (c, breaker::State::default())),
        };
        // without active checks, only passive ones judge a target: what probes said goes
        if t.health.is_none() {
            for ts in &mut self.targets {
                ts.health.forget_probes();
                ts.next_probe = None;
            }
        }
        self.fingerprint = t.fingerprint;
        self.generation = t.generation;
        true
    }

    /// Count how an attempt at `pick` ended: the target's passive health, and (when the state
    /// follows `t`) the breaker.
    fn settle(
        &mut self,
        t: &Targeting,
        pick: Pick,
        how: Attempted,
        now: i64,
        current: bool,
    ) -> Settled {
        let i = t.urls.get(pick.target).and_then(|url| self.index(url));
        let health = i.and_then(|i| self.targets[i].health.forwarded(how, &t.passive, now));
        let recorded = match &mut self.breaker {
            Some((c, b)) if current => b.record(c, how, pick.probe, now),
            _ => None,
        };
        let breaker = self.noted(&t.key, recorded);
        Settled { health, breaker }
    }

    /// The index of the target at `url`, if it is one.
    fn index(&self, url: &str) -> Option<usize> {
        self.urls.iter().position(|u| &**u == url)
    }

    /// For a definition older than the state's: the first of its targets, none of `skip`, that
    /// the state knows as available (no round robin, no breaker: only for the moments a
    /// reload overlaps requests).
    fn stale_pick(&self, t: &Targeting, now: i64, skip: &[usize]) -> Option<usize> {
        (0..t.urls.len()).find(|&i| {
            t.weights[i] > 0
                && !skip.contains(&i)
                && self
                    .index(&t.urls[i])
                    .is_none_or(|j| self.targets[j].health.available(now))
        })
    }

    fn pick(
        &mut self,
        t: &Targeting,
        key: Option<&[u8]>,
        now: i64,
        skip: &[usize],
    ) -> Option<usize> {
        let targets = &self.targets;
        let eligible = |i: usize| !skip.contains(&i) && targets[i].health.available(now);
        match (&t.balance, &t.ring, key) {
            (Strategy::Hash(_), Some(ring), Some(key)) => ring.owner(key, eligible),
            (Strategy::LeastRequests, _, _) => {
                let inflight: Vec<u64> = targets.iter().map(|s| s.inflight).collect();
                balance::least_requests(&mut self.smooth, &t.weights, &inflight, eligible)
            }
            _ => self.smooth.pick(&t.weights, eligible),
        }
    }
}

impl Upstreams {
    pub fn new() -> Upstreams {
        Upstreams::default()
    }

    /// The backend's state, when this registry found it for `t` before.
    fn found<'t>(&self, t: &'t Targeting) -> Option<&'t Arc<Mutex<BackendState>>> {
        (t.found.get().filter(|f| f.owner == self.id)).map(|f| &f.state)
    }

    fn state(&self, t: &Targeting) -> Arc<Mutex<BackendState>> {
        if let Some(state) = self.found(t) {
            return state.clone();
        }
        let state = self.look_up(t);
        let _ = t.found.set(Found {
            owner: self.id,
            state: state.clone(),
        });
        state
    }

    fn look_up(&self, t: &Targeting) -> Arc<Mutex<BackendState>> {
        let found = self
            .backends
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&t.key)
            .cloned();
        match found {
            Some(s) => s,
            None => self
                .backends
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(t.key.clone())
                .or_insert_with(|| Arc::new(Mutex::new(BackendState::new(t))))
                .clone(),
        }
    }

    /// Run `f` on the backend's state, aligned with `t`; `f` learns whether the state follows
    /// `t` (see [`BackendState::align`]).
    fn with<R>(&self, t: &Targeting, f: impl FnOnce(&mut BackendState, bool) -> R) -> R {
        // borrowed when found before: no reference counted per call
        let looked_up;
        let state = match self.found(t) {
            Some(found) => found,
            None => {
                looked_up = self.state(t);
                &looked_up
            }
        };
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let current = s.align(t);
        f(&mut s, current)
    }

    /// Whether a request may go to the backend now, and to which target. `key` is the
    /// request's balancing key for `balance hash` (`None`: it has none, and the round robin
    /// places it).
    pub fn choose(&self, t: &Targeting, key: Option<&[u8]>, now: i64) -> Chosen {
        self.with(t, |s, current| {
            if !current {
                let choice = match s.stale_pick(t, now, &[]) {
                    Some(target) => Choice::Target(Pick {
                        target,
                        probe: false,
                    }),
                    None => Choice::NoTarget,
                };
                return Chosen {
                    choice,
                    breaker: None,
                    transition: None,
                };
            }
            let (admit, admitted) = match &mut s.breaker {
                Some((c, b)) => b.admit(c, now),
                None => (Admit::Pass, None),
            };
            let mut transition = s.noted(&t.key, admitted);
            let choice = match admit {
                Admit::Refuse => Choice::BreakerOpen,
                _ => match s.pick(t, key, now, &[]) {
                    Some(target) => Choice::Target(Pick {
                        target,
                        probe: admit == Admit::Probe,
                    }),
                    None => {
                        // a probe that finds no target has failed
                        if let (Admit::Probe, Some((c, b))) = (admit, &mut s.breaker) {
                            let reopened = b.record(c, Attempted::ConnectFailed, true, now);
                            transition = s.noted(&t.key, reopened).or(transition);
                        }
                        Choice::NoTarget
                    }
                },
            };
            Chosen {
                choice,
                breaker: s.breaker.as_ref().map(|(_, b)| b.phase),
                transition,
            }
        })
    }

    /// Another target for a retry, none of `tried`, if the retry budget allows one.
    pub fn retry(&self, t: &Targeting, tried: &[usize], now: i64) -> Option<usize> {
        self.with(t, |s, current| {
            if let Some(percent) = t.retry_budget {
                let allowed = (s.live * u64::from(percent) / 100).max(MIN_RETRY_CONCURRENCY);
                if s.retries >= allowed {
                    return None;
                }
            }
            match current {
                true => s.pick(t, None, now, tried),
                false => s.stale_pick(t, now, tried),
            }
        })
    }

    /// Count a request going to `target` until the returned guard is dropped.
    pub fn begin(&self, t: &Targeting, target: usize, retry: bool) -> InFlight {
        let state = self.state(t);
        let url = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.align(t);
            let i = t.urls.get(target).and_then(|u| s.index(u));
            if let Some(i) = i {
                s.targets[i].inflight += 1;
            }
            s.live += 1;
            s.retries += u64::from(retry);
            i.map(|i| s.urls[i].clone())
        };
        InFlight {
            state,
            url,
            retry,
            ended: false,
        }
    }

    /// Count how an attempt ended: the target's passive health and the breaker.
    pub fn settle(&self, t: &Targeting, pick: Pick, how: Attempted, now: i64) -> Settled {
        self.with(t, |s, current| s.settle(t, pick, how, now, current))
    }

    /// The targets whose active probe is due at `now`, each scheduled for its next round. A
    /// target's first probe is due when the backend is first seen.
    pub fn due_probes(&self, t: &Targeting, now: i64) -> Vec<usize> {
        let Some(check) = &t.health else {
            return Vec::new();
        };
        self.with(t, |s, current| {
            let mut due = Vec::new();
            if !current {
                return due;
            }
            for (i, ts) in s.targets.iter_mut().enumerate() {
                let at = *ts.next_probe.get_or_insert(now);
                if at <= now {
                    due.push(i);
                    ts.next_probe = Some(now + check.every_ms as i64);
                }
            }
            due
        })
    }

    /// When the backend's next active probe is due, a target never probed being due `now`
    /// (`None`: the backend has no active check).
    pub fn earliest_probe(&self, t: &Targeting, now: i64) -> Option<i64> {
        t.health.as_ref()?;
        self.with(t, |s, current| {
            if !current {
                return None;
            }
            s.targets
                .iter()
                .map(|ts| ts.next_probe.unwrap_or(now))
                .min()
        })
    }

    /// Count an active probe's result for the target at `url` (if it is still a target).
    pub fn probed(&self, t: &Targeting, url: &str, ok: bool) -> Option<Change> {
        let check = t.health.as_ref()?;
        self.with(t, |s, current| {
            // a probe sent for a definition a reload has replaced counts for nothing
            let i = s.index(url).filter(|_| current)?;
            s.targets[i].health.probed(ok, check)
        })
    }

    /// The targets that cannot take a request now, and why: for the trace.
    pub fn unavailable(&self, t: &Targeting, now: i64) -> Vec<(usize, String)> {
        self.with(t, |s, current| {
            let mut out = Vec::new();
            if !current {
                return out;
            }
            for (i, ts) in s.targets.iter().enumerate() {
                if !ts.health.active_up {
                    out.push((i, "unhealthy (active checks)".to_string()));
                } else if let Some(until) = ts.health.ejected_until.filter(|u| now < *u) {
                    out.push((i, format!("ejected for {}ms more (passive)", until - now)));
                } else if t.weights.get(i) == Some(&0) {
                    out.push((i, "drained (weight 0)".to_string()));
                }
            }
            out
        })
    }

    /// Every backend's state, by key, for `/config` and `/metrics`.
    pub fn views(&self, now: i64) -> Vec<BackendView> {
        let backends = self.backends.read().unwrap_or_else(|e| e.into_inner());
        let mut views: Vec<BackendView> = backends
            .iter()
            .map(|(key, state)| {
                let s = state.lock().unwrap_or_else(|e| e.into_inner());
                BackendView {
                    key: key.clone(),
                    breaker: s.breaker.as_ref().map(|(_, b)| b.phase),
                    transitions: s.transitions,
                    targets: s
                        .urls
                        .iter()
                        .zip(&s.targets)
                        .map(|(url, ts)| TargetView {
                            url: url.to_string(),
                            available: ts.health.available(now),
                            healthy: ts.health.active_up,
                            ejected_until: ts.health.ejected_until,
                            inflight: ts.inflight,
                        })
                        .collect(),
                }
            })
            .collect();
        views.sort_by(|a, b| a.key.cmp(&b.key));
        views
    }

    /// After a reload: forget backends the policy no longer has, and bring the others in line
    /// with their new definitions now (not at their next request), so `/config` and
    /// `/metrics` show the new state at once.
    pub fn adopt(&self, backends: &[&Targeting]) {
        let mut map = self.backends.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|k, _| backends.iter().any(|t| t.key == *k));
        for t in backends {
            if let Some(state) = map.get(&t.key) {
                state.lock().unwrap_or_else(|e| e.into_inner()).align(t);
            }
        }
    }
}

impl InFlight {
    /// End the count and count how the attempt ended (see [`Upstreams::settle`]), under one
    /// lock.
    pub fn settle(mut self, t: &Targeting, pick: Pick, how: Attempted, now: i64) -> Settled {
        self.ended = true;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.uncount(&mut s);
        let current = s.align(t);
        s.settle(t, pick, how, now, current)
    }

    /// Take the request out of the counts.
    fn uncount(&self, s: &mut BackendState) {
        if let Some(i) = self.url.as_deref().and_then(|u| s.index(u)) {
            let ts = &mut s.targets[i];
            ts.inflight = ts.inflight.saturating_sub(1);
        }
        s.live = s.live.saturating_sub(1);
        if self.retry {
            s.retries = s.retries.saturating_sub(1);
        }
    }
}

/// A request in flight to a target; dropping it (or settling it) ends the count.
pub struct InFlight {
    state: Arc<Mutex<BackendState>>,
    /// By URL: the target's index may change if a reload realigns the backend meanwhile.
    url: Option<Arc<str>>,
    retry: bool,
    ended: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.ended {
            self.uncount(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::breaker::{Config, Phase, Rule, Trip};

    fn targeting(weights: &[u32]) -> Targeting {
        let urls = (0..weights.len())
            .map(|i| format!("http://10.0.0.{i}"))
            .collect();
        Targeting::new(
            "shop/orders".into(),
            urls,
            weights.to_vec(),
            Strategy::RoundRobin,
            None,
            Passive::IMPLICIT,
            None,
            None,
        )
    }

    fn with_breaker(mut t: Targeting) -> Targeting {
        t = Targeting::new(
            t.key,
            t.urls,
            t.weights,
            t.balance,
            t.health,
            t.passive,
            Some(Config {
                trip: Trip::default_conditions(),
                rule: Rule::Count {
                    failures: 2,
                    within_ms: 10_000,
                },
                open_ms: 5_000,
                probes: 1,
            }),
            t.retry_budget,
        );
        t
    }

    fn target(c: Chosen) -> usize {
        match c.choice {
            Choice::Target(p) => p.target,
            other => panic!("{other:?}"),
        }
    }

    const E503: Attempted = Attempted::Answered { status: 503, ms: 1 };
    const OK: Attempted = Attempted::Answered { status: 200, ms: 1 };

    #[test]
    fn ninety_ten_weights_give_exactly_ninety_ten_over_each_hundred() {
        let u = Upstreams::new();
        let t = targeting(&[90, 10]);
        let picks: Vec<usize> = (0..1000).map(|_| target(u.choose(&t, None, 0))).collect();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 100);
    }

    #[test]
    fn a_refused_connection_takes_a_target_out_for_ten_seconds() {
        let u = Upstreams::new();
        let t = targeting(&[1, 1]);
        let first = target(u.choose(&t, None, 0));
        let pick = Pick {
            target: first,
            probe: false,
        };
        u.settle(&t, pick, Attempted::ConnectFailed, 0);
        for now in [1, 2, 9_999] {
            assert_ne!(target(u.choose(&t, None, now)), first);
        }
        let back: Vec<usize> = (0..2).map(|_| target(u.choose(&t, None, 10_000))).collect();
        assert!(back.contains(&first));
    }

    #[test]
    fn with_every_target_out_there_is_no_target() {
        let u = Upstreams::new();
        let t = targeting(&[1]);
        let pick = Pick {
            target: 0,
            probe: false,
        };
        u.settle(&t, pick, Attempted::ConnectFailed, 0);
        assert_eq!(u.choose(&t, None, 1).choice, Choice::NoTarget);
        let drained = targeting(&[0, 0]);
        assert_eq!(u.choose(&drained, None, 0).choice, Choice::NoTarget);
    }

    #[test]
    fn an_open_breaker_refuses_then_probes_then_closes() {
        let u = Upstreams::new();
        let t = with_breaker(targeting(&[1]));
        let pick = Pick {
            target: 0,
            probe: false,
        };
        u.choose(&t, None, 0);
        u.settle(&t, pick, E503, 0);
        u.choose(&t, None, 1);
        let s = u.settle(&t, pick, E503, 1);
        assert_eq!(s.breaker, Some(Transition::Opened { until: 5_001 }));
        let c = u.choose(&t, None, 2);
        assert_eq!(c.choice, Choice::BreakerOpen);
        assert_eq!(c.breaker, Some(Phase::Open { until: 5_001 }));
        let c = u.choose(&t, None, 5_001);
        assert_eq!(c.transition, Some(Transition::HalfOpened));
        let Choice::Target(probe) = c.choice else {
            panic!("{c:?}")
        };
        assert!(probe.probe);
        assert_eq!(u.choose(&t, None, 5_002).choice, Choice::BreakerOpen);
        assert_eq!(
            u.settle(&t, probe, OK, 5_003).breaker,
            Some(Transition::Closed)
        );
        assert_eq!(u.choose(&t, None, 5_004).breaker, Some(Phase::Closed));
    }

    #[test]
    fn a_reload_keeps_the_health_of_targets_that_stay_and_an_unchanged_breaker() {
        let u = Upstreams::new();
        let t = with_breaker(targeting(&[1, 1]));
        let pick = Pick {
            target: 1,
            probe: false,
        };
        u.settle(&t, pick, Attempted::ConnectFailed, 0);
        u.settle(&t, pick, Attempted::ConnectFailed, 0);
        // target 1 (10.0.0.1) is ejected and the breaker is open; a reload adds a target
        let mut urls = t.urls.clone();
        urls.insert(0, "http://10.0.0.9".into());
        let t2 = Targeting::new(
            t.key.clone(),
            urls,
            vec![1, 1, 1],
            Strategy::RoundRobin,
            None,
            Passive::IMPLICIT,
            t.breaker.clone(),
            None,
        );
        let v = &u.views(1)[0];
        assert_eq!(v.targets.len(), 2);
        u.choose(&t2, None, 1);
        let v = &u.views(1)[0];
        assert_eq!(v.breaker, Some(Phase::Open { until: 5_000 }));
        let ejected: Vec<_> = v.targets.iter().filter(|t| !t.available).collect();
        assert_eq!(ejected.len(), 1);
        assert_eq!(ejected[0].url, "http://10.0.0.1");
        // a changed breaker starts closed
        let t3 = Targeting::new(
            t.key.clone(),
            t2.urls.clone(),
            vec![1, 1, 1],
            Strategy::RoundRobin,
            None,
            Passive::IMPLICIT,
            t.breaker.clone().map(|c| Config { open_ms: 1, ..c }),
            None,
        );
        assert_eq!(u.choose(&t3, None, 2).breaker, Some(Phase::Closed));
    }

    #[test]
    fn a_request_on_the_replaced_definition_never_turns_the_state_back() {
        let u = Upstreams::new();
        let old = with_breaker(targeting(&[1, 1]));
        let new = Targeting::new(
            old.key.clone(),
            old.urls.clone(),
            vec![1, 1],
            Strategy::RoundRobin,
            None,
            Passive::IMPLICIT,
            old.breaker.clone().map(|c| Config {
                open_ms: 9_000,
                ..c
            }),
            None,
        );
        u.choose(&new, None, 0);
        // two failures that would trip the old breaker land after the reload
        let pick = Pick {
            target: 0,
            probe: false,
        };
        u.settle(&old, pick, E503, 1);
        u.settle(&old, pick, E503, 2);
        assert_eq!(u.choose(&new, None, 3).breaker, Some(Phase::Closed));
        // the old definition still gets a target it can use
        assert!(matches!(u.choose(&old, None, 4).choice, Choice::Target(_)));
        assert_eq!(u.choose(&new, None, 5).breaker, Some(Phase::Closed));
    }

    #[test]
    fn the_retry_budget_caps_retries_in_flight_but_allows_a_minimum() {
        let u = Upstreams::new();
        let mut t = targeting(&[1, 1]);
        t.retry_budget = Some(20);
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(u.begin(&t, 0, false));
        }
        // 10 live requests: 20 % is 2, below the minimum of 3
        for _ in 0..3 {
            assert_eq!(u.retry(&t, &[0], 0), Some(1));
            held.push(u.begin(&t, 1, true));
        }
        assert_eq!(u.retry(&t, &[0], 0), None);
        held.pop();
        assert_eq!(u.retry(&t, &[0], 0), Some(1));
    }

    #[test]
    fn a_retry_never_goes_to_a_target_already_tried() {
        let u = Upstreams::new();
        let t = targeting(&[1, 1, 1]);
        assert_eq!(u.retry(&t, &[0, 1], 0), Some(2));
        assert_eq!(u.retry(&t, &[0, 1, 2], 0), None);
    }

    #[test]
    fn least_requests_avoids_the_busy_target() {
        let u = Upstreams::new();
        let mut t = targeting(&[1, 1]);
        t.balance = Strategy::LeastRequests;
        let _busy = u.begin(&t, 0, false);
        for _ in 0..3 {
            assert_eq!(target(u.choose(&t, None, 0)), 1);
        }
    }

    #[test]
    fn probes_are_due_at_first_sight_then_every_interval() {
        let u = Upstreams::new();
        let mut t = targeting(&[1, 1]);
        t.health = Some(Active {
            path: "/healthz".into(),
            every_ms: 10_000,
            timeout_ms: 2_000,
            healthy: 1,
            unhealthy: 1,
            status: 200..=200,
        });
        assert_eq!(u.due_probes(&t, 0), vec![0, 1]);
        assert!(u.due_probes(&t, 9_999).is_empty());
        assert_eq!(u.due_probes(&t, 10_000), vec![0, 1]);
        assert_eq!(
            u.probed(&t, "http://10.0.0.0", false),
            Some(Change::WentDown)
        );
        for _ in 0..3 {
            assert_eq!(target(u.choose(&t, None, 10_001)), 1);
        }
        assert_eq!(u.probed(&t, "http://gone", true), None);
    }
}
