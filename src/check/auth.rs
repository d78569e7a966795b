//! Step 7: the route's `auth PROVIDER [apps …] [claim …]`: the provider verifies the caller
//! (see `crate::auth`), then the app's standing (usage plans, binding, frozen, trusted
//! addresses) and the token's claims are checked.

use super::{once, Build, Cx, Phase, RouteCheck, RouteFacts};
use crate::policy::ast::{self, RouteItem};
use crate::policy::diag::{self, Diagnostic};
use std::fmt;

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

impl RouteCheck for AuthCheck {
    const PHASE: Phase = Phase::Auth;

    /// The route's `auth PROVIDER [apps …] [claim …]` (`auth none` compiles to no check).
    fn compile(r: &RouteFacts<'_>, b: &mut dyn Build) -> Vec<Self> {
        let pick: fn(&RouteItem) -> Option<&_> = |i| match i {
            RouteItem::Auth(a) => Some(a),
            _ => None,
        };
        let Some(ast::RouteAuth::Provider {
            provider,
            apps,
            claims,
        }) = once(r.route, b, "auth", pick)
        else {
            return Vec::new();
        };
        let Some((index, kind)) = b.provider(provider) else {
            return Vec::new();
        };
        if let Some(list) = apps {
            if !crate::auth::yields_app(kind) {
                b.error(
                    Diagnostic::error(
                        diag::NOT_APPLICABLE,
                        list[0].span,
                        format!("a {} provider does not identify apps", kind.name()),
                    )
                    .label("apps are callers with access keys")
                    .help(format!(
                        "bind apps to routes that use {}",
                        crate::auth::names(crate::auth::yields_app, "or")
                    )),
                );
            }
        }
        let app_names = apps.iter().flatten().map(|a| a.value.clone()).collect();
        let apps = apps.as_ref().map(|list| {
            let mut out: Vec<usize> = Vec::new();
            for app in list.iter().filter_map(|a| b.app(a)) {
                if !out.contains(&app) {
                    out.push(app);
                }
            }
            out
        });
        if let Some(c) = claims.first() {
            if !crate::auth::carries_claims(kind) {
                b.error(
                    Diagnostic::error(
                        diag::NOT_APPLICABLE,
                        c.name.span,
                        format!("a {} provider carries no claims", kind.name()),
                    )
                    .label("claims come from tokens")
                    .help(format!(
                        "claim rules apply to {} providers",
                        crate::auth::names(crate::auth::carries_claims, "and")
                    )),
                );
            }
        }
        vec![AuthCheck {
            provider: index,
            provider_name: provider.value.clone(),
            app_names,
            apps,
            claims: claims
                .iter()
                .map(|c| {
                    let values = c.values.iter().map(|v| v.value.clone()).collect();
                    (c.name.value.clone(), values)
                })
                .collect(),
        }]
    }

    fn can_refuse(&self, _: u64) -> bool {
        true
    }

    /// Verification goes through the pipeline's env (an authorizer's call, a nonce in the
    /// shared store): the pipeline runs it (see [`Cx::authenticate`]).
    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        cx.authenticate(self)
    }
}
