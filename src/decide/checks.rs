//! Steps 3–10 as the pipeline runs them: the context a check runs in ([`Running`], the
//! pipeline's side of [`Cx`]: the request, the route, the decision so far, the env's clock,
//! limiter and authorizer answers), and the CORS answers of step 4. The checks themselves,
//! their runs included, live in `crate::check`.

use super::{Client, Limiter, Outcome, Pipeline, RequestHead, Routed, Verdict};
use crate::auth::{authorizer, Principal, ServiceView};
use crate::check::{Check, Cx, Phase};
use crate::compile::{Route, Service};
use crate::dialect::Reason;
use crate::vocab::Dialect;

/// The pipeline as a check sees it (see [`Cx`]): the request, the route it matched and the
/// decision so far. Built on the stack for each check.
pub(super) struct Running<'x, 'a, 'r, 's, 'v> {
    pub p: &'x mut Pipeline<'a, 'r>,
    pub r: &'x Routed<'s, 'v>,
}

impl<'c, 'r: 'c, 's: 'c> Cx<'c> for Running<'_, '_, 'r, 's, '_> {
    type Stop = Outcome;

    fn head(&self) -> RequestHead<'c> {
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

    fn service(&self) -> ServiceView<'c> {
        self.r.service.view()
    }

    fn program(&self) -> &'c [Check] {
        &self.r.route.program
    }

    fn dialect(&self) -> Dialect {
        self.p.d.dialect
    }

    fn now_ms(&self) -> i64 {
        self.p.env.now_ms()
    }

    fn limiter(&self) -> &dyn Limiter {
        self.p.env.limiter()
    }

    fn app(&self) -> Option<usize> {
        self.p.d.app
    }

    fn set_app(&mut self, app: usize) {
        self.p.d.app = Some(app);
    }

    fn add_header(&mut self, name: impl Into<String>, value: String) {
        self.p.d.headers.push((name.into(), value));
    }

    fn resumed_caller(&mut self) -> Option<Principal> {
        self.p.resume.verified()
    }

    fn need_counts(&mut self, caller: Option<Principal>) -> Outcome {
        if let Some(caller) = caller {
            self.p.resume = super::drive::Resume::Verified(Box::new(caller));
        }
        Outcome::NeedCounts
    }

    fn hide_credential(&mut self, at: (crate::vocab::ParamLocation, String)) {
        self.p.d.hidden = Some(Box::new(at));
    }

    fn keep_claims(&mut self, claims: Option<serde_json::Value>) {
        let route = self.r.route;
        let shaped = super::forwards(route).any(|f| f.shaping.is_some());
        if !route.policies.is_empty() || shaped {
            self.p.claims = claims;
        }
    }

    fn external(
        &mut self,
        provider: usize,
        settings: &authorizer::Config,
    ) -> Result<Principal, Outcome> {
        self.p.authorizer(provider, settings, self.r)
    }
}

impl Pipeline<'_, '_> {
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
