//! `explain`: run one request through the real pipeline and print every step and the exact
//! response. The same text is what policy tests snapshot.

use crate::compile::{Action, Snapshot};
use crate::decide::{decide_with_body, render_response, Arrival, Decision, Outcome};
use crate::decide::{RequestHead, VirtualEnv};
use std::fmt::Write as _;
use std::net::IpAddr;

/// A request as the command line gives it, in the form a client would send it: the URL is
/// the request target (absolute-form for `http(s)://…`, whose authority then names the host,
/// as it does for `serve`), a missing Host header is filled in from it, and a body gets its
/// Content-Length.
#[derive(Debug)]
pub struct Asked {
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    /// An `https://` URL: the request arrives over TLS.
    pub tls: bool,
}

impl Asked {
    /// From `METHOD`, the URL and `Name: value` headers; `Err` says what is wrong with them.
    pub fn new(
        method: &str,
        url: &str,
        headers: &[String],
        body: Vec<u8>,
    ) -> Result<Asked, String> {
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("{method:?} is not an HTTP method"))?;
        let tls = url.starts_with("https://");
        if !(url.starts_with('/') || tls || url.starts_with("http://")) {
            return Err(format!(
                "{url:?}: expected http://host/path, https://host/path or /path"
            ));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|_| format!("{url:?} is not a request target HTTP can carry"))?;
        let mut map = http::HeaderMap::new();
        for h in headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("header {h:?} is not `Name: value`"))?;
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.trim().as_bytes()),
                http::HeaderValue::from_str(value.trim()),
            ) else {
                return Err(format!("header {h:?} is not a valid HTTP header"));
            };
            map.append(name, value);
        }
        if !map.contains_key(http::header::HOST) {
            let authority = uri
                .authority()
                .ok_or("give a full URL (http://host/path) or a Host header (-H 'Host: …')")?;
            if let Ok(v) = http::HeaderValue::from_str(authority.as_str()) {
                map.insert(http::header::HOST, v);
            }
        }
        if !body.is_empty() && !map.contains_key(http::header::CONTENT_LENGTH) {
            map.insert(http::header::CONTENT_LENGTH, body.len().into());
        }
        Ok(Asked {
            method,
            uri,
            headers: map,
            body,
            tls,
        })
    }

    /// What `decide` sees of it, from `peer`: built as `serve` builds it.
    pub fn head(&self, peer: IpAddr, client_cert: bool) -> RequestHead<'_> {
        let arrival = Arrival {
            peer,
            tls: self.tls,
            client_cert,
        };
        RequestHead::of(
            &self.method,
            &self.uri,
            http::Version::HTTP_11,
            &self.headers,
            arrival,
        )
    }

    /// Run it through the pipeline as `serve` does (the body read when the policy asks) at
    /// `now_ms`: the decision and the explain text.
    pub fn run(
        &self,
        snap: &Snapshot,
        peer: IpAddr,
        client_cert: bool,
        now_ms: i64,
    ) -> (Decision, String) {
        let env = VirtualEnv::new(now_ms);
        let mut head = self.head(peer, client_cert);
        let d = decide_with_body(snap, &mut head, &self.body, &env);
        let text = explain(snap, &head, &d);
        (d, text)
    }
}

/// The request the backend receives, as `serve` builds it (one function for both:
/// `server::planned_upstream`), for the backend's first target; printed for forwards with
/// backend-request statements or a signing backend.
fn upstream_request(
    out: &mut String,
    snap: &Snapshot,
    head: &RequestHead<'_>,
    d: &Decision,
    target: &str,
) {
    let headers = match crate::server::planned_upstream(snap, head, d) {
        None => return,
        Some(Ok(headers)) => headers,
        Some(Err(reason)) => {
            let _ = writeln!(out, "\nupstream request refused: {reason:?}");
            return;
        }
    };
    let _ = writeln!(out, "\nupstream {} {target} HTTP/1.1", head.method);
    let mut names: Vec<&http::HeaderName> = headers.keys().collect();
    names.sort_by_key(|n| n.as_str());
    for name in names {
        for value in headers.get_all(name) {
            let _ = writeln!(
                out,
                "  {name}: {}",
                String::from_utf8_lossy(value.as_bytes())
            );
        }
    }
}

/// The pipeline trace and the outcome of a decision, as text.
pub fn explain(snap: &Snapshot, head: &RequestHead<'_>, d: &Decision) -> String {
    let mut out = String::new();
    let scheme = if head.tls { "https" } else { "http" };
    let _ = writeln!(
        out,
        "request  {} {scheme}://{}{}",
        head.method,
        head.host.unwrap_or("-"),
        head.target
    );
    if d.client_ip != head.peer {
        let _ = writeln!(out, "client   {} (via proxy {})", d.client_ip, head.peer);
    } else {
        let _ = writeln!(out, "client   {}", d.client_ip);
    }
    let _ = writeln!(out, "dialect  {}", d.dialect);
    out.push_str("\npipeline\n");
    for step in &d.trace {
        let _ = writeln!(out, "  {step}");
    }
    out.push('\n');
    let token_endpoint = d.service.zip(d.route).is_some_and(|(s, r)| {
        matches!(
            snap.services[s].routes[r].action,
            Action::IssueTokens { .. }
        )
    });
    match &d.outcome {
        Outcome::Forward(plan) => {
            let service = &snap.services[d.service.unwrap_or(0)];
            let backend = &service.backends[plan.backend];
            let _ = writeln!(
                out,
                "forward  {} {} to backend {}",
                head.method, plan.target, backend.name
            );
            let several = backend.targets.len() > 1;
            for (i, t) in backend.targets.iter().enumerate() {
                let chosen = match several && i == plan.pick.target {
                    true => "  ← this request",
                    false => "",
                };
                let _ = writeln!(
                    out,
                    "  target {}{}{chosen}",
                    t.url.trim_end_matches('/'),
                    plan.target
                );
            }
            if plan.shaped.is_some() || plan.stamp.is_some() {
                upstream_request(&mut out, snap, head, d, &plan.target);
            }
        }
        Outcome::NeedBody { limit } => {
            let what = if token_endpoint {
                "to read the token request"
            } else {
                "to check form parameters"
            };
            let _ = writeln!(out, "the body is needed (up to {limit} bytes) {what}");
        }
        Outcome::NeedCounts => {
            let _ = writeln!(out, "the limits are counted in a remote store");
        }
        Outcome::NeedAuthorization(call) => {
            let service = &snap.services[d.service.unwrap_or(0)];
            let provider = &service.providers[call.provider];
            let _ = writeln!(
                out,
                "the authorizer {} is to be asked ({})",
                crate::auth::authorizer::url(provider).unwrap_or("-"),
                crate::auth::authorizer::Redacted(&call.identities)
            );
        }
        Outcome::Reject(_) | Outcome::Respond(_) => {}
    }
    if let Some(mut response) = render_response(d) {
        // Issued tokens are credentials: explain and test snapshots show their claims, never a
        // usable token.
        if token_endpoint && matches!(d.outcome, Outcome::Respond(_)) {
            response.body = crate::auth::oauth2::mask_signatures(&response.body);
        }
        out.push_str("response\n");
        out.push_str(&response.to_http());
        if !response.body.is_empty() {
            out.push('\n');
        }
    }
    out
}
