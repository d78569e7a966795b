//! The small words that the policy language, the pipeline and the error dialects share.
//!
//! They live apart from any one stage so that the parser, the compiler, `decide` and the
//! dialect renderer all speak of the same `Dialect`, `Protocol`, `Method` and `ParamLocation`.

use std::fmt;

pub mod hex;
pub mod limits;
pub mod path;
pub mod response;
pub mod target;

pub use limits::{
    Excepted, Exception, QuotaPeriod, QuotaRule, RateKey, RatePeriod, RateRule, StoreErrorPolicy,
    Window,
};
pub use path::{PathTemplate, Segment};
pub use response::Response;
pub use target::{HttpTarget, Target};

/// Which vendor's error catalogue and wire format a service answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Tencent,
    Huawei,
    Jdcloud,
}

impl Dialect {
    pub const ALL: [Dialect; 3] = [Dialect::Tencent, Dialect::Huawei, Dialect::Jdcloud];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Tencent => "tencent",
            Dialect::Huawei => "huawei",
            Dialect::Jdcloud => "jdcloud",
        }
    }

    pub fn parse(s: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.name() == s)
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The transport a request arrived on, as far as a policy can restrict it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Http, Protocol::Https];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }

    /// Upper-case form used in vendor messages ("Not allow use HTTPS protocol.").
    pub fn upper(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// HTTP methods a route can name. `Any` matches every method not claimed by a route
/// that names it explicitly (an explicit method always wins over `ANY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Any,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Options,
        Method::Any,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Any => "ANY",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Index into per-method tables; `Any` is last.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a declared request parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamLocation {
    Path,
    Header,
    Query,
    Form,
}

impl ParamLocation {
    pub const ALL: [ParamLocation; 4] = [
        ParamLocation::Path,
        ParamLocation::Header,
        ParamLocation::Query,
        ParamLocation::Form,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ParamLocation::Path => "path",
            ParamLocation::Header => "header",
            ParamLocation::Query => "query",
            ParamLocation::Form => "form",
        }
    }

    pub fn parse(s: &str) -> Option<ParamLocation> {
        ParamLocation::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl fmt::Display for ParamLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
