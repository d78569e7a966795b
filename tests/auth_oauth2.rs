//! Huawei's OAuth2 token endpoint (`issue tokens`) and routes taking its access tokens
//! (`auth P` with an oauth2 provider), on `decide` with a virtual clock: tokens are issued for
//! both grants, every failure is its APIG.22xx / APIG.10xx row byte for byte, and an access
//! token identifies its app for the app's binding, standing and limits.

mod support;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use rulegate::compile::Snapshot;
use rulegate::decide::{decide, render_response, Decision, Outcome, RequestHead, VirtualEnv};
use std::collections::HashMap;
use std::net::IpAddr;

const NOW_MS: i64 = 1_795_000_000_000;
const KEY: &str = "test-signing-key-for-oauth2-0123456789";

fn policy() -> Snapshot {
    let text = r#"
service shop {
    dialect huawei
    hosts "shop.example.com"
    app mobile {
        key "ak-mobile"
        secret env "MOBILE"
        rate 3 per minute burst 2
    }
    app web {
        key "ak-web"
        secret env "WEB"
    }
    app office {
        key "ak-office"
        secret env "OFFICE"
        trusted ips 203.0.113.0/24
    }
    app gone {
        key "ak-gone"
        secret env "GONE"
        frozen
    }
    auth tokens oauth2 {
        signing key env "SIGNING"
        access ttl 1h
        refresh ttl 1d
    }
    auth others oauth2 {
        signing key env "SIGNING"
    }
    route ANY "/oauth2/token" { issue tokens tokens }
    route GET "/orders" {
        auth tokens apps mobile office gone
        forward b
    }
    route GET "/open" {
        auth tokens
        mock 200 text "open"
    }
    route GET "/claims" {
        auth tokens claim "token_use" "access"
        mock 200 text "claims"
    }
    route GET "/others" {
        auth others
        mock 200 text "others"
    }
    route POST "/others/token" { issue tokens others }
    backend b { targets "http://127.0.0.1:9" }
}
"#;
    let secrets: HashMap<String, String> = [
        ("MOBILE", "mobile-secret"),
        ("WEB", "web-secret"),
        ("OFFICE", "office-secret"),
        ("GONE", "gone-secret"),
        ("SIGNING", KEY),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    support::compile_text(text.to_string(), secrets)
}

const FORM: &str = "application/x-www-form-urlencoded";

/// One request as `serve` runs it: decide, read the body when asked, decide again.
fn send(
    snap: &Snapshot,
    env: &VirtualEnv,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Decision {
    let mut map = HeaderMap::new();
    map.insert("host", HeaderValue::from_static("shop.example.com"));
    for (k, v) in headers {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let mut head = RequestHead {
        version: http::Version::HTTP_11,
        method,
        target,
        host: Some("shop.example.com"),
        host_from: Default::default(),
        headers: &map,
        peer: IpAddr::from([198, 51, 100, 7]),
        tls: true,
        client_cert: false,
        body: None,
    };
    let d = decide(snap, &head, env);
    if let Outcome::NeedBody { .. } = d.outcome {
        head.body = Some(body.as_bytes());
        return decide(snap, &head, env);
    }
    d
}

fn token_request(snap: &Snapshot, env: &VirtualEnv, body: &str) -> Decision {
    send(
        snap,
        env,
        "POST",
        "/oauth2/token",
        &[("content-type", FORM)],
        body,
    )
}

/// (status, headers, body) of a decision's direct answer.
fn answer(d: &Decision) -> (u16, Vec<(String, String)>, String) {
    let r = render_response(d).expect("a direct answer");
    (
        r.status,
        r.headers,
        String::from_utf8(r.body.to_vec()).unwrap(),
    )
}

/// Huawei's row for `code`, exactly as the wire carries it.
fn row(code: &str, status: u16, message: &str, request_id: &str) -> (u16, String) {
    (
        status,
        format!(
            r#"{{"error_code": "{code}", "error_msg": "{message}", "request_id": "{request_id}"}}"#
        ),
    )
}

fn assert_row(d: &Decision, code: &str, status: u16, message: &str) {
    let (got_status, headers, body) = answer(d);
    assert_eq!(
        (got_status, body),
        row(code, status, message, &d.request_id),
        "{:#?}",
        d.trace
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "X-Request-Id" && *v == d.request_id),
        "{headers:?}"
    );
}

/// The request passed every check: forwarded, or answered by its route's mock.
fn assert_passed(d: &Decision) {
    let passed = match &d.outcome {
        Outcome::Forward(_) => true,
        Outcome::Respond(r) => r.status == 200,
        _ => false,
    };
    assert!(passed, "{:?} {:#?}", d.outcome, d.trace);
}

/// The JSON of a successful token answer.
fn tokens(d: &Decision) -> serde_json::Value {
    let (status, headers, body) = answer(d);
    assert_eq!(status, 200, "{body} {:#?}", d.trace);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        header("Content-Type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(header("Cache-Control"), Some("no-store"));
    assert_eq!(header("Pragma"), Some("no-cache"));
    assert_eq!(header("X-Request-Id"), Some(d.request_id.as_str()));
    serde_json::from_str(&body).unwrap()
}

fn claims(token: &str) -> serde_json::Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_exp = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(KEY.as_bytes()),
        &v,
    )
    .expect("signed with the provider's key")
    .claims
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get(snap: &Snapshot, env: &VirtualEnv, target: &str, authorization: Option<&str>) -> Decision {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    send(snap, env, "GET", target, &headers, "")
}

const MOBILE: &str =
    "grant_type=client_credentials&client_id=ak-mobile&client_secret=mobile-secret";

#[test]
fn client_credentials_issue_signed_tokens_with_the_rfc_6749_answer() {
    let snap = policy();
    let env = VirtualEnv::new(NOW_MS);
    let d = token_request(&snap, &env, MOBILE);
    let json = tokens(&d);
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["access_token", "token_type", "expires_in", "refresh_token"]
    );
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 3600);
    let now = NOW_MS / 1000;
    assert_eq!(
        claims(json["access_token"].as_str().unwrap()),
        serde_json::json!({
            "iss": "rulegate/shop/tokens", "sub": "ak-mobile", "iat": now, "exp": now + 3600,
            "jti": d.request_id, "token_use": "access",
        })
    );
    assert_eq!(
        claims(json["refresh_token"].as_str().unwrap()),
        serde_json::json!({
            "iss": "rulegate/shop/tokens", "sub": "ak-mobile", "iat": now, "exp": now + 86_400,
            "jti": d.request_id, "token_use": "refresh",
        })
    );
    assert_eq!(d.app, Some(0));
    // The trace says what happened, never the tokens or the secret.
    let trace: Vec<String> = d.trace.iter().map(|s| s.to_string()).collect();
    let text = trace.join("\n");
    assert!(text.contains("client_credentials for app mobile"), "{text}");
    let signature = json["access_token"]
        .as_str()
        .unwrap()
        .rsplit('.')
        .next()
        .unwrap();
    assert!(
        !text.contains(signature) && !text.contains("mobile-secret"),
        "{text}"
    );
}

#[test]
fn http_basic_credentials_are_accepted() {
    let snap = policy();
    let env = VirtualEnv::new(NOW_MS);
    let basic = base64::engine::general_purpose::STANDARD.encode("ak-web:web-secret");
    let d = send(
        &snap,
        &env,
        "POST",
        "/oauth2/token",
        &[
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            ),
            ("authorization", &format!("Basic {basic}")),
        ],
        "grant_type=client_credentials",
    );
    let json = tokens(&d);
    assert_eq!(
        claims(json["access_token"].as_str().unwrap())["sub"],
        "ak-web"
    );
}

#[test]
fn every_token_endpoint_failure_is_its_row() {
    let snap = policy();
    let env = VirtualEnv::new(NOW_MS);
    let long = "x".repeat(301);
    let basic = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    type Case<'a> = (&'a str, String, &'a str, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("no grant_type", "client_id=ak-mobile&client_secret=mobile-secret".into(), "APIG.2210", 400, "Lack of grant_type"),
        ("empty grant_type", "grant_type=&client_id=ak-mobile".into(), "APIG.2210", 400, "Lack of grant_type"),
        ("unknown grant", "grant_type=password&client_id=ak-mobile".into(), "APIG.2209", 400, "The value of grant_type is not in enum List"),
        ("no client_id", "grant_type=client_credentials&client_secret=x".into(), "APIG.2211", 400, "Lack of client_id"),
        ("no client_secret", "grant_type=client_credentials&client_id=ak-mobile".into(), "APIG.2212", 400, "Lack of client_secret"),
        ("no refresh_token", "grant_type=refresh_token&client_id=ak-mobile&client_secret=mobile-secret".into(), "APIG.2213", 400, "Lack of refresh_token"),
        ("through_data over 300", format!("{MOBILE}&through_data={long}"), "APIG.2208", 400, "The length of through_data is out of range"),
        ("repeated parameter", format!("{MOBILE}&client_id=ak-web"), "APIG.2205", 400, "Auth parameter invalid"),
        ("undecodable parameter", "grant_type=client_credentials&client_id=%zz&client_secret=x".into(), "APIG.2205", 400, "Auth parameter invalid"),
        ("unknown app", "grant_type=client_credentials&client_id=ak-nobody&client_secret=x".into(), "APIG.1004", 401, "App not exist"),
        ("wrong secret", "grant_type=client_credentials&client_id=ak-mobile&client_secret=web-secret".into(), "APIG.2201", 400, "Appkey or SecretKey is invalid"),
        ("frozen app", "grant_type=client_credentials&client_id=ak-gone&client_secret=gone-secret".into(), "APIG.0502", 405, "The app has been frozen."),
        ("untrusted address", "grant_type=client_credentials&client_id=ak-office&client_secret=office-secret".into(), "APIG.0405", 403, "The app is not accessed from a trusted IP address."),
        ("garbage refresh token", "grant_type=refresh_token&client_id=ak-mobile&client_secret=mobile-secret&refresh_token=abc".into(), "APIG.2202", 400, "Refresh token is invalid"),
    ];
    for (what, body, code, status, message) in cases {
        let d = token_request(&snap, &env, &body);
        let (got, _, text) = answer(&d);
        assert_eq!(
            (got, text),
            row(code, status, message, &d.request_id),
            "{what}: {:#?}",
            d.trace
        );
    }
    // Before the body is read: the method, then the content type.
    let d = send(&snap, &env, "GET", "/oauth2/token", &[], "");
    assert_row(&d, "APIG.2206", 400, "Auth method invalid");
    let d = send(
        &snap,
        &env,
        "POST",
        "/oauth2/token",
        &[("content-type", "application/json")],
        "{}",
    );
    assert_row(&d, "APIG.2204", 400, "ContentType invalid");
    let d = send(&snap, &env, "POST", "/oauth2/token", &[], MOBILE);
    assert_row(&d, "APIG.2204", 400, "ContentType invalid");
    // Basic credentials and a secret in the body: two methods (RFC 6749 §2.3).
    let auth = basic("ak-mobile:mobile-secret");
    let headers = [("content-type", FORM), ("authorization", auth.as_str())];
    let d = send(&snap, &env, "POST", "/oauth2/token", &headers, MOBILE);
    assert_row(&d, "APIG.2205", 400, "Auth parameter invalid");
    let d = send(
        &snap,
        &env,
        "POST",
        "/oauth2/token",
        &headers,
        "grant_type=client_credentials&client_id=ak-web",
    );
    assert_row(&d, "APIG.2205", 400, "Auth parameter invalid");
    // … but the same client_id in both is tolerated.
    let d = send(
        &snap,
        &env,
        "POST",
        "/oauth2/token",
        &headers,
        "grant_type=client_credentials&client_id=ak-mobile",
    );
    assert_eq!(answer(&d).0, 200);
    let bad = basic("no-colon");
    let d = send(
        &snap,
        &env,
        "POST",
        "/oauth2/token",
        &[("content-type", FORM), ("authorization", bad.as_str())],
        "grant_type=client_credentials",
    );
    assert_row(&d, "APIG.2205", 400, "Auth parameter invalid");
}

#[test]
fn the_secret_never_reaches_the_trace() {
    let snap = policy();
    let env = VirtualEnv::new(NOW_MS);
    let d = token_request(
        &snap,
        &env,
        "grant_type=client_credentials&client_id=ak-mobile&client_secret=guessed-secret",
    );
    let text: Vec<String> = d.trace.iter().map(|s| s.to_string()).collect();
    let text = text.join("\n");
    assert!(
        text.contains("client_secret is not app mobile's secret"),
        "{text}"
    );
    assert!(
        !text.contains("guessed-secret") && !text.contains("mobile-secret"),
        "{text}"
    );
}

#[test]
fn refresh_tokens_are_bound_to_their_app_and_expire() {
    let snap = policy();
    let env = VirtualEnv::new(NOW_MS);
    let first = tokens(&token_request(&snap, &env, MOBILE));
    let refresh = first["refresh_token"].as_str().unwrap().to_string();
    let with = |client: &str, secret: &str, token: &str| {
        format!(
            "grant_type=refresh_token&client_id={client}&client_secret={secret}&refresh_token={token}"
        )
    };

    // An hour later the refresh token gives a new access token; the refresh window does not
    // slide.
    env.advance_ms(3_600_000);
    let d = token_request(&snap, &env, &with("ak-mobile", "mobile-secret", &refresh));
    let second = tokens(&d);
    let now = NOW_MS / 1000 + 3600;
    let access = claims(second["access_token"].as_str().unwrap());
    assert_eq!(
        (access["iat"].as_i64(), access["exp"].as_i64()),
        (Some(now), Some(now + 3600))
    );
    let renewed = claims(second["refresh_token"].as_str().unwrap());
    assert_eq!(renewed["exp"].as_i64(), Some(NOW_MS / 1000 + 86_400));
    assert!(d
        .trace
        .iter()
        .any(|s| s.detail.contains("refresh_token for app mobile")));

    // Another app presenting it: APIG.1003.
    let d = token_request(&snap, &env, &with("ak-web", "web-secret", &refresh));
    assert_row(&d, "APIG.1003", 401, "App not match refresh token");
    // An access token is not a refresh token.
    let d = token_request(
        &snap,
        &env,
        &with(
            "ak-mobile",
            "mobile-secret",
            first["access_token"].as_str().unwrap(),
        ),
    );
    assert_row(&d, "APIG.2202", 400, "Refresh token is invalid");
    // A refresh token of another provider (same key, other issuer).
    let d = send(
        &snap,
        &env,
        "POST",
        "/others/token",
        &[("content-type", FORM)],
        MOBILE,
    );
    let foreign = tokens(&d)["refresh_token"].as_str().unwrap().to_string();
    let d = token_request(&snap, &env, &with("ak-mobile", "mobile-secret", &foreign));
    assert_row(&d, "APIG.2202", 400, "Refresh token is invalid");
    // The right secret is still needed.
    let d = token_request(&snap, &env, &with("ak-mobile", "web-secret", &refresh));
    assert_row(&d, "APIG.2201", 400, "Appkey or SecretKey is invalid");

    // A day after the first grant, the refresh token (and the renewed one) has expired.
    env.set_now_ms(NOW_MS + 86_400_000 - 1000);
    let d = token_request(&snap, &env, &with("ak-mobile", "mobile-secret", &refresh));
    assert_eq!(answer(&d).0, 200, "one second before expiry");
    env.set_now_ms(NOW_MS + 86_400_000);
    let d = token_request(&snap, &env, &with("ak-mobile", "mobile-secret", &refresh));
    assert_row(&d, "APIG.1001", 401, "Refresh token is expired");
    let renewed = second["refresh_token"].as_str().unwrap();
    let d = token_request(&snap, &env, &with("ak-mobile", "mobile-secret", renewed));
    assert_row(&d, "APIG.1001", 401, "Refresh token is expired");
}

#[test]
fn an_access_token_identifies_its_app_on_routes() {
    let snap = policy();
    let env = VirtualEnv::new(NOW_MS);
    let json = tokens(&token_request(&snap, &env, MOBILE));
    let access = bearer(json["access_token"].as_str().unwrap());

    let d = get(&snap, &env, "/orders", Some(&access));
    assert_passed(&d);
    assert_eq!(d.app, Some(0));
    let shown: Vec<String> = d.trace.iter().map(|s| s.to_string()).collect();
    assert!(
        shown
            .iter()
            .any(|s| s.contains("access token of app mobile verified by tokens, 3600 s left")),
        "{shown:#?}"
    );
    // The token's claims are there for claim rules.
    let d = get(&snap, &env, "/claims", Some(&access));
    assert_passed(&d);

    // The app's own rate (3 at once) counts calls made with its tokens, on every route.
    let d = get(&snap, &env, "/orders", Some(&access));
    assert_passed(&d);
    let d = get(&snap, &env, "/orders", Some(&access));
    assert_row(
        &d,
        "APIG.0308",
        429,
        "The throttling threshold has been reached: policy app over ratelimit,limit:3,time:1 minute",
    );

    // An app not bound to the route.
    let web = tokens(&token_request(
        &snap,
        &env,
        "grant_type=client_credentials&client_id=ak-web&client_secret=web-secret",
    ));
    let web = bearer(web["access_token"].as_str().unwrap());
    let d = get(&snap, &env, "/orders", Some(&web));
    assert_row(
        &d,
        "APIG.0304",
        403,
        "The app is not authorized to access the API.",
    );
    let d = get(&snap, &env, "/open", Some(&web));
    assert_passed(&d);

    // A token of another provider of the same service is not this provider's.
    let d = get(&snap, &env, "/others", Some(&web));
    assert_row(&d, "APIG.2203", 400, "Access token is invalid");
}

#[test]
fn every_access_token_failure_is_its_row() {
    let snap = policy();
    let env = VirtualEnv::new(NOW_MS);
    let json = tokens(&token_request(&snap, &env, MOBILE));
    let access = json["access_token"].as_str().unwrap().to_string();
    let refresh = json["refresh_token"].as_str().unwrap().to_string();
    let sign = |claims: serde_json::Value, key: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    };
    let now = NOW_MS / 1000;
    let good = |sub: &str| serde_json::json!({"iss": "rulegate/shop/tokens", "sub": sub, "iat": now, "exp": now + 60, "jti": "x", "token_use": "access"});
    let cases: Vec<(&str, Option<String>, &str, u16, &str)> = vec![
        (
            "no Authorization",
            None,
            "APIG.2205",
            400,
            "Auth parameter invalid",
        ),
        (
            "not Bearer",
            Some(format!("Token {access}")),
            "APIG.2205",
            400,
            "Auth parameter invalid",
        ),
        (
            "empty Bearer",
            Some("Bearer ".into()),
            "APIG.2205",
            400,
            "Auth parameter invalid",
        ),
        (
            "not a JWT",
            Some(bearer("abc")),
            "APIG.2203",
            400,
            "Access token is invalid",
        ),
        (
            "a refresh token",
            Some(bearer(&refresh)),
            "APIG.2203",
            400,
            "Access token is invalid",
        ),
        (
            "another key",
            Some(bearer(&sign(good("ak-mobile"), "another-key"))),
            "APIG.2203",
            400,
            "Access token is invalid",
        ),
        (
            "an app that is gone",
            Some(bearer(&sign(good("ak-removed"), KEY))),
            "APIG.1004",
            401,
            "App not exist",
        ),
        (
            "a frozen app",
            Some(bearer(&sign(good("ak-gone"), KEY))),
            "APIG.0502",
            405,
            "The app has been frozen.",
        ),
        (
            "an untrusted address",
            Some(bearer(&sign(good("ak-office"), KEY))),
            "APIG.0405",
            403,
            "The app is not accessed from a trusted IP address.",
        ),
    ];
    for (what, authorization, code, status, message) in cases {
        let d = get(&snap, &env, "/orders", authorization.as_deref());
        let (got, _, text) = answer(&d);
        assert_eq!(
            (got, text),
            row(code, status, message, &d.request_id),
            "{what}: {:#?}",
            d.trace
        );
    }
    // Expiry on the virtual clock: valid for its last second, expired at exp.
    env.set_now_ms(NOW_MS + 3_599_000);
    let d = get(&snap, &env, "/open", Some(&bearer(&access)));
    assert_passed(&d);
    env.set_now_ms(NOW_MS + 3_600_000);
    let d = get(&snap, &env, "/open", Some(&bearer(&access)));
    assert_row(&d, "APIG.1002", 401, "Access token is expired");
}

#[test]
fn oauth2_is_refused_outside_huawei_services() {
    let text = r#"
service s {
    dialect tencent
    hosts "*"
    auth tokens oauth2 { signing key env "K" }
    route POST "/token" { issue tokens tokens }
}
"#;
    let loaded = rulegate::policy::parse_texts(vec![(
        "t.policy".into(),
        text.into(),
        std::path::PathBuf::new(),
    )]);
    let secrets: HashMap<String, String> = [("K".to_string(), "k".to_string())].into();
    let compiled = rulegate::compile::compile(&loaded, &support::Secrets(secrets));
    assert!(compiled.snapshot.is_none());
    let found: Vec<(&str, &str)> = compiled
        .diagnostics
        .iter()
        .map(|d| (d.code.id, d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [(
            "E0205",
            "an oauth2 provider needs a huawei service; `s` answers in tencent"
        )]
    );
}
