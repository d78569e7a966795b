//! Step 11 for a forward with backend-request statements: the request the backend receives
//! (see [`crate::upstream::shape`]), planned here so `serve`, `explain` and `rulegate test`
//! read one plan. A forward without such statements never comes here.

use super::{path_safety, rewrite, Outcome, Pipeline, Routed, Verdict};
use crate::check::Phase;
use crate::compile::ForwardAction;
use crate::dialect::Reason;
use crate::upstream::orchestrate::Orchestration;
use crate::upstream::shape::{Known, Refused, Shaped, Shaping, Source};
use crate::upstream::sign::{Signer, Stamp};
use crate::vocab::ParamLocation;
use std::sync::Arc;

impl Pipeline<'_, '_> {
    /// The backend request's target (path and query) and the shaping plan, or a refusal for
    /// a mapped value that cannot be sent.
    pub(super) fn shaped(
        &mut self,
        r: &Routed<'_, '_>,
        f: &ForwardAction,
        shaping: &Arc<Shaping>,
    ) -> Result<(String, Box<Shaped>), Outcome> {
        if shaping.reads_form && self.head.body.is_none() {
            self.step(
                Phase::Action,
                Verdict::Done,
                "a backend parameter comes from the form: read the body first",
            );
            return Err(Outcome::NeedBody {
                limit: r.route.body_limit,
            });
        }
        let service = r.service;
        let client = self.client_ip(service);
        let app = self.d.app.map(|a| &service.apps[a]);
        let stage = self.d.stage.and_then(|s| service.stages.names().get(s));
        let known = Known {
            head: self.head,
            vars: &r.vars,
            client,
            request_id: &self.d.request_id,
            stage: stage.map(String::as_str),
            service: &service.name,
            route: &r.route.label,
            app: app.map(|a| (a.key.as_str(), a.name.as_str())),
            now_ms: self.env.now_ms(),
            claims: self.claims.as_ref(),
            authorizer: self.d.authorizer_context.as_deref(),
        };
        let shaped = match shaping.apply(&known) {
            Ok(s) => s,
            // named as the client sent it when it sent it
            Err(Refused::Unsendable(p)) => {
                let (location, name) = match &p.source {
                    Source::Request(location, name) => (*location, name.as_str()),
                    _ => (ParamLocation::Header, p.name.as_str()),
                };
                return Err(self.unsendable(&p.to_string(), location, name));
            }
            Err(Refused::NoRule(i)) => return Err(self.no_rule(&shaping.orchestrations[i])),
        };
        if self.tracing {
            self.orchestrated(shaping, &shaped);
        }
        for (name, value) in &shaped.path {
            if !path_safety::segment_is_safe(value) {
                let what = format!("path {name:?}");
                return Err(self.unsendable(&what, ParamLocation::Path, name));
            }
        }
        let path = match &f.path {
            None => r.path.to_string(),
            Some(t) => {
                let mut vars = r.vars.clone();
                vars.extend(shaped.path.iter().map(|(k, v)| (k.as_str(), v.clone())));
                rewrite(t, &vars, r.rest.as_ref())
            }
        };
        let target = match shaped.query_string(self.head.query()) {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        Ok((target, Box::new(shaped)))
    }

    /// What a signing backend's signature covers: the time, and the body's hash (the body is
    /// read first when the signature covers it).
    pub(super) fn stamp(
        &mut self,
        r: &Routed<'_, '_>,
        backend: &str,
        signer: &Signer,
    ) -> Result<Box<Stamp>, Outcome> {
        if signer.needs_body() && self.head.body.is_none() {
            self.step(
                Phase::Action,
                Verdict::Done,
                format_args!("backend {backend} signs the body: read it first"),
            );
            return Err(Outcome::NeedBody {
                limit: r.route.body_limit,
            });
        }
        let body = self.head.body.unwrap_or_default();
        Ok(Box::new(signer.stamp(self.env.now_ms(), body)))
    }

    /// A trace step per orchestration that gave a value: which rule did.
    fn orchestrated(&mut self, shaping: &Shaping, shaped: &Shaped) {
        for &(i, matched) in &shaped.orchestrated {
            let o = &shaping.orchestrations[i];
            let value = match &shaping.orchestrated[i].header {
                Some(name) => shaped
                    .headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, v)| v.to_str().ok()),
                None => shaped
                    .query
                    .iter()
                    .find(|(n, _)| n == &o.into.1)
                    .map(|(_, v)| v.as_str()),
            }
            .unwrap_or("");
            self.step(
                Phase::Action,
                Verdict::Pass,
                format_args!(
                    "orchestrate {} {:?}: `{}` gives {} {:?} = {value:?}",
                    o.from.0,
                    o.from.1,
                    o.describe(matched),
                    o.into.0.name(),
                    o.into.1
                ),
            );
        }
    }

    fn no_rule(&mut self, o: &Orchestration) -> Outcome {
        let (location, name) = &o.from;
        self.fail(
            Phase::Action,
            format_args!("orchestrate {location} {name:?}: the value matches no rule and there is no default"),
            Reason::OrchestrationFailed {
                location: *location,
                name: name.clone(),
            },
        )
    }

    fn unsendable(&mut self, what: &str, location: ParamLocation, name: &str) -> Outcome {
        self.fail(
            Phase::Action,
            format_args!("backend parameter {what}: its value cannot be sent"),
            Reason::ParamInvalid {
                location,
                name: name.to_string(),
                expected: "a value without control characters".to_string(),
            },
        )
    }
}
