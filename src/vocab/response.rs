//! An answer rulegate writes itself — a rejection, a mock, a preflight — as status, headers in
//! order and body bytes. The compiler prepares a mock's answer once, `decide` hands answers
//! out, the server and the policy tests write them; so the type belongs to none of them. How
//! one is rendered for a decision is `decide`'s (`decide::render_response`).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}
