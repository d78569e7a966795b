//! Scripted backends: what a backend does in a policy test, so its breaker, its targets'
//! health and the retries can be driven on the virtual clock.
//!
//! ```text
//! backend orders answers 503 times 20      # the next 20 requests it receives get 503
//! backend orders answers 200 after 3s      # from now on, every answer takes 3 s
//! backend orders times out times 2         # the next 2 requests get no answer in time
//! backend orders target 2 down             # target 2 refuses connections (until `up`)
//! ```
//!
//! A statement takes effect from the next request on (like `wait`, it changes the world
//! between requests) and replaces what the backend was scripted to answer before; once its `times` are spent the
//! backend answers 200 again. A backend nobody scripted is not simulated: its forward stays a
//! forward (the test sees the plan, as always) and counts as a success.
//!
//! Nothing is sent. The requests go through the attempt rules `serve` follows (the target
//! `decide` chose, then a retry on another target when [`retryable`] allows it and the backend
//! has retries and budget left), and each attempt's result is counted in the same
//! [`Upstreams`] state, so the breaker trips, the downgrade answers, probes half-open and
//! recovery happen exactly as they would. Active health probes run at their scheduled virtual
//! times before each request: a target that is down fails them; otherwise they see the status
//! the backend is scripted to answer (without spending its `times`).

use crate::compile::{Backend, Snapshot};
use crate::decide::{render_response, Decision, Outcome, Response, Step, Verdict};
use crate::dialect::Reason;
use crate::upstream::health::Attempted;
use crate::upstream::state::{retryable, Pick, Upstreams};
use std::collections::{BTreeSet, HashMap};

/// One `backend NAME …` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub backend: String,
    pub does: Does,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Does {
    /// Answer `status` after `after_ms`, for the next `times` requests (`None`: from now on).
    Answers {
        status: u16,
        after_ms: u64,
        times: Option<u32>,
    },
    /// No answer within the backend's timeout, for the next `times` requests.
    TimesOut { times: Option<u32> },
    /// Target `target` (0-based) refuses connections, or takes them again.
    Target { target: usize, down: bool },
}

pub const USAGE: &str = "backend NAME answers STATUS [after DURATION] [times N]  |  backend NAME times out [times N]  |  backend NAME target N down|up";

/// A `backend` statement's words after the keyword; `Err` names what is wrong.
pub fn parse(words: &[String], duration: impl Fn(&str) -> Option<i64>) -> Result<Script, String> {
    let bad = || format!("expected: {USAGE}");
    let (backend, rest) = words.split_first().ok_or_else(bad)?;
    let times = |rest: &[String]| -> Result<Option<u32>, String> {
        match rest {
            [] => Ok(None),
            [t, n] if t == "times" => match n.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => Err(format!(
                    "`times` takes a whole number above zero, not {n:?}"
                )),
            },
            _ => Err(bad()),
        }
    };
    let does = match rest {
        [a, status, tail @ ..] if a == "answers" => {
            let status = status
                .parse::<u16>()
                .ok()
                // an interim answer is skipped by serve, and a 101 tunnels a websocket a test
                // cannot hold: a backend's answer here is a final one
                .filter(|s| (200..=599).contains(s))
                .ok_or_else(|| format!("{status:?} is not a final HTTP status (200 to 599)"))?;
            let (after_ms, tail) = match tail {
                [a, d, tail @ ..] if a == "after" => {
                    let ms = duration(d).ok_or_else(|| format!("{d:?} is not a duration"))?;
                    (ms as u64, tail)
                }
                _ => (0, tail),
            };
            Does::Answers {
                status,
                after_ms,
                times: times(tail)?,
            }
        }
        [t, o, tail @ ..] if t == "times" && o == "out" => Does::TimesOut {
            times: times(tail)?,
        },
        [t, n, state] if t == "target" && (state == "down" || state == "up") => {
            let n = n.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("targets are numbered from 1 in their listed order, not {n:?}")
            })?;
            Does::Target {
                target: n - 1,
                down: state == "down",
            }
        }
        _ => return Err(bad()),
    };
    Ok(Script {
        backend: backend.clone(),
        does,
    })
}

/// What the scripted backends of one test are doing, by backend name.
#[derive(Debug, Default)]
pub struct Backends {
    scripted: HashMap<String, Scripted>,
}

#[derive(Debug, Default)]
struct Scripted {
    /// The current answer and how many more requests get it (`None`: all of them).
    answer: Option<(Answer, Option<u32>)>,
    down: BTreeSet<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Status { status: u16, after_ms: u64 },
    TimesOut,
}

impl Backends {
    /// Apply a request's `backend` statements; `Err` when one names no backend of the policy.
    pub fn script(&mut self, snap: &Snapshot, scripts: &[Script]) -> Result<(), String> {
        for s in scripts {
            let known = snap
                .services
                .iter()
                .flat_map(|sv| &sv.backends)
                .find(|b| b.name == s.backend);
            let Some(backend) = known else {
                return Err(format!(
                    "no service of the policy has a backend {:?}",
                    s.backend
                ));
            };
            let entry = self.scripted.entry(s.backend.clone()).or_default();
            match s.does {
                Does::Answers {
                    status,
                    after_ms,
                    times,
                } => entry.answer = Some((Answer::Status { status, after_ms }, times)),
                Does::TimesOut { times } => entry.answer = Some((Answer::TimesOut, times)),
                Does::Target { target, down } => {
                    if target >= backend.targets.len() {
                        return Err(format!(
                            "backend {:?} has {} target(s), not {}",
                            s.backend,
                            backend.targets.len(),
                            target + 1
                        ));
                    }
                    match down {
                        true => entry.down.insert(target),
                        false => entry.down.remove(&target),
                    };
                }
            }
        }
        Ok(())
    }

    /// How an attempt at `target` of `backend` ends, spending one of the script's `times`;
    /// `None` when the backend is not scripted.
    fn attempt(&mut self, backend: &Backend, target: usize) -> Option<Attempted> {
        let s = self.scripted.get_mut(&backend.name)?;
        if s.down.contains(&target) {
            return Some(Attempted::ConnectFailed);
        }
        let answer = match &mut s.answer {
            None => Answer::Status {
                status: 200,
                after_ms: 0,
            },
            Some((answer, times)) => {
                let a = *answer;
                if let Some(n) = times {
                    *n -= 1;
                    if *n == 0 {
                        s.answer = None;
                    }
                }
                a
            }
        };
        Some(outcome(answer, backend.timeout_ms))
    }

    /// What an active probe of `target` sees: refused when down, else the current answer.
    fn probe(&self, backend: &Backend, target: usize) -> Attempted {
        let Some(s) = self.scripted.get(&backend.name) else {
            return Attempted::Answered { status: 200, ms: 0 };
        };
        if s.down.contains(&target) {
            return Attempted::ConnectFailed;
        }
        let timeout = backend
            .targeting
            .health
            .as_ref()
            .map_or(0, |h| h.timeout_ms);
        match s.answer {
            None => Attempted::Answered { status: 200, ms: 0 },
            Some((a, _)) => outcome(a, timeout),
        }
    }

    /// Run the active probes due by `now`, each at its scheduled virtual time.
    pub fn probe_due(&self, snap: &Snapshot, upstreams: &Upstreams, now: i64) {
        for backend in snap.services.iter().flat_map(|s| &s.backends) {
            let t = &backend.targeting;
            let Some(check) = &t.health else { continue };
            while let Some(at) = upstreams.earliest_probe(t, now).filter(|at| *at <= now) {
                for i in upstreams.due_probes(t, at) {
                    let ok = match self.probe(backend, i) {
                        Attempted::Answered { status, .. } => check.status.contains(&status),
                        _ => false,
                    };
                    upstreams.probed(t, &t.urls[i], ok);
                }
            }
        }
    }

    /// Play a forward against the scripted backend: the attempts, their results counted in
    /// `upstreams`, a step per attempt in the trace. Returns the backend's answer (its status,
    /// no headers, no body), or turns the decision into the row `serve` would answer with;
    /// `None` leaves an unscripted forward as it was.
    pub fn forward(
        &mut self,
        snap: &Snapshot,
        d: &mut Decision,
        replayable: bool,
        upstreams: &Upstreams,
        now: i64,
    ) -> Option<Response> {
        let Outcome::Forward(plan) = &d.outcome else {
            return None;
        };
        let backend = &snap.services[d.service?].backends[plan.backend];
        let t = &backend.targeting;
        let mut pick = plan.pick;
        let mut tried = vec![];
        loop {
            tried.push(pick.target);
            let Some(how) = self.attempt(backend, pick.target) else {
                // not scripted: the forward stands, and counts as answered
                let ok = Attempted::Answered { status: 200, ms: 0 };
                upstreams.settle(t, pick, ok, now);
                return None;
            };
            drop(upstreams.begin(t, pick.target, tried.len() > 1));
            upstreams.settle(t, pick, how, now);
            step(d, backend, pick, how);
            if let Attempted::Answered { status, .. } = how {
                return Some(Response {
                    status,
                    headers: Vec::new(),
                    body: bytes::Bytes::new(),
                });
            }
            let again = retryable(how, replayable) && tried.len() <= backend.retries as usize;
            match again.then(|| upstreams.retry(t, &tried, now)).flatten() {
                Some(next) => {
                    pick = Pick {
                        target: next,
                        probe: false,
                    }
                }
                None => {
                    d.outcome = Outcome::Reject(match how {
                        Attempted::TimedOut => Reason::BackendTimeout,
                        _ => Reason::BackendUnavailable,
                    });
                    return render_response(d);
                }
            }
        }
    }
}

fn outcome(answer: Answer, timeout_ms: u64) -> Attempted {
    match answer {
        Answer::Status { after_ms, .. } if after_ms >= timeout_ms && timeout_ms > 0 => {
            Attempted::TimedOut
        }
        Answer::Status { status, after_ms } => Attempted::Answered {
            status,
            ms: after_ms,
        },
        Answer::TimesOut => Attempted::TimedOut,
    }
}

/// A trace step for one scripted attempt.
fn step(d: &mut Decision, backend: &Backend, pick: Pick, how: Attempted) {
    let what = match how {
        Attempted::Answered { status, ms: 0 } => format!("answered {status}"),
        Attempted::Answered { status, ms } => format!("answered {status} after {ms}ms"),
        Attempted::ConnectFailed => "refused the connection".to_string(),
        Attempted::Reset => "closed the connection".to_string(),
        Attempted::TimedOut => format!("did not answer within {}ms", backend.timeout_ms),
    };
    let verdict = match how {
        Attempted::Answered { .. } => Verdict::Done,
        _ => Verdict::Fail,
    };
    d.trace.push(Step {
        n: 11,
        name: "backend",
        verdict,
        detail: format!(
            "{} target {} ({}) {what} (scripted)",
            backend.name,
            pick.target + 1,
            backend.targeting.urls[pick.target]
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn dur(d: &str) -> Option<i64> {
        d.strip_suffix('s')?.parse::<i64>().ok().map(|s| s * 1000)
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(
            parse(&words("orders answers 503 times 20"), dur)
                .unwrap()
                .does,
            Does::Answers {
                status: 503,
                after_ms: 0,
                times: Some(20)
            }
        );
        assert_eq!(
            parse(&words("orders answers 200 after 3s"), dur)
                .unwrap()
                .does,
            Does::Answers {
                status: 200,
                after_ms: 3000,
                times: None
            }
        );
        assert_eq!(
            parse(&words("orders times out"), dur).unwrap().does,
            Does::TimesOut { times: None }
        );
        assert_eq!(
            parse(&words("orders target 2 down"), dur).unwrap().does,
            Does::Target {
                target: 1,
                down: true
            }
        );
    }

    #[test]
    fn malformed_scripts_say_what_is_wrong() {
        for bad in [
            "orders",
            "orders answers 700",
            // serve never passes an interim answer or an unasked switch on
            "orders answers 101",
            "orders answers 100",
            "orders answers 200 times 0",
            "orders target 0 down",
            "orders target 1 sideways",
            "orders answers 200 after soon",
        ] {
            assert!(parse(&words(bad), dur).is_err(), "{bad}");
        }
    }
}
