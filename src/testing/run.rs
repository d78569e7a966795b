//! Sending a test's requests through the engine `serve` runs, and judging the answers.
//!
//! Each request goes through the driver the server uses ([`crate::decide::Drive`], by way of
//! [`decide_with_body`]): the pipeline runs on the head, and when it asks for the body it gets
//! the test's, up to the route's limit, and resumes where it stopped. The answer is [`render_response`], the function the server writes to the
//! wire, so a test pins the bytes a client would get. Nothing leaves the process: a forward is
//! reported as its plan (backend, upstream target), never sent.

use super::backends::Backends;
use super::format::{Exchange, Expectation};
use crate::compile::Snapshot;
use crate::decide::Env as _;
use crate::decide::{decide_with_body, render_response, Decision, Outcome, Response};
use crate::decide::{Arrival, RequestHead, VirtualEnv};
use crate::dialect;

/// One sending of a request and what the gateway did with it.
pub struct Sent {
    pub decision: Decision,
    /// What rulegate answers itself; `None` for a forward.
    pub response: Option<Response>,
    /// The `explain` text: request, pipeline trace, the forward plan or the exact response.
    pub explain: String,
    /// For a forward, the headers its backend's first target receives, as `serve` builds them.
    pub upstream: Option<http::HeaderMap>,
}

impl Sent {
    /// The trace's last step: the one that decided.
    pub fn deciding_step(&self) -> String {
        self.decision
            .trace
            .last()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
}

/// Send one request at `now_ms`. `Err` when the test itself is wrong for this policy (an app
/// to sign as that the service does not have).
pub fn send(
    snap: &Snapshot,
    e: &Exchange,
    now_ms: i64,
    world: &VirtualEnv,
    backends: &mut Backends,
    scripts: &[super::backends::Script],
) -> Result<Sent, String> {
    world.set_now_ms(now_ms);
    backends.script(snap, scripts)?;
    backends.probe_due(snap, world.upstreams(), now_ms);
    let mut headers = http::HeaderMap::new();
    for (name, value) in &e.headers {
        // The parser has validated both.
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    if !e.body.is_empty() && !headers.contains_key(http::header::CONTENT_LENGTH) {
        headers.insert(http::header::CONTENT_LENGTH, e.body.len().into());
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if let Some(sign) = &e.sign {
        super::sign::sign(snap, sign, e, host.as_deref(), &mut headers, now_ms)?;
    }
    let uri: http::Uri = e
        .url
        .parse()
        .map_err(|_| format!("{:?} is not a request target HTTP can carry", e.url))?;
    let method = http::Method::from_bytes(e.method.as_bytes())
        .map_err(|_| format!("{:?} is not an HTTP method", e.method))?;
    let arrival = Arrival {
        peer: e.client_ip,
        tls: e.tls,
        client_cert: e.client_cert,
    };
    let mut head = RequestHead::of(&method, &uri, http::Version::HTTP_11, &headers, arrival);
    for (name, answer) in &e.authorizers {
        world.stub_authorizer(name, Some(answer.clone()));
    }
    // The driver `serve` uses, its effects answered from the test's body and stubs.
    let mut d = decide_with_body(snap, &mut head, &e.body, world);
    for (name, _) in &e.authorizers {
        world.stub_authorizer(name, None);
    }
    // a request its backend's key cannot sign has no upstream request (`serve` refuses it)
    let upstream = crate::server::planned_upstream(snap, &head, &d).and_then(Result::ok);
    let replayable = crate::upstream::state::replayable(&e.method, !e.body.is_empty());
    let answered = backends.forward(snap, &mut d, replayable, world.upstreams(), now_ms);
    let mut explain = crate::explain::explain(snap, &head, &d);
    let response = match (&d.outcome, answered) {
        (Outcome::Forward(_), Some(backend)) => {
            explain.push_str(&format!(
                "\nthe backend answered {} (scripted)\n",
                backend.status
            ));
            Some(backend)
        }
        _ => render_response(&d),
    };
    crate::contract::check(snap, &d)?;
    Ok(Sent {
        response,
        decision: d,
        explain,
        upstream,
    })
}

/// A failed expectation: what was wanted and what happened, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: String,
    pub actual: String,
}

/// Judge one expectation; `None` when it holds.
pub fn judge(snap: &Snapshot, what: &Expectation, sent: &Sent) -> Option<Mismatch> {
    let d = &sent.decision;
    let reason = match &d.outcome {
        Outcome::Reject(r) => Some(r),
        _ => None,
    };
    let forward = match &d.outcome {
        Outcome::Forward(plan) => {
            let backend = d
                .service
                .map(|s| snap.services[s].backends[plan.backend].name.as_str())
                .unwrap_or("?");
            Some((plan.target.as_str(), backend))
        }
        _ => None,
    };
    // What stands in for a response rulegate does not give itself.
    let not_answered = || match forward {
        Some((target, backend)) => format!("a forward of {target} to backend {backend}"),
        None => "no response".to_string(),
    };
    let miss = |expected: String, actual: String| {
        (expected != actual).then_some(Mismatch { expected, actual })
    };
    match what {
        Expectation::Status(s) => miss(
            s.to_string(),
            sent.response
                .as_ref()
                .map_or_else(not_answered, |r| r.status.to_string()),
        ),
        Expectation::Code(c) => miss(
            c.clone(),
            reason.map_or_else(
                || format!("no error code ({})", outcome_name(sent)),
                |r| dialect::row(d.dialect, r).code.to_string(),
            ),
        ),
        Expectation::Message(m) => miss(
            m.clone(),
            reason.map_or_else(
                || format!("no error message ({})", outcome_name(sent)),
                |r| dialect::message(d.dialect, r),
            ),
        ),
        Expectation::Header(name, value) => {
            let found = headers(sent)
                .into_iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
                .collect::<Vec<_>>();
            if found.iter().any(|v| v == value) {
                None
            } else {
                Some(Mismatch {
                    expected: format!("{name}: {value}"),
                    actual: if found.is_empty() {
                        format!("no {name} header")
                    } else {
                        found
                            .iter()
                            .map(|v| format!("{name}: {v}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    },
                })
            }
        }
        Expectation::NoHeader(name) => {
            let found: Vec<String> = headers(sent)
                .into_iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(n, v)| format!("{n}: {v}"))
                .collect();
            (!found.is_empty()).then(|| Mismatch {
                expected: format!("no {name} header"),
                actual: found.join("\n"),
            })
        }
        Expectation::Body(b) => miss(
            String::from_utf8_lossy(b).into_owned(),
            sent.response.as_ref().map_or_else(not_answered, |r| {
                String::from_utf8_lossy(&r.body).into_owned()
            }),
        ),
        Expectation::BodyJson(v) => {
            let actual = sent.response.as_ref().map(|r| &r.body[..]);
            let parsed = actual.and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
            if parsed.as_ref() == Some(v) {
                None
            } else {
                Some(Mismatch {
                    expected: v.to_string(),
                    actual: match actual {
                        None => not_answered(),
                        Some(b) => String::from_utf8_lossy(b).into_owned(),
                    },
                })
            }
        }
        Expectation::Step(name, detail) => {
            let last = d.trace.last();
            let ok = last.is_some_and(|s| {
                s.name == name && detail.as_ref().is_none_or(|want| *want == s.detail)
            });
            (!ok).then(|| Mismatch {
                expected: match detail {
                    Some(want) => format!("{name}  {want}"),
                    None => name.clone(),
                },
                actual: sent.deciding_step(),
            })
        }
        Expectation::Route(label) => miss(
            label.clone(),
            d.service
                .zip(d.route)
                .map_or("no route".to_string(), |(s, r)| {
                    snap.services[s].routes[r].label.to_string()
                }),
        ),
        Expectation::UpstreamHeader(..)
        | Expectation::UpstreamNoHeader(_)
        | Expectation::UpstreamQuery(..)
        | Expectation::UpstreamNoQuery(_) => judge_upstream(what, sent),
        Expectation::Forward(target, backend) => {
            let expected = match backend {
                Some(b) => format!("a forward of {target} to backend {b}"),
                None => format!("a forward of {target}"),
            };
            let ok = forward
                .is_some_and(|(t, b)| t == target && backend.as_ref().is_none_or(|want| want == b));
            (!ok).then(|| Mismatch {
                expected,
                actual: match (forward, &sent.response) {
                    (Some(_), _) => not_answered(),
                    (None, Some(r)) => format!("{} {}", r.status, dialect::reason_phrase(r.status)),
                    (None, None) => outcome_name(sent).to_string(),
                },
            })
        }
    }
}

/// An `expect upstream …`: the backend request's header or query parameter.
fn judge_upstream(what: &Expectation, sent: &Sent) -> Option<Mismatch> {
    let Some(headers) = &sent.upstream else {
        return Some(Mismatch {
            expected: what.to_string(),
            actual: outcome_name(sent).to_string(),
        });
    };
    let target = match &sent.decision.outcome {
        Outcome::Forward(plan) => plan.target.as_str(),
        _ => "",
    };
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let header = |n: &str| -> Vec<String> {
        headers
            .get_all(n)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    };
    let shown = |n: &str, got: &[String]| match got.is_empty() {
        true => format!("no {n}"),
        false => format!("{n}: {}", got.join(", ")),
    };
    let (expected, actual, ok) = match what {
        Expectation::UpstreamHeader(n, v) => {
            let got = header(n);
            (format!("{n}: {v}"), shown(n, &got), got.contains(v))
        }
        Expectation::UpstreamNoHeader(n) => {
            let got = header(n);
            (format!("no {n}"), shown(n, &got), got.is_empty())
        }
        Expectation::UpstreamQuery(n, v) => {
            let got = crate::request::head::form_value(query, n).flatten();
            let ok = got.as_deref() == Some(v.as_str());
            (
                format!("{n}={v}"),
                got.unwrap_or_else(|| format!("no {n}")),
                ok,
            )
        }
        Expectation::UpstreamNoQuery(n) => {
            let got = crate::request::head::form_value(query, n).flatten();
            (
                format!("no {n}"),
                format!("{n}={}", got.clone().unwrap_or_default()),
                got.is_none(),
            )
        }
        _ => return None,
    };
    (!ok).then_some(Mismatch {
        expected: format!("upstream {expected}"),
        actual: format!("upstream {actual}"),
    })
}

/// The headers of rulegate's own answer, or, for a forward, those it adds to the backend's.
fn headers(sent: &Sent) -> Vec<(String, String)> {
    match &sent.response {
        Some(r) => r.headers.clone(),
        None => sent
            .decision
            .response_headers
            .iter()
            .chain(sent.decision.headers.iter())
            .cloned()
            .collect(),
    }
}

fn outcome_name(sent: &Sent) -> &'static str {
    match sent.decision.outcome {
        Outcome::Reject(_) => "a rejection",
        Outcome::Respond(_) => "a direct answer",
        Outcome::Forward(_) => "a forward",
        Outcome::NeedBody { .. } => "waiting for the body",
        Outcome::NeedCounts => "waiting for remote counts",
        Outcome::NeedAuthorization(_) => "waiting for the authorizer",
    }
}
