//! Helpers for the rate-limit and quota tests: a real `redis-server` per test, a Tencent
//! key-pair signer (to authenticate an app for quotas), concurrent clients, and the exact
//! rejection rows with their limit headers.

use crate::common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// redis-server
// ---------------------------------------------------------------------------------------------

/// A `redis-server` of this test's own on a free loopback port, persistence off, killed on
/// drop. `None` (the test skips) when redis-server is not installed, unless
/// `RULEGATE_REDIS=required` (CI), where a missing server fails the test.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    _dir: TempDir,
}

impl Redis {
    pub fn start() -> Option<Redis> {
        if !redis_installed(&["redis-server"]) {
            return None;
        }
        let dir = TempDir::new();
        let port = free_addr().port();
        let mut r = Redis {
            child: None,
            port,
            _dir: dir,
        };
        r.restart();
        Some(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Start (again) on the same port; wait until it answers PING.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self._dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        poll(WAIT, "redis-server to answer PING", || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
            s.write_all(b"PING\r\n").ok()?;
            let mut buf = [0u8; 7];
            s.read_exact(&mut buf).ok()?;
            (&buf == b"+PONG\r\n").then_some(())
        });
    }

    /// Kill it (SIGKILL): connections drop at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freeze or thaw it: connections stay open but nothing answers.
    pub fn signal(&self, sig: i32) {
        signal_pid(self.child.as_ref().expect("running").id() as i32, sig);
    }
}

/// Whether every one of `tools` (`redis-server`, `redis-cli`) runs: false (the test skips)
/// when one is missing, unless `RULEGATE_REDIS=required` (CI), where it fails the test.
pub fn redis_installed(tools: &[&str]) -> bool {
    let how = "apt-get install redis-server";
    tools
        .iter()
        .all(|tool| crate::prereq::present(crate::prereq::runs(tool), "RULEGATE_REDIS", tool, how))
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(SIGCONT);
        }
        self.kill();
    }
}

pub const SIGKILL: i32 = 9;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// `clients` threads, each on its own keep-alive connection to `gateways[i % n]`, send
/// `request()` until `total` requests have been sent between them. Returns every response and
/// the time from before the first request to after the last response.
pub fn hammer(
    gateways: &[&Gateway],
    clients: usize,
    total: usize,
    request: impl Fn() -> Vec<u8> + Send + Sync,
) -> (Vec<Resp>, Duration) {
    let sent = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(total));
    let started = Instant::now();
    std::thread::scope(|s| {
        for i in 0..clients {
            let addr = gateways[i % gateways.len()].addr;
            let (sent, out, request) = (&sent, &out, &request);
            s.spawn(move || {
                let mut conn = Conn::open(addr).expect("connect");
                while sent.fetch_add(1, Ordering::SeqCst) < total {
                    let r = conn.round_trip(&request()).expect("an answer");
                    out.lock().unwrap().push(r);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    (out.into_inner().unwrap(), elapsed)
}

/// The most requests GCRA may admit in `elapsed` for `limit` per `period` with `burst`:
/// the burst and one at once, then one per emission interval.
pub fn gcra_bound(limit: u64, period: Duration, burst: u64, elapsed: Duration) -> usize {
    let interval = period.as_micros() / limit as u128;
    (burst + 1) as usize + (elapsed.as_micros() / interval) as usize
}

// ---------------------------------------------------------------------------------------------
// Tencent key pair (wire-formats / auth-schemes: Kong hmac-auth lineage)
// ---------------------------------------------------------------------------------------------

/// `X-Date` and `Authorization` for app key `id` with `secret`, signing `x-date` with
/// hmac-sha1.
pub fn keypair_headers(id: &str, secret: &str) -> Vec<(&'static str, String)> {
    use base64::Engine;
    use hmac::Mac;
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("x-date: {date}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("X-Date", date),
        (
            "Authorization",
            format!(
                "hmac id=\"{id}\", algorithm=\"hmac-sha1\", headers=\"x-date\", signature=\"{signature}\""
            ),
        ),
    ]
}

/// A GET signed for app `id`.
pub fn signed_get(path: &str, host: &str, id: &str, secret: &str) -> Vec<u8> {
    let h = keypair_headers(id, secret);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    request("GET", path, host, &h, b"")
}

// ---------------------------------------------------------------------------------------------
// JD Cloud's signed vector request (tests/vectors/jdcloud.json), for nonce replays
// ---------------------------------------------------------------------------------------------

/// JD's vector request (signed by the vendor's SDK in 2024) and a policy that accepts it (the
/// provider's clock skew widened so the old date still passes). Its service is `users`.
pub struct JdVector {
    policy: String,
    secret: String,
    pub signed: Vec<u8>,
}

impl JdVector {
    pub fn load() -> JdVector {
        let vectors: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/jdcloud.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let v = &vectors[0];
        let policy = format!(
            r#"service users {{
    dialect jdcloud
    hosts "*"
    app sdk {{
        key "{}"
        secret file "sdk.secret"
    }}
    auth jd jd-signature {{ clock skew 3650d }}
    route GET "/v1/users" {{
        auth jd
        mock 200 text "ok"
    }}
}}
"#,
            v["ak"].as_str().unwrap()
        );
        let url = v["url"].as_str().unwrap();
        let rest = url.split_once("://").unwrap().1;
        let (host, target) = rest.split_at(rest.find('/').unwrap());
        let headers: Vec<(&str, &str)> = v["headers_out"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        JdVector {
            policy,
            secret: v["sk"].as_str().unwrap().to_string(),
            signed: request("GET", target, host, &headers, b""),
        }
    }

    /// A gateway serving the vector's policy, started with `extra` options.
    pub fn gateway(&self, extra: &[&str]) -> (TempDir, Gateway) {
        let dir = TempDir::new();
        dir.write("users.policy", &self.policy);
        dir.write("sdk.secret", &self.secret);
        let gw = Gateway::start_with(dir.path(), extra);
        (dir, gw)
    }

    /// The signed request passes at `a`; replayed to `b`, JD's 403 row.
    pub fn spend_then_replay(&self, a: &Gateway, b: &Gateway) {
        let r = a.send(&self.signed);
        expect_status(&r, 200);
        assert_eq!(r.body_str(), "ok");
        assert_jdcloud(
            &b.send(&self.signed),
            403,
            "HTTP_FORBIDDEN",
            "No Resource Permission",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Exact answers
// ---------------------------------------------------------------------------------------------

/// `pairs` as owned, lower-cased header pairs.
pub fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

/// A JD Cloud rejection byte for byte, with exactly `extra` headers besides the row's own.
pub fn assert_jd_row(r: &Resp, status: u16, enum_: &str, msg: &str, extra: &[(&str, &str)]) {
    expect_status(r, status);
    let id = r
        .header("x-jdcloud-request-id")
        .expect("request id")
        .to_string();
    assert_generated_id(&id);
    assert_eq!(r.body_str(), jdcloud_body(status, enum_, msg, &id));
    let mut want = owned(&[
        ("content-type", "application/json"),
        ("x-jdcloud-request-id", &id),
    ]);
    want.extend(owned(extra));
    expect_headers(r, want);
}

/// JD's rate-limit row, with the refused limit's headers (nothing left) and Retry-After.
pub fn assert_jd_throttled(r: &Resp, period: &str, limit: &str, retry_after: &str) {
    let (limit_name, left_name) = (
        format!("x-jdcloud-limit-{period}"),
        format!("x-jdcloud-remaining-{period}"),
    );
    assert_jd_row(
        r,
        429,
        "RATE_LIMIT_EXCEEDED",
        "Your requests are too frequent",
        &[
            (&limit_name, limit),
            (&left_name, "0"),
            ("retry-after", retry_after),
        ],
    );
}

/// A Tencent rejection byte for byte, with exactly `extra` headers besides the row's own.
pub fn assert_tencent_row(r: &Resp, status: u16, msg: &str, extra: &[(&str, &str)]) {
    expect_status(r, status);
    let id = r.header("x-api-requestid").expect("request id").to_string();
    assert_generated_id(&id);
    assert_eq!(r.body_str(), tencent_body(msg));
    let mut want = owned(&[
        ("content-type", "application/json"),
        ("x-api-requestid", &id),
    ]);
    want.extend(owned(extra));
    expect_headers(r, want);
}

/// A Huawei rejection byte for byte, with exactly `extra` headers besides the row's own.
pub fn assert_huawei_row(r: &Resp, status: u16, code: &str, msg: &str, extra: &[(&str, &str)]) {
    expect_status(r, status);
    let id = r.header("x-request-id").expect("request id").to_string();
    assert_generated_id(&id);
    assert_eq!(r.body_str(), huawei_body(code, msg, &id));
    let mut want = owned(&[
        ("content-type", "application/json"),
        ("x-request-id", &id),
        ("server", "api-gateway"),
    ]);
    want.extend(owned(extra));
    expect_headers(r, want);
}
