//! The compiled, immutable policy: what `decide` reads for every request.
//!
//! host → service → stage → path tree → method → route → the route's ordered check program →
//! its action. Names are resolved to indices, secrets to bytes, sizes to numbers; nothing here
//! is looked up by name at request time.

use super::tree::PathTree;
use crate::vocab::PathTemplate;
use crate::vocab::{Dialect, Method};
// Compiled here, but owned by the layer that reads them: named here too, as before.
pub use crate::auth::{App, Plan, Provider, Secret, ServiceView, TokenFrom};
pub use crate::check::{AuthCheck, Batch, Check, IpRules, ParamCheck, ParamTy};
pub use crate::request::canonical_ip;
pub use crate::vocab::{HttpTarget, QuotaRule, RateRule, Target};
use ipnet::IpNet;
use std::collections::HashMap;

/// The whole compiled policy set, swapped in as one unit.
#[derive(Debug)]
pub struct Snapshot {
    /// Dialect for requests that match no service.
    pub default_dialect: Dialect,
    pub default_limits: Limits,
    pub hosts: HostTable,
    pub services: Vec<Service>,
    /// SHA-256 over every source file (name and text), hex: identifies what is loaded.
    pub source_hash: String,
    /// Every policy file, in load order, with a digest of its text.
    pub policy_files: Vec<InputFile>,
    /// Every file the compile read besides the policy texts, sorted by path, each once.
    pub inputs: Vec<InputFile>,
}

impl Snapshot {
    /// Whether `other` was compiled from the same policy texts and the same secret, key,
    /// JWKS and PEM files: a reload that changed any of them must be swapped in.
    pub fn same_sources(&self, other: &Snapshot) -> bool {
        self.source_hash == other.source_hash && self.inputs == other.inputs
    }
}

/// A file a policy referenced (a secret, key, JWKS, PEM or appcode file): where it was read
/// and a SHA-256 of what was read. Never the content: the digest only tells a reload whether
/// the file changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: std::path::PathBuf,
    pub sha256: [u8; 32],
}

/// Size limits. Huawei documents these defaults (12 MiB body, 32 KiB URI, 32 KiB per header,
/// 128 KiB of headers); the other vendors document none, so the same defaults apply to all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub body: u64,
    pub uri: u64,
    pub header: u64,
    pub headers: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body: 12 << 20,
            uri: 32 << 10,
            header: 32 << 10,
            headers: 128 << 10,
        }
    }
}

/// Host name → service. Exact names first, then `*.suffix` (longest suffix first), then `*`.
#[derive(Debug, Default)]
pub struct HostTable {
    pub exact: HashMap<String, usize>,
    /// (".example.com", service), longest first.
    pub suffixes: Vec<(String, usize)>,
    pub any: Option<usize>,
}

impl HostTable {
    /// `host` must already be lower-case and without a port.
    pub fn find(&self, host: &str) -> Option<usize> {
        if let Some(s) = self.exact.get(host) {
            return Some(*s);
        }
        self.suffixes
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, s)| *s)
            .or(self.any)
    }
}

#[derive(Debug)]
pub struct Service {
    pub name: std::sync::Arc<str>,
    /// The counter group every count of this service's requests belongs to: the service
    /// itself, or the services it shares a counter with (see `compile::groups`).
    pub counter_group: std::sync::Arc<str>,
    pub dialect: Dialect,
    pub limits: Limits,
    pub stages: StageSelector,
    /// One tree per stage (index = stage index); a single tree when the service has no stages.
    pub trees: Vec<PathTree>,
    pub routes: Vec<Route>,
    pub backends: Vec<Backend>,
    pub apps: Vec<App>,
    /// Filled from the policy only, so a fast hash (see `ServiceView::app_by_key`).
    pub app_by_key: HashMap<String, usize, foldhash::fast::RandomState>,
    /// An API key's SHA-256 → its app.
    pub app_by_api_key: HashMap<[u8; 32], usize>,
    pub providers: Vec<Provider>,
    pub plans: Vec<Plan>,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// A header whose value, when present and sane, becomes the request id.
    pub request_id_header: Option<String>,
    /// Requests must arrive over TLS with a client certificate the gateway verified.
    pub client_cert_required: bool,
    /// Huawei's custom gateway responses, by error type (empty: the dialect's rows only).
    pub gateway_responses: std::sync::Arc<[crate::dialect::gateway_response::Custom]>,
}

impl Service {
    /// What the auth schemes may see of this service.
    pub fn view(&self) -> ServiceView<'_> {
        ServiceView {
            name: &self.name,
            group: &self.counter_group,
            apps: &self.apps,
            app_by_key: &self.app_by_key,
            app_by_api_key: &self.app_by_api_key,
            providers: &self.providers,
            plans: &self.plans,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageSelector {
    /// No stages: every route is live.
    None,
    /// Stage named by a request header; a request without it goes to `default`.
    Header {
        header: String,
        names: Vec<String>,
        default: usize,
    },
    /// Stage named by the first path segment (`/release/orders`), which is stripped.
    Path { names: Vec<String> },
}

impl StageSelector {
    pub fn names(&self) -> &[String] {
        match self {
            StageSelector::None => &[],
            StageSelector::Header { names, .. } | StageSelector::Path { names } => names,
        }
    }
}

/// A compiled route: its identity, its check program (pipeline steps 3–10 in order) and its
/// terminal action.
#[derive(Debug)]
pub struct Route {
    /// `GET POST /orders/{id}`; shared, so logs and metrics take it without copying.
    pub label: std::sync::Arc<str>,
    /// How many routes of its service before it carry the same label (another stage's): the
    /// `#n` of its rates' counter ids and of its identity in `rulegate diff`.
    pub nth: u32,
    /// `shop.policy:20:5`
    pub location: Box<str>,
    pub methods: Box<[Method]>,
    /// Its variables, in path order, are the tree's captures.
    pub template: PathTemplate,
    pub program: Box<[Check]>,
    pub action: Action,
    /// Policy backends, in order: the first whose conditions hold takes the request instead
    /// of `action` (see [`crate::upstream::policy`]).
    pub policies: Box<[crate::upstream::policy::Policy<Action>]>,
    /// Extra headers on every response this route produces.
    pub response_headers: Box<[(String, String)]>,
    /// The route has a CORS configuration (used for preflight answers). Boxed: most routes
    /// have none, and inline it made every route 120 bytes larger.
    pub cors: Option<Box<Cors>>,
    pub body_limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Empty or containing `*`: any origin.
    pub origins: Vec<String>,
    pub methods: Vec<Method>,
    /// Empty: echo `Access-Control-Request-Headers`.
    pub headers: Vec<String>,
    pub expose: Vec<String>,
    pub credentials: bool,
    pub max_age_secs: Option<u64>,
}

impl Cors {
    pub fn any_origin(&self) -> bool {
        self.origins.is_empty() || self.origins.iter().any(|o| o == "*")
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.any_origin() || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

#[derive(Debug)]
pub enum Action {
    Mock(MockResponse),
    Forward(ForwardAction),
    IssueTokens { provider: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockResponse {
    /// `None`: no body and no Content-Type.
    pub content_type: Option<&'static str>,
    /// The answer as `decide` hands it out (status, Content-Type, body), built once: every
    /// request answered with it costs a reference count, not a copy.
    pub answer: std::sync::Arc<crate::vocab::Response>,
}

#[derive(Debug)]
pub struct ForwardAction {
    pub backend: usize,
    /// `None`: the request path as received (minus a path-selected stage prefix).
    pub path: Option<PathTemplate>,
    /// What the forward adds to, removes from and maps into the backend request, and its
    /// edits of the answer (`None` for a forward with none: it costs nothing per request).
    pub shaping: Option<std::sync::Arc<crate::upstream::shape::Shaping>>,
}

impl ForwardAction {
    /// Whether the backend's path carries the route's variable `name`: every capture when the
    /// path is forwarded as sent, only a rewrite's own variables otherwise. `decide` checks
    /// the values of these (`path_safety`), and a route's contract lists that refusal.
    pub fn exposes(&self, name: &str) -> bool {
        self.path
            .as_ref()
            .is_none_or(|t| t.vars().any(|v| v == name))
    }
}

#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub targets: Vec<Target>,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub retries: u32,
    pub deny: Vec<IpNet>,
    pub except: Vec<IpNet>,
    /// `sign …`: every request forwarded here is signed (see [`crate::upstream::sign`]).
    pub signer: Option<crate::upstream::sign::Signer>,
    /// How its targets take requests: weights, balancing, health, breaker, retry budget
    /// (the state they drive is the gateway's: see [`crate::upstream::state`]).
    pub targeting: crate::upstream::state::Targeting,
    /// What a request gets while the breaker is open (`Unavailable` without a breaker).
    pub downgrade: Downgrade,
}

/// What a request gets while its backend's breaker is open.
#[derive(Debug)]
pub enum Downgrade {
    Mock(MockResponse),
    /// The same forward, sent to this other backend of the service (whose own breaker, if
    /// open, answers the unavailable row: a downgrade never chains).
    Backend(usize),
    /// The dialect's "no backend available" row.
    Unavailable,
}
