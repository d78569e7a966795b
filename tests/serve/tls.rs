//! HTTPS: TLS 1.2/1.3 termination, HTTP-only and HTTPS-only routes, services that require a
//! verified client certificate (Huawei APIG.0205), and `https://` backends and authorizers
//! verified against `--backend-ca`. Certificates are made with the `openssl` command for each
//! run; the clients and the TLS backend are rustls.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// A throwaway PKI: a CA, a server certificate for localhost, a client certificate from the CA,
/// and a self-signed client certificate the CA never issued.
pub(crate) fn pki(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=rulegate test CA",
        ],
    ]
    .concat());
    for (name, san) in [
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ("client", "subjectAltName=DNS:client"),
    ] {
        run(&[
            &["req", "-new"][..],
            &ec[..],
            &[
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        ]
        .concat());
        std::fs::write(dir.join(format!("{name}.ext")), san).unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
    run(&[
        &["req", "-x509"][..],
        &ec[..],
        &[
            "-keyout",
            "rogue.key",
            "-out",
            "rogue.crt",
            "-days",
            "2",
            "-subj",
            "/CN=rogue",
        ],
    ]
    .concat());
}

const POLICY: &str = r#"
default dialect huawei

service open {
    dialect huawei
    hosts "open.test"
    route GET "/hello" { mock 200 text "hello" }
    route GET "/secure" {
        protocols https
        mock 200 text "secure"
    }
}

service store {
    dialect huawei
    hosts "store.test"
    app kiosk {
        key "ak-kiosk"
        secret file "kiosk.secret"
        appcode file "kiosk.appcode"
    }
    auth codes app-signature { allow appcode }
    route GET "/stock" {
        auth codes
        mock 200 json {"stock": 3}
    }
}

service bank {
    dialect huawei
    hosts "bank.test"
    client certificate required
    route GET "/balance" { mock 200 json {"balance": 10} }
}
"#;

/// One HTTPS GET; `None` when the TLS handshake fails.
fn https_get(
    port: u16,
    dir: &Path,
    host: &str,
    path: &str,
    client: Option<&str>,
) -> Option<String> {
    https_get_with(port, dir, host, path, client, "")
}

/// [`https_get`] with extra header lines (each ending in CRLF).
fn https_get_with(
    port: u16,
    dir: &Path,
    host: &str,
    path: &str,
    client: Option<&str>,
    headers: &str,
) -> Option<String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.crt")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let chain =
                vec![CertificateDer::from_pem_file(dir.join(format!("{name}.crt"))).unwrap()];
            let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).ok()?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        // TLS 1.3 reports a refused client certificate only when the client reads
        Err(_) if out.is_empty() => None,
        Err(_) => Some(String::from_utf8_lossy(&out).into_owned()),
    }
}

fn start(dir: &TempDir) -> (Gateway, u16) {
    pki(dir.path());
    dir.write("gw.policy", POLICY);
    dir.write("kiosk.secret", "kiosk-secret");
    dir.write("kiosk.appcode", "kiosk-code-7f3a91");
    let tls = free_addr();
    let p = |f: &str| dir.path().join(f).display().to_string();
    let gw = Gateway::start_with(
        dir.path(),
        &[
            "--tls-listen",
            &tls.to_string(),
            "--cert",
            &p("server.crt"),
            "--key",
            &p("server.key"),
            "--client-ca",
            &p("ca.crt"),
        ],
    );
    (gw, tls.port())
}

fn status_and_body(raw: &str) -> (String, String) {
    let status = raw.lines().next().unwrap_or("").to_string();
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn https_serves_and_http_only_routes_are_refused_in_the_dialect() {
    let dir = TempDir::new();
    let (gw, port) = start(&dir);
    let d = dir.path();
    let (status, body) = status_and_body(&https_get(port, d, "open.test", "/hello", None).unwrap());
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "hello")
    );
    assert_eq!(
        status_and_body(&https_get(port, d, "open.test", "/secure", None).unwrap()).1,
        "secure"
    );
    // the same HTTPS-only route over plain HTTP: Huawei APIG.0607
    let r = gw.send(&request("GET", "/secure", "open.test", &[], b""));
    assert_huawei(
        &r,
        400,
        "APIG.0607",
        "The following protocol is supported: HTTPS",
    );
}

#[test]
fn a_head_of_150_tiny_headers_is_served_over_https() {
    let dir = TempDir::new();
    let (_gw, port) = start(&dir);
    let headers: String = (0..150).map(|i| format!("x{i:x}: 1\r\n")).collect();
    let raw = https_get_with(port, dir.path(), "open.test", "/hello", None, &headers).unwrap();
    assert_eq!(
        status_and_body(&raw),
        ("HTTP/1.1 200 OK".to_string(), "hello".to_string())
    );
}

#[test]
fn an_appcode_authenticates_over_https_only() {
    let dir = TempDir::new();
    let (gw, port) = start(&dir);
    let d = dir.path();
    let code = "X-Apig-AppCode: kiosk-code-7f3a91\r\n";
    let raw = https_get_with(port, d, "store.test", "/stock", None, code).unwrap();
    assert_eq!(
        status_and_body(&raw),
        ("HTTP/1.1 200 OK".to_string(), r#"{"stock":3}"#.to_string())
    );
    let wrong = "X-Apig-AppCode: kiosk-code-000000\r\n";
    let raw = https_get_with(port, d, "store.test", "/stock", None, wrong).unwrap();
    let (status, body) = status_and_body(&raw);
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert!(
        body.starts_with(r#"{"error_code": "APIG.0303", "error_msg": "Incorrect app authentication information: AppCode not found", "request_id": ""#),
        "{body}"
    );
    // the right code over plain HTTP: a bearer secret is never accepted in the clear
    let r = gw.send(&request(
        "GET",
        "/stock",
        "store.test",
        &[("X-Apig-AppCode", "kiosk-code-7f3a91")],
        b"",
    ));
    assert_huawei(
        &r,
        401,
        "APIG.0303",
        "Incorrect app authentication information: AppCode authentication requires HTTPS",
    );
}

#[test]
fn a_service_requiring_a_client_certificate_gets_apig_0205_without_one() {
    let dir = TempDir::new();
    let (gw, port) = start(&dir);
    let d = dir.path();
    // with a certificate from the CA
    let (status, body) =
        status_and_body(&https_get(port, d, "bank.test", "/balance", Some("client")).unwrap());
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", r#"{"balance":10}"#)
    );
    // without one: the handshake succeeds (other services need none), the service refuses
    let raw = https_get(port, d, "bank.test", "/balance", None).unwrap();
    let (status, body) = status_and_body(&raw);
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(
        body.starts_with(r#"{"error_code": "APIG.0205", "error_msg": "Verify client certificate failed", "request_id": ""#),
        "{body}"
    );
    // plain HTTP carries no certificate at all
    let r = gw.send(&request("GET", "/balance", "bank.test", &[], b""));
    assert_huawei(&r, 400, "APIG.0205", "Verify client certificate failed");
    // a certificate the CA never issued is refused in the handshake
    assert!(
        https_get(port, d, "bank.test", "/balance", Some("rogue")).is_none(),
        "rogue certificate accepted"
    );
    // services without the requirement do not care
    assert_eq!(
        status_and_body(&https_get(port, d, "open.test", "/hello", None).unwrap()).1,
        "hello"
    );
}

/// An HTTPS backend (the PKI's server certificate) on its own threads. Every request gets
/// `{"status":"allow","host":HOST}` (an authorizer's "allow", and the Host it was sent) and
/// the connection is closed. Returns its port.
fn tls_backend(dir: &Path) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_file(dir.join("server.crt")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let (Ok(mut tcp), config) = (tcp, config.clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let host = head
                    .lines()
                    .find_map(|l| l.strip_prefix("host:"))
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let body = format!(r#"{{"status":"allow","host":"{host}"}}"#);
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
                conn.send_close_notify();
                let _ = conn.complete_io(&mut tcp);
            });
        }
    });
    port
}

const HTTPS_BACKENDS: &str = r#"
service api {
    dialect huawei
    hosts "api.test"
    backend by_ip { targets "https://127.0.0.1:@PORT@" }
    backend by_name { targets "https://localhost:@PORT@/base" }
    auth ext authorizer {
        url "https://localhost:@PORT@/check"
        timeout 2s
        identity header "Authorization"
    }
    route GET "/ip" { forward by_ip }
    route GET "/name" { forward by_name }
    route GET "/guarded" {
        auth ext
        mock 200 text "let in"
    }
}
"#;

/// A PKI, the TLS backend, and a gateway on [`HTTPS_BACKENDS`] started with `args` (where
/// `@CA@` is the PKI's CA file). Returns the gateway and the backend's port.
fn start_with_tls_backend(dir: &TempDir, args: &[&str]) -> (Gateway, String) {
    pki(dir.path());
    let port = tls_backend(dir.path()).to_string();
    dir.write("api.policy", &HTTPS_BACKENDS.replace("@PORT@", &port));
    let ca = dir.path().join("ca.crt").display().to_string();
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "@CA@" { ca.as_str() } else { *a })
        .collect();
    (Gateway::start_with(dir.path(), &args), port)
}

/// `GET /guarded` with the identity the authorizer is asked about.
fn guarded(gw: &Gateway) -> Resp {
    gw.send(&request(
        "GET",
        "/guarded",
        "api.test",
        &[("Authorization", "Bearer t")],
        b"",
    ))
}

#[test]
fn https_backends_and_authorizers_are_verified_against_the_backend_ca() {
    let dir = TempDir::new();
    let (gw, port) = start_with_tls_backend(&dir, &["--backend-ca", "@CA@"]);

    // the certificate names 127.0.0.1 and localhost; each target's host is checked against it
    let r = gw.get("api.test", "/ip");
    expect_status(&r, 200);
    assert_eq!(
        r.body_str(),
        format!(r#"{{"status":"allow","host":"127.0.0.1:{port}"}}"#)
    );
    let r = gw.get("api.test", "/name");
    expect_status(&r, 200);
    assert_eq!(
        r.body_str(),
        format!(r#"{{"status":"allow","host":"localhost:{port}"}}"#)
    );
    // the authorizer is reached over TLS too
    let r = guarded(&gw);
    expect_status(&r, 200);
    assert_eq!(r.body_str(), "let in");
}

#[test]
fn an_https_backend_whose_certificate_is_not_trusted_is_unavailable() {
    let dir = TempDir::new();
    // no --backend-ca: the test CA is in no system store
    let (gw, _) = start_with_tls_backend(&dir, &[]);
    assert_huawei(
        &gw.get("api.test", "/ip"),
        502,
        "APIG.0202",
        "Backend unavailable",
    );
    // an authorizer that cannot be reached: APIG.0616
    assert_huawei(
        &guarded(&gw),
        500,
        "APIG.0616",
        "Incorrect third-party authentication request information",
    );
}
