//! The driver: one request through the pipeline, its effects answered, the pipeline resumed
//! where it stopped. `serve`, `test` and `explain` all drive requests with [`Drive`].
//!
//! The pipeline is pure, but three of its steps need the world to do something first: read
//! the body (a signature over the body, form parameters, a token request), fetch counts or a
//! nonce's first use from a shared store, ask an external authorizer. A check that needs one
//! records a `done` step saying what it waits for and stops with [`Outcome::NeedBody`],
//! [`Outcome::NeedCounts`] or [`Outcome::NeedAuthorization`].
//!
//! Why a state machine (sans-IO) and not a trait of async effects: `serve` is async and
//! `test`/`explain` are not; a driver that awaits would need an executor offline, one that
//! calls back would need the server's I/O behind a `dyn` on every request. Instead the caller
//! loops: [`Drive::advance`] runs the pipeline until it decides ([`Next::Done`]) or needs an
//! [`Effect`]; the caller does the effect its own way — `serve` awaits the socket, the store
//! or the authorizer; `test` and `explain` answer from the body at hand ([`decide_with_body`])
//! — and hands the result back ([`Drive::body`], [`Drive::counted`], [`Drive::authorized`],
//! or [`Drive::refuse`] when it failed). A request that needs no effect costs one pass, as
//! [`super::decide`] does: nothing is kept, boxed or allocated for it.
//!
//! The effects, when each is asked for, and what answering it does:
//!
//! - [`Effect::ReadBody`]: a check or the action needs the body; read at most `limit` bytes.
//!   The pipeline resumes at the first check that judged the request without it (the
//!   body-size check, if it ran before the stop, so its step shows the body's real size), else
//!   at the check that stopped.
//! - [`Effect::DrainBody`]: the route answers directly (a mock, a preflight) and never read
//!   the body, yet a body over the route's limit is refused as a read would refuse it. This
//!   rule lives here only; each reader (the server's bounded read, the body at hand) says
//!   whether the body fits.
//! - [`Effect::FetchCounts`]: the env's limiter asked the shared store for a nonce or a
//!   batch of counts; once fetched, the pipeline resumes at the check that stopped. A
//!   signature verified before the nonce's lookup is kept, not verified again.
//! - [`Effect::Authorize`]: the authorizer's answer was neither cached nor stubbed; the
//!   answer is handed to the check that stopped, which goes on from it.
//!
//! Resuming keeps what the stopped pass established (service, route, path variables, the
//! request id, the steps so far) and drops only the stop's own `done` step, so the trace and
//! [`Decision::check`] come out as one pass with the effect's answer at hand would give them.

use super::{Decision, Env, Outcome, Pipeline, RequestHead, Routed, Verdict};
use crate::auth::authorizer::{Answer, Call};
use crate::auth::Principal;
use crate::compile::{Provider, Snapshot};
use crate::dialect::Reason;

/// What the caller must do before the pipeline can go on.
#[derive(Debug)]
pub enum Effect<'d> {
    /// Read the body, at most `limit` bytes, then [`Drive::body`] (or [`Drive::refuse`] with
    /// why the read failed: too large, too slow, cut short).
    ReadBody { limit: u64 },
    /// The route answers without the body but refuses one over `limit` bytes: read it and
    /// throw it away, then [`Drive::body`] (or [`Drive::refuse`]).
    DrainBody { limit: u64 },
    /// Have the env's limiter fetch what it was asked (one round trip), then
    /// [`Drive::counted`].
    FetchCounts,
    /// Make this call to the route's authorizer, then [`Drive::authorized`].
    Authorize {
        provider: &'d Provider,
        call: &'d Call,
    },
}

/// What [`Drive::advance`] came to.
#[derive(Debug)]
pub enum Next<'d> {
    Need(Effect<'d>),
    /// Decided: [`Drive::decision`] / [`Drive::finish`].
    Done,
}

/// One request being decided: the pipeline and where it stands.
pub struct Drive<'a, 'r> {
    p: Pipeline<'a, 'r>,
    at: At<'a, 'r>,
    /// The caller knows the request has no body: nothing to drain.
    no_body: bool,
}

enum At<'a, 'r> {
    Start,
    /// Stopped for the effect its outcome names; `answered` once the caller gave the answer.
    Stopped {
        /// Boxed: only a request that stops pays for it, and the `Drive` every request moves
        /// stays small.
        routed: Box<Routed<'a, 'r>>,
        from: Mark,
        answered: bool,
    },
    /// Decided on a direct answer; the caller is to drain the body.
    Draining,
    Done,
}

/// Where the pipeline stood before a check ran: the check's index in the route's program
/// (its length for the action), and how many steps and headers the decision had.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    pub check: usize,
    pub trace: usize,
    pub headers: usize,
}

/// What a check established before it stopped, handed back when it runs again.
#[derive(Default)]
pub(super) enum Resume {
    #[default]
    Nothing,
    /// The caller, verified; its nonce was to be looked up in the shared store.
    /// (Boxed, as the next variant: the pipeline carries a `Resume` on every request, and
    /// these are rare; a small enum keeps the per-request state small to move.)
    Verified(Box<Principal>),
    /// The authorizer's answer to the call the pipeline stopped with.
    Authorized(Box<(Box<Call>, Answer)>),
}

impl Resume {
    /// The verified caller, if the auth check is resuming after its nonce's lookup.
    pub(super) fn verified(&mut self) -> Option<Principal> {
        match std::mem::take(self) {
            Resume::Verified(p) => Some(*p),
            other => {
                *self = other;
                None
            }
        }
    }

    /// The authorizer's answer, if the auth check is resuming after the call.
    pub(super) fn authorized(&mut self) -> Option<(Box<Call>, Answer)> {
        match std::mem::take(self) {
            Resume::Authorized(pair) => Some(*pair),
            other => {
                *self = other;
                None
            }
        }
    }
}

impl<'a, 'r> Drive<'a, 'r> {
    /// Start deciding `head` (its body, if any, is ignored: the pipeline asks for it).
    #[inline]
    pub fn new(snap: &'a Snapshot, mut head: RequestHead<'r>, env: &'a dyn Env) -> Self {
        head.body = None;
        Drive {
            p: Pipeline::new(snap, head, env),
            at: At::Start,
            no_body: false,
        }
    }

    /// The request has no body (its stream has already ended): a direct answer has nothing
    /// to drain, [`Effect::DrainBody`] is not asked for, and neither is [`Effect::ReadBody`].
    /// By `&mut`: the `Drive` (pipeline and decision) is large, and a by-value setter moved
    /// it once more per request.
    pub fn without_body(&mut self) {
        self.no_body = true;
        // known to be empty: a check or a signature that covers the body reads it as such
        self.p.head.body = Some(&[]);
    }

    /// Run the pipeline until it decides or needs an effect: [`Drive::resume`], then
    /// [`Drive::wanted`].
    pub fn advance(&mut self) -> Next<'_> {
        self.resume();
        self.wanted()
    }

    /// Run the pipeline, from the start or where it stopped once its effect is answered,
    /// until it decides or needs an effect. Does nothing while an effect is unanswered.
    pub fn resume(&mut self) {
        match std::mem::replace(&mut self.at, At::Done) {
            At::Start => self.pass(None),
            At::Stopped {
                routed,
                from,
                answered: true,
            } => self.pass(Some((*routed, from))),
            waiting => self.at = waiting,
        }
    }

    /// What the pipeline waits for, or [`Next::Done`].
    pub fn wanted(&self) -> Next<'_> {
        let d = &self.p.d;
        match &self.at {
            At::Start | At::Done => Next::Done,
            At::Draining => Next::Need(Effect::DrainBody {
                limit: self.route_limit().unwrap_or(u64::MAX),
            }),
            At::Stopped { .. } => match &d.outcome {
                Outcome::NeedBody { limit } => Next::Need(Effect::ReadBody { limit: *limit }),
                Outcome::NeedCounts => Next::Need(Effect::FetchCounts),
                Outcome::NeedAuthorization(call) => Next::Need(Effect::Authorize {
                    provider: &self.p.snap.services[d.service.unwrap_or(0)].providers
                        [call.provider],
                    call,
                }),
                _ => Next::Done,
            },
        }
    }

    /// The body, read as [`Effect::ReadBody`] or [`Effect::DrainBody`] asked.
    pub fn body(&mut self, body: &'r [u8]) {
        match &mut self.at {
            At::Stopped { from, answered, .. }
                if matches!(self.p.d.outcome, Outcome::NeedBody { .. }) =>
            {
                self.p.head.body = Some(body);
                // The body-size check judged the request without it: it judges again.
                if let Some(bodyless) = self.p.bodyless.take().filter(|b| b.check < from.check) {
                    *from = bodyless;
                }
                *answered = true;
            }
            At::Draining => self.at = At::Done,
            _ => {}
        }
    }

    /// The env's limiter has fetched what [`Effect::FetchCounts`] asked.
    pub fn counted(&mut self) {
        if let At::Stopped { answered, .. } = &mut self.at {
            *answered = matches!(self.p.d.outcome, Outcome::NeedCounts);
        }
    }

    /// The authorizer's answer to [`Effect::Authorize`]'s call.
    pub fn authorized(&mut self, answer: Answer) {
        let At::Stopped { answered, .. } = &mut self.at else {
            return;
        };
        let outcome = std::mem::replace(&mut self.p.d.outcome, Outcome::Reject(Reason::Internal));
        match outcome {
            Outcome::NeedAuthorization(call) => {
                self.p.resume = Resume::Authorized(Box::new((call, answer)));
                *answered = true;
            }
            other => self.p.d.outcome = other,
        }
    }

    /// The effect failed: refuse the request for `reason`, the trace as it stands.
    pub fn refuse(&mut self, reason: Reason) {
        self.p.d.outcome = Outcome::Reject(reason);
        self.at = At::Done;
    }

    /// The decision as it stands (final once [`Next::Done`]).
    pub fn decision(&self) -> &Decision {
        &self.p.d
    }

    /// The head as the pipeline saw it last (with the body once read).
    pub fn head(&self) -> &RequestHead<'r> {
        &self.p.head
    }

    /// The decision, as it stands: final after [`Next::Done`]; otherwise its outcome names
    /// the effect still wanted. Taken out by `&mut` rather than by consuming the `Drive`:
    /// `serve` keeps the `Drive` in its per-request state, and moving it out to consume it
    /// copied the whole pipeline once more per request. A fresh decision is left behind.
    pub fn finish(&mut self) -> Decision {
        let fresh = Decision::new(self.p.snap, &self.p.head);
        let mut d = std::mem::replace(&mut self.p.d, fresh);
        d.custom = super::response::customized(self.p.snap, &self.p.head, &d);
        d
    }

    /// One pass: from the start, or from where the pipeline stopped.
    fn pass(&mut self, resumed: Option<(Routed<'a, 'r>, Mark)>) {
        let p = &mut self.p;
        let (routed, outcome) = match resumed {
            None => match p.route() {
                Ok(routed) => {
                    let outcome = p.proceed(&routed, 0);
                    (routed, outcome)
                }
                Err(outcome) => {
                    p.d.outcome = outcome;
                    self.at = At::Done;
                    return;
                }
            },
            Some((routed, from)) => {
                p.d.trace.truncate(from.trace);
                p.d.headers.truncate(from.headers);
                p.d.check = None;
                let outcome = p.proceed(&routed, from.check);
                (routed, outcome)
            }
        };
        let stopped = matches!(
            outcome,
            Outcome::NeedBody { .. } | Outcome::NeedCounts | Outcome::NeedAuthorization(_)
        );
        let unread =
            matches!(outcome, Outcome::Respond(_)) && p.head.body.is_none() && !self.no_body;
        p.d.outcome = outcome;
        self.at = if stopped {
            let from = self.stop_mark(&routed);
            At::Stopped {
                routed: Box::new(routed),
                from,
                answered: false,
            }
        } else if unread {
            At::Draining
        } else {
            At::Done
        };
    }

    /// Where the pass stopped: the check that stopped (the action when none did), before its
    /// `done` step.
    fn stop_mark(&self, routed: &Routed<'_, '_>) -> Mark {
        let d = &self.p.d;
        let own_step = d.trace.last().is_some_and(|s| s.verdict == Verdict::Done);
        Mark {
            check: d.check.unwrap_or(routed.route.program.len()),
            trace: d.trace.len() - usize::from(own_step),
            headers: d.headers.len(),
        }
    }

    fn route_limit(&self) -> Option<u64> {
        let d = &self.p.d;
        d.service
            .zip(d.route)
            .map(|(s, r)| self.p.snap.services[s].routes[r].body_limit)
    }
}

/// Decide as `serve` does, with the whole body at hand (`explain`, `test`): the body is read
/// when the pipeline asks, refused when over the limit the read was given (as the server's
/// bounded read refuses it). Remote effects do not arise offline (the virtual world counts in
/// memory and stubs authorizers); if one did, the decision says what it waits for.
pub fn decide_with_body<'r>(
    snap: &Snapshot,
    head: &mut RequestHead<'r>,
    body: &'r [u8],
    env: &dyn Env,
) -> Decision {
    let mut drive = Drive::new(snap, *head, env);
    while let Next::Need(Effect::ReadBody { limit } | Effect::DrainBody { limit }) = drive.advance()
    {
        match body.len() as u64 > limit {
            true => drive.refuse(Reason::BodyTooLarge),
            false => drive.body(body),
        }
    }
    *head = *drive.head();
    drive.finish()
}
