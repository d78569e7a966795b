//! The admin listener (`--admin ADDR`): liveness, readiness, what is loaded, and metrics.
//! Kept off the traffic port so it can be firewalled separately.

use super::handler::{full, Body};
use super::Gateway;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serve the admin endpoints. A connection idle for `idle_timeout` is closed, as on the
/// traffic port: both share the process's descriptors.
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener, idle_timeout: std::time::Duration) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let opened = std::time::Instant::now();
        let gw = gw.clone();
        tokio::spawn(async move {
            let activity = super::idle::Activity::new(opened);
            let timer = gw.bodies.timer.clone();
            let tracked = activity.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let gw = gw.clone();
                let in_progress = tracked.begin();
                async move {
                    let response = route(&gw, req.uri().path());
                    Ok::<_, std::convert::Infallible>(
                        response.map(|b| super::idle::Tracked::new(b, in_progress)),
                    )
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), service));
            // the admin port does not drain on SIGTERM: nothing ever stops it but the exit
            let (_running, stopping) = tokio::sync::watch::channel(false);
            let graceful = |c: std::pin::Pin<&mut _>| {
                hyper_util::server::conn::auto::Connection::graceful_shutdown(c)
            };
            let _ =
                super::idle::drive(conn, graceful, &activity, idle_timeout, &timer, stopping).await;
        });
    }
}

fn route(gw: &Gateway, path: &str) -> Response<Body> {
    match path {
        "/healthz" => text(200, "text/plain; charset=utf-8", "ok\n".into()),
        // Serving starts only after the first policy compiled, so a live gateway is ready.
        "/readyz" => text(200, "text/plain; charset=utf-8", "ready\n".into()),
        "/config" => {
            let snap = gw.snapshot.load();
            let state = gw.reload_state();
            let watch = gw
                .watch_status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let body = serde_json::json!({
                "version": state.version,
                "source_hash": snap.source_hash,
                "loaded_at": state.loaded_at,
                "policy_dir": gw.policy_dir.display().to_string(),
                "policy_files": snap.policy_files.iter().map(|f| serde_json::json!({
                    "path": f.path.display().to_string(),
                    "sha256": hex(&f.sha256[..6]),
                })).collect::<Vec<_>>(),
                "inputs": snap.inputs.iter().map(|f| serde_json::json!({
                    "path": f.path.display().to_string(),
                    "digest": keyed_digest(&f.sha256),
                })).collect::<Vec<_>>(),
                "services": snap.services.iter().map(|s| s.name.to_string()).collect::<Vec<_>>(),
                "reloads_ok": state.ok,
                "reloads_failed": state.failed,
                "last_reload_error": state.last_error,
                "watching": watch.watching,
                "watched": watch.watched,
                "watch_problems": watch.problems,
                "backends": backends(&gw.upstream.state.views(super::clock::now_us() / 1000)),
            });
            text(
                200,
                "application/json",
                serde_json::to_string_pretty(&body).unwrap_or_default() + "\n",
            )
        }
        "/metrics" => {
            let state = gw.reload_state();
            text(
                200,
                "text/plain; version=0.0.4",
                gw.metrics.render(
                    state.ok,
                    state.failed,
                    state.version,
                    &gw.upstream.state.views(super::clock::now_us() / 1000),
                ),
            )
        }
        _ => text(404, "text/plain; charset=utf-8", "not found\n".into()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short digest of a referenced file that changes when the file changes, keyed with a
/// random key of this process: a secret's plain hash published on `/config` would let anyone
/// who reads it test guesses of a weak secret offline.
fn keyed_digest(sha256: &[u8; 32]) -> String {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let key = KEY.get_or_init(std::collections::hash_map::RandomState::new);
    format!("{:016x}", key.hash_one(sha256))
}

fn text(status: u16, content_type: &str, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// The backends' state as `/config` shows it: each breaker's phase, each target's health.
fn backends(views: &[crate::upstream::state::BackendView]) -> serde_json::Value {
    use crate::upstream::breaker::Phase;
    let breaker = |p: &Option<Phase>| match p {
        None => serde_json::Value::Null,
        Some(Phase::Closed) => serde_json::json!({"state": "closed"}),
        Some(Phase::Open { until }) => serde_json::json!({"state": "open", "until_ms": until}),
        Some(Phase::HalfOpen { sent, passed, .. }) => {
            serde_json::json!({"state": "half-open", "probes_sent": sent, "probes_passed": passed})
        }
    };
    views
        .iter()
        .map(|v| {
            serde_json::json!({
                "backend": v.key,
                "breaker": breaker(&v.breaker),
                "targets": v.targets.iter().map(|t| serde_json::json!({
                    "url": t.url,
                    "available": t.available,
                    "healthy": t.healthy,
                    "ejected_until_ms": t.ejected_until,
                    "in_flight": t.inflight,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}
