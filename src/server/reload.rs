//! Hot reload: a file watcher on the policy directory (debounced) and SIGHUP.
//!
//! The watcher follows the directory recursively and reacts to any change, so it survives
//! editors' atomic saves (write a temporary file, rename it over the old one) and Kubernetes
//! ConfigMap updates (the `..data` symlink swapped to a new directory): whatever the sequence
//! of events, once they stop for a moment the whole directory is compiled again.

use super::Gateway;
use notify::{RecursiveMode, Watcher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events closer together than this are one change.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Start watching; the returned watcher must be kept alive. SIGHUP is registered before this
/// returns, so a reload signal can never arrive unhandled.
pub fn watch(gw: Arc<Gateway>) -> Result<Option<notify::RecommendedWatcher>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let file_tx = tx.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = file_tx.send(());
        }
    });
    let watcher = match watcher {
        Ok(mut w) => match w.watch(&gw.policy_dir, RecursiveMode::Recursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {}: {e}; reload with SIGHUP",
                    gw.policy_dir.display()
                );
                None
            }
        },
        Err(e) => {
            tracing::warn!("no file watcher: {e}; reload with SIGHUP");
            None
        }
    };

    // SIGHUP reloads at once.
    let hup_tx = tx;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the policy");
            let _ = hup_tx.send(());
        }
    });

    // Debounce, then compile off the async workers.
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let gw = gw.clone();
            let _ = tokio::task::spawn_blocking(move || gw.reload()).await;
        }
    });
    Ok(watcher)
}
