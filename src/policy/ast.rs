//! The source AST: what a policy file says, in the order it says it, with spans.
//!
//! Items stay in source order (the formatter never reorders, and `explain` can point at the
//! statement that decided). Values are already typed (sizes in bytes, durations in
//! milliseconds, CIDRs parsed) but names are not resolved: that is the compiler's job.
//! Spans never take part in equality, so `parse(fmt(p)) == p` compares meaning only.

use crate::vocab::{Dialect, Method, ParamLocation, Protocol};
// Shared with the runtime, so they live in `vocab`; named here too, as the AST uses them.
pub use crate::vocab::{
    PathTemplate, QuotaPeriod, RateKey, RatePeriod, Segment, StoreErrorPolicy, Window,
};
use ipnet::IpNet;
use std::fmt;

/// A byte range in one source file. Equal to every other span (see module docs).
#[derive(Clone, Copy, Default)]
pub struct Span {
    pub file: u32,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: u32, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}
impl Eq for Span {}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}..{}", self.file, self.start, self.end)
    }
}

/// A value with the span it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

pub type Ident = Spanned<String>;

/// One `.policy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub items: Vec<Spanned<TopItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TopItem {
    /// `default dialect huawei`: the dialect of answers to requests that match no service.
    DefaultDialect(Spanned<Dialect>),
    Service(Service),
    Throttle(Throttle),
}

/// `throttle NAME { rate N per WINDOW  per app|ip|header|query … N  except app|ip … N  shared }`:
/// a named set of limits that routes and services bind with `throttle NAME` (Huawei's request
/// throttling policy, Tencent's special apps and parameter throttling).
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    pub name: Ident,
    pub items: Vec<Spanned<ThrottleItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ThrottleItem {
    /// The total every bound API may take in the window, and the window of every limit here.
    Rate(Rate),
    /// `per app 100`: each app (client IP, header or query value) may take this many.
    Per {
        key: Spanned<RateKey>,
        limit: Spanned<u64>,
    },
    /// `except app vip 800`, `except ip 198.51.100.7 2000`.
    Except {
        who: Spanned<ExceptWho>,
        limit: Spanned<u64>,
    },
    /// One budget across everything bound, not one per API.
    Shared,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExceptWho {
    App(Ident),
    Ip(IpNet),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: Ident,
    pub items: Vec<Spanned<ServiceItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServiceItem {
    Dialect(Spanned<Dialect>),
    Hosts(Vec<Spanned<String>>),
    Protocols(Vec<Spanned<Protocol>>),
    Stages(Stages),
    Limits(Vec<LimitItem>),
    Backend(Backend),
    App(App),
    Auth(AuthProvider),
    Plan(Plan),
    Route(Route),
    AllowIps(Vec<Spanned<IpNet>>),
    DenyIps(Vec<Spanned<IpNet>>),
    TrustedProxies(Vec<Spanned<IpNet>>),
    RequestIdHeader(Spanned<String>),
    /// `client certificate required`: HTTPS requests must present a certificate that the
    /// gateway's client CA verified.
    ClientCertificateRequired,
    /// `gateway response TYPE { … }`: Huawei's custom gateway response for one error type.
    GatewayResponse(GatewayResponse),
    /// `throttle NAME`: every route of the service counts in this throttle (unless the route
    /// binds its own).
    Throttle(Ident),
}

/// `gateway response TYPE { mock STATUS json {…}  response header "NAME" "VALUE" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayResponse {
    /// One of Huawei's error types (`AUTH_FAILURE`, `THROTTLED`, …).
    pub kind: Ident,
    pub items: Vec<Spanned<GatewayResponseItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GatewayResponseItem {
    /// The status and the JSON body, whose strings may hold `$context.…` variables.
    Answer(Mock),
    Header {
        name: Spanned<String>,
        value: Spanned<String>,
    },
}

/// `stages release test prepub from header "X-Stage" [default release]` or `… from path`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    pub names: Vec<Ident>,
    pub from: StageFrom,
    pub default: Option<Ident>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StageFrom {
    Header(Spanned<String>),
    Path,
}

/// A size as written: the unit is kept so the formatter prints what the author wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub bytes: u64,
    pub unit: SizeUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeUnit {
    B,
    KB,
    MB,
    GB,
    KiB,
    MiB,
    GiB,
}

impl SizeUnit {
    pub const ALL: [SizeUnit; 7] = [
        SizeUnit::B,
        SizeUnit::KB,
        SizeUnit::MB,
        SizeUnit::GB,
        SizeUnit::KiB,
        SizeUnit::MiB,
        SizeUnit::GiB,
    ];
    pub fn name(self) -> &'static str {
        match self {
            SizeUnit::B => "B",
            SizeUnit::KB => "KB",
            SizeUnit::MB => "MB",
            SizeUnit::GB => "GB",
            SizeUnit::KiB => "KiB",
            SizeUnit::MiB => "MiB",
            SizeUnit::GiB => "GiB",
        }
    }
    pub fn bytes(self) -> u64 {
        match self {
            SizeUnit::B => 1,
            SizeUnit::KB => 1_000,
            SizeUnit::MB => 1_000_000,
            SizeUnit::GB => 1_000_000_000,
            SizeUnit::KiB => 1 << 10,
            SizeUnit::MiB => 1 << 20,
            SizeUnit::GiB => 1 << 30,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.bytes / self.unit.bytes(), self.unit.name())
    }
}

/// A duration as written (milliseconds plus the author's unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration {
    pub millis: u64,
    pub unit: DurationUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    Ms,
    S,
    M,
    H,
    D,
}

impl DurationUnit {
    pub const ALL: [DurationUnit; 5] = [
        DurationUnit::Ms,
        DurationUnit::S,
        DurationUnit::M,
        DurationUnit::H,
        DurationUnit::D,
    ];
    pub fn name(self) -> &'static str {
        match self {
            DurationUnit::Ms => "ms",
            DurationUnit::S => "s",
            DurationUnit::M => "m",
            DurationUnit::H => "h",
            DurationUnit::D => "d",
        }
    }
    pub fn millis(self) -> u64 {
        match self {
            DurationUnit::Ms => 1,
            DurationUnit::S => 1_000,
            DurationUnit::M => 60_000,
            DurationUnit::H => 3_600_000,
            DurationUnit::D => 86_400_000,
        }
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            self.millis / self.unit.millis(),
            self.unit.name()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    Body,
    Uri,
    Header,
    Headers,
}

impl LimitKind {
    pub const ALL: [LimitKind; 4] = [
        LimitKind::Body,
        LimitKind::Uri,
        LimitKind::Header,
        LimitKind::Headers,
    ];
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Body => "body",
            LimitKind::Uri => "uri",
            LimitKind::Header => "header",
            LimitKind::Headers => "headers",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LimitItem {
    pub kind: Spanned<LimitKind>,
    pub size: Spanned<Size>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub name: Ident,
    pub items: Vec<Spanned<BackendItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackendItem {
    /// `targets "URL" [weight N]…`.
    Targets(Vec<WeightedTarget>),
    Timeout(Spanned<Duration>),
    ConnectTimeout(Spanned<Duration>),
    /// `retries N [budget P%]`.
    Retries {
        count: Spanned<u32>,
        /// At most this percentage of the requests in flight may be retries.
        budget: Option<Spanned<u32>>,
    },
    /// `balance round-robin | least-requests | hash ip|header "H"|query "q"`.
    Balance(Spanned<Balance>),
    /// `health http "/PATH" [every D] [timeout D] [healthy N] [unhealthy N] [status A..B]`.
    Health(HealthCheck),
    /// `passive [unhealthy N] [status A..B] [cooldown D]`.
    Passive(PassiveCheck),
    /// `breaker { … }`.
    Breaker(BreakerBlock),
    DenyIps {
        deny: Vec<Spanned<IpNet>>,
        except: Vec<Spanned<IpNet>>,
    },
    /// `sign hmac|basic key "KEY" secret env|file "NAME"`: every request forwarded here is
    /// signed, so the backend can tell it came through the gateway.
    Sign(Signing),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeightedTarget {
    pub url: Spanned<String>,
    /// `None`: weight 1. Zero drains the target.
    pub weight: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Balance {
    RoundRobin,
    LeastRequests,
    Hash(HashKey),
}

impl Balance {
    /// The strategies' names, as written after `balance`.
    pub const NAMES: [&'static str; 3] = ["round-robin", "least-requests", "hash"];
}

/// What `balance hash` hashes.
#[derive(Debug, Clone, PartialEq)]
pub enum HashKey {
    /// The client's address (as the checks see it, through trusted proxies).
    Ip,
    Header(Spanned<String>),
    Query(Spanned<String>),
}

/// An active health check; options left out take their defaults when compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub path: Spanned<String>,
    pub every: Option<Spanned<Duration>>,
    pub timeout: Option<Spanned<Duration>>,
    pub healthy: Option<Spanned<u32>>,
    pub unhealthy: Option<Spanned<u32>>,
    pub status: Option<Spanned<Range<u16>>>,
}

/// Passive health: what forwarded requests' failures say about a target.
#[derive(Debug, Clone, PartialEq)]
pub struct PassiveCheck {
    pub unhealthy: Option<Spanned<u32>>,
    pub status: Option<Spanned<Range<u16>>>,
    pub cooldown: Option<Spanned<Duration>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerBlock {
    pub items: Vec<Spanned<BreakerItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BreakerItem {
    /// `trip timeouts connect-errors status A..B slower than D`: what counts as a failure.
    Trip(Vec<Spanned<TripCondition>>),
    /// `count N in D`: trip at N failures within the window.
    Count {
        failures: Spanned<u32>,
        within: Spanned<Duration>,
    },
    /// `percent P min N in D`: trip when at least N requests were seen and P % failed.
    Percent {
        percent: Spanned<u32>,
        min: Spanned<u32>,
        within: Spanned<Duration>,
    },
    /// `open D`: how long the breaker stays open before probing.
    Open(Spanned<Duration>),
    /// `probes N`: the requests let through while half-open.
    Probes(Spanned<u32>),
    /// `downgrade mock … | backend NAME | unavailable`: the answer while open.
    Downgrade(Downgrade),
}

#[derive(Debug, Clone, PartialEq)]
pub enum TripCondition {
    Timeouts,
    ConnectErrors,
    Status(Range<u16>),
    SlowerThan(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Downgrade {
    Mock(Mock),
    Backend(Ident),
    Unavailable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub name: Ident,
    pub items: Vec<Spanned<AppItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AppItem {
    Key(Spanned<String>),
    Secret(SecretRef),
    /// A Huawei AppCode (simple authentication); an app has at most five.
    AppCode(SecretRef),
    TrustedIps(Vec<Spanned<IpNet>>),
    Quota(Quota),
    Rate(Rate),
    Frozen,
    /// `apikey sha256 "HEX"`: an API key of the app, as the SHA-256 of the key (never the key).
    ApiKey(Spanned<String>),
    /// `password argon2 "$argon2id$…"`: the app's Basic password, as an argon2 PHC string.
    Password(Spanned<String>),
}

/// Where a secret lives. Secrets are never written in a policy, only referred to.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRef {
    pub source: SecretSource,
    pub name: Spanned<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Env,
    File,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: Ident,
    pub items: Vec<Spanned<PlanItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlanItem {
    Apps(Vec<Ident>),
    Rate(Rate),
    Quota(Quota),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    pub limit: Spanned<u64>,
    pub period: Spanned<QuotaPeriod>,
    /// The time zone whose midnight starts a day or month (`in "Asia/Shanghai"`); UTC when
    /// absent.
    pub zone: Option<Spanned<String>>,
    pub on_store_error: Option<Spanned<StoreErrorPolicy>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub limit: Spanned<u64>,
    pub period: Spanned<Window>,
    pub key: Option<Spanned<RateKey>>,
    pub burst: Option<Spanned<u64>>,
    pub on_store_error: Option<Spanned<StoreErrorPolicy>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// Tencent key pair (`Authorization: hmac id=…`), Kong hmac-auth as a variant.
    Keypair,
    /// Huawei APIG app authentication, SDK-HMAC-SHA256 (and AppCode).
    AppSignature,
    /// JD Cloud JDCLOUD2-HMAC-SHA256.
    JdSignature,
    Jwt,
    /// An external HTTP authorizer.
    Authorizer,
    /// Huawei's OAuth2 token endpoint and the access tokens it issues.
    Oauth2,
    /// An API key per app (Kong's key-auth): `apikey: KEY`, matched by its SHA-256.
    ApiKey,
    /// HTTP Basic credentials (Kong's basic-auth): the app's key and an argon2-hashed password.
    Basic,
    /// Tencent's application authentication (ApiAppKey / ApiAppSecret).
    ApiApp,
}

impl AuthKind {
    pub const ALL: [AuthKind; 9] = [
        AuthKind::Keypair,
        AuthKind::AppSignature,
        AuthKind::JdSignature,
        AuthKind::Jwt,
        AuthKind::Authorizer,
        AuthKind::Oauth2,
        AuthKind::ApiKey,
        AuthKind::Basic,
        AuthKind::ApiApp,
    ];
    pub fn name(self) -> &'static str {
        match self {
            AuthKind::Keypair => "keypair",
            AuthKind::AppSignature => "app-signature",
            AuthKind::JdSignature => "jd-signature",
            AuthKind::Jwt => "jwt",
            AuthKind::Authorizer => "authorizer",
            AuthKind::Oauth2 => "oauth2",
            AuthKind::ApiKey => "apikey",
            AuthKind::Basic => "basic",
            AuthKind::ApiApp => "apiapp",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthProvider {
    pub name: Ident,
    pub kind: Spanned<AuthKind>,
    pub items: Vec<Spanned<AuthItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuthItem {
    Algorithms(Vec<Spanned<String>>),
    ClockSkew(Spanned<Duration>),
    /// JD: the region a signature's credential scope must name.
    Region(Spanned<String>),
    /// JD: the API group (the scope's service) a signature must name.
    Group(Spanned<String>),
    Variant(Spanned<String>),
    Key(SecretRef),
    Jwks(SecretRef),
    Issuer(Spanned<String>),
    Audience(Vec<Spanned<String>>),
    Leeway(Spanned<Duration>),
    TokenFrom(TokenSource),
    Url(Spanned<String>),
    Timeout(Spanned<Duration>),
    Cache(Spanned<Duration>),
    Identity(Vec<Spanned<String>>),
    Path(Spanned<String>),
    AccessTtl(Spanned<Duration>),
    RefreshTtl(Spanned<Duration>),
    SigningKey(SecretRef),
    AllowAppcode,
    /// `hide credentials`: the key or the Basic credentials never reach the backend.
    HideCredentials,
}

impl AuthItem {
    /// The statement's keyword, for diagnostics ("`issuer` does not apply to …").
    pub fn keyword(&self) -> &'static str {
        match self {
            AuthItem::Algorithms(_) => "algorithms",
            AuthItem::ClockSkew(_) => "clock skew",
            AuthItem::Region(_) => "region",
            AuthItem::Group(_) => "group",
            AuthItem::Variant(_) => "variant",
            AuthItem::Key(_) => "key",
            AuthItem::Jwks(_) => "jwks",
            AuthItem::Issuer(_) => "issuer",
            AuthItem::Audience(_) => "audience",
            AuthItem::Leeway(_) => "leeway",
            AuthItem::TokenFrom(_) => "token from",
            AuthItem::Url(_) => "url",
            AuthItem::Timeout(_) => "timeout",
            AuthItem::Cache(_) => "cache",
            AuthItem::Identity(_) => "identity header",
            AuthItem::Path(_) => "path",
            AuthItem::AccessTtl(_) => "access ttl",
            AuthItem::RefreshTtl(_) => "refresh ttl",
            AuthItem::SigningKey(_) => "signing key",
            AuthItem::AllowAppcode => "allow appcode",
            AuthItem::HideCredentials => "hide credentials",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    Header { name: Spanned<String>, bearer: bool },
    Query(Spanned<String>),
    Cookie(Spanned<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub methods: Vec<Spanned<Method>>,
    pub path: Spanned<PathTemplate>,
    pub items: Vec<Spanned<RouteItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteItem {
    Stages(Vec<Ident>),
    Protocols(Vec<Spanned<Protocol>>),
    Auth(RouteAuth),
    Param(Param),
    Cors(Vec<Spanned<CorsClause>>),
    AllowIps(Vec<Spanned<IpNet>>),
    DenyIps(Vec<Spanned<IpNet>>),
    Rate(Rate),
    /// `throttle NAME`: this route counts in the throttle (instead of its service's).
    Throttle(Ident),
    WebSocket,
    Limits(Vec<LimitItem>),
    ResponseHeader {
        name: Spanned<String>,
        value: Spanned<String>,
    },
    Mock(Mock),
    Forward(Forward),
    IssueTokens(Ident),
    /// What the backend request carries (issue 13). One variant for the whole family, so a
    /// consumer that does not know it yet has a single arm to refuse it with.
    Upstream(Upstream),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteAuth {
    None,
    Provider {
        provider: Ident,
        /// `None`: every app the provider knows may call; `Some`: only these.
        apps: Option<Vec<Ident>>,
        claims: Vec<Claim>,
    },
}

/// `claim "scope" "orders:read" "orders:write"`: the token's claim must hold one of the values.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub name: Spanned<String>,
    pub values: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub required: bool,
    pub location: Spanned<ParamLocation>,
    pub name: Spanned<String>,
    pub ty: Option<Spanned<ParamType>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParamType {
    /// Optional length bounds in characters.
    String {
        len: Option<Range<u64>>,
    },
    Int {
        range: Option<Range<i64>>,
    },
    Decimal {
        range: Option<Range<f64>>,
    },
    Bool,
    Enum(Vec<Spanned<String>>),
}

/// An inclusive range; either end may be open (`1..`, `..64`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    pub min: Option<T>,
    pub max: Option<T>,
}

impl<T: fmt::Display> fmt::Display for Range<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(min) = &self.min {
            write!(f, "{min}")?;
        }
        f.write_str("..")?;
        if let Some(max) = &self.max {
            write!(f, "{max}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::String { len: None } => f.write_str("string"),
            ParamType::String { len: Some(r) } => write!(f, "string {r}"),
            ParamType::Int { range: None } => f.write_str("int"),
            ParamType::Int { range: Some(r) } => write!(f, "int {r}"),
            ParamType::Decimal { range: None } => f.write_str("decimal"),
            ParamType::Decimal { range: Some(r) } => write!(f, "decimal {r}"),
            ParamType::Bool => f.write_str("bool"),
            ParamType::Enum(values) => {
                f.write_str("enum")?;
                for v in values {
                    write!(f, " {}", super::fmt::quote(&v.value))?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CorsClause {
    Origins(Vec<Spanned<String>>),
    Methods(Vec<Spanned<Method>>),
    Headers(Vec<Spanned<String>>),
    Expose(Vec<Spanned<String>>),
    Credentials,
    MaxAge(Spanned<Duration>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mock {
    pub status: Spanned<u16>,
    pub body: Option<MockBody>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MockBody {
    Json(serde_json::Value),
    Text(Spanned<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub backend: Ident,
    pub path: Option<Spanned<PathTemplate>>,
}

// ---------------------------------------------------------------------------------------------
// The backend request (issue 13)

/// A statement that shapes the request sent to the backend, or the answer it gives back.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstream {
    /// `backend query "uid" from path "id"`, `… constant "…"`, `… system client-ip`.
    Param(BackendParam),
    /// `remove header "Cookie"`, `remove query "debug"`.
    Remove {
        location: Spanned<UpstreamLocation>,
        name: Spanned<String>,
    },
    /// `backend parameters only`: frontend parameters not mapped are not passed on.
    ParametersOnly,
    /// `backend response header add|set|remove …`: edits of a forwarded answer's headers.
    ResponseHeader(ResponseHeaderEdit),
    /// `policy NAME [all|any] { … }`: an alternative backend chosen by conditions.
    Policy(PolicyBackend),
    /// `orchestrate query "a" into header "B" { … }`.
    Orchestrate(Orchestration),
}

impl Upstream {
    /// The statement as its first words read, for diagnostics.
    pub fn keyword(&self) -> &'static str {
        match self {
            Upstream::Param(_) => "backend parameter",
            Upstream::Remove { .. } => "remove",
            Upstream::ParametersOnly => "backend parameters only",
            Upstream::ResponseHeader(_) => "backend response header",
            Upstream::Policy(_) => "policy",
            Upstream::Orchestrate(_) => "orchestrate",
        }
    }
}

/// Where a parameter of the backend request lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamLocation {
    /// A variable of the `forward … path` template.
    Path,
    Query,
    Header,
}

impl UpstreamLocation {
    pub const ALL: [UpstreamLocation; 3] = [
        UpstreamLocation::Path,
        UpstreamLocation::Query,
        UpstreamLocation::Header,
    ];
    pub fn name(self) -> &'static str {
        match self {
            UpstreamLocation::Path => "path",
            UpstreamLocation::Query => "query",
            UpstreamLocation::Header => "header",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackendParam {
    pub location: Spanned<UpstreamLocation>,
    pub name: Spanned<String>,
    pub value: Spanned<ParamValue>,
}

/// Where a backend parameter's value comes from (the vendors' REQUEST / CONSTANT / SYSTEM).
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A frontend parameter, possibly of another location and name.
    Request {
        location: Spanned<ParamLocation>,
        name: Spanned<String>,
    },
    Constant(Spanned<String>),
    System(SystemValue),
}

/// A value the gateway knows about the request.
#[derive(Debug, Clone, PartialEq)]
pub enum SystemValue {
    ClientIp,
    RequestId,
    Stage,
    Service,
    /// The route's label (`GET /orders/{id}`), the vendors' API name.
    Route,
    AppKey,
    AppName,
    /// When the gateway received the request (RFC 3339, UTC).
    RequestTime,
    /// A claim of the verified JWT.
    Claim(Spanned<String>),
    /// A field of the external authorizer's context.
    Authorizer(Spanned<String>),
}

impl SystemValue {
    /// The names of the values that take no argument, as written after `system`.
    pub const PLAIN: [(&'static str, SystemValue); 8] = [
        ("client-ip", SystemValue::ClientIp),
        ("request-id", SystemValue::RequestId),
        ("stage", SystemValue::Stage),
        ("service", SystemValue::Service),
        ("route", SystemValue::Route),
        ("app-key", SystemValue::AppKey),
        ("app-name", SystemValue::AppName),
        ("request-time", SystemValue::RequestTime),
    ];
    /// The values that name a field: `system claim "sub"`, `system authorizer "tenant"`.
    pub const NAMED: [&'static str; 2] = ["claim", "authorizer"];

    pub fn name(&self) -> &'static str {
        match self {
            SystemValue::Claim(_) => "claim",
            SystemValue::Authorizer(_) => "authorizer",
            plain => SystemValue::PLAIN
                .iter()
                .find(|(_, v)| v == plain)
                .map_or("", |(n, _)| n),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Another value, after the backend's own.
    Add,
    /// This value, replacing the backend's.
    Set,
    Remove,
}

impl HeaderEdit {
    pub const ALL: [HeaderEdit; 3] = [HeaderEdit::Add, HeaderEdit::Set, HeaderEdit::Remove];
    pub fn name(self) -> &'static str {
        match self {
            HeaderEdit::Add => "add",
            HeaderEdit::Set => "set",
            HeaderEdit::Remove => "remove",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseHeaderEdit {
    pub edit: Spanned<HeaderEdit>,
    pub name: Spanned<String>,
    /// Absent exactly for `remove`.
    pub value: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyBackend {
    pub name: Ident,
    /// `any`: one condition suffices; `all` (the default): every one must hold.
    pub any: bool,
    pub items: Vec<Spanned<PolicyItem>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PolicyItem {
    When(Condition),
    /// A backend parameter, removal or response edit of this policy only.
    Upstream(Upstream),
    Forward(Forward),
    Mock(Mock),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `when source CIDR…`: the client's address.
    Source(Vec<Spanned<IpNet>>),
    /// `when header|query|path|claim|authorizer "NAME" is|in|matches …`.
    Value {
        subject: Spanned<Subject>,
        name: Spanned<String>,
        test: Spanned<ValueTest>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Param(ParamLocation),
    Claim,
    Authorizer,
}

impl Subject {
    pub fn name(self) -> &'static str {
        match self {
            Subject::Param(l) => l.name(),
            Subject::Claim => "claim",
            Subject::Authorizer => "authorizer",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueTest {
    Is(Spanned<String>),
    In(Vec<Spanned<String>>),
    /// A regular expression matched against the whole value.
    Matches(Spanned<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Orchestration {
    pub from_location: Spanned<ParamLocation>,
    pub from: Spanned<String>,
    pub into_location: Spanned<UpstreamLocation>,
    pub into: Spanned<String>,
    /// In order: the first rule that matches decides.
    pub rules: Vec<Spanned<OrchestrationRule>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrchestrationRule {
    /// `pre`: the rule's result is not the new parameter but the value later rules see.
    pub pre: bool,
    pub kind: OrchestrationKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrchestrationKind {
    /// `list "a" "b" to "x"`.
    List {
        values: Vec<Spanned<String>>,
        to: Spanned<String>,
    },
    /// `range 1..100 to "x"` (integers, inclusive).
    Range {
        range: Spanned<Range<i64>>,
        to: Spanned<String>,
    },
    /// `hash`: the value's hash is the result.
    Hash,
    /// `hash range 0..49 to "x"`: the value's hash, bucketed by range.
    HashRange {
        range: Spanned<Range<i64>>,
        to: Spanned<String>,
    },
    /// `head N`: the first N characters.
    Head(Spanned<u32>),
    /// `tail N`: the last N characters.
    Tail(Spanned<u32>),
    /// `empty to "x"`: the value when the parameter is absent or empty.
    Empty(Spanned<String>),
    /// `default "x"`: the value when no rule matched.
    Default(Spanned<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signing {
    pub kind: Spanned<SigningKind>,
    /// The key id (HMAC) or user name (Basic), not secret.
    pub key: Spanned<String>,
    pub secret: SecretRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKind {
    /// Huawei's SDK-HMAC-SHA256, as app authentication verifies it.
    Hmac,
    Basic,
}

impl SigningKind {
    pub const ALL: [SigningKind; 2] = [SigningKind::Hmac, SigningKind::Basic];
    pub fn name(self) -> &'static str {
        match self {
            SigningKind::Hmac => "hmac",
            SigningKind::Basic => "basic",
        }
    }
}
