//! Calling external authorizers, and the decision cache in front of them.
//!
//! The protocol and what each answer means are in [`crate::auth::authorizer`]; this is the
//! I/O. A call is one `POST` on a kept-alive HTTP/1 connection (the backends' [`Pool`]),
//! bounded as a whole by the provider's `timeout`: resolving and connecting within it, or the
//! call failed to reach the authorizer (APIG.0615 / 0616); the whole answer within it once
//! connected, or it failed to answer (APIG.0617).
//!
//! Identity values are credentials: they go to the authorizer and nowhere else. Logs name the
//! provider, its URL and what failed; the cache keys are SHA-256 digests.

use super::handler::full;
use super::pool::{Endpoint, Pool, SendError};
use crate::auth::authorizer::{
    cache_key, parse_answer, settings, url, Answer, Call, Failure, MAX_BODY,
};
use crate::compile::{HttpTarget, Provider};
use http_body_util::{BodyExt as _, Limited};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Answers kept at most; when full, expired entries go first, then the soonest to expire.
const CACHE_ENTRIES: usize = 10_000;

/// The connections to authorizers and their cached answers, shared by every request and kept
/// across reloads (the key includes the URL, so a changed provider does not reuse answers).
pub struct Authorizers {
    pool: Pool,
    cache: Mutex<HashMap<[u8; 32], (Answer, Instant)>>,
}

impl Authorizers {
    /// Authorizers reached with `tls` for `https://` URLs (see `tls::client_config`).
    pub fn new(tls: std::sync::Arc<rustls::ClientConfig>) -> Authorizers {
        Authorizers {
            pool: Pool::new(tls),
            cache: Mutex::default(),
        }
    }

    /// The cached answer to this call, if the provider caches and one has not expired.
    pub fn cached(&self, provider: &Provider, call: &Call) -> Option<Answer> {
        if !caches(provider, call) {
            return None;
        }
        let key = cache_key(provider, call);
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(&key) {
            Some((answer, until)) if *until > Instant::now() => Some(answer.clone()),
            _ => None,
        }
    }

    /// Ask the authorizer, and cache a verdict for the provider's `cache` time.
    pub async fn ask(&self, provider: &Provider, call: &Call, request_id: &str) -> Answer {
        let answer = self.call(provider, call, request_id).await;
        if let Answer::Failed { failure, detail } = &answer {
            tracing::warn!(
                request_id,
                provider = %provider.name,
                url = url(provider).unwrap_or("-"),
                ?failure,
                "authorizer call failed: {detail}"
            );
        }
        if answer.cacheable() && caches(provider, call) {
            self.remember(
                cache_key(provider, call),
                answer.clone(),
                Duration::from_millis(settings(provider).map_or(0, |a| a.cache_ms)),
            );
        }
        answer
    }

    fn remember(&self, key: [u8; 32], answer: Answer, ttl: Duration) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES && !cache.contains_key(&key) {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= CACHE_ENTRIES {
                let soonest = cache.iter().min_by_key(|(_, (_, until))| *until);
                if let Some(k) = soonest.map(|(k, _)| *k) {
                    cache.remove(&k);
                }
            }
        }
        cache.insert(key, (answer, now + ttl));
    }

    async fn call(&self, provider: &Provider, call: &Call, request_id: &str) -> Answer {
        let Some(settings) = settings(provider) else {
            let detail = format!("provider {} is not an authorizer", provider.name);
            return failed(Failure::Unreachable, detail);
        };
        let deadline = Instant::now() + Duration::from_millis(settings.timeout_ms);
        let within = format!("within {} ms", settings.timeout_ms);
        let url = settings.url.as_deref().unwrap_or("");
        let Some(target) = &settings.target else {
            return failed(
                Failure::Unreachable,
                format!("{url:?} is not an http:// or https:// URL"),
            );
        };
        let addr = match resolve(target, deadline, &within).await {
            Ok(addr) => addr,
            Err(answer) => return answer,
        };
        let request = match request(call, request_id, url, target) {
            Ok(request) => request,
            Err(answer) => return answer,
        };
        let connect_within = deadline.saturating_duration_since(Instant::now());
        let endpoint = Endpoint {
            addr,
            tls: target.tls.clone(),
        };
        let sent = self
            .pool
            .send_by(&endpoint, connect_within, Some(deadline), request);
        let response = match sent.await {
            Ok(r) => r,
            Err(SendError::Connect(e)) => return failed(Failure::Unreachable, e),
            Err(SendError::Timeout) => {
                return failed(Failure::BadResponse, format!("no answer {within}"))
            }
            Err(SendError::Http(e)) => {
                return failed(Failure::BadResponse, format!("the answer failed: {e}"))
            }
        };
        read_answer(response, deadline, &within).await
    }
}

fn failed(failure: Failure, detail: String) -> Answer {
    Answer::Failed { failure, detail }
}

/// The authorizer's address: as written, or looked up within the deadline.
async fn resolve(
    target: &HttpTarget,
    deadline: Instant,
    within: &str,
) -> Result<SocketAddr, Answer> {
    if let Some(ip) = target.ip {
        return Ok(SocketAddr::new(ip, target.port));
    }
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    match tokio::time::timeout_at(deadline, lookup).await {
        Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| {
            failed(
                Failure::Unresolved,
                format!("{} has no address", target.host),
            )
        }),
        Ok(Err(e)) => Err(failed(
            Failure::Unresolved,
            format!("cannot resolve {}: {e}", target.host),
        )),
        Err(_) => Err(failed(
            Failure::Unresolved,
            format!("{} not resolved {within}", target.host),
        )),
    }
}

/// The call's `POST`: the JSON body, the authorizer's Host, the request id.
fn request(
    call: &Call,
    request_id: &str,
    url: &str,
    target: &HttpTarget,
) -> Result<hyper::Request<super::handler::Body>, Answer> {
    let mut request = hyper::Request::new(full(call.body(request_id)));
    *request.method_mut() = http::Method::POST;
    match path_of(url, target).parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return Err(failed(Failure::Unreachable, format!("bad path in {url:?}"))),
    }
    let headers = request.headers_mut();
    if let Ok(host) = http::HeaderValue::from_str(&target.authority) {
        headers.insert(http::header::HOST, host);
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = http::HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    Ok(request)
}

/// The whole answer, at most [`MAX_BODY`] bytes, within the deadline.
async fn read_answer(
    response: hyper::Response<super::pool::PooledBody>,
    deadline: Instant,
    within: &str,
) -> Answer {
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_BODY).collect();
    let body = match tokio::time::timeout_at(deadline, body).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            let detail = if e.is::<http_body_util::LengthLimitError>() {
                format!("the answer is longer than {MAX_BODY} bytes")
            } else {
                format!("the answer's body failed: {e}")
            };
            return failed(Failure::BadResponse, detail);
        }
        Err(_) => return failed(Failure::BadResponse, format!("no full answer {within}")),
    };
    parse_answer(status, &body)
}

/// Whether answers for this call are cached: the provider has a `cache` time and identity
/// headers (without them every request would share one answer).
fn caches(provider: &Provider, call: &Call) -> bool {
    settings(provider).is_some_and(|a| a.cache_ms > 0) && !call.identities.is_empty()
}

/// The path and query of an authorizer's URL as written (its target's `base` is a backend's
/// prefix, trailing slash trimmed); `/` when it has none.
fn path_of<'u>(url: &'u str, target: &HttpTarget) -> &'u str {
    let after = url
        .find("://")
        .map_or(url.len(), |i| i + 3 + target.authority.len());
    match url.get(after..) {
        Some(path) if path.starts_with('/') => path,
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::path_of;
    use crate::compile::Target;

    #[test]
    fn authorizer_paths_are_taken_as_written() {
        let path = |url: &str| path_of(url, Target::parse(url).http.as_ref().unwrap()).to_string();
        assert_eq!(path("http://127.0.0.1:9400/check?x=1"), "/check?x=1");
        assert_eq!(path("https://auth.internal/check/"), "/check/");
        assert_eq!(path("http://[::1]:80/"), "/");
        assert_eq!(path("http://auth.internal"), "/");
        let t = Target::parse("https://auth.internal/check").http.unwrap();
        assert_eq!((t.port, t.tls.as_deref()), (443, Some("auth.internal")));
        assert!(Target::parse("ftp://auth.internal/check").http.is_none());
    }
}
