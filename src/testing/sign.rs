//! Signing a test's request as one of the policy's apps would, with the app's key and secret
//! from the compiled policy, so a test never holds a secret and a signed route can be tested up
//! to its action. Each scheme's signer lives beside its verifier (`auth::<scheme>`, registered
//! in `auth::schemes!`), so it builds the very canonical forms the verifier checks, at the
//! test's virtual time.

use super::format::{Exchange, Sign};
use crate::auth::signing::Signing;
use crate::compile::{App, Service, Snapshot};
use http::HeaderMap;

/// Add the signing headers to `headers`, with the signer of the scheme's own module.
pub fn sign(
    snap: &Snapshot,
    s: &Sign,
    e: &Exchange,
    host: Option<&str>,
    headers: &mut HeaderMap,
    now_ms: i64,
) -> Result<(), String> {
    let (service, app) = find_app(snap, host, &s.app)?;
    let mut signing = Signing {
        service: service.view(),
        app,
        method: &e.method,
        target: &e.target,
        host,
        body: &e.body,
        peer: e.client_ip,
        tls: e.tls,
        client_cert: e.client_cert,
        headers,
        now_ms,
    };
    crate::auth::sign(s.scheme, &mut signing)
}

/// The app of the service the request's host selects.
fn find_app<'s>(
    snap: &'s Snapshot,
    host: Option<&str>,
    name: &str,
) -> Result<(&'s Service, &'s App), String> {
    let host = host.unwrap_or_default();
    let bare = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
        .to_ascii_lowercase();
    let Some(service) = snap.hosts.find(&bare).map(|i| &snap.services[i]) else {
        return Err(format!("cannot sign: no service serves host {host:?}"));
    };
    let app = service
        .apps
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = service.apps.iter().map(|a| a.name.as_str()).collect();
            format!(
                "cannot sign: service {} has no app {name:?} (its apps: {})",
                service.name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        })?;
    Ok((service, app))
}
