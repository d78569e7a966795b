//! Interop with the vendors' own client libraries: `tests/interop/interop.py` signs requests
//! with apigateway-sdk-python (Huawei), jdcloud-apim-sdk (JD), PyJWT, and Tencent's documented
//! demo procedure, and
//! sends them to the real gateway started here.
//!
//! CI (`.ci/run`) installs the Python packages and sets `RULEGATE_INTEROP=required`; without
//! that, a machine lacking them skips this test with a notice rather than failing.

#[path = "support/prereq.rs"]
mod prereq;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn vendor_clients_are_accepted_and_tampering_gets_the_documented_rows() {
    let found = prereq::python_imports("jwt, apigateway_sdk_python, jdcloud_apim_sdk");
    let what = "python3's PyJWT / apigateway-sdk-python / jdcloud-apim-sdk";
    let how = "pip install PyJWT cryptography apigateway-sdk-python jdcloud-apim-sdk";
    if !prereq::present(found, "RULEGATE_INTEROP", what, how) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("rulegate-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        root.join("tests/interop/policy/interop.policy"),
        dir.join("interop.policy"),
    )
    .unwrap();
    std::fs::copy(
        root.join("policies/keys/users.es256.pub.pem"),
        dir.join("users.es256.pub.pem"),
    )
    .unwrap();

    let addr = free_addr();
    let mut gateway = Child(
        Command::new(env!("CARGO_BIN_EXE_rulegate"))
            .args([
                "serve",
                dir.to_str().unwrap(),
                "--listen",
                &addr.to_string(),
            ])
            .env("INTEROP_HW_SECRET", "hw-app-secret-0123456789")
            .env("INTEROP_HW_OTHER_SECRET", "hw-other-secret-0123456789")
            .env("INTEROP_TC_SECRET", "tencent-interop-secret")
            .env("INTEROP_TC_KIOSK_SECRET", "tencent-kiosk-secret")
            .env("INTEROP_JD_SECRET", "jd-interop-secret")
            .env(
                "INTEROP_OAUTH2_KEY",
                "interop-oauth2-signing-key-0123456789",
            )
            .env("RULEGATE_LOG", "warn")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rulegate"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = gateway.0.try_wait() {
            let mut log = String::new();
            gateway
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut log)
                .ok();
            panic!("rulegate exited ({status}):\n{log}");
        }
        assert!(Instant::now() < deadline, "rulegate did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let out = Command::new("python3")
        .arg(root.join("tests/interop/interop.py"))
        .arg(addr.to_string())
        .arg(root.join("tests/fixtures/keys"))
        .output()
        .expect("run python3");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "interop failures:\n{report}");
    println!("{report}");
}
