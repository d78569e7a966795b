//! Start-up and shutdown: SIGTERM drains in-flight requests, SIGINT exits cleanly, a policy
//! that does not compile stops the start.

use crate::common::*;
use crate::forward::forward_policy;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_finishes_the_request_in_flight_refuses_new_connections_and_exits_zero() {
    // the backend answers once the test has seen new connections refused: the request is
    // in flight for as long as that takes, and no longer
    let gate = Gate::new();
    let held = gate.clone();
    let backend = Backend::start(move |_, s| {
        held.wait(WAIT);
        respond(s, 200, &[("Content-Type", "text/plain")], b"slow but sure")
    });
    let dir = forward_policy(&backend.url());
    let mut gw = Gateway::start_with(dir.path(), &["--drain", "10s"]);
    // one answered request: the accept loop runs, so the signal handlers are installed
    expect_status(&gw.get("shop.test", "/mock"), 200);

    let mut in_flight = gw.conn();
    in_flight
        .send(&request("GET", "/api/slow", "shop.test", &[], b""))
        .unwrap();
    backend.wait_for(1);
    let signalled = Instant::now();
    gw.signal(SIGTERM);

    poll(WAIT, "new connections to be refused", || {
        TcpStream::connect_timeout(&gw.addr, Duration::from_millis(500))
            .is_err()
            .then_some(())
    });
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "refused while the backend still works on the request in flight"
    );
    gate.open();

    let r = in_flight
        .read_response()
        .expect("the in-flight request completes");
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "slow but sure");

    let status = gw.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exited within the drain time"
    );
    let log = gw.log_lines().join("\n");
    assert!(log.contains("drained"), "{log}");
    assert!(!log.contains("drain timed out"), "{log}");
}

#[test]
fn sigint_exits_zero() {
    let dir = forward_policy(&closed_url());
    let mut gw = Gateway::start(dir.path());
    expect_status(&gw.get("shop.test", "/mock"), 200);
    gw.signal(SIGINT);
    let status = gw.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}

#[test]
fn a_policy_that_does_not_compile_stops_the_start_with_exit_1() {
    let dir = TempDir::new();
    dir.write(
        "shop.policy",
        "service shop {\n    dialect huawei\n    hosts \"shop.test\"\n    route GET \"/x\" {\n        forward nowhere\n    }\n}\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .arg("serve")
        .arg(dir.path())
        .args(["--listen", &free_addr().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rulegate serve kept running on a policy that does not compile");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the policy does not compile") && stderr.contains("nowhere"),
        "{stderr}"
    );
}
