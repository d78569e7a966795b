//! `explain`: run one request through the real pipeline and print every step and the exact
//! response. The same text is what policy tests snapshot.

use crate::compile::{Action, Snapshot};
use crate::decide::{render_response, Decision, Outcome, RequestHead};
use std::fmt::Write as _;

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
            for t in &backend.targets {
                let _ = writeln!(
                    out,
                    "  target {}{}",
                    t.url.trim_end_matches('/'),
                    plan.target
                );
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
                provider.url.as_deref().unwrap_or("-"),
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
