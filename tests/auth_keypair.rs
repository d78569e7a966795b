//! Tencent key-pair authentication: the signing vectors pass, and every documented rejection
//! is the Tencent row byte for byte.

mod support;

use rulegate::compile::Snapshot;

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    secret_id: String,
    secret_key: String,
    algorithm: String,
    headers: Vec<(String, String)>,
    authorization: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(&support::vector_file("tencent.json")).unwrap()
}

/// A Tencent service with one app per vector key, a bound route and an unbound one.
fn snapshot(keys: &[(&str, &str)]) -> Snapshot {
    let mut all = keys.to_vec();
    all.push(("AKID-other", "other-secret"));
    let (apps, secrets) = support::apps(&all);
    let bound: Vec<String> = (0..keys.len()).map(|i| format!("a{i}")).collect();
    let other = format!("a{}", keys.len());
    let policy = format!(
        "service partners {{\n    dialect tencent\n    hosts \"*\"\n    auth keys keypair {{\n        algorithms hmac-sha1 hmac-sha256 hmac-sha384 hmac-sha512\n    }}\n{apps}    route GET \"/r\" {{\n        auth keys apps {}\n        mock 200 text \"ok\"\n    }}\n    route GET \"/only-other\" {{\n        auth keys apps {other}\n        mock 200 text \"ok\"\n    }}\n}}\n",
        bound.join(" ")
    );
    support::compile_text(policy, secrets)
}

fn millis(http_date: &str) -> i64 {
    httpdate::parse_http_date(http_date)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// (status, body) of a GET with these headers at this time.
fn call(snap: &Snapshot, path: &str, headers: &[(&str, &str)], now_ms: i64) -> (u16, String) {
    let r = support::answered(snap, "GET", path, headers, None, now_ms);
    (r.status, String::from_utf8(r.body.to_vec()).unwrap())
}

fn borrow<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    h.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn message(body: &str) -> String {
    format!(r#"{{"message":"{body}"}}"#)
}

#[test]
fn every_tencent_vector_passes() {
    let vs = vectors();
    assert!(vs.len() >= 4);
    let mut keys: Vec<(&str, &str)> = vs
        .iter()
        .map(|v| (v.secret_id.as_str(), v.secret_key.as_str()))
        .collect();
    keys.sort();
    keys.dedup(); // TC-1 and TC-1b sign with the same key pair
    let snap = snapshot(&keys);
    for v in &vs {
        let date = v
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-date") || k.eq_ignore_ascii_case("date"));
        let now = millis(&date.unwrap().1);
        let mut headers: Vec<(&str, &str)> = v
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.push(("Authorization", &v.authorization));
        assert_eq!(
            call(&snap, "/r", &headers, now),
            (200, "ok".into()),
            "{} ({})",
            v.name,
            v.algorithm
        );
    }
}

/// The TC-1 request with one thing changed, and the Tencent row it must get.
#[test]
fn every_documented_rejection_is_the_tencent_row() {
    let vs = vectors();
    let v = &vs[0];
    let snap = snapshot(&[(v.secret_id.as_str(), v.secret_key.as_str())]);
    let now = millis("Mon, 19 Mar 2018 12:08:40 GMT");
    type Headers = Vec<(&'static str, String)>;
    let date = ("X-Date", "Mon, 19 Mar 2018 12:08:40 GMT".to_string());
    let source = ("Source", "xxxxxx".to_string());
    let auth = v.authorization.as_str();
    let with = |authorization: &str| -> Headers {
        vec![
            date.clone(),
            source.clone(),
            ("Authorization", authorization.to_string()),
        ]
    };
    let swap = |from: &str, to: &str| auth.replace(from, to);

    let cases: Vec<(&str, Headers, i64, &str)> = vec![
        ("no Authorization", vec![date.clone(), source.clone()], now,
            "HMAC signature cannot be verified, a validate authorization header is required"),
        ("not hmac", with("Bearer abc"), now, "HMAC authorization format error."),
        ("no signature", with(&auth[..auth.find(", signature").unwrap()]), now, "HMAC id or signature missing."),
        ("no headers field", with(&swap(r#"headers="x-date source", "#, "")), now, "HMAC authorization headers is invalidate."),
        ("unsupported algorithm", with(&swap("hmac-sha1", "hmac-md5")), now, "HMAC algorithm hmac-md5 not supported."),
        ("no date header", vec![source.clone(), ("Authorization", swap("x-date source", "source"))], now,
            "HMAC signature cannot be verified, a valid date or x-date header is required."),
        ("x-date not a date", vec![("X-Date", "yesterday".into()), source.clone(), ("Authorization", auth.into())], now,
            "HMAC signature cannot be verified, a valid x-date header is required for HMAC Authentication."),
        ("x-date stale", with(auth), now + 901_000,
            "HMAC signature cannot be verified, the x-date header is out of date for HMAC Authentication."),
        ("listed header absent", with(&swap("x-date source", "x-date source nonce")), now,
            "HMAC signature cannot be verified, a valid nonce header is required."),
        ("repeated header", vec![date.clone(), source.clone(), ("Source", "again".into()), ("Authorization", auth.into())], now,
            "HMAC do not support multiple HTTP header."),
        ("unknown key", with(&swap(&v.secret_id, "AKID-nobody")), now, "HMAC signature cannot be verified."),
        ("tampered value", vec![date.clone(), ("Source", "yyyyyy".into()), ("Authorization", auth.into())], now, "HMAC signature does not match."),
        ("tampered signature", with(&swap("M+oOCMJyaH8QvRYDqyL6ObdUaLg=", "M+oOCMJyaH8QvRYDqyL6ObdUaLh=")), now,
            "HMAC signature does not match."),
    ];
    for (what, headers, at, expected) in &cases {
        assert_eq!(
            call(&snap, "/r", &borrow(headers), *at),
            (401, message(expected)),
            "{what}"
        );
    }
    // A valid signature from an app that is not bound to the route.
    assert_eq!(
        call(&snap, "/only-other", &borrow(&with(auth)), now),
        (401, message("HMAC apikey is invalid for API.")),
        "key not bound to the API"
    );
    // Within the 900 s window on either side, the same request passes.
    assert_eq!(
        call(&snap, "/r", &borrow(&with(auth)), now - 899_000).0,
        200
    );
    assert_eq!(
        call(&snap, "/r", &borrow(&with(auth)), now + 899_000).0,
        200
    );
}

#[test]
fn header_names_are_matched_as_listed_or_lowercased() {
    let vs = vectors();
    let v = &vs[0];
    let snap = snapshot(&[(v.secret_id.as_str(), v.secret_key.as_str())]);
    let now = millis("Mon, 19 Mar 2018 12:08:40 GMT");
    // The signature was computed over lower-case names; listing them capitalised still verifies.
    let auth = v.authorization.replace("x-date source", "X-Date Source");
    let headers = [
        ("X-Date", "Mon, 19 Mar 2018 12:08:40 GMT"),
        ("Source", "xxxxxx"),
        ("Authorization", auth.as_str()),
    ];
    assert_eq!(call(&snap, "/r", &headers, now), (200, "ok".into()));
}

/// A Tencent service whose provider is Kong's hmac-auth (`variant kong`).
fn kong_snapshot(key: &str, secret: &str) -> Snapshot {
    let (apps, secrets) = support::apps(&[(key, secret)]);
    let policy = format!(
        "service partners {{\n    dialect tencent\n    hosts \"*\"\n    auth keys keypair {{\n        variant kong\n    }}\n{apps}    route GET \"/r\" {{\n        auth keys\n        mock 200 text \"ok\"\n    }}\n}}\n"
    );
    support::compile_text(policy, secrets)
}

/// `hmac username=…` over `lines` joined by `\n`, HMAC-SHA256 under `secret`.
fn kong_authorization(key: &str, secret: &str, names: &str, lines: &[&str]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(secret.as_bytes())
            .unwrap();
    mac.update(lines.join("\n").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!(
        r#"hmac username="{key}", algorithm="hmac-sha256", headers="{names}", signature="{signature}""#
    )
}

#[test]
fn kong_accepts_the_tencent_vectors_with_username() {
    // auth-schemes.md §2.4: `id=` → `username=` turns each vector into a Kong request.
    for v in vectors() {
        let snap = kong_snapshot(&v.secret_id, &v.secret_key);
        let date = v
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-date") || k.eq_ignore_ascii_case("date"))
            .unwrap();
        let now = millis(&date.1);
        let auth = v.authorization.replacen("id=", "username=", 1);
        let mut headers: Vec<(&str, &str)> = v
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.push(("Authorization", &auth));
        assert_eq!(
            call(&snap, "/r", &headers, now),
            (200, "ok".into()),
            "{}",
            v.name
        );
    }
}

#[test]
fn kong_signs_pseudo_headers_and_absent_headers_where_tencent_refuses() {
    let (key, secret) = ("AKID-kong", "kong-secret");
    let snap = kong_snapshot(key, secret);
    let date = "Mon, 19 Mar 2018 12:08:40 GMT";
    let now = millis(date);
    // request-line, @request-target (path with query), and `nonce`, which the request lacks
    let auth = kong_authorization(
        key,
        secret,
        "date request-line @request-target nonce",
        &[
            &format!("date: {date}"),
            "GET /r?a=1 HTTP/1.1",
            "@request-target: get /r?a=1",
            "nonce:",
        ],
    );
    let headers = [("Date", date), ("Authorization", auth.as_str())];
    assert_eq!(call(&snap, "/r?a=1", &headers, now), (200, "ok".into()));
    // another query string changes both pseudo-headers
    assert_eq!(
        call(&snap, "/r?a=2", &headers, now),
        (401, message("HMAC signature does not match."))
    );
    // Kong holds Date to the clock skew (Tencent checks only X-Date)
    assert_eq!(
        call(&snap, "/r?a=1", &headers, now + 301_000),
        (
            401,
            message(
                "HMAC signature cannot be verified, a valid date or x-date header is required."
            )
        )
    );
    // the same absent header under the Tencent scheme is refused by name
    let tencent = snapshot(&[(key, secret)]);
    let auth = kong_authorization(
        key,
        secret,
        "date nonce",
        &[&format!("date: {date}"), "nonce:"],
    )
    .replacen("username=", "id=", 1);
    let headers = [("Date", date), ("Authorization", auth.as_str())];
    assert_eq!(
        call(&tencent, "/r", &headers, now),
        (
            401,
            message("HMAC signature cannot be verified, a valid nonce header is required.")
        )
    );
}
