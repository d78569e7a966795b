//! The response a decision produces when rulegate answers itself (a rejection, a mock, a
//! preflight): status, headers in order, body bytes.

use super::{Decision, Outcome};
use crate::dialect;

// Shared with the compiler (a mock's answer is built once), so it lives in `vocab`.
pub use crate::vocab::Response;

/// The full response for a decision that answers the client directly; `None` when the
/// request goes on (forward) or the body must be read first.
pub fn render_response(d: &Decision) -> Option<Response> {
    let mut response = match &d.outcome {
        Outcome::Reject(reason) => {
            let e = dialect::render(d.dialect, reason, &d.request_id);
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
