//! Active health checks: the probes `health http "/PATH" …` asks for, sent on the real clock.
//!
//! One task looks four times a second at which targets are due (the schedule and the verdicts
//! are the pure state machine of [`crate::upstream::state`] and [`crate::upstream::health`],
//! the same `rulegate test` drives on its virtual clock) and sends each due probe as its own
//! task: `GET PATH` to the target, answered within the check's timeout with a status in its
//! range, or failed. A reload is picked up at the next look: probes follow the served policy.

use super::pool::Endpoint;
use super::Gateway;
use crate::compile::Backend;
use std::sync::Arc;
use std::time::Duration;

/// How often the schedule is read: a probe goes out at most this late.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Start probing the backends that ask for it.
pub fn start(gw: Arc<Gateway>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LOOK_EVERY);
        loop {
            tick.tick().await;
            let snap = gw.snapshot.load_full();
            let now = super::clock::now_us() / 1000;
            for (s, service) in snap.services.iter().enumerate() {
                for (b, backend) in service.backends.iter().enumerate() {
                    for target in gw.upstream.state.due_probes(&backend.targeting, now) {
                        let (gw, snap) = (gw.clone(), snap.clone());
                        tokio::spawn(async move {
                            let backend = &snap.services[s].backends[b];
                            probe(&gw, backend, target).await;
                        });
                    }
                }
            }
        }
    });
}

/// Send one probe to target `i` of `backend` and count its result.
async fn probe(gw: &Gateway, backend: &Backend, i: usize) {
    let Some(check) = &backend.targeting.health else {
        return;
    };
    let url = &backend.targeting.urls[i];
    let ok = match send(gw, backend, i, check).await {
        Ok(status) => check.status.contains(&status),
        Err(why) => {
            tracing::debug!(backend = %backend.name, target = %url, "health probe failed: {why}");
            false
        }
    };
    if let Some(change) = gw.upstream.state.probed(&backend.targeting, url, ok) {
        tracing::warn!(backend = %backend.name, target = %url, ?change, "active health check changed a target");
    }
}

/// The status the target answers the probe with.
async fn send(
    gw: &Gateway,
    backend: &Backend,
    i: usize,
    check: &crate::upstream::health::Active,
) -> Result<u16, String> {
    let target = backend.targets[i]
        .http
        .as_ref()
        .ok_or("not an http:// or https:// URL")?;
    let addr = super::proxy::resolve(target, backend)
        .await
        .map_err(|r| format!("{r:?}"))?;
    let request = hyper::Request::get(format!("{}{}", target.base, check.path))
        .header(http::header::HOST, &target.authority)
        .header(http::header::USER_AGENT, "rulegate-health-check")
        .body(super::handler::full(bytes::Bytes::new()))
        .map_err(|e| e.to_string())?;
    let endpoint = Endpoint {
        addr,
        tls: target.tls.clone(),
    };
    let timeout = Duration::from_millis(check.timeout_ms);
    let deadline = tokio::time::Instant::now() + timeout;
    let answer = tokio::time::timeout(
        timeout,
        gw.upstream
            .pool
            .send_by(&endpoint, timeout, Some(deadline), request),
    )
    .await
    .map_err(|_| "no answer within the timeout".to_string())?
    .map_err(|e| format!("{e:?}"))?;
    Ok(answer.status().as_u16())
}
