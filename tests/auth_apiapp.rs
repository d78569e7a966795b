//! Tencent app authentication (`auth P apiapp`): the hand-derived vectors pass, every
//! rejection is the documented Tencent row byte for byte (status, body and headers: the JSON
//! Content-Type and the X-Api-RequestId request id), an attacker's variations of a signed
//! request are refused, and a non-Tencent service cannot have the scheme.

mod support;

use rulegate::compile::Snapshot;

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    api_app_key: String,
    api_app_secret: String,
    method: String,
    target: String,
    stages: Vec<String>,
    headers: Vec<(String, String)>,
    body: String,
    signing_string: String,
    signature: String,
    authorization: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(&support::vector_file("tencent_apiapp.json")).unwrap()
}

const KEY: &str = "APID4I7Ic3DPy83aaaaaaaaan2fwtwe1ywl64fof";
const SECRET: &str = "42A6S7ZUpK2UL6Faaaaaaaa1rz2qe22RU6h4mT5";
const DATE: &str = "Mon, 19 Mar 2018 12:08:40 GMT";

/// A Tencent service with the vectors' app (`a0`), another app (`a1`), routes bound to
/// each and one open to every app; `stages` selected from the path when given.
fn snapshot(stages: &[String]) -> Snapshot {
    let (apps, secrets) = support::apps(&[(KEY, SECRET), ("APID-other", "other-secret")]);
    let stages = match stages.is_empty() {
        true => String::new(),
        false => format!("    stages {} from path\n", stages.join(" ")),
    };
    let policy = format!(
        "service partners {{\n    dialect tencent\n    hosts \"*\"\n{stages}    auth signed apiapp {{}}\n{apps}    route GET POST \"/app\" {{\n        auth signed apps a0\n        mock 200 text \"ok\"\n    }}\n    route GET \"/users\" {{\n        auth signed\n        mock 200 text \"ok\"\n    }}\n    route GET \"/other\" {{\n        auth signed apps a1\n        mock 200 text \"ok\"\n    }}\n}}\n"
    );
    support::compile_text(policy, secrets)
}

/// [`DATE`] in ms since the epoch: the vectors' clock.
const NOW: i64 = 1_521_461_320_000;

#[test]
fn now_is_the_vectors_date() {
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(NOW as u64);
    assert_eq!(httpdate::fmt_http_date(now), DATE);
}

/// A vector's headers and its Authorization, as sent.
fn sent(v: &Vector) -> Vec<(&str, &str)> {
    let mut headers: Vec<(&str, &str)> = v
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    headers.push(("Authorization", &v.authorization));
    headers
}

/// (status, headers, body) of a request answered directly.
fn call(
    snap: &Snapshot,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
    now_ms: i64,
) -> (u16, Vec<(String, String)>, String) {
    let r = support::answered(snap, method, target, headers, Some(body.as_bytes()), now_ms);
    let mut headers = r.headers.clone();
    // the request id is the env's; its presence and name are what the row documents
    for (k, v) in &mut headers {
        if k == "X-Api-RequestId" {
            assert!(!v.is_empty());
            *v = "<id>".into();
        }
    }
    (
        r.status,
        headers,
        String::from_utf8(r.body.to_vec()).unwrap(),
    )
}

/// A Tencent rejection: the status, `{"message":"…"}` and its two headers.
fn rejected(status: u16, message: &str) -> (u16, Vec<(String, String)>, String) {
    (
        status,
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Api-RequestId".into(), "<id>".into()),
        ],
        format!(r#"{{"message":"{message}"}}"#),
    )
}

fn passed(r: (u16, Vec<(String, String)>, String)) -> (u16, String) {
    (r.0, r.2)
}

#[test]
fn every_hand_derived_vector_passes() {
    let vs = vectors();
    assert!(vs.len() >= 4);
    for v in &vs {
        assert_eq!(
            (v.api_app_key.as_str(), v.api_app_secret.as_str()),
            (KEY, SECRET)
        );
        let path = v.target.split('?').next().unwrap();
        let expected = format!(
            r#"hmac id="{KEY}", algorithm="hmac-sha1", headers="x-date", signature="{}""#,
            v.signature
        );
        assert_eq!(v.authorization, expected, "{}", v.name);
        assert!(v
            .signing_string
            .starts_with(&format!("x-date: {DATE}\n{}\n", v.method)));
        let snap = snapshot(&v.stages);
        let headers = sent(v);
        assert_eq!(
            passed(call(&snap, &v.method, &v.target, &headers, &v.body, NOW)),
            (200, "ok".into()),
            "{} ({path})",
            v.name
        );
    }
}

#[test]
fn the_signing_string_and_signature_are_the_documented_procedures() {
    use rulegate::auth::apiapp::{self, Coding};
    for v in vectors() {
        let get = |name: &str| {
            v.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map_or("", |(_, v)| v.as_str())
        };
        let (path, query) = match v.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (v.target.as_str(), None),
        };
        let form = apiapp::is_form(get("content-type")).then_some(v.body.as_bytes());
        let md5 = match get("content-md5") {
            "" if form.is_none() && !v.body.is_empty() => apiapp::content_md5(v.body.as_bytes()),
            sent => sent.to_string(),
        };
        // the Go demo's decoded form, or the Python demo's as written
        let strings: Vec<String> = [Coding::Decoded, Coding::AsSent]
            .into_iter()
            .map(|coding| {
                let pp = apiapp::path_and_parameters(path, query, form, coding);
                apiapp::signing_string(
                    get("x-date"),
                    &v.method,
                    get("accept"),
                    get("content-type"),
                    &md5,
                    &pp,
                )
            })
            .collect();
        assert!(
            strings.contains(&v.signing_string),
            "{}: {strings:?}",
            v.name
        );
        let string = v.signing_string.clone();
        assert_eq!(
            apiapp::authorization(&v.api_app_key, v.api_app_secret.as_bytes(), &string),
            v.authorization,
            "{}",
            v.name
        );
    }
}

/// The TA-1 request (the demo's form POST) with one thing changed, and the Tencent row it
/// must get.
#[test]
fn every_rejection_is_the_tencent_row_byte_for_byte() {
    let vs = vectors();
    let v = &vs[0];
    let snap = snapshot(&[]);
    let now = NOW;
    let auth = v.authorization.as_str();
    let sig = v.signature.as_str();
    type Headers = Vec<(&'static str, String)>;
    let base = |authorization: &str| -> Headers {
        vec![
            ("X-Date", DATE.to_string()),
            ("Accept", "application/json".into()),
            ("Content-Type", "application/x-www-form-urlencoded".into()),
            ("Authorization", authorization.to_string()),
        ]
    };
    let without =
        |name: &str| -> Headers { base(auth).into_iter().filter(|(k, _)| *k != name).collect() };
    let plus = |name: &'static str, value: &str| -> Headers {
        let mut h = base(auth);
        h.push((name, value.to_string()));
        h
    };
    let swap = |from: &str, to: &str| base(&auth.replace(from, to));
    let body = v.body.as_str();

    let cases: Vec<(&str, Headers, &str, &str, i64, u16, &str)> = vec![
        ("no Authorization", without("Authorization"), "/app", body, now, 401,
            "HMAC signature cannot be verified, a validate authorization header is required"),
        ("not hmac", base("Bearer abc"), "/app", body, now, 401, "HMAC authorization format error."),
        ("no signature", base(&auth[..auth.find(", signature").unwrap()]), "/app", body, now, 401,
            "HMAC id or signature missing."),
        ("no headers field", swap(r#"headers="x-date", "#, ""), "/app", body, now, 401,
            "HMAC authorization headers is invalidate."),
        ("headers other than x-date", swap(r#"headers="x-date""#, r#"headers="x-date source""#), "/app", body, now, 401,
            "HMAC authorization headers is invalidate."),
        ("unsupported algorithm", swap("hmac-sha1", "hmac-sha256"), "/app", body, now, 401,
            "HMAC algorithm hmac-sha256 not supported."),
        ("no algorithm field", swap(r#"algorithm="hmac-sha1", "#, ""), "/app", body, now, 401,
            "HMAC authorization headers is invalidate."),
        ("repeated Accept", plus("Accept", "text/plain"), "/app", body, now, 401,
            "HMAC do not support multiple HTTP header."),
        ("repeated Authorization (the same one twice)", plus("Authorization", auth), "/app", body, now, 401,
            "HMAC do not support multiple HTTP header."),
        ("repeated Authorization (another app's after it)", plus("Authorization", r#"hmac id="APID-other", algorithm="hmac-sha1", headers="x-date", signature="AAAA""#), "/app", body, now, 401,
            "HMAC do not support multiple HTTP header."),
        ("repeated X-Date", plus("X-Date", "Mon, 19 Mar 2018 12:30:00 GMT"), "/app", body, now, 401,
            "HMAC do not support multiple HTTP header."),
        ("repeated Content-Type", plus("Content-Type", "application/json"), "/app", body, now, 401,
            "HMAC do not support multiple HTTP header."),
        ("repeated Content-MD5", {
            let mut h = plus("Content-MD5", "ZDQxZDhjZDk4ZjAwYjIwNGU5ODAwOTk4ZWNmODQyN2U=");
            h.push(("Content-MD5", "ZDQxZDhjZDk4ZjAwYjIwNGU5ODAwOTk4ZWNmODQyN2U=".into()));
            h
        }, "/app", body, now, 401, "HMAC do not support multiple HTTP header."),
        ("no X-Date (a Date does not count)", {
            let mut h = without("X-Date");
            h.push(("Date", DATE.into()));
            h
        }, "/app", body, now, 401,
            "HMAC signature cannot be verified, a valid x-date header is required for HMAC Authentication."),
        ("X-Date not a date", {
            let mut h = without("X-Date");
            h.push(("X-Date", "yesterday".into()));
            h
        }, "/app", body, now, 401,
            "HMAC signature cannot be verified, a valid x-date header is required for HMAC Authentication."),
        ("X-Date 900.001 s old", base(auth), "/app", body, now + 900_001, 401,
            "HMAC signature cannot be verified, the x-date header is out of date for HMAC Authentication."),
        ("X-Date 900.001 s ahead", base(auth), "/app", body, now - 900_001, 401,
            "HMAC signature cannot be verified, the x-date header is out of date for HMAC Authentication."),
        ("unknown ApiAppKey", swap(KEY, "APID-nobody"), "/app", body, now, 403, "Found no validate apiapp."),
        ("form field changed after signing", base(auth), "/app", "arg1=a&arg2=c", now, 401, "HMAC signature does not match."),
        ("form field added after signing", base(auth), "/app", "arg2=b&arg1=a&admin=1", now, 401, "HMAC signature does not match."),
        ("form field repeated after signing", base(auth), "/app", "arg2=b&arg1=a&arg1=z", now, 401, "HMAC signature does not match."),
        ("tampered query", base(auth), "/app?arg3=x", body, now, 401, "HMAC signature does not match."),
        ("another Accept", {
            let mut h = without("Accept");
            h.push(("Accept", "text/plain".into()));
            h
        }, "/app", body, now, 401, "HMAC signature does not match."),
        ("Content-MD5 sent but not signed", plus("Content-MD5", "ZDQxZDhjZDk4ZjAwYjIwNGU5ODAwOTk4ZWNmODQyN2U="), "/app", body, now, 401,
            "HMAC signature does not match."),
        ("signature not base64", swap(sig, "***"), "/app", body, now, 401, "HMAC signature does not match."),
        ("tampered signature", swap(sig, &sig.replace('g', "h")), "/app", body, now, 401,
            "HMAC signature does not match."),
    ];
    for (what, headers, target, body, at, status, message) in &cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            call(&snap, "POST", target, &h, body, *at),
            rejected(*status, message),
            "{what}"
        );
    }
    let signed = base(auth);
    let h: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The same signature from an app the route does not bind.
    let (apps, secrets) = support::apps(&[(KEY, SECRET)]);
    let other = support::compile_text(
        format!("service partners {{\n    dialect tencent\n    hosts \"*\"\n    auth signed apiapp {{}}\n{apps}    app b {{\n        key \"APID-b\"\n        secret env \"S0\"\n    }}\n    route POST \"/app\" {{\n        auth signed apps b\n        mock 200 text \"ok\"\n    }}\n}}\n"),
        secrets,
    );
    assert_eq!(
        call(&other, "POST", "/app", &h, body, now),
        rejected(403, "Found no validate apiapp."),
        "app not bound to the route"
    );
    // Within the 900 s window on either side, the request passes, the edge included.
    for at in [now - 900_000, now + 900_000] {
        assert_eq!(
            passed(call(&snap, "POST", "/app", &h, body, at)),
            (200, "ok".into())
        );
    }
}

#[test]
fn a_sent_content_md5_is_signed_and_must_be_the_bodys() {
    let vs = vectors();
    let v = vs.iter().find(|v| v.name.starts_with("TA-4")).unwrap();
    let snap = snapshot(&[]);
    let now = NOW;
    let headers = sent(v);
    assert_eq!(
        passed(call(&snap, "POST", "/app", &headers, &v.body, now)),
        (200, "ok".into())
    );
    // Signed correctly, but the body is not the one the Content-MD5 names.
    assert_eq!(
        call(
            &snap,
            "POST",
            "/app",
            &headers,
            r#"{"arg1": "a", "arg2": "z"}"#,
            now
        ),
        rejected(401, "HMAC signature does not match.")
    );
    // The same request signed over an RFC 1864 Content-MD5 (base64 of the raw digest) passes.
    use base64::Engine as _;
    use md5::Digest as _;
    let rfc1864 =
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(v.body.as_bytes()));
    let string = v.signing_string.replace(
        &rulegate::auth::apiapp::content_md5(v.body.as_bytes()),
        &rfc1864,
    );
    let auth = rulegate::auth::apiapp::authorization(KEY, SECRET.as_bytes(), &string);
    let headers = [
        ("X-Date", DATE),
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
        ("Content-MD5", rfc1864.as_str()),
        ("Authorization", auth.as_str()),
    ];
    assert_eq!(
        passed(call(&snap, "POST", "/app", &headers, &v.body, now)),
        (200, "ok".into())
    );
}

#[test]
fn a_route_binding_every_app_takes_any_app_and_the_stage_prefix_is_not_signed() {
    let vs = vectors();
    let v = vs.iter().find(|v| v.name.starts_with("TA-3")).unwrap();
    let snap = snapshot(&v.stages);
    let now = NOW;
    let headers = [
        ("X-Date", DATE),
        ("Authorization", v.authorization.as_str()),
    ];
    // `/test/users`: the signature covers `/users`, and `auth apps` binds every app.
    assert_eq!(
        passed(call(&snap, "GET", &v.target, &headers, "", now)),
        (200, "ok".into())
    );
    // the same path in the release stage signs the same string
    let release = v.target.replacen("/test/", "/release/", 1);
    assert_eq!(
        passed(call(&snap, "GET", &release, &headers, "", now)),
        (200, "ok".into())
    );
    // the query's pairs sorted another way are the same string; another value is not
    let reordered = v.target.replacen("b=2&a=x%20y", "a=x+y&b=2", 1);
    assert_eq!(
        passed(call(&snap, "GET", &reordered, &headers, "", now)),
        (200, "ok".into())
    );
    let changed = v.target.replacen("b=2", "b=3", 1);
    assert_eq!(
        call(&snap, "GET", &changed, &headers, "", now),
        rejected(401, "HMAC signature does not match.")
    );
}

/// `(key, secret)`'s Authorization over a request, signed with this Content-MD5 line and
/// PathAndParameters (what a client, honest or not, chose to sign).
fn sign(
    (key, secret): (&str, &str),
    method: &str,
    headers: &[(&str, &str)],
    md5: &str,
    path_and_parameters: &str,
) -> String {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| *v)
    };
    let text = rulegate::auth::apiapp::signing_string(
        get("x-date"),
        method,
        get("accept"),
        get("content-type"),
        md5,
        path_and_parameters,
    );
    rulegate::auth::apiapp::authorization(key, secret.as_bytes(), &text)
}

/// What an attacker holding one signed request (or one app's secret) tries, and what it gets.
#[test]
fn an_attacker_cannot_move_a_signature_onto_another_request() {
    let snap = snapshot(&[]);
    let now = NOW;
    let app = (KEY, SECRET);
    let other = ("APID-other", "other-secret");
    let json = [
        ("X-Date", DATE),
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
    ];
    let with = |headers: &[(&'static str, &'static str)], auth: &str| {
        let mut h: Vec<(&str, String)> = headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
        h.push(("Authorization", auth.to_string()));
        h
    };
    let send = |method: &str, target: &str, headers: &[(&str, String)], body: &str| {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        call(&snap, method, target, &h, body, now)
    };
    let mismatch = rejected(401, "HMAC signature does not match.");
    let no_apiapp = rejected(403, "Found no validate apiapp.");
    let ok = (200, "ok".to_string());

    // A JSON body signed through the demos' Content-MD5 (not sent), then swapped.
    let body = r#"{"amount": 10}"#;
    let md5 = rulegate::auth::apiapp::content_md5(body.as_bytes());
    let h = with(&json, &sign(app, "POST", &json, &md5, "/app"));
    assert_eq!(passed(send("POST", "/app", &h, body)), ok);
    assert_eq!(send("POST", "/app", &h, r#"{"amount": 10000}"#), mismatch);
    // ... and with the Content-MD5 sent: a Content-MD5 that is not the body's is refused even
    // though the signature covers it.
    let mut sent = h.clone();
    sent.push(("Content-MD5", md5.clone()));
    assert_eq!(passed(send("POST", "/app", &sent, body)), ok);
    assert_eq!(
        send("POST", "/app", &sent, r#"{"amount": 10000}"#),
        mismatch
    );
    let forged = rulegate::auth::apiapp::content_md5(b"something else");
    let mut lying = with(&json, &sign(app, "POST", &json, &forged, "/app"));
    lying.push(("Content-MD5", forged));
    assert_eq!(send("POST", "/app", &lying, body), mismatch);

    // A body is never outside the signature: one signed with an empty Content-MD5 line (no
    // header sent) is refused, and a body attached to a signed GET does not match.
    let h = with(&json, &sign(app, "POST", &json, "", "/app"));
    assert_eq!(send("POST", "/app", &h, body), mismatch);
    let get = [("X-Date", DATE), ("Accept", "application/json")];
    let h = with(&get, &sign(app, "GET", &get, "", "/users?a=1"));
    assert_eq!(passed(send("GET", "/users?a=1", &h, "")), ok);
    assert_eq!(send("GET", "/users?a=1", &h, body), mismatch);

    // The query: any order of the same pairs, and any encoding of the same values, is the same
    // request; another value, another pair, a pair dropped or two pairs merged into one
    // (`%26`) are not.
    let h = with(&get, &sign(app, "GET", &get, "", "/users?a=x y&b=2"));
    for target in [
        "/users?a=x%20y&b=2",
        "/users?b=2&a=x+y",
        "/users?b=%32&a=x%20y",
    ] {
        assert_eq!(passed(send("GET", target, &h, "")), ok, "{target}");
    }
    for target in [
        "/users?a=x%20y&b=3",
        "/users?a=x%20y&b=2&c=1",
        "/users?a=x%20y&b=2&b=2",
        "/users?a=x%20y",
        "/users?a=x%20y&b=2&admin",
    ] {
        assert_eq!(send("GET", target, &h, ""), mismatch, "{target}");
    }
    let h = with(&get, &sign(app, "GET", &get, "", "/users?a=x&b=y"));
    assert_eq!(passed(send("GET", "/users?b=y&a=x", &h, "")), ok);
    assert_eq!(send("GET", "/users?a=x%26b=y", &h, ""), mismatch);
    assert_eq!(send("GET", "/users?a=x%26b%3Dy", &h, ""), mismatch);
    // The Python demo's as-written form is not decoded: `%2F` signed is not `/` signed.
    let h = with(&get, &sign(app, "GET", &get, "", "/users?q=a%2Fb"));
    assert_eq!(passed(send("GET", "/users?q=a%2Fb", &h, "")), ok);
    assert_eq!(send("GET", "/users?q=a%2Fc", &h, ""), mismatch);

    // Another method over the same string.
    let h = with(&get, &sign(app, "GET", &get, "", "/app"));
    assert_eq!(send("POST", "/app", &h, ""), mismatch);

    // A key bound to another route: a0 is bound to /app, a1 to /other. Correctly signed, each
    // gets Tencent's app-auth 403 on the other's route, and passes on its own.
    let h = with(&get, &sign(other, "GET", &get, "", "/other"));
    assert_eq!(passed(send("GET", "/other", &h, "")), ok);
    let h = with(&get, &sign(other, "GET", &get, "", "/app"));
    assert_eq!(send("GET", "/app", &h, ""), no_apiapp);
    let h = with(&get, &sign(app, "GET", &get, "", "/other"));
    assert_eq!(send("GET", "/other", &h, ""), no_apiapp);
    // One app's key with another's secret.
    let h = with(&get, &sign((KEY, other.1), "GET", &get, "", "/app"));
    assert_eq!(send("GET", "/app", &h, ""), mismatch);
}

#[test]
fn only_a_tencent_service_may_have_an_apiapp_provider() {
    for dialect in ["huawei", "jdcloud"] {
        let policy = format!(
            "service s {{\n    dialect {dialect}\n    hosts \"*\"\n    auth signed apiapp {{}}\n    route GET \"/r\" {{\n        auth signed\n        mock 200 text \"ok\"\n    }}\n}}\n"
        );
        let loaded =
            rulegate::policy::parse_texts(vec![("t.policy".into(), policy, Default::default())]);
        let compiled = rulegate::compile::compile(&loaded, &support::Secrets(Default::default()));
        assert!(compiled.snapshot.is_none(), "{dialect}");
        let messages: Vec<String> = compiled
            .diagnostics
            .iter()
            .map(|d| d.message.clone())
            .collect();
        assert!(
            messages.iter().any(|m| m
                == &format!(
                    "an apiapp provider needs a tencent service; `s` answers in {dialect}"
                )),
            "{dialect}: {messages:?}"
        );
    }
}
