//! The route checks: one module a check, and the pipeline's order as one table.
//!
//! # Where a check lives
//!
//! A route's program (pipeline steps 3–10) is a list of [`Check`]s. Each check is one module
//! here that owns its compiled form, its trace text (`Display`), its phase (step number and
//! name, from [`PIPELINE`]) and whether it can refuse a request (what `rulegate test`'s
//! coverage counts as a branch). The [`Check`] enum only delegates, one line an arm, and its
//! matches are exhaustive: a new check that forgets one of them does not compile.
//!
//! # One table for the order
//!
//! [`PIPELINE`] is the pipeline in order: each phase with its step number and trace name.
//! `decide` names phases, never numbers; the compiler sorts a route's program by the table
//! ([`Check::phase`]), so the order in which it assembles the checks does not matter and a
//! new check's place is the row it adds to the table.
//!
//! # Layer
//!
//! `check` sits below `compile` (which assembles the checks from a route's statements) and
//! `decide` (which runs them), above the per-scheme and per-limit pieces it names; it imports
//! neither `compile` nor `decide`.

pub mod auth;
pub mod body_size;
pub mod client_cert;
pub mod client_ip;
pub mod cross_origin;
pub mod limits;
pub mod param;
pub mod protocol;
pub mod websocket;

pub use auth::AuthCheck;
pub use client_ip::IpRules;
pub use limits::Batch;
pub use param::{type_check, ParamCheck, ParamTy, TypeCheck};

use crate::dialect::Reason;
use crate::request::{Client, RequestHead};
use crate::vocab::RateRule;
use std::fmt;

/// What a check's run needs from the pipeline that runs it (`decide::Pipeline` implements it).
///
/// A trait, not `decide`'s types, so a check's run lives with the check without `check`
/// depending on `decide`; the runs are generic over it (monomorphised: one implementation, no
/// dynamic dispatch on the request path). `'a` is the request's lifetime.
pub trait Cx<'a> {
    /// What stops the pipeline: a refusal, or a request for more (the body, counts, an
    /// authorizer's answer).
    type Stop;
    fn head(&self) -> &'a RequestHead<'a>;
    /// Record a step in the trace (formatted only when the trace is kept).
    fn step(&mut self, phase: Phase, verdict: Verdict, detail: impl fmt::Display);
    /// Record a failed step and refuse with `reason`'s row.
    fn fail(&mut self, phase: Phase, detail: impl fmt::Display, reason: Reason) -> Self::Stop;
    /// Stop until the body is read (at most the route's body limit).
    fn need_body(&mut self) -> Self::Stop;
    /// The client address (the peer, or what a trusted proxy names), recorded in the decision.
    fn client_ip(&mut self) -> Client;
    /// A path variable's decoded value.
    fn path_var(&self, name: &str) -> Option<String>;
    /// Step 7, run by the pipeline for now: verification goes through its env (authorizer
    /// calls, nonces in the shared store) and sets the decision's app.
    fn authenticate(&mut self, check: &AuthCheck) -> Result<(), Self::Stop>;
    /// Step 10: count the request's whole batch of limits (see [`limits`]).
    fn count_limits(&mut self) -> Result<(), Self::Stop>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// A step that decided the outcome without refusing (a preflight answer, the action).
    Done,
}

/// A phase of the pipeline (DESIGN.md §4): its row in [`PIPELINE`] gives its number and its
/// name in traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Sanity,
    Host,
    Stage,
    Route,
    Method,
    Protocol,
    ClientCert,
    Cors,
    ClientIp,
    WebSocket,
    Auth,
    Param,
    BodySize,
    Rate,
    Quota,
    Action,
}

/// The pipeline, in the order it runs: (phase, step number, name in traces). Steps 1–2 route
/// the request, 3–10 are a route's checks (its program runs in this order), 11 its action.
pub const PIPELINE: [(Phase, u8, &str); 16] = [
    (Phase::Sanity, 1, "sanity"),
    (Phase::Host, 2, "host"),
    (Phase::Stage, 2, "stage"),
    (Phase::Route, 2, "route"),
    (Phase::Method, 2, "method"),
    (Phase::Protocol, 3, "protocol"),
    (Phase::ClientCert, 3, "client-cert"),
    (Phase::Cors, 4, "cors"),
    (Phase::ClientIp, 5, "client-ip"),
    (Phase::WebSocket, 6, "websocket"),
    (Phase::Auth, 7, "auth"),
    (Phase::Param, 8, "param"),
    (Phase::BodySize, 9, "body-size"),
    (Phase::Rate, 10, "rate"),
    (Phase::Quota, 10, "quota"),
    (Phase::Action, 11, "action"),
];

impl Phase {
    /// The step number (DESIGN.md §4).
    pub const fn n(self) -> u8 {
        PIPELINE[self as usize].1
    }

    /// The name traces show.
    pub const fn name(self) -> &'static str {
        PIPELINE[self as usize].2
    }
}

/// One step of a route's program.
#[derive(Debug)]
pub enum Check {
    Protocol(protocol::Protocols),
    /// The service requires a verified TLS client certificate.
    ClientCertificate,
    /// Cross-origin handling for a route without CORS (the dialect decides what that means).
    CrossOrigin,
    ClientIp(IpRules),
    WebSocket,
    Auth(AuthCheck),
    Param(ParamCheck),
    BodySize(u64),
    Rate(RateRule, Batch),
    Quota(Batch),
}

impl Check {
    /// The phase a check belongs to: its place in the program and its step in traces.
    pub fn phase(&self) -> Phase {
        match self {
            Check::Protocol(_) => protocol::PHASE,
            Check::ClientCertificate => client_cert::PHASE,
            Check::CrossOrigin => cross_origin::PHASE,
            Check::ClientIp(_) => client_ip::PHASE,
            Check::WebSocket => websocket::PHASE,
            Check::Auth(_) => auth::PHASE,
            Check::Param(_) => param::PHASE,
            Check::BodySize(_) => body_size::PHASE,
            Check::Rate(..) => limits::RATE,
            Check::Quota(_) => limits::QUOTA,
        }
    }

    /// The pipeline step a check belongs to (DESIGN.md §4), for `check --print-tree`: the
    /// protocol and the client certificate are both "protocol" there.
    pub fn step(&self) -> &'static str {
        match self {
            Check::ClientCertificate => protocol::PHASE.name(),
            c => c.phase().name(),
        }
    }

    /// Run the check on the request `cx` holds.
    pub fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        match self {
            Check::Protocol(p) => p.run(cx),
            Check::ClientCertificate => client_cert::run(cx),
            Check::CrossOrigin => cross_origin::run(cx),
            Check::ClientIp(r) => r.run(cx),
            Check::WebSocket => websocket::run(cx),
            Check::Auth(a) => cx.authenticate(a),
            Check::Param(p) => p.run(cx),
            Check::BodySize(limit) => body_size::run(*limit, cx),
            Check::Rate(_, batch) | Check::Quota(batch) => limits::run(*batch, cx),
        }
    }

    /// Whether the check can refuse some request: a branch for coverage. `service_body` is
    /// the service's body limit, which every route's program repeats (not a branch of its own).
    pub fn can_refuse(&self, service_body: u64) -> bool {
        match self {
            Check::Protocol(p) => p.can_refuse(),
            Check::ClientCertificate => client_cert::CAN_REFUSE,
            Check::CrossOrigin => cross_origin::CAN_REFUSE,
            Check::ClientIp(_) => client_ip::CAN_REFUSE,
            Check::WebSocket => websocket::CAN_REFUSE,
            Check::Auth(_) => auth::CAN_REFUSE,
            Check::Param(p) => p.can_refuse(),
            Check::BodySize(limit) => body_size::can_refuse(*limit, service_body),
            Check::Rate(..) | Check::Quota(_) => limits::CAN_REFUSE,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Protocol(p) => p.fmt(f),
            Check::ClientCertificate => f.write_str(client_cert::TEXT),
            Check::CrossOrigin => f.write_str(cross_origin::TEXT),
            Check::ClientIp(r) => write!(f, "client ip {r}"),
            Check::WebSocket => f.write_str(websocket::TEXT),
            Check::Auth(a) => a.fmt(f),
            Check::Param(p) => p.fmt(f),
            Check::BodySize(n) => body_size::fmt(*n, f),
            Check::Rate(r, _) => r.fmt(f),
            Check::Quota(_) => f.write_str(limits::QUOTA_TEXT),
        }
    }
}

/// Put a route's checks in pipeline order (by [`PIPELINE`], keeping the compiler's order
/// within a phase: the service's address rules before the route's, parameters by location)
/// and mark the first limit check as the one that counts the batch.
pub fn arrange(program: &mut [Check]) {
    program.sort_by_key(Check::phase);
    let first_limit = program.iter_mut().find_map(|c| match c {
        Check::Rate(_, batch) | Check::Quota(batch) => Some(batch),
        _ => None,
    });
    if let Some(batch) = first_limit {
        *batch = Batch::Counts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_is_its_own_row_of_the_pipeline_table_in_order() {
        for (i, (phase, n, _)) in PIPELINE.iter().enumerate() {
            assert_eq!(*phase as usize, i, "{phase:?} is not row {i}");
            if i > 0 {
                assert!(*n >= PIPELINE[i - 1].1, "step numbers go down at {phase:?}");
            }
        }
    }
}
