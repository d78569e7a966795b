//! The compiled forms a scheme reads: the service's apps (and the usage plans that group
//! them), its providers, their secrets and where a token is taken from. They live here, below
//! `compile`, so that the schemes and the route checks can read them without depending on the
//! compiler that builds them (`compile` re-exports them).

use crate::vocab::{QuotaRule, RateRule};
use ipnet::IpNet;
use std::collections::HashMap;
use std::fmt;

/// Key material that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[derive(Debug)]
pub struct App {
    pub name: String,
    pub key: String,
    /// `None` for an app that only authenticates with API keys or a Basic password: signing
    /// schemes then know no secret of it (they never verify with an empty one).
    pub secret: Option<Secret>,
    /// SHA-256 of each of its API keys.
    pub api_keys: Vec<[u8; 32]>,
    /// Its Basic password, as an argon2 PHC string.
    pub password: Option<String>,
    /// Huawei AppCodes: `X-Apig-AppCode` values that identify this app without a signature.
    pub app_codes: Vec<Secret>,
    pub trusted_ips: Vec<IpNet>,
    pub frozen: bool,
    /// In a Tencent service with usage plans, the app is in none of them (403 "Found no
    /// validate usage plan.").
    pub outside_plans: bool,
    pub quota: Option<QuotaRule>,
    pub rates: Vec<RateRule>,
}

#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub apps: Vec<usize>,
    pub rates: Vec<RateRule>,
    pub quota: Option<QuotaRule>,
}

/// An authentication provider: its name and its scheme's settings (see [`crate::auth`]).
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub settings: crate::auth::Settings,
}

impl Provider {
    pub fn kind(&self) -> crate::policy::ast::AuthKind {
        self.settings.kind()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFrom {
    Header { name: String, bearer: bool },
    Query(String),
    Cookie(String),
}

/// `Authorization: Bearer <token>`.
impl Default for TokenFrom {
    fn default() -> TokenFrom {
        TokenFrom::Header {
            name: "Authorization".into(),
            bearer: true,
        }
    }
}

/// What a scheme, and the checks that follow it, may know of the service: its name, its apps
/// and how an access key finds one, its providers and its usage plans. Borrowed from the
/// compiled service (five references, built on the stack), so `auth` and `check` need not
/// know `compile`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceView<'s> {
    pub name: &'s str,
    /// The service's counter group ([`crate::limits::Count::group`]).
    pub group: &'s std::sync::Arc<str>,
    pub apps: &'s [App],
    /// An app's access key → the app's index. Filled from the policy's apps only: a client
    /// can look a key up but never add one, so no client can pick keys that collide, and the
    /// map needs no collision-hard hash. foldhash rather than SipHash: about 200 instructions
    /// less a lookup, on every request an app authenticates.
    pub app_by_key: &'s HashMap<String, usize, foldhash::fast::RandomState>,
    /// An API key's SHA-256 → its app.
    pub app_by_api_key: &'s HashMap<[u8; 32], usize>,
    pub providers: &'s [Provider],
    pub plans: &'s [Plan],
}
