//! Authentication: who is calling, verified by the provider a route names.
//!
//! Each scheme answers with a [`Principal`] or a [`Refusal`] carrying the canonical reason
//! (which the dialect turns into the vendor's exact row) and a trace detail. Secrets never
//! appear in either.

pub mod app_signature;
pub mod authorizer;
pub mod jd_signature;
pub mod jwt;
pub mod keypair;
pub mod oauth2;
pub(crate) mod sig;

use crate::compile::{Provider, Service};
use crate::decide::{Env, RequestHead};
use crate::dialect::Reason;
use crate::policy::ast::AuthKind;

/// Who the request was verified to come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The app (for schemes keyed by an app's access key).
    pub app: Option<usize>,
    /// For the trace: how the caller was identified (never a secret).
    pub describe: String,
    /// A token's claims, for the route's claim rules.
    pub claims: Option<serde_json::Value>,
    /// A nonce the request must spend before it passes (JDCLOUD2): spent by the pipeline,
    /// through the env's limiter, which may keep nonces in a store shared by gateways.
    pub nonce: Option<Nonce>,
}

/// A signer's nonce, good for one use within `ttl_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce {
    /// The cache key: scheme, access key and nonce.
    pub key: String,
    /// The nonce as sent, for the trace.
    pub value: String,
    pub ttl_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub detail: String,
}

/// Whether the provider must see the body before it can verify (a signed payload hash).
pub fn needs_body(provider: &Provider, head: &RequestHead<'_>) -> bool {
    match provider.kind {
        AuthKind::AppSignature => app_signature::needs_body(provider, head),
        AuthKind::JdSignature => jd_signature::needs_body(head),
        _ => false,
    }
}

/// Verify a request against a provider.
///
/// A scheme not yet built refuses every request — failing closed, never open — with the
/// dialect's internal-error row and a trace that says why.
pub fn authenticate(
    service: &Service,
    provider: &Provider,
    head: &RequestHead<'_>,
    env: &dyn Env,
) -> Result<Principal, Refusal> {
    match provider.kind {
        AuthKind::Keypair => return keypair::verify(service, provider, head, env.now_ms()),
        AuthKind::AppSignature => {
            return app_signature::verify(service, provider, head, env.now_ms())
        }
        AuthKind::Jwt => return jwt::verify(provider, head, env.now_ms()),
        AuthKind::JdSignature => return jd_signature::verify(service, provider, head, env),
        AuthKind::Oauth2 => return oauth2::verify(service, provider, head, env.now_ms()),
        _ => {}
    }
    let scheme = provider.kind.name();
    Err(Refusal {
        reason: Reason::Internal,
        detail: format!(
            "provider {}: the {scheme} scheme is not available in this build; refusing",
            provider.name
        ),
    })
}
