//! The compiled, immutable policy: what `decide` reads for every request.
//!
//! host → service → stage → path tree → method → route → the route's ordered check program →
//! its action. Names are resolved to indices, secrets to bytes, sizes to numbers; nothing here
//! is looked up by name at request time.

use super::tree::PathTree;
use crate::vocab::PathTemplate;
use crate::vocab::{Dialect, Method, ParamLocation, Protocol};
// Compiled here, but owned by the layer that reads them: named here too, as before.
pub use crate::auth::{App, Plan, Provider, Secret, ServiceView, TokenFrom};
pub use crate::vocab::{HttpTarget, QuotaRule, RateRule, Target};
use ipnet::IpNet;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

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
    pub dialect: Dialect,
    pub limits: Limits,
    pub stages: StageSelector,
    /// One tree per stage (index = stage index); a single tree when the service has no stages.
    pub trees: Vec<PathTree>,
    pub routes: Vec<Route>,
    pub backends: Vec<Backend>,
    pub apps: Vec<App>,
    pub app_by_key: HashMap<String, usize>,
    pub providers: Vec<Provider>,
    pub plans: Vec<Plan>,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// A header whose value, when present and sane, becomes the request id.
    pub request_id_header: Option<String>,
    /// Requests must arrive over TLS with a client certificate the gateway verified.
    pub client_cert_required: bool,
}

impl Service {
    /// What the auth schemes may see of this service.
    pub fn view(&self) -> ServiceView<'_> {
        ServiceView {
            name: &self.name,
            apps: &self.apps,
            app_by_key: &self.app_by_key,
            providers: &self.providers,
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
    /// `shop.policy:20:5`
    pub location: String,
    pub methods: Vec<Method>,
    pub template: PathTemplate,
    /// Variable names in path order, matching the tree's captures.
    pub vars: Vec<String>,
    pub program: Vec<Check>,
    pub action: Action,
    /// Extra headers on every response this route produces.
    pub response_headers: Vec<(String, String)>,
    /// The route has a CORS configuration (used for preflight answers).
    pub cors: Option<Cors>,
    /// Form parameters are declared: the body must be read before `decide` can finish.
    pub needs_form_body: bool,
    pub body_limit: u64,
}

/// One step of a route's program.
#[derive(Debug)]
pub enum Check {
    Protocol(Vec<Protocol>),
    /// The service requires a verified TLS client certificate.
    ClientCertificate,
    /// Cross-origin handling for a route without CORS (the dialect decides what that means).
    CrossOrigin,
    ClientIp(IpRules),
    WebSocket,
    Auth(AuthCheck),
    Param(ParamCheck),
    BodySize(u64),
    Rate(RateRule),
    Quota,
}

impl Check {
    /// The pipeline step a check belongs to (DESIGN.md §4), for traces.
    pub fn step(&self) -> &'static str {
        match self {
            Check::Protocol(_) | Check::ClientCertificate => "protocol",
            Check::CrossOrigin => "cors",
            Check::ClientIp(_) => "client-ip",
            Check::WebSocket => "websocket",
            Check::Auth(_) => "auth",
            Check::Param(_) => "param",
            Check::BodySize(_) => "body-size",
            Check::Rate(_) => "rate",
            Check::Quota => "quota",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Protocol(p) => {
                let p: Vec<&str> = p.iter().map(|p| p.name()).collect();
                write!(f, "protocol in [{}]", p.join(", "))
            }
            Check::ClientCertificate => f.write_str("verified client certificate"),
            Check::CrossOrigin => f.write_str("cross-origin requests refused (no cors)"),
            Check::ClientIp(r) => write!(f, "client ip {r}"),
            Check::WebSocket => f.write_str("websocket handshake headers"),
            Check::Auth(a) => write!(f, "{a}"),
            Check::Param(p) => write!(f, "{p}"),
            Check::BodySize(n) => write!(f, "body ≤ {n} bytes"),
            Check::Rate(r) => write!(f, "{r}"),
            Check::Quota => f.write_str("the app's and its plans' rates and quotas"),
        }
    }
}

/// Allow and deny lists; deny wins, and a non-empty allow list admits only its members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl IpRules {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        !self.deny.iter().any(|n| n.contains(&ip))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip)))
    }
}

// Named here too, as the compiler's and the server's address checks use it.
pub use crate::request::canonical_ip;

impl fmt::Display for IpRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[IpNet]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        match (self.allow.is_empty(), self.deny.is_empty()) {
            (false, false) => write!(
                f,
                "allow [{}] deny [{}]",
                list(&self.allow),
                list(&self.deny)
            ),
            (false, true) => write!(f, "allow [{}]", list(&self.allow)),
            (true, _) => write!(f, "deny [{}]", list(&self.deny)),
        }
    }
}

#[derive(Debug)]
pub struct AuthCheck {
    pub provider: usize,
    pub provider_name: String,
    /// `None`: any app of the service; otherwise the apps bound to this route.
    pub apps: Option<Vec<usize>>,
    /// The same apps by name, for traces.
    pub app_names: Vec<String>,
    pub claims: Vec<(String, Vec<String>)>,
}

impl fmt::Display for AuthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "auth {}", self.provider_name)?;
        if self.apps.is_some() {
            write!(f, " apps {}", self.app_names.join(" "))?;
        }
        for (name, values) in &self.claims {
            write!(f, " claim {name} in {values:?}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ParamCheck {
    pub required: bool,
    pub location: ParamLocation,
    pub name: String,
    pub ty: ParamTy,
}

impl fmt::Display for ParamCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.required { "require" } else { "optional" };
        write!(f, "{kind} {} {:?} {}", self.location, self.name, self.ty)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParamTy {
    Any,
    String {
        min_len: Option<u64>,
        max_len: Option<u64>,
    },
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Decimal {
        min: Option<f64>,
        max: Option<f64>,
    },
    Bool,
    Enum(Vec<String>),
}

impl fmt::Display for ParamTy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn range<T: fmt::Display>(
            f: &mut fmt::Formatter<'_>,
            min: &Option<T>,
            max: &Option<T>,
        ) -> fmt::Result {
            if min.is_none() && max.is_none() {
                return Ok(());
            }
            f.write_str(" ")?;
            if let Some(m) = min {
                write!(f, "{m}")?;
            }
            f.write_str("..")?;
            if let Some(m) = max {
                write!(f, "{m}")?;
            }
            Ok(())
        }
        match self {
            ParamTy::Any => f.write_str("string"),
            ParamTy::String { min_len, max_len } => {
                f.write_str("string")?;
                range(f, min_len, max_len)
            }
            ParamTy::Int { min, max } => {
                f.write_str("int")?;
                range(f, min, max)
            }
            ParamTy::Decimal { min, max } => {
                f.write_str("decimal")?;
                range(f, min, max)
            }
            ParamTy::Bool => f.write_str("bool"),
            ParamTy::Enum(v) => write!(f, "enum {}", v.join("|")),
        }
    }
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
}
