//! Steps 3–10 as the pipeline runs them: the context a check runs in ([`Running`], the
//! pipeline's side of [`Cx`]), the two runs that still go through the pipeline's env (step 7's
//! verification, step 10's batch of limits), and the CORS answers of step 4. The checks
//! themselves live in `crate::check`.

use super::{Client, Outcome, Pipeline, RequestHead, Routed, Verdict};
use crate::auth::Verified;
use crate::check::{AuthCheck, Cx, Phase};
use crate::compile::{Check, QuotaRule, RateRule, Route, Service};
use crate::dialect::{limit_headers, AuthFailure, LimitKind, Reason, Standing};
use crate::limits::{calendar, Count, Limit};
use crate::vocab::{QuotaPeriod, RateKey, StoreErrorPolicy};

/// The pipeline as a check sees it (see [`Cx`]): the request, the route it matched and the
/// decision so far. Built on the stack for each check.
pub(super) struct Running<'x, 'a, 'r, 's, 'v> {
    pub p: &'x mut Pipeline<'a, 'r>,
    pub r: &'x Routed<'s, 'v>,
}

impl<'r> Cx<'r> for Running<'_, '_, 'r, '_, '_> {
    type Stop = Outcome;

    fn head(&self) -> RequestHead<'r> {
        self.p.head
    }

    fn step(&mut self, phase: Phase, verdict: Verdict, detail: impl std::fmt::Display) {
        self.p.step(phase, verdict, detail)
    }

    fn fail(&mut self, phase: Phase, detail: impl std::fmt::Display, reason: Reason) -> Outcome {
        self.p.fail(phase, detail, reason)
    }

    fn need_body(&mut self) -> Outcome {
        Outcome::NeedBody {
            limit: self.r.route.body_limit,
        }
    }

    fn client_ip(&mut self) -> Client {
        self.p.client_ip(self.r.service)
    }

    fn path_var(&self, name: &str) -> Option<String> {
        let (_, value) = self.r.vars.iter().find(|(k, _)| *k == name)?;
        Some(value.clone())
    }

    fn authenticate(&mut self, check: &AuthCheck) -> Result<(), Outcome> {
        self.p.auth(check, self.r)
    }

    fn count_limits(&mut self) -> Result<(), Outcome> {
        self.p.limits(self.r)
    }
}

impl Pipeline<'_, '_> {
    /// Step 7: verify the caller with the route's provider, spend its nonce, then check the
    /// app's standing and the token's claims.
    fn auth(&mut self, auth: &AuthCheck, r: &Routed<'_, '_>) -> Result<(), Outcome> {
        let head = self.head;
        let provider = &r.service.providers[auth.provider];
        let resumed = self.resume.verified(); // verified before the nonce's lookup
        if resumed.is_none() && head.body.is_none() && crate::auth::needs_body(provider, &head) {
            self.step(
                Phase::Auth,
                Verdict::Done,
                format_args!(
                    "provider {}: the signature covers the body; read it first",
                    provider.name
                ),
            );
            return Err(Outcome::NeedBody {
                limit: r.route.body_limit,
            });
        }
        let verified = resumed.map_or_else(
            || crate::auth::authenticate(r.service.view(), provider, &head, self.env.now_ms()),
            Verified::Caller,
        );
        let principal = match verified {
            Verified::Caller(p) => p,
            Verified::Refused(refusal) => {
                return Err(self.fail(Phase::Auth, refusal.detail, refusal.reason))
            }
            Verified::External(settings) => {
                self.authorizer(auth.provider, provider, settings, r)?
            }
        };
        // Only a correctly signed request spends its nonce: a forger cannot burn them.
        if let Some(nonce) = &principal.nonce {
            let now = self.env.now_ms();
            match self.env.limiter().first_use(&nonce.key, nonce.ttl_ms, now) {
                Some(true) => {}
                Some(false) => {
                    let detail = format!("nonce {} already used", nonce.value);
                    return Err(self.fail(
                        Phase::Auth,
                        &detail,
                        Reason::Auth(AuthFailure::Replayed {
                            detail: detail.clone(),
                        }),
                    ));
                }
                None => {
                    self.step(
                        Phase::Auth,
                        Verdict::Done,
                        "the nonce is looked up in the shared store first",
                    );
                    self.resume = super::drive::Resume::Verified(Box::new(principal));
                    return Err(Outcome::NeedCounts);
                }
            }
        }
        if let Some(app_index) = principal.app {
            self.app_standing(auth, app_index, r)?;
        }
        for (claim, allowed) in &auth.claims {
            let ok = principal
                .claims
                .as_ref()
                .is_some_and(|c| crate::auth::jwt::claim_allows(c, claim, allowed));
            if !ok {
                return Err(self.fail(
                    Phase::Auth,
                    format_args!("claim {claim} holds none of {}", allowed.join(", ")),
                    Reason::Auth(AuthFailure::ClaimsDenied),
                ));
            }
        }
        self.step(Phase::Auth, Verdict::Pass, principal.describe);
        Ok(())
    }

    /// Step 7, once the caller is an app: its usage plans, its binding to the route, whether
    /// it is frozen, its trusted addresses. Records the app in the decision.
    fn app_standing(
        &mut self,
        auth: &AuthCheck,
        app_index: usize,
        r: &Routed<'_, '_>,
    ) -> Result<(), Outcome> {
        let app = &r.service.apps[app_index];
        self.d.app = Some(app_index);
        if app.outside_plans {
            return Err(self.fail(
                Phase::Auth,
                format_args!("app {} is in none of this service's usage plans", app.name),
                Reason::NoUsagePlan,
            ));
        }
        if auth
            .apps
            .as_ref()
            .is_some_and(|bound| !bound.contains(&app_index))
        {
            return Err(self.fail(
                Phase::Auth,
                format_args!("app {} is not bound to this route", app.name),
                Reason::AppNotBound,
            ));
        }
        if app.frozen {
            return Err(self.fail(
                Phase::Auth,
                format!("app {} is frozen", app.name),
                Reason::AppFrozen,
            ));
        }
        let ip = self.client_ip(r.service);
        if !app.trusted_ips.is_empty() && !ip.in_any(&app.trusted_ips) {
            let detail = format!("{ip} is not among app {}'s trusted addresses", app.name);
            return Err(self.fail(Phase::Auth, detail, Reason::AppIpUntrusted));
        }
        Ok(())
    }

    /// Step 10: the route's rates, then the authenticated app's and its plans' rates, then
    /// their quotas, counted as one batch: a store moves none of the counters when one limit
    /// refuses, and a remote store is asked once for all of them.
    fn limits(&mut self, r: &Routed<'_, '_>) -> Result<(), Outcome> {
        let head = self.head;
        let now = self.env.now_ms();
        let (what, counts) = self.batch(r, now);
        if counts.is_empty() {
            return Ok(());
        }

        let tallies = match self.env.limiter().count(&counts, now) {
            Some(Ok(tallies)) => tallies,
            Some(Err(e)) => return self.store_failed(&what, &counts, &e),
            None => {
                self.step(
                    Phase::Rate,
                    Verdict::Done,
                    "counted in the shared store: ask it, then decide again",
                );
                return Err(Outcome::NeedCounts);
            }
        };
        let debug = (self.d.dialect.profile().debug_requested)(head.headers);
        let standings: Vec<Standing<'_>> = what
            .iter()
            .zip(&tallies)
            .map(|(w, t)| Standing {
                kind: w.kind,
                limit: w.limit,
                remaining: t.remaining,
                period: w.period,
            })
            .collect();
        let headers = limit_headers(self.d.dialect, debug, &standings);
        self.d.headers.extend(headers);
        for (w, t) in what.iter().zip(&tallies) {
            match (w.kind, t.allowed) {
                (LimitKind::Quota, true) => self.step(
                    Phase::Quota,
                    Verdict::Pass,
                    format_args!("{}: {} of {} left", w.label, t.remaining, w.limit),
                ),
                (LimitKind::Quota, false) => {
                    let detail = format_args!("{} quota of {} used up", w.label, w.limit);
                    return Err(self.fail(Phase::Quota, detail, Reason::QuotaExceeded));
                }
                (_, true) => self.step(
                    Phase::Rate,
                    Verdict::Pass,
                    format_args!("{}: {} left", w.label, t.remaining),
                ),
                (_, false) => {
                    let secs = t.retry_after_ms.div_ceil(1000).max(1);
                    self.d
                        .headers
                        .push(("Retry-After".to_string(), secs.to_string()));
                    let detail = format_args!("{}: limit reached, retry after {secs}s", w.label);
                    return Err(self.fail(Phase::Rate, detail, Reason::RateLimited));
                }
            }
        }
        Ok(())
    }

    /// The batch: what each count is (for the trace and the limit headers) and the counts.
    fn batch<'s>(&mut self, r: &Routed<'s, '_>, now: i64) -> (Vec<Limited<'s>>, Vec<Count>) {
        let head = self.head;
        let service: &'s Service = r.service;
        let mut what: Vec<Limited<'s>> = Vec::new();
        let mut counts: Vec<Count> = Vec::new();
        let mut rate =
            |rule: &'s RateRule, kind: LimitKind<'s>, value: &str, what: &mut Vec<Limited<'s>>| {
                counts.push(Count {
                    key: format!("rate|{}|{value}", rule.id),
                    limit: Limit::Rate {
                        limit: rule.limit,
                        period_ms: rule.period.millis(),
                        burst: rule.burst,
                    },
                    fail_open: rule.on_store_error == StoreErrorPolicy::Allow,
                });
                what.push(Limited {
                    label: Label::Rate(rule),
                    kind,
                    limit: rule.limit,
                    period: rule.period.name(),
                });
            };
        for check in &r.route.program {
            let Check::Rate(crate::check::rate::Rate { rule, .. }) = check else {
                continue;
            };
            let value = match &rule.key {
                RateKey::App => self
                    .d
                    .app
                    .map(|a| service.apps[a].key.clone())
                    .unwrap_or_default(),
                RateKey::Ip => self.client_ip(service).to_string(),
                RateKey::Route => String::new(),
                RateKey::Header(h) => head.header(h).unwrap_or("").to_string(),
            };
            rate(rule, LimitKind::RouteRate(&rule.key), &value, &mut what);
        }
        let app = self
            .d
            .app
            .filter(|_| r.route.program.iter().any(|c| matches!(c, Check::Quota(_))))
            .map(|a| (a, &service.apps[a]));
        let mut quotas: Vec<(&QuotaRule, Label<'_>)> = Vec::new();
        if let Some((index, app)) = app {
            let plans = service.plans.iter().filter(|p| p.apps.contains(&index));
            for rule in app
                .rates
                .iter()
                .chain(plans.clone().flat_map(|p| p.rates.iter()))
            {
                rate(rule, LimitKind::AppRate, &app.key, &mut what);
            }
            quotas.extend(app.quota.iter().map(|q| (q, Label::App(&app.name))));
            quotas
                .extend(plans.filter_map(|p| p.quota.as_ref().map(|q| (q, Label::Plan(&p.name)))));
        }
        for (rule, owner) in quotas {
            let (start_ms, end_ms) = calendar::window(rule.period, &rule.zone, now);
            let key = app.map_or("", |(_, a)| a.key.as_str());
            counts.push(Count {
                key: format!("quota|{}/{owner}|{key}", service.name),
                limit: Limit::Quota {
                    limit: rule.limit,
                    start_ms,
                    end_ms,
                },
                fail_open: rule.on_store_error == StoreErrorPolicy::Allow,
            });
            what.push(Limited {
                label: owner,
                kind: LimitKind::Quota,
                limit: rule.limit,
                period: match rule.period {
                    QuotaPeriod::Day => "day",
                    QuotaPeriod::Month => "month",
                },
            });
        }
        (what, counts)
    }

    /// The store could not count: each limit's `on store error` decides. One that denies
    /// refuses the request with its own row (a rate's with `Retry-After: 1`); when all allow,
    /// the request passes uncounted.
    fn store_failed(
        &mut self,
        what: &[Limited<'_>],
        counts: &[Count],
        e: &crate::limits::StoreError,
    ) -> Result<(), Outcome> {
        let Some(w) = counts.iter().position(|c| !c.fail_open).map(|i| &what[i]) else {
            self.step(
                Phase::Rate,
                Verdict::Pass,
                format_args!("not counted: {e}; every limit here allows on store error"),
            );
            return Ok(());
        };
        let detail = format_args!("{}: not counted: {e}; on store error deny", w.label);
        if w.kind == LimitKind::Quota {
            return Err(self.fail(Phase::Quota, detail, Reason::QuotaExceeded));
        }
        self.d
            .headers
            .push(("Retry-After".to_string(), "1".to_string()));
        Err(self.fail(Phase::Rate, detail, Reason::RateLimited))
    }

    /// The client address: the peer, or — when the peer is a trusted proxy — what its
    /// proxies' address list says (see [`super::client`]).
    pub(super) fn client_ip(&mut self, service: &Service) -> Client {
        let client =
            super::client::client(self.head.peer, self.head.headers, &service.trusted_proxies);
        self.d.client_ip = client;
        client
    }

    /// Answer a CORS preflight for the route that serves the requested method.
    pub(super) fn preflight(&mut self, r: &Routed<'_, '_>) -> Outcome {
        let head = self.head;
        let origin = head.header(http::header::ORIGIN).unwrap_or("");
        let Some(cors) = &r.route.cors else {
            if r.service.dialect.semantics().cross_origin_needs_cors {
                return self.fail(
                    Phase::Cors,
                    format_args!("preflight from {origin}, and the route has no cors"),
                    Reason::CrossOriginWithoutCors {
                        uri: head.path().to_string(),
                    },
                );
            }
            return self.fail(
                Phase::Cors,
                format_args!("preflight from {origin}, and the route has no cors"),
                Reason::MethodNotAllowed {
                    method: head.method.to_string(),
                    uri: head.path().to_string(),
                },
            );
        };
        let mut headers = Vec::new();
        if cors.allows(origin) {
            push_origin(&mut headers, cors, origin);
            let methods: Vec<&str> = cors.methods.iter().map(|m| m.name()).collect();
            headers.push(("Access-Control-Allow-Methods".into(), methods.join(",")));
            let allow_headers = if cors.headers.is_empty() {
                head.header(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
                    .unwrap_or("")
                    .to_string()
            } else {
                cors.headers.join(",")
            };
            if !allow_headers.is_empty() {
                headers.push(("Access-Control-Allow-Headers".into(), allow_headers));
            }
            if let Some(age) = cors.max_age_secs {
                headers.push(("Access-Control-Max-Age".into(), age.to_string()));
            }
            self.step(
                Phase::Cors,
                Verdict::Done,
                format_args!("preflight from {origin} answered"),
            );
        } else {
            self.step(
                Phase::Cors,
                Verdict::Done,
                format_args!("preflight from {origin}: origin not allowed, no CORS headers"),
            );
        }
        if !cors.any_origin() || cors.credentials {
            headers.push(("Vary".into(), "Origin".into()));
        }
        Outcome::Respond(std::sync::Arc::new(super::Response {
            status: 200,
            headers,
            body: bytes::Bytes::new(),
        }))
    }

    /// CORS headers for an actual (non-preflight) request to a route with cors.
    pub(super) fn cors_headers(&mut self, route: &Route) {
        let Some(cors) = &route.cors else { return };
        let Some(origin) = self.head.header(http::header::ORIGIN) else {
            self.step(Phase::Cors, Verdict::Pass, "no Origin header");
            return;
        };
        let mut headers = Vec::new();
        if cors.allows(origin) {
            push_origin(&mut headers, cors, origin);
            if !cors.expose.is_empty() {
                headers.push((
                    "Access-Control-Expose-Headers".into(),
                    cors.expose.join(","),
                ));
            }
            self.step(
                Phase::Cors,
                Verdict::Pass,
                format_args!("origin {origin} allowed"),
            );
        } else {
            self.step(
                Phase::Cors,
                Verdict::Pass,
                format_args!("origin {origin} not allowed: no CORS headers"),
            );
        }
        if !cors.any_origin() || cors.credentials {
            headers.push(("Vary".into(), "Origin".into()));
        }
        self.d.headers.extend(headers);
    }
}

/// A limit as the trace names it: the rule as written (rates) or its owner (quotas).
#[derive(Clone, Copy)]
enum Label<'s> {
    Rate(&'s RateRule),
    App(&'s str),
    Plan(&'s str),
}

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Rate(r) => write!(f, "{r}"),
            Label::App(name) => write!(f, "app:{name}"),
            Label::Plan(name) => write!(f, "plan:{name}"),
        }
    }
}

/// What one count of the batch is, for the trace and the limit headers.
struct Limited<'s> {
    label: Label<'s>,
    kind: LimitKind<'s>,
    limit: u64,
    period: &'static str,
}

fn push_origin(headers: &mut Vec<(String, String)>, cors: &crate::compile::Cors, origin: &str) {
    // `*` cannot carry credentials: echo the origin then (as Kong does).
    let value = if cors.any_origin() && !cors.credentials {
        "*"
    } else {
        origin
    };
    headers.push(("Access-Control-Allow-Origin".into(), value.to_string()));
    if cors.credentials {
        headers.push(("Access-Control-Allow-Credentials".into(), "true".into()));
    }
}
