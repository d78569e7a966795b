//! Step 7: the route's `auth PROVIDER [apps …] [claim …]`: the provider verifies the caller
//! (see `crate::auth`), the caller spends its nonce, then the app's standing (usage plans,
//! binding, frozen, trusted addresses) and the token's claims are checked.
//!
//! Two effects may stop it, and it resumes where it stopped (see `decide/drive.rs`): an
//! external authorizer's answer ([`Cx::external`]), and a nonce looked up in a shared store
//! ([`Cx::need_counts`], the verified caller handed back so the signature is not verified
//! twice).

use super::{once, Answering, Build, Cx, Phase, RouteCheck, RouteFacts, Verdict};
use crate::auth::{Principal, Verified};
use crate::dialect::{AuthFailure, Reason};
use crate::policy::ast::{self, RouteItem};
use crate::policy::diag::{self, Diagnostic};
use std::fmt;

/// A route's `auth` check. Boxed: it is the largest check, and a program's checks are an enum
/// as large as its largest variant, so unboxed it would make every check of every route 104
/// bytes instead of 80 (about 1.1 MiB more per 10k routes).
#[derive(Debug)]
pub struct AuthCheck(Box<AuthRule>);

impl std::ops::Deref for AuthCheck {
    type Target = AuthRule;
    fn deref(&self) -> &AuthRule {
        &self.0
    }
}

/// What an [`AuthCheck`] requires.
#[derive(Debug)]
pub struct AuthRule {
    pub provider: usize,
    pub provider_name: String,
    /// `None`: any app of the service; otherwise the apps bound to this route.
    pub apps: Option<Vec<usize>>,
    /// The same apps by name, for traces.
    pub app_names: Vec<String>,
    pub claims: Vec<(String, Vec<String>)>,
}

impl fmt::Display for AuthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "auth {}", self.provider_name)?;
        if self.apps.is_some() {
            write!(f, " apps {}", self.app_names.join(" "))?;
        }
        for (name, values) in &self.claims {
            write!(f, " claim {name} in {values:?}")?;
        }
        Ok(())
    }
}

impl RouteCheck for AuthCheck {
    const PHASE: Phase = Phase::Auth;

    /// The route's `auth PROVIDER [apps …] [claim …]` (`auth none` compiles to no check).
    fn compile(r: &RouteFacts<'_>, b: &mut dyn Build) -> Vec<Self> {
        let pick: fn(&RouteItem) -> Option<&_> = |i| match i {
            RouteItem::Auth(a) => Some(a),
            _ => None,
        };
        let Some(ast::RouteAuth::Provider {
            provider,
            apps,
            claims,
        }) = once(r.route, b, "auth", pick)
        else {
            return Vec::new();
        };
        let Some((index, kind)) = b.provider(provider) else {
            return Vec::new();
        };
        if let Some(list) = apps {
            if !crate::auth::yields_app(kind) {
                b.error(
                    Diagnostic::error(
                        diag::NOT_APPLICABLE,
                        list[0].span,
                        format!("a {} provider does not identify apps", kind.name()),
                    )
                    .label("apps are callers with access keys")
                    .help(format!(
                        "bind apps to routes that use {}",
                        crate::auth::names(crate::auth::yields_app, "or")
                    )),
                );
            }
        }
        let app_names = apps.iter().flatten().map(|a| a.value.clone()).collect();
        let apps = apps.as_ref().map(|list| {
            let mut out: Vec<usize> = Vec::new();
            for app in list.iter().filter_map(|a| b.app(a)) {
                if !out.contains(&app) {
                    out.push(app);
                }
            }
            out
        });
        if let Some(c) = claims.first() {
            if !crate::auth::carries_claims(kind) {
                b.error(
                    Diagnostic::error(
                        diag::NOT_APPLICABLE,
                        c.name.span,
                        format!("a {} provider carries no claims", kind.name()),
                    )
                    .label("claims come from tokens")
                    .help(format!(
                        "claim rules apply to {} providers",
                        crate::auth::names(crate::auth::carries_claims, "and")
                    )),
                );
            }
        }
        vec![AuthCheck(Box::new(AuthRule {
            provider: index,
            provider_name: provider.value.clone(),
            app_names,
            apps,
            claims: claims
                .iter()
                .map(|c| {
                    let values = c.values.iter().map(|v| v.value.clone()).collect();
                    (c.name.value.clone(), values)
                })
                .collect(),
        }))]
    }

    fn can_refuse(&self, _: u64) -> bool {
        true
    }

    /// The provider's scheme's refusals, then the app's standing (usage plans, binding,
    /// frozen, trusted addresses) where the service's apps make them possible, then claims.
    fn answers(&self, on: &Answering<'_>) -> Vec<Reason> {
        let s = on.service;
        let provider = &s.providers[self.provider];
        let mut out = crate::auth::failures(provider);
        if crate::auth::yields_app(provider.kind()) {
            if s.apps.iter().any(|a| a.outside_plans) {
                out.push(Reason::NoUsagePlan);
            }
            if self.apps.as_ref().is_some_and(|bound| bound.len() < s.apps.len()) {
                out.push(match provider.kind() == ast::AuthKind::ApiApp {
                    true => Reason::Auth(AuthFailure::ApiAppNotBound),
                    false => Reason::AppNotBound,
                });
            }
            if s.apps.iter().any(|a| a.frozen) {
                out.push(Reason::AppFrozen);
            }
            if s.apps.iter().any(|a| !a.trusted_ips.is_empty()) {
                out.push(Reason::AppIpUntrusted);
            }
        }
        if !self.claims.is_empty() {
            out.push(Reason::Auth(AuthFailure::ClaimsDenied));
        }
        out
    }

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        let principal = self.verify(cx)?;
        if let Some(at) = crate::auth::hidden(&cx.service().providers[self.provider]) {
            cx.hide_credential(at);
        }
        // Only a correctly signed request spends its nonce: a forger cannot burn them.
        if let Some(nonce) = &principal.nonce {
            match cx.limiter().first_use(
                cx.service().group,
                &nonce.key,
                nonce.ttl_ms,
                cx.now_ms(),
            ) {
                Some(true) => {}
                Some(false) => {
                    let detail = format!("nonce {} already used", nonce.value);
                    let failure = AuthFailure::Replayed {
                        detail: detail.clone(),
                    };
                    return Err(cx.fail(Phase::Auth, detail, Reason::Auth(failure)));
                }
                None => {
                    let detail = "the nonce is looked up in the shared store first";
                    cx.step(Phase::Auth, Verdict::Done, detail);
                    return Err(cx.need_counts(Some(principal)));
                }
            }
        }
        if let Some(app) = principal.app {
            self.app_standing(cx, app)?;
        }
        for (claim, allowed) in &self.claims {
            let ok = principal
                .claims
                .as_ref()
                .is_some_and(|c| crate::auth::jwt::claim_allows(c, claim, allowed));
            if !ok {
                return Err(cx.fail(
                    Phase::Auth,
                    format_args!("claim {claim} holds none of {}", allowed.join(", ")),
                    Reason::Auth(AuthFailure::ClaimsDenied),
                ));
            }
        }
        cx.step(Phase::Auth, Verdict::Pass, principal.describe);
        cx.keep_claims(principal.claims);
        Ok(())
    }
}

impl AuthCheck {
    /// The caller as the provider verifies it: handed back when the check resumes after its
    /// nonce's lookup; else, once the body is read if the signature covers it, verified.
    fn verify<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<Principal, C::Stop> {
        if let Some(caller) = cx.resumed_caller() {
            return Ok(caller);
        }
        let head = cx.head();
        let service = cx.service();
        let provider = &service.providers[self.provider];
        if head.body.is_none() && crate::auth::needs_body(provider, &head) {
            cx.step(
                Phase::Auth,
                Verdict::Done,
                format_args!(
                    "provider {}: the signature covers the body; read it first",
                    provider.name
                ),
            );
            return Err(cx.need_body());
        }
        match crate::auth::authenticate(service, provider, &head, cx.now_ms()) {
            Verified::Caller(p) => Ok(p),
            Verified::Refused(refusal) => Err(cx.fail(Phase::Auth, refusal.detail, refusal.reason)),
            Verified::External(settings) => cx.external(self.provider, settings),
        }
    }

    /// Once the caller is an app: its usage plans, its binding to the route, whether it is
    /// frozen, its trusted addresses. Records the app in the decision.
    fn app_standing<'a, C: Cx<'a>>(&self, cx: &mut C, index: usize) -> Result<(), C::Stop> {
        let app = &cx.service().apps[index];
        cx.set_app(index);
        if app.outside_plans {
            return Err(cx.fail(
                Phase::Auth,
                format_args!("app {} is in none of this service's usage plans", app.name),
                Reason::NoUsagePlan,
            ));
        }
        if self.apps.as_ref().is_some_and(|bound| !bound.contains(&index)) {
            // Tencent's app authentication has its own row for an app the API does not bind
            let apiapp = cx.service().providers[self.provider].kind() == ast::AuthKind::ApiApp;
            let reason = match apiapp {
                true => Reason::Auth(AuthFailure::ApiAppNotBound),
                false => Reason::AppNotBound,
            };
            return Err(cx.fail(
                Phase::Auth,
                format_args!("app {} is not bound to this route", app.name),
                reason,
            ));
        }
        if app.frozen {
            let detail = format_args!("app {} is frozen", app.name);
            return Err(cx.fail(Phase::Auth, detail, Reason::AppFrozen));
        }
        let ip = cx.client_ip();
        if !app.trusted_ips.is_empty() && !ip.in_any(&app.trusted_ips) {
            let detail = format_args!("{ip} is not among app {}'s trusted addresses", app.name);
            return Err(cx.fail(Phase::Auth, detail, Reason::AppIpUntrusted));
        }
        Ok(())
    }
}
