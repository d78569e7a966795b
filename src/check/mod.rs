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

pub mod limits;

pub use auth::AuthCheck;
pub use client_ip::IpRules;
pub use limits::Batch;
pub use param::{type_check, ParamCheck, ParamTy, TypeCheck};

use crate::auth::{Principal, ServiceView};
use crate::dialect::Reason;
use crate::limits::Limiter;
use crate::policy::ast::{self, AuthKind};
use crate::policy::diag::{self, Diagnostic};
use crate::request::{Client, RequestHead};
use crate::vocab::{Dialect, Method, Protocol, RateRule};
use std::fmt;

/// What a check's run needs from the pipeline that runs it (`decide::Pipeline` implements it).
///
/// A trait, not `decide`'s types, so a check's run lives with the check without `check`
/// depending on `decide`; the runs are generic over it (monomorphised: one implementation, no
/// dynamic dispatch on the request path). `'a` is how long what it hands out lives: the request
/// and the snapshot both outlive it, so a run may hold the head, the service or the program
/// while it records steps.
pub trait Cx<'a> {
    /// What stops the pipeline: a refusal, or a request for more (the body, counts, an
    /// authorizer's answer).
    type Stop;
    /// The request's head (a copy: it is a few borrowed slices).
    fn head(&self) -> RequestHead<'a>;
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

    // What step 7 (auth) and step 10 (the limits batch) read and write besides the head.

    /// The route's service: its name, apps, providers and usage plans.
    fn service(&self) -> ServiceView<'a>;
    /// The route's program (the limits batch reads every rate check of it).
    fn program(&self) -> &'a [Check];
    /// The dialect that answers this request.
    fn dialect(&self) -> Dialect;
    /// Milliseconds since the epoch, from the pipeline's clock (virtual in policy tests).
    fn now_ms(&self) -> i64;
    /// The store that counts limits and spends nonces (in memory, a state file, Redis).
    fn limiter(&self) -> &dyn Limiter;
    /// The app step 7 identified, if any.
    fn app(&self) -> Option<usize>;
    /// Record the app step 7 identified in the decision.
    fn set_app(&mut self, app: usize);
    /// Add a header to whatever answer results (limit headers, `Retry-After`).
    fn add_header(&mut self, name: impl Into<String>, value: String);
    /// The caller this check verified before it stopped for its nonce's lookup in the shared
    /// store, handed back once when it runs again (it is not verified twice).
    fn resumed_caller(&mut self) -> Option<Principal>;
    /// Stop until the shared store has fetched what the limiter asks (counts, or a nonce);
    /// `caller` is handed back by [`Cx::resumed_caller`] when the check runs again.
    fn need_counts(&mut self, caller: Option<Principal>) -> Self::Stop;
    /// The verified token's claims, kept for the route's policy backends and backend
    /// parameters when it has any (a move, no copy; dropped otherwise).
    fn keep_claims(&mut self, claims: Option<serde_json::Value>);
    /// The provider hides the caller's credentials: this header or query parameter must not
    /// reach the backend.
    fn hide_credential(&mut self, at: (crate::vocab::ParamLocation, String));
    /// An external authorizer's verdict: from the env's answer (stubbed or cached), or a stop
    /// to ask for one, resumed with the answer the driver fetched (`decide/authorizer.rs`).
    /// Allowed, its context goes to the decision.
    fn external(
        &mut self,
        provider: usize,
        settings: &crate::auth::authorizer::Config,
    ) -> Result<Principal, Self::Stop>;
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

/// What every route check provides; its module's type implements this and one line of
/// [`checks!`] registers it as a variant of [`Check`].
pub trait RouteCheck: fmt::Display + Sized {
    /// Its phase: its place in the program and its step in traces.
    const PHASE: Phase;
    /// The check(s) the route's statements ask for (none when the route needs none), with
    /// their diagnostics. Checks compile in registry order, which is the pipeline's.
    fn compile(route: &RouteFacts<'_>, b: &mut dyn Build) -> Vec<Self>;
    /// Run the check on the request `cx` holds.
    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop>;
    /// Whether it can refuse some request: a branch for `rulegate test`'s coverage.
    /// `service_body` is the service's body limit, which every route's program repeats.
    fn can_refuse(&self, service_body: u64) -> bool;
    /// Every refusal it can give, one reason per row (an example where the reason carries
    /// request values): the route's error contract (`crate::contract`).
    fn answers(&self, on: &Answering<'_>) -> Vec<Reason>;
}

/// What a check's [`RouteCheck::answers`] may read: its service and its route's path
/// template (the example of a `$uri` placeholder).
pub struct Answering<'a> {
    pub service: ServiceView<'a>,
    pub path: &'a str,
}

/// What a check's compilation reads of its route and service (built by `compile`).
pub struct RouteFacts<'r> {
    pub route: &'r ast::Route,
    pub methods: &'r [Method],
    /// The path's variables, in order.
    pub vars: &'r [String],
    pub dialect: Dialect,
    /// The service's protocols.
    pub protocols: &'r [Protocol],
    pub client_cert_required: bool,
    /// The service's `allow ips` / `deny ips`.
    pub service_ips: &'r std::sync::Arc<IpRules>,
    /// The route's body limit (its `limits { body … }`, else its service's).
    pub body_limit: u64,
    pub has_cors: bool,
}

/// What a check's compilation needs from the compiler (`compile` implements it): diagnostics
/// and name lookups. `dyn`: compilation is not on the request path.
pub trait Build {
    fn error(&mut self, d: Diagnostic);
    /// A provider by name, marked used; `None` (with a diagnostic) when undefined.
    fn provider(&mut self, name: &ast::Ident) -> Option<(usize, AuthKind)>;
    /// An app by name; `None` (with a diagnostic) when undefined.
    fn app(&mut self, name: &ast::Ident) -> Option<usize>;
    /// Whether the route's provider (resolved by the auth check, compiled before the limits)
    /// identifies an app.
    fn yields_app(&self) -> bool;
    /// The route's `n`th rate statement as a rule with its counter id.
    fn rate_rule(&mut self, rate: &ast::Rate, n: usize) -> Option<RateRule>;
    /// The rules of the throttle the route binds (`bound`), else of its service's; none when
    /// neither binds one.
    fn throttle(&mut self, bound: Option<&ast::Ident>) -> Vec<RateRule>;
}

/// The statements `pick` selects that may appear once in a route: the first, with an error at
/// each later one.
pub fn once<'r, T>(
    route: &'r ast::Route,
    b: &mut dyn Build,
    what: &str,
    pick: fn(&ast::RouteItem) -> Option<&T>,
) -> Option<&'r T> {
    let mut first: Option<(&T, ast::Span)> = None;
    for item in &route.items {
        let Some(value) = pick(&item.value) else {
            continue;
        };
        match first {
            None => first = Some((value, item.span)),
            Some((_, prev)) => b.error(
                Diagnostic::error(
                    diag::REPEATED_STATEMENT,
                    item.span,
                    format!("`{what}` appears twice"),
                )
                .label("second occurrence")
                .related(prev, "first occurrence")
                .help(format!(
                    "`{what}` may appear once in this block; merge the two"
                )),
            ),
        }
    }
    first.map(|(v, _)| v)
}

/// The registry: `Variant(module::Type)`, one line a check, in pipeline order. It declares the
/// module and generates [`Check`] and its one-line delegations, exhaustive over the variants.
macro_rules! checks {
    ($($(#[$doc:meta])* $variant:ident($module:ident::$ty:ident),)*) => {
        $(pub mod $module;)*

        /// One step of a route's program.
        #[derive(Debug)]
        pub enum Check {
            $($(#[$doc])* $variant($module::$ty),)*
        }

        impl Check {
            /// The phase a check belongs to: its place in the program and its step in traces.
            pub fn phase(&self) -> Phase {
                match self {
                    $(Check::$variant(_) => <$module::$ty as RouteCheck>::PHASE,)*
                }
            }

            /// Run the check on the request `cx` holds.
            pub fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
                match self {
                    $(Check::$variant(c) => c.run(cx),)*
                }
            }

            /// Whether the check can refuse some request (see [`RouteCheck::can_refuse`]).
            pub fn can_refuse(&self, service_body: u64) -> bool {
                match self {
                    $(Check::$variant(c) => c.can_refuse(service_body),)*
                }
            }

            /// Every refusal the check can give (see [`RouteCheck::answers`]).
            pub fn answers(&self, on: &Answering<'_>) -> Vec<Reason> {
                match self {
                    $(Check::$variant(c) => c.answers(on),)*
                }
            }
        }

        impl fmt::Display for Check {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Check::$variant(c) => c.fmt(f),)*
                }
            }
        }

        /// A route's program: every registered check compiled from its statements, in
        /// pipeline order.
        pub fn compile(route: &RouteFacts<'_>, b: &mut dyn Build) -> Box<[Check]> {
            let mut program = Vec::new();
            $(program.extend(
                <$module::$ty as RouteCheck>::compile(route, b).into_iter().map(Check::$variant),
            );)*
            arrange(&mut program);
            // kept for the snapshot's life: no spare capacity (100k routes would carry MBs)
            program.into_boxed_slice()
        }
    };
}

checks! {
    Protocol(protocol::Protocols),
    /// The service requires a verified TLS client certificate.
    ClientCertificate(client_cert::ClientCert),
    /// Cross-origin handling for a route without CORS (the dialect decides what that means).
    CrossOrigin(cross_origin::CrossOrigin),
    ClientIp(client_ip::ClientIp),
    WebSocket(websocket::WebSocket),
    Auth(auth::AuthCheck),
    Param(param::ParamCheck),
    BodySize(body_size::BodySize),
    Rate(rate::Rate),
    Quota(quota::Quota),
}

/// Put a route's checks in pipeline order (by [`PIPELINE`], keeping the compile order within
/// a phase: the service's address rules before the route's, parameters by location) and mark
/// the first limit check as the one that counts the batch.
pub fn arrange(program: &mut [Check]) {
    program.sort_by_key(Check::phase);
    limits::mark_batch(program);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{RateKey, RatePeriod, StoreErrorPolicy, Window};

    fn rate(id: &str) -> Check {
        Check::Rate(rate::Rate {
            rule: Box::new(RateRule {
                id: id.into(),
                limit: 1,
                period: Window::one(RatePeriod::Second),
                key: RateKey::Route,
                burst: 1,
                on_store_error: StoreErrorPolicy::Allow,
                throttle: None,
                except: Vec::new(),
            }),
            batch: Batch::Counted,
        })
    }

    fn batches(program: &[Check]) -> Vec<Option<Batch>> {
        program
            .iter()
            .map(|c| match c {
                Check::Rate(r) => Some(r.batch),
                Check::Quota(q) => Some(q.batch),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_program_runs_in_the_order_of_the_pipeline_table_whatever_order_it_was_compiled_in() {
        let mut program = vec![
            rate("r/0"),
            Check::BodySize(body_size::BodySize(10)),
            Check::WebSocket(websocket::WebSocket),
            rate("r/1"),
            Check::ClientCertificate(client_cert::ClientCert),
        ];
        arrange(&mut program);
        let order: Vec<String> = program.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            order,
            [
                "verified client certificate",
                "websocket handshake headers",
                "body ≤ 10 bytes",
                "rate 1 per second per route burst 1",
                "rate 1 per second per route burst 1",
            ]
        );
        let ids: Vec<&str> = program
            .iter()
            .filter_map(|c| match c {
                Check::Rate(r) => Some(r.rule.id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(ids, ["r/0", "r/1"], "a phase keeps its compile order");
    }

    #[test]
    fn the_first_limit_check_counts_the_batch_and_the_later_ones_are_counted_with_it() {
        let mut program = vec![
            Check::Quota(quota::Quota {
                batch: Batch::Counted,
            }),
            rate("r/0"),
            Check::BodySize(body_size::BodySize(10)),
            rate("r/1"),
        ];
        arrange(&mut program);
        assert_eq!(
            batches(&program),
            [
                None,
                Some(Batch::Counts),
                Some(Batch::Counted),
                Some(Batch::Counted)
            ]
        );
    }

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
