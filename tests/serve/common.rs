//! Shared helpers for the `rulegate serve` tests: a temporary policy directory, the real
//! gateway binary on loopback, recording backends, and a plain HTTP/1.1 client over
//! `std::net::TcpStream` that reads responses byte for byte.
//!
//! Everything here is blocking std code on threads: the tests talk to real sockets and a real
//! child process, so no async runtime is needed, and every wait is a bounded poll.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The bound on any single wait in these tests (gateway start, a reload, a log line).
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a client waits for bytes before it calls the gateway stuck.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// Poll `f` every 10 ms until it yields a value; panic after `within`.
pub fn poll<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Temporary directories and fixtures
// ---------------------------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "rulegate-serve-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Write `contents` to `rel` (parents created); returns the full path.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent dir");
        }
        std::fs::write(&p, contents).expect("write file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fixture policy from `tests/serve/fixtures/NAME`, with each `@KEY@` replaced.
pub fn fixture(name: &str, vars: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/serve/fixtures")
        .join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()));
    for (k, v) in vars {
        text = text.replace(&format!("@{k}@"), v);
    }
    let unfilled = text
        .split('@')
        .skip(1)
        .step_by(2)
        .find(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
    assert!(
        unfilled.is_none(),
        "fixture {name}: @{}@ is not filled",
        unfilled.unwrap_or("")
    );
    text
}

/// A loopback address nobody listens on at the moment (bound, read, released).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr")
}

/// `http://127.0.0.1:PORT` of a port that refuses connections, a different one each call.
///
/// The ports are privileged ones (below 1024) that nothing here listens on: a port released
/// by bind-and-drop could be handed to a backend of a test running in parallel, and a dead
/// target would come alive.
pub fn closed_url() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    for _ in 0..1023 {
        let port = (NEXT.fetch_add(1, Ordering::SeqCst) % 1023 + 1) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return format!("http://{addr}");
            }
            _ => continue,
        }
    }
    panic!("no closed port below 1024 on 127.0.0.1");
}

// ---------------------------------------------------------------------------------------------
// The gateway process
// ---------------------------------------------------------------------------------------------

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Send `sig` to the process `pid` (a child of the test).
pub fn signal_pid(pid: i32, sig: i32) {
    // SAFETY: kill(2) takes no pointers; `pid` is a child process of this test.
    let rc = unsafe { kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// `rulegate serve` running on loopback with `--admin` and JSON logs; killed on drop.
pub struct Gateway {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// Start on `policy_dir` and wait until `/healthz` answers.
    pub fn start(policy_dir: &Path) -> Gateway {
        Gateway::start_with(policy_dir, &[])
    }

    pub fn start_with(policy_dir: &Path, extra: &[&str]) -> Gateway {
        // A port picked by bind-and-release can be taken by someone else before the gateway
        // binds it; then the gateway exits at once and we try again with new ports.
        let mut last_log = Vec::new();
        for _ in 0..3 {
            match Gateway::try_start(policy_dir, extra) {
                Ok(gw) => return gw,
                Err(log) => last_log = log,
            }
        }
        panic!(
            "the gateway did not start on {}:\n{}",
            policy_dir.display(),
            last_log.join("\n")
        );
    }

    fn try_start(policy_dir: &Path, extra: &[&str]) -> Result<Gateway, Vec<String>> {
        let addr = free_addr();
        let admin = free_addr();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rulegate"))
            .arg("serve")
            .arg(policy_dir)
            .args(["--listen", &addr.to_string()])
            .args(["--admin", &admin.to_string()])
            .args(["--log-format", "json"])
            .args(extra)
            .env_remove("RULEGATE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rulegate");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                // the reader ends at the end of stderr: it has every line then
                let _ = reader.join();
                let lines = log.lock().unwrap().clone();
                return Err(lines);
            }
            // /healthz answers before the traffic port is bound, and a port of ours taken
            // meanwhile by someone else would still accept connections: the gateway says
            // "rulegate serving" once it has bound the traffic port itself.
            let serving = || {
                log.lock()
                    .unwrap()
                    .iter()
                    .any(|l| l.contains("\"message\":\"rulegate serving\""))
            };
            if serving() {
                let r = http_get(admin, "/healthz");
                if r.is_ok_and(|r| r.status == 200 && r.body == b"ok\n") {
                    return Ok(Gateway {
                        child,
                        addr,
                        admin,
                        log,
                    });
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let mut lines = log.lock().unwrap().clone();
                lines.push("(no /healthz answer in time)".into());
                return Err(lines);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        signal_pid(self.pid(), sig);
    }

    /// Wait for the process to exit, at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = &mut self.child;
        poll(within, "the gateway to exit", || {
            child.try_wait().ok().flatten()
        })
    }

    /// A new connection to the traffic port.
    pub fn conn(&self) -> Conn {
        Conn::open(self.addr).expect("connect to the gateway")
    }

    /// One request on a new connection; the response.
    pub fn send(&self, raw: &[u8]) -> Resp {
        let mut c = self.conn();
        c.send(raw).expect("send request");
        c.read_response().expect("read response")
    }

    pub fn get(&self, host: &str, path: &str) -> Resp {
        self.send(&request("GET", path, host, &[], b""))
    }

    /// GET on the admin port.
    pub fn admin_get(&self, path: &str) -> Resp {
        http_get(self.admin, path).expect("admin request")
    }

    pub fn config(&self) -> serde_json::Value {
        let r = self.admin_get("/config");
        assert_eq!(r.status, 200);
        serde_json::from_slice(&r.body).expect("/config is JSON")
    }

    pub fn metrics(&self) -> String {
        let r = self.admin_get("/metrics");
        assert_eq!(r.status, 200);
        String::from_utf8(r.body).expect("metrics are UTF-8")
    }

    /// Every stderr line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The access-log lines so far, parsed (`--log-format json`, target `access`).
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .collect()
    }

    /// The access-log line of the request with this id, once it is written.
    pub fn access_line(&self, request_id: &str) -> serde_json::Value {
        poll(WAIT, &format!("the access line of {request_id}"), || {
            self.access_log()
                .into_iter()
                .find(|v| v["request_id"] == request_id)
        })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let lines = self.log_lines();
            let from = lines.len().saturating_sub(60);
            eprintln!(
                "---- rulegate stderr (last {} lines) ----",
                lines.len() - from
            );
            for l in &lines[from..] {
                eprintln!("{}", l.chars().take(600).collect::<String>());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

/// The first value of a header among lower-cased (name, value) pairs.
fn find_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// A parsed response; header names lower-cased, in wire order.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status_line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    /// The headers without `date` (the only one whose value changes) and without
    /// `connection: close` (hyper's, when it will not reuse a connection whose request body
    /// was left unread: connection management, not part of an answer), sorted.
    pub fn headers_but_date(&self) -> Vec<(String, String)> {
        let mut h: Vec<_> = self
            .headers
            .iter()
            .filter(|(k, v)| k != "date" && !(k == "connection" && v == "close"))
            .cloned()
            .collect();
        h.sort();
        h
    }
}

/// A request's bytes. Adds `Content-Length` for a non-empty body unless the caller gave a
/// `Content-Length` or `Transfer-Encoding` header.
pub fn request(
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let framed = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !body.is_empty() && !framed {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// `data` in chunked transfer coding, `size` bytes a chunk, with the last chunk.
pub fn chunked(data: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// One client connection (keep-alive: any number of requests).
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn round_trip(&mut self, raw: &[u8]) -> io::Result<Resp> {
        self.send(raw)?;
        self.read_response()
    }

    /// Read more bytes into the buffer; `Ok(0)` at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn eof() -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed")
    }

    /// Read until `pred(buffer)` holds; error at EOF.
    pub fn read_until(&mut self, pred: impl Fn(&[u8]) -> bool) -> io::Result<()> {
        while !pred(&self.buf) {
            if self.fill()? == 0 {
                return Err(Conn::eof());
            }
        }
        Ok(())
    }

    /// The bytes received so far and not yet consumed as a response.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The same socket, for a thread that writes while this one reads.
    pub fn try_clone_stream(&self) -> TcpStream {
        self.stream.try_clone().expect("clone the socket")
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("timeout");
    }

    /// Read exactly one response (Content-Length, chunked, or until EOF).
    pub fn read_response(&mut self) -> io::Result<Resp> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill()? == 0 {
                return Err(Conn::eof());
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("").to_string();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.read_chunked()?
        } else if let Some(len) = get("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| io::Error::other("bad content-length"))?;
            while self.buf.len() < len {
                if self.fill()? == 0 {
                    return Err(Conn::eof());
                }
            }
            self.buf.drain(..len).collect()
        } else if status == 204 || status == 304 || status < 200 {
            Vec::new()
        } else {
            while self.fill()? > 0 {}
            std::mem::take(&mut self.buf)
        };
        Ok(Resp {
            status_line,
            status,
            headers,
            body,
        })
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                if self.fill()? == 0 {
                    return Err(Conn::eof());
                }
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // trailers, then the empty line
                loop {
                    let end = loop {
                        if let Some(i) = find(&self.buf, b"\r\n") {
                            break i;
                        }
                        if self.fill()? == 0 {
                            return Err(Conn::eof());
                        }
                    };
                    self.buf.drain(..end + 2);
                    if end == 0 {
                        return Ok(body);
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if self.fill()? == 0 {
                    return Err(Conn::eof());
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A GET with `Connection: close` to `addr` (the admin port).
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<Resp> {
    let mut c = Conn::open(addr)?;
    c.round_trip(&request(
        "GET",
        path,
        "admin",
        &[("Connection", "close")],
        b"",
    ))
}

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

/// A request as a backend received it; header names lower-cased, in wire order.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

type Handler = dyn Fn(&Recorded, &mut TcpStream) -> bool + Send + Sync;

/// An HTTP/1.1 server on a loopback port that records every request it reads, then lets a
/// handler answer (the handler returns whether to keep the connection).
pub struct Backend {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Backend {
    pub fn start(
        handler: impl Fn(&Recorded, &mut TcpStream) -> bool + Send + Sync + 'static,
    ) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (rx, cx, st) = (received.clone(), connections.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                cx.fetch_add(1, Ordering::SeqCst);
                let (rx, handler) = (rx.clone(), handler.clone());
                std::thread::spawn(move || serve_backend_conn(stream, rx, handler));
            }
        });
        Backend {
            addr,
            received,
            connections,
            stop,
        }
    }

    /// Answers every request 200 `text/plain` with `body`.
    pub fn text(body: &'static str) -> Backend {
        Backend::start(move |_, s| {
            respond(s, 200, &[("Content-Type", "text/plain")], body.as_bytes())
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Wait until at least `n` requests have been received.
    pub fn wait_for(&self, n: usize) -> Vec<Recorded> {
        poll(WAIT, &format!("{n} request(s) at the backend"), || {
            let r = self.received();
            (r.len() >= n).then_some(r)
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve_backend_conn(
    mut stream: TcpStream,
    received: Arc<Mutex<Vec<Recorded>>>,
    handler: Arc<Handler>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut stream, &mut buf) else {
            return;
        };
        received.lock().unwrap().push(req.clone());
        if !handler(&req, &mut stream) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Read one request (Content-Length or chunked body); `None` at EOF or on a broken request.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Recorded> {
    let fill = |stream: &mut TcpStream, buf: &mut Vec<u8>| -> Option<()> {
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    };
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        fill(stream, buf)?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                fill(stream, buf)?;
            };
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&buf[..end])
                    .split(';')
                    .next()?
                    .trim(),
                16,
            )
            .ok()?;
            buf.drain(..end + 2);
            while buf.len() < size + 2 {
                fill(stream, buf)?;
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().ok()?;
        while buf.len() < len {
            fill(stream, buf)?;
        }
        body = buf.drain(..len).collect();
    }
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

/// Write a complete response with `Content-Length`; true if it was written.
pub fn respond(stream: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]) -> bool {
    let mut out = format!("HTTP/1.1 {status} Whatever\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    stream
        .write_all(&bytes)
        .and_then(|_| stream.flush())
        .is_ok()
}

/// A latch a test opens to let blocked backend handlers go on.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        let (m, c) = &*self.0;
        *m.lock().unwrap() = true;
        c.notify_all();
    }

    /// Block until opened or `within` passes; true if opened.
    pub fn wait(&self, within: Duration) -> bool {
        let (m, c) = &*self.0;
        let guard = m.lock().unwrap();
        let (guard, _) = c.wait_timeout_while(guard, within, |open| !*open).unwrap();
        *guard
    }
}

// ---------------------------------------------------------------------------------------------
// The dialects' bodies, written from wire-formats.md §1.1, §2.1, §3.1
// ---------------------------------------------------------------------------------------------

pub fn huawei_body(code: &str, msg: &str, id: &str) -> String {
    format!("{{\"error_code\": \"{code}\", \"error_msg\": \"{msg}\", \"request_id\": \"{id}\"}}")
}

/// lua-cjson output: one key, compact, `/` escaped as `\/`.
pub fn tencent_body(msg: &str) -> String {
    format!("{{\"message\":\"{}\"}}", msg.replace('/', "\\/"))
}

pub fn jdcloud_body(status: u16, enum_: &str, msg: &str, id: &str) -> String {
    format!(
        "{{\"requestId\":\"{id}\",\"error\":{{\"code\":{status},\"status\":\"{enum_}\",\"message\":\"{msg}\"}}}}"
    )
}

/// A generated request id: 32 lower-case hex characters.
pub fn assert_generated_id(id: &str) {
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "request id {id:?} is not 32 lower-case hex characters"
    );
}

/// Exactly these headers (names lower-case) plus Content-Length and Date.
pub fn expect_headers(r: &Resp, mut want: Vec<(String, String)>) {
    want.push(("content-length".into(), r.body.len().to_string()));
    want.sort();
    assert_eq!(
        r.headers_but_date(),
        want,
        "headers of {:?} (body {:?})",
        r.status_line,
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.header("date").is_some(), "no Date header");
}

/// The status line starts `HTTP/1.1 STATUS `.
pub fn expect_status(r: &Resp, status: u16) {
    assert!(
        r.status_line.starts_with(&format!("HTTP/1.1 {status} ")),
        "status line {:?}, expected {status} (body {:?})",
        r.status_line,
        String::from_utf8_lossy(&r.body)
    );
}

/// A Huawei rejection, byte for byte: status, exactly the headers Content-Type, X-Request-Id,
/// Server, Content-Length (and Date), and the body. Returns the request id.
pub fn assert_huawei(r: &Resp, status: u16, code: &str, msg: &str) -> String {
    expect_status(r, status);
    let id = r.header("x-request-id").expect("X-Request-Id").to_string();
    assert_generated_id(&id);
    assert_eq!(r.body_str(), huawei_body(code, msg, &id));
    expect_headers(
        r,
        vec![
            ("content-type".into(), "application/json".into()),
            ("x-request-id".into(), id.clone()),
            ("server".into(), "api-gateway".into()),
        ],
    );
    id
}

/// A Tencent rejection, byte for byte (the id is in `X-Api-RequestId` only).
pub fn assert_tencent(r: &Resp, status: u16, msg: &str) -> String {
    expect_status(r, status);
    let id = r
        .header("x-api-requestid")
        .expect("X-Api-RequestId")
        .to_string();
    assert_generated_id(&id);
    assert_eq!(r.body_str(), tencent_body(msg));
    expect_headers(
        r,
        vec![
            ("content-type".into(), "application/json".into()),
            ("x-api-requestid".into(), id.clone()),
        ],
    );
    id
}

/// A JD Cloud rejection, byte for byte.
pub fn assert_jdcloud(r: &Resp, status: u16, enum_: &str, msg: &str) -> String {
    expect_status(r, status);
    let id = r
        .header("x-jdcloud-request-id")
        .expect("x-jdcloud-request-id")
        .to_string();
    assert_generated_id(&id);
    assert_eq!(r.body_str(), jdcloud_body(status, enum_, msg, &id));
    expect_headers(
        r,
        vec![
            ("content-type".into(), "application/json".into()),
            ("x-jdcloud-request-id".into(), id.clone()),
        ],
    );
    id
}

/// A mock answer: status, Content-Type, the dialect's id header (32 hex), any extra headers,
/// and the body. Returns the request id.
pub fn assert_mock(
    r: &Resp,
    status: u16,
    id_header: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> String {
    expect_status(r, status);
    let id = r.header(id_header).expect("request id header").to_string();
    assert_generated_id(&id);
    assert_eq!(r.body_str(), body);
    let mut want: Vec<(String, String)> = vec![
        ("content-type".into(), content_type.into()),
        (id_header.to_ascii_lowercase(), id.clone()),
    ];
    want.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())),
    );
    expect_headers(r, want);
    id
}
