//! JWT on the shipped shop policy (`auth customers jwt`, ES256, issuer and audience pinned,
//! `claim "scope" "orders:read"` on GET /orders/{id}): tokens signed with the fixture key pass,
//! and every refusal is Huawei's documented row.

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rulegate::compile::{compile, ProcessSecrets, Snapshot};
use rulegate::decide::{decide, render_response, Outcome, RequestHead, VirtualEnv};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const NOW: i64 = 1_795_000_000; // seconds; the virtual clock of every request here

fn shipped() -> Snapshot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let loaded = rulegate::policy::load(&[dir]).unwrap();
    compile(&loaded, &ProcessSecrets)
        .snapshot
        .expect("the shipped policies compile")
}

fn private_key() -> EncodingKey {
    let pem = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys/users.es256.key.pem"),
    )
    .unwrap();
    EncodingKey::from_ec_pem(&pem).unwrap()
}

fn token(claims: serde_json::Value) -> String {
    encode(&Header::new(Algorithm::ES256), &claims, &private_key()).unwrap()
}

fn good_claims() -> serde_json::Value {
    serde_json::json!({
        "iss": "https://id.shop.example.com",
        "aud": "shop-api",
        "sub": "customer-7",
        "scope": "orders:read profile",
        "exp": NOW + 300,
        "nbf": NOW - 10,
    })
}

/// GET /orders/12 with this Authorization value.
fn call(snap: &Snapshot, authorization: Option<&str>) -> (Outcome, Option<(u16, String)>) {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("shop.example.com"));
    headers.insert("x-tenant", HeaderValue::from_static("t-1"));
    if let Some(a) = authorization {
        headers.insert("authorization", HeaderValue::from_str(a).unwrap());
    }
    let head = RequestHead {
        version: http::Version::HTTP_11,
        method: "GET",
        target: "/orders/12",
        host: Some("shop.example.com"),
        host_from: Default::default(),
        headers: &headers,
        peer: IpAddr::from([127, 0, 0, 1]),
        tls: true,
        client_cert: false,
        // a GET without a body (the orders backend signs over the body's hash)
        body: Some(b""),
    };
    let d = decide(snap, &head, &VirtualEnv::new(NOW * 1000));
    let answer =
        render_response(&d).map(|r| (r.status, String::from_utf8(r.body.to_vec()).unwrap()));
    (d.outcome, answer)
}

fn huawei(code: &str, msg: &str) -> Option<(u16, String)> {
    let status = match code {
        "APIG.0302" => 403,
        _ => 401,
    };
    Some((
        status,
        format!(
            r#"{{"error_code": "{code}", "error_msg": "{msg}", "request_id": "00000000000000000000000000000001"}}"#
        ),
    ))
}

#[test]
fn a_valid_token_passes_to_the_backend() {
    let snap = shipped();
    let (outcome, _) = call(&snap, Some(&format!("Bearer {}", token(good_claims()))));
    assert!(
        matches!(outcome, Outcome::Forward(ref p) if p.target == "/v1/orders/12"),
        "{outcome:?}"
    );
}

#[test]
fn every_refusal_is_the_documented_row() {
    let snap = shipped();
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good_claims();
        edit(&mut c);
        format!("Bearer {}", token(c))
    };
    let invalid = |detail: &str| {
        huawei(
            "APIG.0301",
            &format!("Incorrect IAM authentication information: {detail}"),
        )
    };
    type Case = (&'static str, Option<String>, Option<(u16, String)>);
    let cases: Vec<Case> = vec![
        (
            "no Authorization",
            None,
            huawei("APIG.0301", "Incorrect IAM authentication information."),
        ),
        (
            "not a bearer",
            Some("Basic dXNlcjpwYXNz".into()),
            huawei("APIG.0301", "Incorrect IAM authentication information."),
        ),
        (
            "not a JWT",
            Some("Bearer abc.def".into()),
            invalid("the token is not a JWT"),
        ),
        (
            "expired beyond the leeway",
            Some(with(&|c| c["exp"] = (NOW - 31).into())),
            huawei("APIG.0307", "The token must be updated."),
        ),
        (
            "not yet valid",
            Some(with(&|c| c["nbf"] = (NOW + 60).into())),
            invalid("the token is not valid yet"),
        ),
        (
            "another issuer",
            Some(with(&|c| c["iss"] = "https://evil.example".into())),
            invalid("issuer not accepted"),
        ),
        (
            "another audience",
            Some(with(&|c| c["aud"] = "billing".into())),
            invalid("audience not accepted"),
        ),
        (
            "scope missing",
            Some(with(&|c| c["scope"] = "profile".into())),
            huawei(
                "APIG.0302",
                "The IAM user is not authorized to access the API.",
            ),
        ),
    ];
    for (what, authorization, expected) in cases {
        let (_, answer) = call(&snap, authorization.as_deref());
        assert_eq!(answer, expected, "{what}");
    }
    // Expired, but within the 30 s leeway.
    let (outcome, _) = call(&snap, Some(&with(&|c| c["exp"] = (NOW - 29).into())));
    assert!(
        matches!(outcome, Outcome::Forward(_)),
        "within the leeway: {outcome:?}"
    );
}

#[test]
fn tokens_naming_another_algorithm_are_refused() {
    let snap = shipped();
    // alg none: header {"alg":"none"}, no signature
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&good_claims().to_string())
    );
    let (_, answer) = call(&snap, Some(&format!("Bearer {none}")));
    assert_eq!(answer.map(|a| a.0), Some(401), "alg none");
    // HS256 signed with the public key's bytes: the classic key-confusion attack.
    let public = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/keys/users.es256.pub.pem"),
    )
    .unwrap();
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &good_claims(),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    let (_, answer) = call(&snap, Some(&format!("Bearer {confused}")));
    assert_eq!(
        answer,
        huawei("APIG.0301", "Incorrect IAM authentication information: no key of this provider verifies HS256 tokens"),
        "HS256 against a public key"
    );
    // A token signed by another key.
    let other = EncodingKey::from_secret(b"not-the-key");
    let forged = encode(&Header::new(Algorithm::HS256), &good_claims(), &other).unwrap();
    assert_eq!(
        call(&snap, Some(&format!("Bearer {forged}")))
            .1
            .map(|a| a.0),
        Some(401)
    );
}

#[test]
fn a_bad_key_file_is_a_check_diagnostic() {
    let policy = r#"
service s {
    dialect huawei
    hosts "*"
    auth users jwt {
        key env "NOT_A_PEM"
        algorithms ES256
    }
    route GET "/" {
        auth users
        mock 200
    }
}
"#;
    struct Env;
    impl rulegate::compile::SecretStore for Env {
        fn env(&self, _: &str) -> Option<String> {
            Some("definitely not a key".into())
        }
        fn file(&self, p: &Path) -> std::io::Result<Vec<u8>> {
            std::fs::read(p)
        }
    }
    let loaded =
        rulegate::policy::parse_texts(vec![("k.policy".into(), policy.into(), PathBuf::new())]);
    let compiled = compile(&loaded, &Env);
    assert!(compiled.snapshot.is_none());
    let codes: Vec<&str> = compiled.diagnostics.iter().map(|d| d.code.id).collect();
    assert_eq!(codes, vec!["E0302"]);
}
