//! Hot reload: a file watcher (debounced) and SIGHUP.
//!
//! What a policy is made of is more than its directory: the secret, key, JWKS and PEM files it
//! references may live in sub-directories, behind symlinks or outside the directory. So the
//! watcher follows
//! - the policy directory, recursively: editors' atomic saves (write a temporary file, rename
//!   it over the old one) and Kubernetes ConfigMap updates (the `..data` symlink swapped to a
//!   new directory) are seen whatever the sequence of events;
//! - the directory that holds the policy directory, for its name only: when the directory is
//!   moved away, removed or re-created (`mv live live.bak; cp -r live.bak live`) the watch is
//!   moved to the new directory, which an inotify watch on the old one would never see;
//! - the directories of referenced files outside the policy directory (where the reference
//!   is and where a symlink leads), for those files' names and `..`-prefixed entries (a
//!   Kubernetes Secret volume's `..data` swap). The set is re-armed after each reload.
//!
//! Once events stop for a moment (or after at most `MAX_DELAY` of steady events) the whole
//! policy is compiled again. What is watched, and what could not be, is shown by `/config`.

use super::Gateway;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Events closer together than this are one change.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// A directory that never stops changing still gets its reload this long after the first
/// event.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Why the reload task wakes.
enum Trigger {
    Signal,
    /// A file event on these paths (none: the watcher lost events and asks for a rescan).
    Changed(Vec<PathBuf>),
}

/// What `/config` shows about the watcher.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WatchStatus {
    /// Whether changes to the policy directory are seen without SIGHUP.
    pub watching: bool,
    /// Directories watched: the policy directory (recursively), then the others.
    pub watched: Vec<String>,
    /// What is not watched and why.
    pub problems: Vec<String>,
}

/// Start watching and handling SIGHUP. SIGHUP is registered before this returns, so a reload
/// signal can never arrive unhandled.
pub fn watch(gw: Arc<Gateway>) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel::<Trigger>();
    let mut watch = Watch::new(&gw.policy_dir, tx.clone());
    watch.rearm();
    watch.follow(&gw.snapshot.load());
    watch.publish(&gw);

    // SIGHUP reloads at once.
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the policy");
            let _ = tx.send(Trigger::Signal);
        }
    });
    tokio::spawn(reload_loop(gw, Arc::new(Mutex::new(watch)), rx));
    Ok(())
}

/// Debounce the relevant triggers, then re-arm the watches and compile off the async workers.
async fn reload_loop(
    gw: Arc<Gateway>,
    watch: Arc<Mutex<Watch>>,
    mut rx: mpsc::UnboundedReceiver<Trigger>,
) {
    // Whether a trigger may change the policy; noting it also marks the policy directory for
    // re-arming when the event is about the directory itself.
    let note = |t: &Trigger| match t {
        Trigger::Signal => true,
        Trigger::Changed(paths) => lock(&watch).note(paths),
    };
    while let Some(first) = rx.recv().await {
        if !note(&first) {
            continue;
        }
        let start = tokio::time::Instant::now();
        let mut quiet_from = start + DEBOUNCE;
        loop {
            let until = quiet_from.min(start + MAX_DELAY);
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(t)) => {
                    if note(&t) {
                        quiet_from = tokio::time::Instant::now() + DEBOUNCE;
                    }
                }
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let (gw, watch) = (gw.clone(), watch.clone());
        // on the policy loader thread, so that what a reload frees is given back (see
        // server/memory.rs); waited for off the async workers
        let job = super::memory::on_loader(move || reload(&gw, &mut lock(&watch)));
        let _ = tokio::task::spawn_blocking(move || job.wait()).await;
    }
}

fn lock(watch: &Mutex<Watch>) -> std::sync::MutexGuard<'_, Watch> {
    watch.lock().unwrap_or_else(|e| e.into_inner())
}

/// One reload: follow the policy directory if it moved, compile, and watch what the new
/// policy references.
fn reload(gw: &Gateway, watch: &mut Watch) {
    watch.rearm();
    if watch.armed.is_none() && !gw.policy_dir.exists() {
        tracing::warn!(
            "the policy directory {} is gone; still serving the previous policy",
            gw.policy_dir.display()
        );
    } else if gw.reload() {
        watch.follow(&gw.snapshot.load());
    }
    watch.publish(gw);
}

/// The watcher and what it follows.
struct Watch {
    watcher: Option<RecommendedWatcher>,
    /// Why there is no watcher, if there is none.
    no_watcher: Option<String>,
    tx: mpsc::UnboundedSender<Trigger>,
    /// The policy directory, absolute but with its symlinks as given.
    dir: PathBuf,
    /// Device and inode of the directory the recursive watch is on, when there is one.
    armed: Option<(u64, u64)>,
    /// Its canonical path when it was armed: referenced files under it need no other watch.
    canonical: Option<PathBuf>,
    /// Why the policy directory is not watched.
    dir_problem: Option<String>,
    /// An event was about the policy directory itself (moved, removed, created): its watch
    /// is made again even if the new directory has the old one's inode number.
    dir_event: bool,
    /// Directories watched non-recursively, each with the entry names that matter in it.
    others: BTreeMap<PathBuf, BTreeSet<OsString>>,
    /// Directories that should be watched but could not be, and why.
    failed: BTreeMap<PathBuf, String>,
    /// The files the last good reload read.
    inputs: Vec<PathBuf>,
}

impl Watch {
    fn new(dir: &Path, tx: mpsc::UnboundedSender<Trigger>) -> Watch {
        Watch {
            watcher: None,
            no_watcher: None,
            tx,
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            armed: None,
            canonical: None,
            dir_problem: None,
            dir_event: false,
            others: BTreeMap::new(),
            failed: BTreeMap::new(),
            inputs: Vec::new(),
        }
    }

    /// Make the watcher if there is none yet (inotify instances may have run out at start);
    /// put the recursive watch on the policy directory if it is new, moved or came back.
    fn rearm(&mut self) {
        if self.watcher.is_none() {
            let tx = self.tx.clone();
            let made =
                notify::recommended_watcher(move |e: notify::Result<notify::Event>| match e {
                    Ok(e) if !e.kind.is_access() => {
                        let _ = tx.send(Trigger::Changed(e.paths));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        let _ = tx.send(Trigger::Changed(Vec::new()));
                    }
                });
            match made {
                Ok(w) => {
                    self.watcher = Some(w);
                    self.no_watcher = None;
                }
                Err(e) => {
                    let why = format!("no file watcher: {e}; reload with SIGHUP");
                    if self.no_watcher.as_ref() != Some(&why) {
                        tracing::warn!("{why}");
                    }
                    self.no_watcher = Some(why);
                    return;
                }
            }
        }
        self.rearm_dir();
        self.sync_others();
    }

    fn rearm_dir(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let now = std::fs::metadata(&self.dir)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let moved = std::mem::take(&mut self.dir_event);
        if now.is_some() && now == self.armed && !moved {
            return;
        }
        if self.armed.take().is_some() {
            // Gone or replaced: the old watch follows the old directory wherever it went.
            let _ = watcher.unwatch(&self.dir);
        }
        let Some(id) = now else {
            let why = format!(
                "the policy directory {} is gone; waiting for it to come back",
                self.dir.display()
            );
            if self.dir_problem.as_ref() != Some(&why) {
                tracing::warn!("{why}");
            }
            self.dir_problem = Some(why);
            return;
        };
        match watcher.watch(&self.dir, RecursiveMode::Recursive) {
            Ok(()) => {
                if self.dir_problem.take().is_some() {
                    tracing::info!(policy = %self.dir.display(), "watching the policy directory again");
                }
                self.armed = Some(id);
                self.canonical = self.dir.canonicalize().ok();
            }
            Err(e) => {
                let why = format!(
                    "cannot watch {}: {e}; reload with SIGHUP",
                    self.dir.display()
                );
                tracing::warn!("{why}");
                self.dir_problem = Some(why);
            }
        }
    }

    /// Watch every file the policy just loaded was compiled from: the policy files (a
    /// symlink may lead out of the directory) and the files they reference.
    fn follow(&mut self, snapshot: &crate::compile::Snapshot) {
        let files = snapshot.policy_files.iter().chain(&snapshot.inputs);
        self.inputs = files.map(|f| f.path.clone()).collect();
        self.sync_others();
    }

    /// The non-recursive watches wanted now: the policy directory's parent for its name, and
    /// each file's directories outside the policy directory for its names.
    fn wanted(&self) -> BTreeMap<PathBuf, BTreeSet<OsString>> {
        let mut want: BTreeMap<PathBuf, BTreeSet<OsString>> = BTreeMap::new();
        if let (Some(parent), Some(name)) = (self.dir.parent(), self.dir.file_name()) {
            want.entry(parent.to_path_buf())
                .or_default()
                .insert(name.to_owned());
        }
        for input in &self.inputs {
            let input = std::path::absolute(input).unwrap_or_else(|_| input.clone());
            // Where the reference is (its directory resolved), and where a symlink leads.
            let mut places = Vec::new();
            if let (Some(parent), Some(name)) = (input.parent(), input.file_name()) {
                if let Ok(parent) = parent.canonicalize() {
                    places.push(parent.join(name));
                }
            }
            places.extend(input.canonicalize().ok());
            for place in places {
                let (Some(parent), Some(name)) = (place.parent(), place.file_name()) else {
                    continue;
                };
                if self
                    .canonical
                    .as_ref()
                    .is_some_and(|c| parent.starts_with(c))
                {
                    continue;
                }
                want.entry(parent.to_path_buf())
                    .or_default()
                    .insert(name.to_owned());
            }
        }
        want
    }

    fn sync_others(&mut self) {
        let want = self.wanted();
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for gone in self.others.keys().filter(|d| !want.contains_key(*d)) {
            let _ = watcher.unwatch(gone);
        }
        self.others.retain(|d, _| want.contains_key(d));
        self.failed.clear();
        for (dir, names) in want {
            if !self.others.contains_key(&dir) {
                if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                    tracing::warn!("cannot watch {}: {e}; reload with SIGHUP", dir.display());
                    self.failed.insert(dir, e.to_string());
                    continue;
                }
            }
            self.others.insert(dir, names);
        }
    }

    /// Whether an event on these paths may change the policy; remember one about the policy
    /// directory itself (or a rescan request).
    fn note(&mut self, paths: &[PathBuf]) -> bool {
        if paths.is_empty() || paths.contains(&self.dir) {
            self.dir_event = true;
        }
        self.relevant(paths)
    }

    /// Whether an event on these paths may change the policy.
    fn relevant(&self, paths: &[PathBuf]) -> bool {
        paths.is_empty()
            || paths.iter().any(|p| {
                if p.starts_with(&self.dir) || self.others.contains_key(p) {
                    return true;
                }
                let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
                    return false;
                };
                self.others.get(parent).is_some_and(|names| {
                    names.contains(name) || name.to_string_lossy().starts_with("..")
                })
            })
    }

    fn publish(&self, gw: &Gateway) {
        let mut status = WatchStatus {
            watching: self.armed.is_some(),
            ..WatchStatus::default()
        };
        if self.armed.is_some() {
            status.watched.push(self.dir.display().to_string());
        }
        status
            .watched
            .extend(self.others.keys().map(|d| d.display().to_string()));
        status.problems.extend(self.no_watcher.iter().cloned());
        status.problems.extend(self.dir_problem.iter().cloned());
        status.problems.extend(
            self.failed
                .iter()
                .map(|(d, e)| format!("cannot watch {}: {e}", d.display())),
        );
        *gw.watch_status.lock().unwrap_or_else(|e| e.into_inner()) = status;
    }
}
