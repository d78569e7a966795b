//! Steps 3–10: running one check of a route's program, and the CORS answers of step 4.

use super::request;
use super::{Outcome, Pipeline, Routed, Verdict};
use crate::compile::{canonical_ip, Check, ParamCheck, ParamTy, Route, Service};
use crate::dialect::{AuthFailure, Reason};
use crate::policy::ast::RateKey;
use crate::vocab::{ParamLocation, Protocol};
use std::net::IpAddr;

impl Pipeline<'_, '_> {
    pub(super) fn check(
        &mut self,
        check: &Check,
        r: &Routed<'_, '_>,
        used: Protocol,
    ) -> Result<(), Outcome> {
        let head = self.head;
        match check {
            Check::Protocol(allowed) => {
                if !allowed.contains(&used) {
                    return Err(self.fail(
                        3,
                        "protocol",
                        format_args!(
                            "{} not allowed (route takes {})",
                            used.upper(),
                            names(allowed)
                        ),
                        Reason::ProtocolNotAllowed {
                            used,
                            allowed: allowed.clone(),
                        },
                    ));
                }
                self.step(3, "protocol", Verdict::Pass, used.upper());
            }
            Check::ClientCertificate => {
                if !head.client_cert {
                    let detail = if head.tls {
                        "no verified client certificate"
                    } else {
                        "a client certificate needs HTTPS"
                    };
                    return Err(self.fail(
                        3,
                        "client-cert",
                        detail,
                        Reason::ClientCertificateRequired,
                    ));
                }
                self.step(
                    3,
                    "client-cert",
                    Verdict::Pass,
                    "verified client certificate",
                );
            }
            Check::CrossOrigin => {
                if let Some(origin) = head.header("origin") {
                    let own = format!(
                        "{}://{}",
                        if head.tls { "https" } else { "http" },
                        head.host.unwrap_or("")
                    );
                    if !origin.eq_ignore_ascii_case(&own) {
                        let detail =
                            format!("cross-origin request from {origin} and the route has no cors");
                        return Err(self.fail(
                            4,
                            "cors",
                            detail,
                            Reason::CrossOriginWithoutCors {
                                uri: head.path().to_string(),
                            },
                        ));
                    }
                }
                self.step(4, "cors", Verdict::Pass, "same-origin or no Origin header");
            }
            Check::ClientIp(rules) => {
                let ip = self.client_ip(r.service);
                if !rules.admits(ip) {
                    return Err(self.fail(
                        5,
                        "client-ip",
                        format!("{ip} refused by {rules}"),
                        Reason::ClientIpDenied,
                    ));
                }
                self.step(
                    5,
                    "client-ip",
                    Verdict::Pass,
                    format_args!("{ip} admitted by {rules}"),
                );
            }
            Check::WebSocket => {
                if head.header("sec-websocket-key").is_none() {
                    return Err(self.fail(
                        6,
                        "websocket",
                        "no Sec-WebSocket-Key header",
                        Reason::WebSocketKeyMissing,
                    ));
                }
                if head.header("sec-websocket-version").is_none() {
                    return Err(self.fail(
                        6,
                        "websocket",
                        "no Sec-WebSocket-Version header",
                        Reason::WebSocketVersionMissing,
                    ));
                }
                self.step(6, "websocket", Verdict::Pass, "handshake headers present");
            }
            Check::Auth(auth) => {
                let provider = &r.service.providers[auth.provider];
                if head.body.is_none() && crate::auth::needs_body(provider, head) {
                    self.step(
                        7,
                        "auth",
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
                let principal = match crate::auth::authenticate(r.service, provider, head, self.env)
                {
                    Ok(p) => p,
                    Err(refusal) => {
                        return Err(self.fail(7, "auth", refusal.detail, refusal.reason))
                    }
                };
                if let Some(app_index) = principal.app {
                    let app = &r.service.apps[app_index];
                    self.d.app = Some(app_index);
                    if auth
                        .apps
                        .as_ref()
                        .is_some_and(|bound| !bound.contains(&app_index))
                    {
                        return Err(self.fail(
                            7,
                            "auth",
                            format_args!("app {} is not bound to this route", app.name),
                            Reason::AppNotBound,
                        ));
                    }
                    if app.frozen {
                        return Err(self.fail(
                            7,
                            "auth",
                            format!("app {} is frozen", app.name),
                            Reason::AppFrozen,
                        ));
                    }
                    let ip = self.client_ip(r.service);
                    if !app.trusted_ips.is_empty()
                        && !app
                            .trusted_ips
                            .iter()
                            .any(|n| n.contains(&canonical_ip(ip)))
                    {
                        let detail =
                            format!("{ip} is not among app {}'s trusted addresses", app.name);
                        return Err(self.fail(7, "auth", detail, Reason::AppIpUntrusted));
                    }
                }
                for (claim, allowed) in &auth.claims {
                    let ok = principal
                        .claims
                        .as_ref()
                        .is_some_and(|c| crate::auth::jwt::claim_allows(c, claim, allowed));
                    if !ok {
                        return Err(self.fail(
                            7,
                            "auth",
                            format_args!("claim {claim} holds none of {}", allowed.join(", ")),
                            Reason::Auth(AuthFailure::ClaimsDenied),
                        ));
                    }
                }
                self.step(7, "auth", Verdict::Pass, principal.describe);
            }
            Check::Param(p) => self.param(p, r)?,
            Check::BodySize(limit) => {
                let size = match head.body {
                    Some(b) => Some(b.len() as u64),
                    None => head
                        .header("content-length")
                        .and_then(|v| v.trim().parse::<u64>().ok()),
                };
                match size {
                    Some(n) if n > *limit => {
                        return Err(self.fail(
                            9,
                            "body-size",
                            format!("body is {n} bytes, limit {limit}"),
                            Reason::BodyTooLarge,
                        ));
                    }
                    Some(n) => self.step(
                        9,
                        "body-size",
                        Verdict::Pass,
                        format_args!("{n} ≤ {limit} bytes"),
                    ),
                    None => self.step(
                        9,
                        "body-size",
                        Verdict::Pass,
                        format_args!("streamed; cut at {limit} bytes"),
                    ),
                }
            }
            Check::Rate(rule) => {
                let key_value = match &rule.key {
                    RateKey::App => self
                        .d
                        .app
                        .map(|a| r.service.apps[a].key.clone())
                        .unwrap_or_default(),
                    RateKey::Ip => self.client_ip(r.service).to_string(),
                    RateKey::Route => String::new(),
                    RateKey::Header(h) => head.header(h).unwrap_or("").to_string(),
                };
                self.rate(rule, &format!("{}|{key_value}", rule.id))?;
            }
            Check::Quota => self.app_limits(r.service)?,
        }
        Ok(())
    }

    fn rate(&mut self, rule: &crate::compile::RateRule, key: &str) -> Result<(), Outcome> {
        let v = self.env.limiter().rate(key, rule, self.env.now_ms());
        if !v.allowed {
            let secs = v.retry_after_ms.div_ceil(1000).max(1);
            self.d
                .headers
                .push(("Retry-After".to_string(), secs.to_string()));
            return Err(self.fail(
                10,
                "rate",
                format!("{rule}: limit reached, retry after {secs}s"),
                Reason::RateLimited,
            ));
        }
        self.step(
            10,
            "rate",
            Verdict::Pass,
            format!("{rule}: {} left", v.remaining),
        );
        Ok(())
    }

    /// The authenticated app's own rates and quota, then those of its usage plans.
    fn app_limits(&mut self, service: &Service) -> Result<(), Outcome> {
        let Some(app_index) = self.d.app else {
            return Ok(());
        };
        let app = &service.apps[app_index];
        let plans = service.plans.iter().filter(|p| p.apps.contains(&app_index));
        let rates = app.rates.iter().map(|r| (r, format!("app:{}", app.name)));
        let rates = rates.chain(
            plans
                .clone()
                .flat_map(|p| p.rates.iter().map(move |r| (r, format!("plan:{}", p.name)))),
        );
        for (rule, _) in rates {
            self.rate(rule, &format!("{}|{}", rule.id, app.key))?;
        }
        let quotas = app.quota.iter().map(|q| (q, format!("app:{}", app.name)));
        let quotas = quotas
            .chain(plans.filter_map(|p| p.quota.as_ref().map(|q| (q, format!("plan:{}", p.name)))));
        for (rule, owner) in quotas {
            let key = format!("{}/{owner}|{}", service.name, app.key);
            let v = self.env.limiter().quota(&key, rule, self.env.now_ms());
            if !v.allowed {
                let detail = format!("{owner} quota of {} used up", rule.limit);
                return Err(self.fail(10, "quota", detail, Reason::QuotaExceeded));
            }
            self.step(
                10,
                "quota",
                Verdict::Pass,
                format!("{owner}: {} of {} left", v.remaining, rule.limit),
            );
        }
        Ok(())
    }

    fn param(&mut self, p: &ParamCheck, r: &Routed<'_, '_>) -> Result<(), Outcome> {
        let head = self.head;
        let value: Option<Option<String>> = match p.location {
            ParamLocation::Path => r
                .vars
                .iter()
                .find(|(k, _)| *k == p.name)
                .map(|(_, v)| Some(v.clone())),
            ParamLocation::Header => head
                .headers
                .get(p.name.as_str())
                .map(|v| v.to_str().ok().map(|s| s.trim().to_string())),
            ParamLocation::Query => head.query().and_then(|q| request::form_value(q, &p.name)),
            ParamLocation::Form => {
                let Some(body) = head.body else {
                    self.step(
                        8,
                        "param",
                        Verdict::Done,
                        format_args!("form parameter {:?}: read the body first", p.name),
                    );
                    return Err(Outcome::NeedBody {
                        limit: r.route.body_limit,
                    });
                };
                let is_form = head
                    .header("content-type")
                    .and_then(|ct| ct.split(';').next())
                    .is_some_and(|ct| {
                        ct.trim()
                            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                    });
                if !is_form {
                    return Err(self.fail(
                        8,
                        "param",
                        format_args!(
                            "form parameter {:?} needs an application/x-www-form-urlencoded body",
                            p.name
                        ),
                        Reason::FormContentTypeRequired,
                    ));
                }
                match std::str::from_utf8(body) {
                    Ok(text) => request::form_value(text, &p.name),
                    Err(_) => Some(None),
                }
            }
        };
        match value {
            None if p.required => Err(self.fail(
                8,
                "param",
                format_args!("{} parameter {:?} is missing", p.location, p.name),
                Reason::ParamMissing {
                    location: p.location,
                    name: p.name.clone(),
                },
            )),
            None => {
                self.step(
                    8,
                    "param",
                    Verdict::Pass,
                    format_args!("optional {} parameter {:?} absent", p.location, p.name),
                );
                Ok(())
            }
            Some(v) => {
                let verdict = v
                    .as_deref()
                    .map_or(TypeCheck::WrongType, |v| type_check(&p.ty, v));
                let shown = Shown(v.as_deref());
                let (location, name, expected) = (p.location, &p.name, &p.ty);
                match verdict {
                    TypeCheck::Ok => {
                        self.step(
                            8,
                            "param",
                            Verdict::Pass,
                            format_args!("{location} {name:?} = {shown} is {expected}"),
                        );
                        Ok(())
                    }
                    TypeCheck::WrongType => Err(self.fail(
                        8,
                        "param",
                        format_args!("{location} {name:?} = {shown} is not {expected}"),
                        Reason::ParamInvalid {
                            location,
                            name: name.clone(),
                            expected: expected.to_string(),
                        },
                    )),
                    TypeCheck::OutOfRange => Err(self.fail(
                        8,
                        "param",
                        format_args!("{location} {name:?} = {shown} is outside {expected}"),
                        Reason::ParamOutOfRange {
                            location,
                            name: name.clone(),
                            expected: expected.to_string(),
                        },
                    )),
                }
            }
        }
    }

    /// The client address: the peer, or — when the peer is a trusted proxy — the right-most
    /// X-Forwarded-For entry that is not itself a trusted proxy.
    pub(super) fn client_ip(&mut self, service: &Service) -> IpAddr {
        let peer = canonical_ip(self.head.peer);
        let trusted = |ip: &IpAddr| service.trusted_proxies.iter().any(|n| n.contains(ip));
        let mut ip = peer;
        if trusted(&peer) {
            let chain: Vec<IpAddr> = self
                .head
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .map(canonical_ip)
                .collect();
            for hop in chain.iter().rev() {
                ip = *hop;
                if !trusted(hop) {
                    break;
                }
            }
        }
        self.d.client_ip = ip;
        ip
    }

    /// Answer a CORS preflight for the route that serves the requested method.
    pub(super) fn preflight(&mut self, r: &Routed<'_, '_>) -> Outcome {
        let head = self.head;
        let origin = head.header("origin").unwrap_or("");
        let Some(cors) = &r.route.cors else {
            if r.service.dialect == crate::vocab::Dialect::Tencent {
                return self.fail(
                    4,
                    "cors",
                    format_args!("preflight from {origin}, and the route has no cors"),
                    Reason::CrossOriginWithoutCors {
                        uri: head.path().to_string(),
                    },
                );
            }
            return self.fail(
                4,
                "cors",
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
                head.header("access-control-request-headers")
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
                4,
                "cors",
                Verdict::Done,
                format_args!("preflight from {origin} answered"),
            );
        } else {
            self.step(
                4,
                "cors",
                Verdict::Done,
                format_args!("preflight from {origin}: origin not allowed, no CORS headers"),
            );
        }
        if !cors.any_origin() || cors.credentials {
            headers.push(("Vary".into(), "Origin".into()));
        }
        Outcome::Respond(super::Response {
            status: 200,
            headers,
            body: bytes::Bytes::new(),
        })
    }

    /// CORS headers for an actual (non-preflight) request to a route with cors.
    pub(super) fn cors_headers(&mut self, route: &Route) {
        let Some(cors) = &route.cors else { return };
        let Some(origin) = self.head.header("origin") else {
            self.step(4, "cors", Verdict::Pass, "no Origin header");
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
                4,
                "cors",
                Verdict::Pass,
                format_args!("origin {origin} allowed"),
            );
        } else {
            self.step(
                4,
                "cors",
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

fn names(p: &[Protocol]) -> String {
    p.iter().map(|p| p.upper()).collect::<Vec<_>>().join(",")
}

/// How a parameter value measures up to its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeCheck {
    Ok,
    /// Not a value of the type at all (`abc` for an int).
    WrongType,
    /// A value of the type outside the declared range, length or enumeration.
    OutOfRange,
}

/// Check a parameter value against its declared type and range.
pub fn type_check(ty: &ParamTy, v: &str) -> TypeCheck {
    fn within<T: PartialOrd>(x: T, min: &Option<T>, max: &Option<T>) -> TypeCheck {
        if min.as_ref().is_none_or(|m| x >= *m) && max.as_ref().is_none_or(|m| x <= *m) {
            TypeCheck::Ok
        } else {
            TypeCheck::OutOfRange
        }
    }
    match ty {
        ParamTy::Any => TypeCheck::Ok,
        ParamTy::String { min_len, max_len } => within(v.chars().count() as u64, min_len, max_len),
        ParamTy::Int { min, max } => v
            .parse::<i64>()
            .map_or(TypeCheck::WrongType, |x| within(x, min, max)),
        ParamTy::Decimal { min, max } => match v.parse::<f64>() {
            Ok(x) if is_decimal(v) && x.is_finite() => within(x, min, max),
            _ => TypeCheck::WrongType,
        },
        ParamTy::Bool if v == "true" || v == "false" => TypeCheck::Ok,
        ParamTy::Bool => TypeCheck::WrongType,
        ParamTy::Enum(values) if values.iter().any(|x| x == v) => TypeCheck::Ok,
        ParamTy::Enum(_) => TypeCheck::OutOfRange,
    }
}

/// `-12`, `3.50`: plain decimal notation only (no `inf`, `NaN`, exponents or hex).
fn is_decimal(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// A parameter's value as the trace shows it: quoted, or `undecodable`.
struct Shown<'a>(Option<&'a str>);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:?}"),
            None => f.write_str("undecodable"),
        }
    }
}
