//! One limit decision in each store: a rate counted in memory, a quota counted in the redb
//! state file (one Immediate commit, no fsync: see `src/limits/file.rs`), and a rate counted
//! through Redis (one EVALSHA round trip on loopback, from a current-thread runtime as the
//! gateway runs on one core). The Redis bench starts its own `redis-server` on a free port
//! and is skipped when none is installed.

use divan::{black_box, Bencher};
use rulegate::limits::file::FileStore;
use rulegate::limits::memory::MemoryStore;
use rulegate::limits::redis::{Options, RedisStore};
use rulegate::limits::{Count, Limit};
use std::process::{Command, Stdio};
use std::time::Duration;

fn main() {
    divan::main();
}

/// A rate that never refuses, so every iteration counts.
fn rate() -> Count {
    Count {
        key: "rate|bench/route:0/0|203.0.113.7".into(),
        limit: Limit::Rate {
            limit: u32::MAX as u64,
            period_ms: 1_000,
            burst: u32::MAX as u64,
        },
        fail_open: true,
        group: "g".into(),
    }
}

fn quota() -> Count {
    Count {
        key: "quota|bench/app:a|ak".into(),
        limit: Limit::Quota {
            limit: u64::MAX >> 1,
            start_ms: 0,
            end_ms: i64::MAX,
        },
        fail_open: true,
        group: "g".into(),
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[divan::bench]
fn memory_rate(bencher: Bencher) {
    let store = MemoryStore::new();
    let counts = [rate()];
    bencher.bench_local(|| {
        let t = store.count_now(black_box(&counts), now_ms());
        assert!(t[0].allowed);
    });
}

#[divan::bench(sample_count = 50)]
fn file_quota(bencher: Bencher) {
    let dir = std::env::temp_dir().join(format!("rulegate-bench-state-{}", std::process::id()));
    let store = FileStore::open(&dir).expect("open the state file");
    let counts = [quota()];
    bencher.bench_local(|| {
        let t = store.count_now(black_box(&counts), now_ms()).unwrap();
        assert!(t[0].allowed);
    });
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[divan::bench(sample_count = 50)]
fn redis_rate(bencher: Bencher) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let Ok(mut server) = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
    else {
        eprintln!("redis_rate skipped: no redis-server");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = RedisStore::new(&Options {
        urls: vec![format!("redis://127.0.0.1:{port}")],
        timeout: Duration::from_secs(1),
    })
    .unwrap();
    let counts = [rate()];
    // wait for the server to listen
    for _ in 0..200 {
        if rt.block_on(store.count_async(&counts)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bencher.bench_local(|| {
        let t = rt.block_on(store.count_async(black_box(&counts))).unwrap();
        assert!(t[0].allowed);
    });
    let _ = server.kill();
    let _ = server.wait();
}
