//! Step 11 for a forward with backend-request statements: the request the backend receives
//! (see [`crate::upstream::shape`]), planned here so `serve`, `explain` and `rulegate test`
//! read one plan. A forward without such statements never comes here.

use super::{path_safety, rewrite, Because, ForwardPlan, Outcome, Pipeline, Routed, Verdict};
use crate::check::Phase;
use crate::compile::{Backend, Downgrade, ForwardAction};
use crate::dialect::Reason;
use crate::upstream::balance::{HashOn, Strategy};
use crate::upstream::orchestrate::Orchestration;
use crate::upstream::shape::{Known, Refused, Shaped, Shaping, Source};
use crate::upstream::state::{Choice, Chosen, Pick};
use crate::vocab::ParamLocation;
use std::sync::Arc;

impl Pipeline<'_, '_> {
    /// Step 11 for a forward: the backend request, then the backend and target that take it
    /// (the breaker may downgrade it), then what a signing backend's signature covers.
    ///
    /// The target is chosen last, once nothing can send the pipeline back for the body: a
    /// choice moves the round robin and spends a half-open breaker's probes, so it is made
    /// once per request.
    pub(super) fn forward(
        &mut self,
        r: &Routed<'_, '_>,
        f: &ForwardAction,
        policy: Option<usize>,
        because: Because<'_>,
    ) -> Outcome {
        let (target, shaped) = match &f.shaping {
            None => (self.target(r, f), None),
            Some(s) => match self.shaped(r, f, s) {
                Ok((target, shaped)) => (target, Some(shaped)),
                Err(refused) => return refused,
            },
        };
        let backends = &r.service.backends;
        let fallback = match backends[f.backend].downgrade {
            Downgrade::Backend(other) => Some(other),
            _ => None,
        };
        for b in std::iter::once(f.backend).chain(fallback) {
            if let Err(read_first) = self.body_for_signing(r, &backends[b]) {
                return read_first;
            }
        }
        let (b, pick) = match self.place(r, f.backend) {
            Ok(placed) => placed,
            Err(answered) => return answered,
        };
        let backend = &backends[b];
        let stamp = backend.signer.as_ref().map(|signer| {
            let body = self.head.body.unwrap_or_default();
            Box::new(signer.stamp(self.env.now_ms(), body))
        });
        let tunnel = self.tunnels(r);
        let upgrade = if tunnel { " (websocket upgrade)" } else { "" };
        self.step(
            Phase::Action,
            Verdict::Done,
            format_args!(
                "forward to backend {} as {target}{upgrade}{because}",
                backend.name
            ),
        );
        Outcome::Forward(ForwardPlan {
            backend: b,
            target,
            policy,
            shaped,
            stamp,
            pick,
            tunnel,
        })
    }

    /// The request is an HTTP/1.1 websocket handshake on a route that declares `websocket`:
    /// the backend is asked to switch too, and its `101` is tunnelled. Anywhere else an
    /// `Upgrade` is dropped (see [`crate::request::head::asks_websocket`]); HTTP/1.0 has no
    /// protocol switch, and HTTP/2 none of this kind.
    fn tunnels(&self, r: &Routed<'_, '_>) -> bool {
        let program = &r.route.program;
        program
            .iter()
            .any(|c| matches!(c, crate::check::Check::WebSocket(_)))
            && self.head.version == http::Version::HTTP_11
            && crate::request::head::asks_websocket(self.head.headers)
    }

    /// The backend and target for a forward to backend `b`: its breaker and its targets'
    /// health decide, and an open breaker's downgrade answers instead (a mock, the unavailable
    /// row, or another backend, whose own breaker is not downgraded again).
    fn place(&mut self, r: &Routed<'_, '_>, b: usize) -> Result<(usize, Pick), Outcome> {
        let backend = &r.service.backends[b];
        let chosen = self.choose(r, backend);
        match chosen.choice {
            Choice::Target(pick) => return Ok((b, pick)),
            Choice::NoTarget => return Err(self.no_target(backend)),
            Choice::BreakerOpen => {}
        }
        match &backend.downgrade {
            Downgrade::Mock(m) => {
                self.step(
                    Phase::Action,
                    Verdict::Done,
                    format_args!("downgrade: mock {}", m.answer.status),
                );
                Err(Outcome::Respond(m.answer.clone()))
            }
            Downgrade::Unavailable => Err(self.fail(
                Phase::Action,
                "downgrade: no backend available",
                Reason::NoBackendAvailable,
            )),
            Downgrade::Backend(other) => {
                let fallback = &r.service.backends[*other];
                match self.choose(r, fallback).choice {
                    Choice::Target(pick) => Ok((*other, pick)),
                    Choice::NoTarget => Err(self.no_target(fallback)),
                    Choice::BreakerOpen => Err(self.fail(
                        Phase::Action,
                        format_args!(
                            "downgrade backend {} has its breaker open too: no backend available",
                            fallback.name
                        ),
                        Reason::NoBackendAvailable,
                    )),
                }
            }
        }
    }

    /// Ask the backends' state for a target, and trace what its breaker said.
    fn choose(&mut self, r: &Routed<'_, '_>, backend: &Backend) -> Chosen {
        let key = self.balance_key(r, &backend.targeting.balance);
        let now = self.env.now_ms();
        let chosen = self
            .env
            .upstreams()
            .choose(&backend.targeting, key.as_deref(), now);
        if self.tracing {
            self.unavailable_targets(backend, now);
        }
        // a closed breaker that stayed closed is not worth a line
        let shown = chosen.breaker.filter(|p| {
            chosen.transition.is_some() || *p != crate::upstream::breaker::Phase::Closed
        });
        if let (Some(phase), true) = (shown, self.tracing) {
            let verdict = match chosen.choice {
                Choice::BreakerOpen => Verdict::Fail,
                _ => Verdict::Pass,
            };
            let probe = matches!(chosen.choice, Choice::Target(Pick { probe: true, .. }));
            self.step(
                Phase::Action,
                verdict,
                format_args!(
                    "breaker of backend {}: {}{}",
                    backend.name,
                    crate::upstream::breaker::Shown(phase, now),
                    if probe { ", this request probes" } else { "" }
                ),
            );
        }
        chosen
    }

    /// A trace step naming the backend's targets that cannot take requests, if any.
    fn unavailable_targets(&mut self, backend: &Backend, now: i64) {
        let t = &backend.targeting;
        let out = self.env.upstreams().unavailable(t, now);
        if out.is_empty() {
            return;
        }
        let listed: Vec<String> = out
            .iter()
            .map(|(i, why)| format!("target {} ({}) {why}", i + 1, t.urls[*i]))
            .collect();
        self.step(
            Phase::Action,
            Verdict::Pass,
            format_args!("backend {}: {}", backend.name, listed.join("; ")),
        );
    }

    fn no_target(&mut self, backend: &Backend) -> Outcome {
        self.fail(
            Phase::Action,
            format_args!(
                "backend {}: no target can take the request (drained, unhealthy or ejected)",
                backend.name
            ),
            Reason::NoBackendAvailable,
        )
    }

    /// The request's key for `balance hash`; `None` when it has none.
    fn balance_key(&mut self, r: &Routed<'_, '_>, balance: &Strategy) -> Option<Vec<u8>> {
        let Strategy::Hash(on) = balance else {
            return None;
        };
        match on {
            HashOn::ClientIp => {
                let ip = self.client_ip(r.service).ip()?;
                Some(ip.to_string().into_bytes())
            }
            HashOn::Header(h) => self.head.header(h.as_str()).map(|v| v.as_bytes().to_vec()),
            HashOn::Query(q) => {
                let v = crate::request::head::form_value(self.head.query()?, q)??;
                Some(v.into_bytes())
            }
        }
    }

    /// Have the body read first when `backend` signs over it.
    fn body_for_signing(&mut self, r: &Routed<'_, '_>, backend: &Backend) -> Result<(), Outcome> {
        let Some(signer) = &backend.signer else {
            return Ok(());
        };
        if signer.needs_body() && self.head.body.is_none() {
            self.step(
                Phase::Action,
                Verdict::Done,
                format_args!("backend {} signs the body: read it first", backend.name),
            );
            return Err(Outcome::NeedBody {
                limit: r.route.body_limit,
            });
        }
        Ok(())
    }

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
        let target = match shaped.query_string(self.visible_query().as_deref()) {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        Ok((target, Box::new(shaped)))
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
