//! The response a decision produces when rulegate answers itself (a rejection, a mock, a
//! preflight): status, headers in order, body bytes.

use super::{Decision, Outcome};
use crate::dialect;
use crate::dialect::gateway_response::{Context, Custom, ResponseType};

// Shared with the compiler (a mock's answer is built once), so it lives in `vocab`.
pub use crate::vocab::Response;

/// The full response for a decision that answers the client directly; `None` when the
/// request goes on (forward) or the body must be read first.
pub fn render_response(d: &Decision) -> Option<Response> {
    let mut response = match &d.outcome {
        Outcome::Reject(reason) => {
            let e = rejection(d, reason);
            Response {
                status: e.status,
                headers: e.headers,
                body: e.body.into(),
            }
        }
        Outcome::Respond(r) => {
            return Some(Response {
                status: r.status,
                headers: respond_headers(d, r)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body: r.body.clone(),
            })
        }
        Outcome::Forward(_)
        | Outcome::NeedBody { .. }
        | Outcome::NeedCounts
        | Outcome::NeedAuthorization(_) => return None,
    };
    response.headers.extend(d.headers.iter().cloned());
    Some(response)
}

/// The headers of a direct answer (a mock or a preflight), in order: the answer's own, the
/// request id, the route's `response header`s, then the pipeline's (CORS, Retry-After).
/// Borrowed, so `serve` turns them into its response without copying them twice.
pub fn respond_headers<'d>(
    d: &'d Decision,
    r: &'d Response,
) -> impl Iterator<Item = (&'d str, &'d str)> {
    let pairs = |h: &'d [(String, String)]| h.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    pairs(&r.headers)
        .chain(std::iter::once((
            dialect::request_id_header(d.dialect),
            d.request_id.as_str(),
        )))
        .chain(pairs(&d.response_headers))
        .chain(pairs(&d.headers))
}

impl Response {
    /// The response as it goes on the wire (HTTP/1.1, with Content-Length).
    pub fn to_http(&self) -> String {
        let mut out = dialect::status_line(self.status) + "\n";
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push_str(&format!("Content-Length: {}\n\n", self.body.len()));
        out.push_str(&String::from_utf8_lossy(&self.body));
        out
    }
}

/// A service's custom gateway responses and one request's values for their variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customized {
    pub responses: std::sync::Arc<[Custom]>,
    pub context: Context,
}

/// What a refusal of the decided request looks like: the service's custom gateway response
/// for the refusal's type, if it has one, else the dialect's row. `serve`, `explain` and
/// `rulegate test` all render refusals here.
pub fn rejection(d: &Decision, reason: &crate::dialect::Reason) -> dialect::ErrorResponse {
    let e = dialect::render(d.dialect, reason, &d.request_id);
    let Some(c) = &d.custom else {
        return e;
    };
    let kind = ResponseType::of(reason, e.status);
    let Some(custom) = c.responses.iter().find(|r| r.kind == kind) else {
        return e;
    };
    let row = dialect::row(d.dialect, reason);
    let message = dialect::message(d.dialect, reason);
    let (status, mut headers, body) = custom.render(&c.context, row.code, &message);
    // the request id header, as on every answer
    headers.extend(
        e.headers
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type")),
    );
    dialect::ErrorResponse {
        status,
        headers,
        body,
    }
}

/// The variables' values of a request to a service with custom gateway responses.
pub(super) fn customized(
    snap: &crate::compile::Snapshot,
    head: &super::RequestHead<'_>,
    d: &Decision,
) -> Option<Box<Customized>> {
    let service = &snap.services[d.service?];
    if service.gateway_responses.is_empty() {
        return None;
    }
    let app = d.app.map(|a| &service.apps[a]);
    let context = Context {
        request_id: d.request_id.to_string(),
        api: d
            .route
            .map(|r| service.routes[r].label.to_string())
            .unwrap_or_default(),
        app_key: app.map(|a| a.key.clone()).unwrap_or_default(),
        app_name: app.map(|a| a.name.clone()).unwrap_or_default(),
        stage: d
            .stage
            .and_then(|s| service.stages.names().get(s).cloned())
            .unwrap_or_default(),
        source_ip: d.client_ip.to_string(),
        path: head.path().to_string(),
        uri: head.target.to_string(),
        method: head.method.to_string(),
    };
    Some(Box::new(Customized {
        responses: service.gateway_responses.clone(),
        context,
    }))
}
