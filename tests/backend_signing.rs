//! Issue 13's acceptance test: a policy that maps a path variable to a query parameter, adds a
//! constant header and the client's address, removes `Cookie`, routes `X-Canary: 1` to a
//! second backend and signs every upstream request (`tests/interop/signing/`).
//!
//! The backends are `tests/interop/signed_backend.py`, which verifies each signature with
//! Huawei's own SDK (`apigateway-sdk-python`'s `Signer.Verify`) over exactly what it received.
//! The test checks that the backend receives exactly the request `explain` predicts (but for
//! the signing time and the request id, which differ by nature), that explain's predicted
//! request, replayed to the backend, verifies too, that a tampered copy does not, and that
//! `rulegate test` passes the policy's own tests.
//!
//! CI sets `RULEGATE_INTEROP=required`; without it, a machine lacking the Python packages
//! skips this test with a notice.

#[path = "support/prereq.rs"]
mod prereq;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "backend-signing-secret";
const KEY: &str = "rulegate-orders";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The verifying backends: `main`, `canary` and `legacy` on their ports.
fn backends(ports: [u16; 3]) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/signed_backend.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([KEY, SECRET])
        .args(
            ["main", "canary", "legacy"]
                .iter()
                .zip(ports)
                .map(|(n, p)| format!("{n}:{p}")),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the verifying backend did not start");
    Child(child)
}

fn policy_dir(ports: [u16; 3]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/signing");
    let dir = std::env::temp_dir().join(format!("rulegate-signing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut policy = std::fs::read_to_string(root.join("orders.policy")).unwrap();
    for (name, port) in ["@MAIN@", "@CANARY@", "@LEGACY@"].iter().zip(ports) {
        policy = policy.replace(name, &port.to_string());
    }
    std::fs::write(dir.join("orders.policy"), policy).unwrap();
    std::fs::copy(root.join("orders.tests"), dir.join("orders.tests")).unwrap();
    dir
}

fn rulegate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rulegate"));
    c.env("SIGNING_SECRET", SECRET).env("RULEGATE_LOG", "warn");
    c
}

fn gateway(dir: &Path) -> (Child, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = rulegate()
        .args([
            "serve",
            dir.to_str().unwrap(),
            "--listen",
            &addr.to_string(),
        ])
        .spawn()
        .expect("start rulegate");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "rulegate did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Child(child), addr)
}

/// One HTTP/1.1 exchange; the answer's status and body.
fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("Connection: close\r\n\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The backend's report of what it received.
fn report(answer: (u16, String)) -> Value {
    assert_eq!(answer.0, 200, "{}", answer.1);
    serde_json::from_str(&answer.1).unwrap_or_else(|e| panic!("{e}: {}", answer.1))
}

fn received_headers(r: &Value) -> Vec<(String, String)> {
    r["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
        .collect()
}

/// The request line's target and the headers of explain's `upstream` block.
fn predicted(
    dir: &Path,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (String, Vec<(String, String)>) {
    let mut c = rulegate();
    c.args(["explain", dir.to_str().unwrap(), method, url]);
    for (k, v) in headers {
        c.args(["-H", &format!("{k}: {v}")]);
    }
    if !body.is_empty() {
        c.args(["--data", body]);
    }
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let block = text
        .split_once("\nupstream ")
        .unwrap_or_else(|| panic!("explain shows no upstream request:\n{text}"))
        .1;
    let mut lines = block.lines();
    let target = lines.next().unwrap().split(' ').nth(1).unwrap().to_string();
    let headers = lines
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let (k, v) = l.trim().split_once(": ").unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    (target, headers)
}

/// The headers but those that differ between any two sendings by nature: the signing time, the
/// signature over it, the request id.
fn comparable(mut h: Vec<(String, String)>) -> Vec<(String, String)> {
    // the request id, and the trace made from its bits, differ between serve and explain
    let per_request = ["authorization", "x-sdk-date", "x-request-id", "traceparent"];
    h.retain(|(k, _)| !per_request.contains(&k.as_str()));
    h.sort();
    h
}

fn signed_headers(h: &[(String, String)]) -> String {
    let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
    auth.split("SignedHeaders=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_backend_receives_the_predicted_request_and_huaweis_verifier_accepts_its_signature() {
    let found = prereq::python_imports("apigateway_sdk_python");
    let how = "pip install apigateway-sdk-python";
    if !prereq::present(
        found,
        "RULEGATE_INTEROP",
        "python3's apigateway-sdk-python",
        how,
    ) {
        return;
    }
    let ports = [free_port(), free_port(), free_port()];
    let _backends = backends(ports);
    let dir = policy_dir(ports);
    let (_gw, addr) = gateway(&dir);

    // the main route: mapped, stripped, signed over the body
    let client = [
        ("Host", "orders.test"),
        ("Cookie", "session=1"),
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer client-token"),
        ("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD"),
    ];
    let body = r#"{"n":1}"#;
    let got = report(send(addr, "POST", "/orders/42?x=1", &pairs(&client), body));
    assert_eq!(got["backend"], "main");
    assert_eq!(got["target"], "/orders?x=1&order=42");
    assert_eq!(got["body"], body);
    assert_eq!(got["verified"], true, "{got}");
    assert_eq!(got["tampered_verified"], false, "{got}");
    let received = received_headers(&got);
    for gone in ["cookie", "x-sdk-content-sha256"] {
        assert!(
            received.iter().all(|(k, _)| k != gone),
            "{gone}: {received:?}"
        );
    }
    let url = "http://orders.test/orders/42?x=1";
    let (target, predicted) = predicted(&dir, "POST", url, &client[1..], body);
    assert_eq!(target, "/orders?x=1&order=42");
    assert_eq!(comparable(received.clone()), comparable(predicted.clone()));
    assert_eq!(
        signed_headers(&received),
        "host;x-client-ip;x-invoke-user;x-sdk-date"
    );
    assert_eq!(signed_headers(&received), signed_headers(&predicted));
    // explain's predicted request, signed at its own time, verifies as well
    let main: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
    let replayed = report(send(main, "POST", &target, &predicted, body));
    assert_eq!(replayed["verified"], true, "{replayed}");

    // the canary
    let canary = pairs(&[("Host", "orders.test"), ("X-Canary", "1")]);
    let got = report(send(addr, "GET", "/orders/7", &canary, ""));
    assert_eq!(got["backend"], "canary");
    assert_eq!(got["target"], "/orders?order=7");
    assert_eq!(got["verified"], true, "{got}");

    // Basic: the client's Authorization is replaced
    let legacy = pairs(&[
        ("Host", "orders.test"),
        ("Authorization", "Bearer client-token"),
    ]);
    let got = report(send(addr, "GET", "/legacy/7", &legacy, ""));
    assert_eq!(got["backend"], "legacy");
    assert_eq!(got["verified"], true, "{got}");

    // the policy's own tests, which name the same upstream values
    let out = rulegate()
        .args(["test", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("3 passed, 0 failed"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}
