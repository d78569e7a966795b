//! Counters in an embedded redb file (`serve --state DIR` → `DIR/counters.redb`): the default
//! for quotas, so a restart loses no count.
//!
//! Durability: every decision is one redb write transaction committed with
//! `Durability::Immediate`, which writes the new pages and the header into the file before
//! `commit` returns. `Durability::None` would not do: redb keeps a non-durable commit's header
//! in memory only, and a reopen after `kill -9` rolls back to the last durable commit.
//! What Immediate adds on top, an `fsync` per commit, costs milliseconds on a real disk and
//! buys nothing against a process crash (the kernel's page cache outlives the process), so the
//! backend here skips it and a background thread `fsync`s once a second instead: a killed
//! gateway loses nothing it admitted, a power cut at most the last second of counts.

use super::{step, uncounted, Count, Counted, Limit, Store, StoreError, Tallies, Tally, Value};
use redb::{Database, ReadableTable, ReadableTableMetadata, StorageBackend, TableDefinition};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// rate key → TAT (µs)
const RATES: TableDefinition<&str, i64> = TableDefinition::new("rates");
/// quota key → (window end ms, used)
const QUOTAS: TableDefinition<&str, (i64, u64)> = TableDefinition::new("quotas");
/// How often written data is flushed to the disk.
const SYNC_EVERY: Duration = Duration::from_secs(1);

pub struct FileStore {
    db: Database,
    /// Set on drop: the sync thread's cue to stop.
    closed: Arc<AtomicBool>,
}

impl FileStore {
    /// Open (or create) `dir/counters.redb`. Fails when another process holds it.
    pub fn open(dir: &Path) -> Result<FileStore, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
        let path = dir.join("counters.redb");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let syncer = file
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let dirty = Arc::new(AtomicBool::new(false));
        let inner = redb::backends::FileBackend::new(file).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => format!(
                "{} is in use by another process (one gateway per --state directory)",
                path.display()
            ),
            e => format!("cannot open {}: {e}", path.display()),
        })?;
        let backend = NoFsync {
            inner,
            dirty: dirty.clone(),
        };
        let db = redb::Builder::new()
            .create_with_backend(backend)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let closed = Arc::new(AtomicBool::new(false));
        let stop = closed.clone();
        std::thread::Builder::new()
            .name("state-sync".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(SYNC_EVERY);
                    if dirty.swap(false, Ordering::AcqRel) {
                        if let Err(e) = syncer.sync_data() {
                            tracing::warn!("state file sync failed: {e}");
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the state sync thread: {e}"))?;
        Ok(FileStore { db, closed })
    }

    /// The batch, all or nothing, in one write transaction.
    pub fn count_now(&self, counts: &[Count], now_ms: i64) -> Tallies {
        self.transact(counts, now_ms)
            .map_err(|e| StoreError(format!("state file: {e}")))
    }

    fn transact(&self, counts: &[Count], now_ms: i64) -> Result<Vec<Tally>, DbError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate);
        let mut tallies = Vec::with_capacity(counts.len());
        let mut writes = Vec::with_capacity(counts.len());
        {
            let rates = txn.open_table(RATES)?;
            let quotas = txn.open_table(QUOTAS)?;
            for count in counts {
                let key = count.key.as_str();
                let held = match count.limit {
                    Limit::Rate { .. } => rates.get(key)?.map(|v| Value::Tat(v.value())),
                    Limit::Quota { .. } => quotas.get(key)?.map(|v| {
                        let (end_ms, used) = v.value();
                        Value::Used { end_ms, used }
                    }),
                };
                let (tally, value) = step(count, held, now_ms);
                tallies.push(tally);
                writes.push(value);
            }
        }
        if tallies.iter().all(|t| t.allowed) {
            {
                let mut rates = txn.open_table(RATES)?;
                let mut quotas = txn.open_table(QUOTAS)?;
                for (count, value) in counts.iter().zip(writes) {
                    let key = count.key.as_str();
                    match value {
                        Value::Tat(tat) => rates.insert(key, tat).map(|_| ())?,
                        Value::Used { end_ms, used } => {
                            quotas.insert(key, (end_ms, used)).map(|_| ())?
                        }
                    }
                }
            }
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(uncounted(tallies))
    }

    /// Drop the counters whose window ended (quotas) or whose bucket is full again (rates).
    pub fn evict_idle(&self, now_ms: i64) -> Result<usize, String> {
        let run = || -> Result<usize, DbError> {
            let txn = self.db.begin_write()?;
            let removed = {
                let mut rates = txn.open_table(RATES)?;
                let mut quotas = txn.open_table(QUOTAS)?;
                let before = rates.len()? + quotas.len()?;
                let now_us = now_ms.saturating_mul(1000);
                rates.retain(|_, tat| tat > now_us)?;
                quotas.retain(|_, (end, _)| end > now_ms)?;
                before - rates.len()? - quotas.len()?
            };
            txn.commit()?;
            Ok(removed as usize)
        };
        run().map_err(|e| e.to_string())
    }
}

/// Any of redb's errors, boxed (they are large and rare).
#[derive(Debug)]
struct DbError(Box<redb::Error>);

impl<E: Into<redb::Error>> From<E> for DbError {
    fn from(e: E) -> Self {
        DbError(Box::new(e.into()))
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

impl Store for FileStore {
    fn count(&self, counts: &[Count], now_ms: i64) -> Counted {
        Counted::Now(self.count_now(counts, now_ms))
    }
}

/// redb's file backend with `sync_data` reduced to a write barrier: the data is written to
/// the file (the page cache) at once, and the sync thread flushes it to the disk.
#[derive(Debug)]
struct NoFsync {
    inner: redb::backends::FileBackend,
    dirty: Arc<AtomicBool>,
}

impl StorageBackend for NoFsync {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, io::Error> {
        self.inner.read(offset, len)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.dirty.store(true, Ordering::Release);
        self.inner.set_len(len)
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.dirty.store(true, Ordering::Release);
        self.inner.write(offset, data)
    }
}

/// Keeps a store's eviction running: every `every`, drop idle counters.
pub fn spawn_eviction(store: Arc<FileStore>, every: Duration) {
    let store = std::sync::Arc::downgrade(&store);
    let _ = std::thread::Builder::new()
        .name("state-evict".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(store) = store.upgrade() else { return };
            let now = jiff::Timestamp::now().as_millisecond();
            if let Err(e) = store.evict_idle(now) {
                tracing::warn!("state file eviction failed: {e}");
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "rulegate-filestore-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn quota(limit: u64) -> [Count; 1] {
        [Count {
            key: "quota|shop/app:a|ak".into(),
            limit: Limit::Quota {
                limit,
                start_ms: 0,
                end_ms: 86_400_000,
            },
            fail_open: true,
            group: "g".into(),
        }]
    }

    #[test]
    fn counts_survive_reopening() {
        let dir = temp_dir("reopen");
        {
            let s = FileStore::open(&dir).unwrap();
            for _ in 0..3 {
                assert!(s.count_now(&quota(5), 10).unwrap()[0].allowed);
            }
        }
        let s = FileStore::open(&dir).unwrap();
        let left: Vec<(bool, u64)> = (0..3)
            .map(|_| s.count_now(&quota(5), 10).unwrap()[0])
            .map(|t| (t.allowed, t.remaining))
            .collect();
        assert_eq!(left, [(true, 1), (true, 0), (false, 0)]);
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_second_process_cannot_open_the_same_directory() {
        let dir = temp_dir("locked");
        let _s = FileStore::open(&dir).unwrap();
        let e = FileStore::open(&dir).err().unwrap();
        assert!(e.contains("in use by another process"), "{e}");
    }

    #[test]
    fn eviction_drops_ended_windows() {
        let dir = temp_dir("evict");
        let s = FileStore::open(&dir).unwrap();
        s.count_now(&quota(5), 10).unwrap();
        assert_eq!(s.evict_idle(86_400_000 - 1).unwrap(), 0);
        assert_eq!(s.evict_idle(86_400_000).unwrap(), 1);
    }
}
