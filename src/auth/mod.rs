//! Authentication: who is calling, verified by the provider a route names.
//!
//! Each scheme answers with a [`Principal`] or a [`Refusal`] carrying the canonical reason
//! (which the dialect turns into the vendor's exact row) and a trace detail. Secrets never
//! appear in either.
//!
//! # One home per scheme
//!
//! A scheme is one module, `auth/<scheme>.rs`, whose `Config` (its compiled settings)
//! implements [`Scheme`]: which provider-block statements it takes, how it compiles them (its
//! defaults and its "missing statement" errors), how it verifies a request, whether it needs
//! the body, whether its callers are apps or carry claims, and how `rulegate test` signs as one
//! of its apps. One line of the [`schemes!`] registry below declares the module and adds its
//! variant to [`Settings`]; everything else — the compiler's "`x` applies to: …" help, the
//! route checks for apps and claims, the pipeline's auth step, `sign` in `.tests` files — goes
//! through the matches the registry generates, exhaustive over [`AuthKind`] (the scheme's
//! keyword in the language), so a scheme the language names but the registry lacks does not
//! compile. Dispatch is a `match`, never a trait object: the request path costs what it did
//! when each scheme was called by name.

mod compiled;
pub(crate) mod sig;
pub mod signing;

pub use compiled::{App, Plan, Provider, Secret, ServiceView, TokenFrom};

use crate::dialect::Reason;
use crate::policy::ast::{AuthItem, AuthKind, Spanned};
use crate::policy::diag::Diagnostic;
use crate::request::RequestHead;
use signing::Signing;

/// What every scheme provides: its module's `Config` implements this, and one line of
/// [`schemes!`] registers it. The compiler, the pipeline and `rulegate test` reach a scheme only
/// through the generated [`Settings`] matches, which are exhaustive: a scheme named in the
/// language ([`AuthKind`]) but not registered here does not compile.
pub trait Scheme: Sized {
    /// Whether a verified caller is one of the service's apps (its binding, trusted IPs,
    /// frozen state and usage plans then apply).
    const YIELDS_APP: bool;
    /// Whether a verified caller carries claims, for a route's claim rules.
    const CARRIES_CLAIMS: bool;
    /// How `rulegate test`'s `sign SCHEME app NAME` signs a request as an app would; `None`
    /// when the scheme has no signer.
    const SIGN: Option<Signer<Self>> = None;
    /// Whether a statement of the provider block applies to this scheme (the others are
    /// refused with the list of the schemes they apply to).
    fn accepts(item: &AuthItem) -> bool;
    /// The settings, from the block's statements that [`Scheme::accepts`] (in order).
    fn compile(items: &[&Spanned<AuthItem>], cx: &mut dyn Compiler) -> Self;
    /// Whether verifying needs the body (a signed payload hash).
    fn needs_body(&self, head: &RequestHead<'_>) -> bool {
        let _ = head;
        false
    }
    /// Every refusal [`Scheme::verify`] can give with these settings, one reason per row (a
    /// detail the request decides is `…`): the route's error contract (`crate::contract`).
    fn failures(&self) -> Vec<Reason>;
    /// Verify a request.
    fn verify<'p>(
        &'p self,
        service: ServiceView<'_>,
        provider: &Provider,
        head: &RequestHead<'_>,
        now_ms: i64,
    ) -> Verified<'p>;
}

/// A test signer: the service's first provider of the scheme (if it has one) and the request.
pub type Signer<C> = fn(Option<(&Provider, &C)>, &mut Signing<'_>) -> Result<(), String>;

/// What a scheme's compilation needs from the compiler.
pub trait Compiler {
    /// Read a secret; `trim` drops one trailing newline.
    fn secret(&mut self, r: &crate::policy::ast::SecretRef, trim: bool) -> Option<Secret>;
    fn error(&mut self, d: Diagnostic);
    /// The block lacks a statement: an error at the provider's name, unless the block has a
    /// parse error (the statement may be the one that did not parse).
    fn missing(&mut self, message: String, help: &str);
    /// How many diagnostics so far: a scheme skips checks whose inputs were refused.
    fn diagnostics(&self) -> usize;
    /// The provider's name, for messages.
    fn name(&self) -> &str;
}

/// A verification's result.
#[derive(Debug)]
pub enum Verified<'p> {
    Caller(Principal),
    Refused(Refusal),
    /// An external authorizer decides: the pipeline asks it through its env.
    External(&'p authorizer::Config),
}

impl From<Result<Principal, Refusal>> for Verified<'_> {
    fn from(r: Result<Principal, Refusal>) -> Self {
        match r {
            Ok(p) => Verified::Caller(p),
            Err(r) => Verified::Refused(r),
        }
    }
}

/// The registry: `Variant => module::Config`, one line a scheme. `Variant` is the scheme's
/// [`AuthKind`] (its keyword in the language); the module's `Config` implements [`Scheme`].
macro_rules! schemes {
    ($($kind:ident => $module:ident,)*) => {
        $(pub mod $module;)*

        /// A provider's scheme with its settings: one variant a scheme.
        #[derive(Debug)]
        pub enum Settings {
            $($kind($module::Config),)*
        }

        impl Settings {
            pub fn kind(&self) -> AuthKind {
                match self {
                    $(Settings::$kind(_) => AuthKind::$kind,)*
                }
            }

            /// Compile a provider block's statements that `kind` accepts.
            pub fn compile(
                kind: AuthKind,
                items: &[&Spanned<AuthItem>],
                cx: &mut dyn Compiler,
            ) -> Settings {
                match kind {
                    $(AuthKind::$kind => Settings::$kind(Scheme::compile(items, cx)),)*
                }
            }

            pub fn needs_body(&self, head: &RequestHead<'_>) -> bool {
                match self {
                    $(Settings::$kind(c) => c.needs_body(head),)*
                }
            }

            fn failures(&self) -> Vec<Reason> {
                match self {
                    $(Settings::$kind(c) => c.failures(),)*
                }
            }

            fn verify(
                &self,
                service: ServiceView<'_>,
                provider: &Provider,
                head: &RequestHead<'_>,
                now_ms: i64,
            ) -> Verified<'_> {
                match self {
                    $(Settings::$kind(c) => c.verify(service, provider, head, now_ms),)*
                }
            }
        }

        /// Whether a provider block's statement applies to a scheme.
        pub fn accepts(kind: AuthKind, item: &AuthItem) -> bool {
            match kind {
                $(AuthKind::$kind => $module::Config::accepts(item),)*
            }
        }

        /// Whether a scheme's verified callers are apps.
        pub fn yields_app(kind: AuthKind) -> bool {
            match kind {
                $(AuthKind::$kind => <$module::Config as Scheme>::YIELDS_APP,)*
            }
        }

        /// Whether a scheme's verified callers carry claims.
        pub fn carries_claims(kind: AuthKind) -> bool {
            match kind {
                $(AuthKind::$kind => <$module::Config as Scheme>::CARRIES_CLAIMS,)*
            }
        }

        /// Whether `rulegate test` can sign as a scheme's app.
        pub fn signs(kind: AuthKind) -> bool {
            match kind {
                $(AuthKind::$kind => <$module::Config as Scheme>::SIGN.is_some(),)*
            }
        }

        /// Sign a test's request as an app of its service would for a scheme.
        pub fn sign(kind: AuthKind, s: &mut Signing<'_>) -> Result<(), String> {
            match kind {
                $(AuthKind::$kind => {
                    let Some(signer) = <$module::Config as Scheme>::SIGN else {
                        return Err(format!("rulegate cannot sign with {:?}", kind.name()));
                    };
                    let provider = s.service.providers.iter().find_map(|p| match &p.settings {
                        Settings::$kind(c) => Some((p, c)),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    });
                    signer(provider, s)
                })*
            }
        }
    };
}

schemes! {
    ApiApp => apiapp,
    ApiKey => apikey,
    Basic => basic,
    Keypair => keypair,
    AppSignature => app_signature,
    JdSignature => jd_signature,
    Jwt => jwt,
    Authorizer => authorizer,
    Oauth2 => oauth2,
}

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
    provider.settings.needs_body(head)
}

/// Every refusal a provider's verification can give (see [`Scheme::failures`]).
pub fn failures(provider: &Provider) -> Vec<Reason> {
    provider.settings.failures()
}

/// The detail of a refusal whose detail the request decides, as an error contract shows it.
pub const SOME_DETAIL: &str = "…";

/// Verify a request against a provider.
pub fn authenticate<'p>(
    service: ServiceView<'_>,
    provider: &'p Provider,
    head: &RequestHead<'_>,
    now_ms: i64,
) -> Verified<'p> {
    provider.settings.verify(service, provider, head, now_ms)
}

/// The schemes a statement applies to, for the diagnostic that refuses it elsewhere.
pub fn kinds_for(item: &AuthItem) -> String {
    let kinds: Vec<&str> = AuthKind::ALL
        .iter()
        .filter(|k| accepts(**k, item))
        .map(|k| k.name())
        .collect();
    match kinds.is_empty() {
        true => "none".to_string(),
        false => kinds.join(", "),
    }
}

/// The names of the schemes with a property, for messages: `a, b or c`.
pub fn names(has: fn(AuthKind) -> bool, last: &str) -> String {
    let names: Vec<&str> = AuthKind::ALL
        .into_iter()
        .filter(|k| has(*k))
        .map(AuthKind::name)
        .collect();
    match names.split_last() {
        Some((tail, [])) => tail.to_string(),
        Some((tail, init)) => format!("{} {last} {tail}", init.join(", ")),
        None => "none".to_string(),
    }
}

/// The `algorithms` a provider pins, each checked against the scheme's `known` ones (`none`
/// never passes), without duplicates.
fn pinned_algorithms(
    cx: &mut dyn Compiler,
    kind: AuthKind,
    known: &[&str],
    given: &[&Spanned<String>],
) -> Vec<String> {
    use crate::policy::diag::{self, did_you_mean};
    let mut out: Vec<String> = Vec::new();
    for a in given {
        if a.value.eq_ignore_ascii_case("none") {
            cx.error(
                Diagnostic::error(
                    diag::UNKNOWN_VALUE,
                    a.span,
                    "algorithm `none` is never accepted",
                )
                .label("unsigned tokens would pass")
                .help("name the algorithm your issuer signs with"),
            );
            continue;
        }
        if !known.contains(&a.value.as_str()) {
            cx.error(
                Diagnostic::error(
                    diag::UNKNOWN_VALUE,
                    a.span,
                    format!("unknown algorithm `{}`", a.value),
                )
                .label(format!("not a {} algorithm", kind.name()))
                .help(
                    did_you_mean(&a.value, known.iter().copied())
                        .unwrap_or_else(|| format!("algorithms: {}", known.join(", "))),
                ),
            );
            continue;
        }
        if !out.contains(&a.value) {
            out.push(a.value.clone());
        }
    }
    out
}

/// Where a provider with `hide credentials` has the caller's credentials, which the backend
/// must not receive: a header, or a query parameter.
pub fn hidden(provider: &Provider) -> Option<(crate::vocab::ParamLocation, String)> {
    use crate::vocab::ParamLocation;
    match &provider.settings {
        Settings::ApiKey(c) if c.hide => match &c.from {
            TokenFrom::Header { name, .. } => Some((ParamLocation::Header, name.clone())),
            TokenFrom::Query(name) => Some((ParamLocation::Query, name.clone())),
            // a cookie is one value of a header shared with others: left as it is
            TokenFrom::Cookie(_) => None,
        },
        Settings::Basic(c) if c.hide => Some((ParamLocation::Header, "authorization".to_string())),
        _ => None,
    }
}

/// Where a token is read from, as `token from` says.
fn token_from(t: &crate::policy::ast::TokenSource) -> crate::auth::TokenFrom {
    use crate::policy::ast::TokenSource;
    match t {
        TokenSource::Header { name, bearer } => TokenFrom::Header {
            name: name.value.clone(),
            bearer: *bearer,
        },
        TokenSource::Query(q) => TokenFrom::Query(q.value.clone()),
        TokenSource::Cookie(c) => TokenFrom::Cookie(c.value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ast::Span;

    fn text(s: &str) -> Spanned<String> {
        Spanned {
            value: s.to_string(),
            span: Span::default(),
        }
    }

    #[test]
    fn a_refused_statement_names_every_scheme_that_takes_it_in_the_languages_order() {
        assert_eq!(kinds_for(&AuthItem::Algorithms(vec![])), "keypair, jwt");
        assert_eq!(kinds_for(&AuthItem::Region(text("r"))), "jd-signature");
        assert_eq!(kinds_for(&AuthItem::Url(text("u"))), "authorizer");
        assert_eq!(kinds_for(&AuthItem::AllowAppcode), "app-signature");
        assert_eq!(kinds_for(&AuthItem::Path(text("/p"))), "none");
    }

    #[test]
    fn the_schemes_with_apps_claims_and_signers_are_read_off_the_schemes() {
        assert_eq!(
            names(yields_app, "or"),
            "keypair, app-signature, jd-signature, oauth2, apikey, basic or apiapp"
        );
        assert_eq!(names(carries_claims, "and"), "jwt and oauth2");
        assert_eq!(
            names(signs, "and"),
            "keypair, app-signature, jd-signature, oauth2 and apiapp"
        );
    }

    #[test]
    fn every_scheme_is_registered_under_its_own_kind() {
        for kind in AuthKind::ALL {
            struct Quiet;
            impl Compiler for Quiet {
                fn secret(&mut self, _: &crate::policy::ast::SecretRef, _: bool) -> Option<Secret> {
                    None
                }
                fn error(&mut self, _: Diagnostic) {}
                fn missing(&mut self, _: String, _: &str) {}
                fn diagnostics(&self) -> usize {
                    0
                }
                fn name(&self) -> &str {
                    "p"
                }
            }
            assert_eq!(Settings::compile(kind, &[], &mut Quiet).kind(), kind);
        }
    }
}
