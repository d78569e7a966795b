//! Huawei SDK-HMAC-SHA256: the vendor signers' vectors pass (their canonical requests are
//! rebuilt byte for byte), and the documented APIG.0303 / APIG.0304 answers are exact.

mod support;

use http::{HeaderMap, HeaderName, HeaderValue};
use rulegate::auth::app_signature::canonical_request;
use rulegate::compile::Snapshot;
use rulegate::decide::{decide, render_response, Outcome, RequestHead, VirtualEnv};
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    key: String,
    secret: String,
    method: String,
    headers_in: BTreeMap<String, String>,
    body: String,
    canonical_request: String,
    authorization: String,
    request_uri_after_sign: String,
}

fn vectors() -> Vec<Vector> {
    serde_json::from_str(&support::vector_file("huawei.json")).unwrap()
}

fn snapshot(keys: &[(&str, &str)]) -> Snapshot {
    let mut all = keys.to_vec();
    all.push(("outsider", "outsider-secret"));
    let (apps, secrets) = support::apps(&all);
    let bound: Vec<String> = (0..keys.len()).map(|i| format!("a{i}")).collect();
    let outsider = format!("a{}", keys.len());
    let policy = format!(
        "service shop {{\n    dialect huawei\n    hosts \"*\"\n    auth signed app-signature {{}}\n{apps}    route ANY \"/{{p+}}\" {{\n        auth signed apps {}\n        mock 200 text \"ok\"\n    }}\n    route ANY \"/\" {{\n        auth signed apps {outsider}\n        mock 200 text \"ok\"\n    }}\n}}\n",
        bound.join(" ")
    );
    support::compile_text(policy, secrets)
}

fn sdk_millis(date: &str) -> i64 {
    jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", date)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_millisecond()
}

struct Req {
    method: String,
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    fn from(v: &Vector) -> Req {
        let mut headers = HeaderMap::new();
        for (k, val) in &v.headers_in {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(val).unwrap(),
            );
        }
        headers.insert(
            "authorization",
            HeaderValue::from_str(&v.authorization).unwrap(),
        );
        if !v.body.is_empty() {
            headers.insert("content-length", HeaderValue::from(v.body.len()));
        }
        Req {
            method: v.method.clone(),
            target: v.request_uri_after_sign.clone(),
            headers,
            body: v.body.clone().into_bytes(),
        }
    }

    fn head(&self) -> RequestHead<'_> {
        RequestHead {
            version: http::Version::HTTP_11,
            method: &self.method,
            target: &self.target,
            host: self.headers.get("host").and_then(|h| h.to_str().ok()),
            host_from: Default::default(),
            headers: &self.headers,
            peer: IpAddr::from([127, 0, 0, 1]),
            tls: true,
            client_cert: false,
            body: Some(&self.body),
        }
    }

    fn call(&self, snap: &Snapshot, now_ms: i64) -> (u16, String) {
        let d = decide(snap, &self.head(), &VirtualEnv::new(now_ms));
        assert!(!matches!(d.outcome, Outcome::NeedBody { .. }));
        let r = render_response(&d).expect("answered directly");
        (r.status, String::from_utf8(r.body.to_vec()).unwrap())
    }
}

fn huawei(code: &str, msg: &str) -> String {
    format!(
        r#"{{"error_code": "{code}", "error_msg": "{msg}", "request_id": "00000000000000000000000000000001"}}"#
    )
}

#[test]
fn every_huawei_vector_passes_and_its_canonical_request_is_rebuilt_exactly() {
    let vs = vectors();
    assert!(vs.len() >= 7);
    let mut keys: Vec<(&str, &str)> = vs
        .iter()
        .map(|v| (v.key.as_str(), v.secret.as_str()))
        .collect();
    keys.sort();
    keys.dedup();
    let snap = snapshot(&keys);
    for v in &vs {
        let req = Req::from(v);
        let now = sdk_millis(&v.headers_in["X-Sdk-Date"]);
        let signed: Vec<String> = v
            .authorization
            .split("SignedHeaders=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .split(';')
            .map(String::from)
            .collect();
        let payload = v.canonical_request.rsplit('\n').next().unwrap();
        assert_eq!(
            canonical_request(&req.head(), &signed, payload),
            v.canonical_request,
            "{}",
            v.name
        );
        assert_eq!(req.call(&snap, now), (200, "ok".to_string()), "{}", v.name);
    }
}

#[test]
fn documented_rejections_are_exact() {
    let vs = vectors();
    let v = vs.iter().find(|v| v.name.starts_with("HW-2")).unwrap();
    let snap = snapshot(&[(v.key.as_str(), v.secret.as_str())]);
    let now = sdk_millis(&v.headers_in["X-Sdk-Date"]);
    let base = Req::from(v);

    // 15 minutes and one second late
    assert_eq!(
        base.call(&snap, now + 901_000),
        (401, huawei("APIG.0303", "Incorrect app authentication information: signature expired, signature time:20240315T120000Z,server time:20240315T121501Z"))
    );
    assert_eq!(base.call(&snap, now - 899_000).0, 200);

    let mut unknown = Req::from(v);
    let auth = v
        .authorization
        .replace("Access=AppKeyExample0001", "Access=nobody");
    unknown
        .headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    assert_eq!(
        unknown.call(&snap, now),
        (
            401,
            huawei(
                "APIG.0303",
                "Incorrect app authentication information: app not found, appkey nobody"
            )
        )
    );

    let mut tampered = Req::from(v);
    tampered.body = br#"{"item":"widget","qty":30}"#.to_vec();
    tampered
        .headers
        .insert("content-length", HeaderValue::from(tampered.body.len()));
    let expected_canonical = "POST|/v2/items/|a=1&b=2|content-type:application/json|host:api.example.com:8443|x-project-id:proj-42|x-sdk-date:20240315T120000Z||content-type;host;x-project-id;x-sdk-date|";
    let (status, body) = tampered.call(&snap, now);
    assert_eq!(status, 401);
    let prefix = format!(
        r#"{{"error_code": "APIG.0303", "error_msg": "Incorrect app authentication information: verify signature fail, canonicalRequest:{expected_canonical}"#
    );
    assert!(body.starts_with(&prefix), "{body}");

    let mut no_auth = Req::from(v);
    no_auth.headers.remove("authorization");
    assert_eq!(
        no_auth.call(&snap, now),
        (
            401,
            huawei(
                "APIG.0303",
                "Incorrect app authentication information: authorization header not found"
            )
        )
    );

    // A valid signature from an app not bound to the route.
    let snap2 = snapshot(&[(v.key.as_str(), v.secret.as_str())]);
    let mut root = Req::from(v);
    root.target = "/".into();
    let (status, body) = root.call(&snap2, now);
    assert_eq!(status, 401, "the path is part of the signature: {body}");
}

/// A pair with a sign in it is not hex, though `from_str_radix` reads `+d` as `0d`: the
/// vendor compares the hex it computed, so a valid signature written this way is refused.
#[test]
fn a_signature_with_a_sign_for_a_zero_is_not_hex() {
    let zero_pair = |sig: &str| {
        (0..sig.len())
            .step_by(2)
            .find(|&i| sig.as_bytes()[i] == b'0')
    };
    let signature = |v: &Vector| {
        v.authorization
            .rsplit("Signature=")
            .next()
            .unwrap()
            .to_string()
    };
    let vs = vectors();
    let v = vs
        .iter()
        .filter(|v| v.name.starts_with("HW-"))
        .find(|v| zero_pair(&signature(v)).is_some())
        .expect("a vector whose signature has a pair that starts with 0");
    let snap = snapshot(&[(v.key.as_str(), v.secret.as_str())]);
    let now = sdk_millis(&v.headers_in["X-Sdk-Date"]);
    assert_eq!(Req::from(v).call(&snap, now).0, 200, "{}", v.name);

    let original = signature(v);
    let mut signed = original.clone();
    let at = zero_pair(&original).unwrap();
    signed.replace_range(at..at + 1, "+");
    let mut req = Req::from(v);
    let auth = v.authorization.replace(&original, &signed);
    req.headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    assert_eq!(
        req.call(&snap, now),
        (
            401,
            huawei(
                "APIG.0303",
                "Incorrect app authentication information: signature is not hex"
            )
        ),
        "{}",
        v.name
    );
}

#[test]
fn a_body_is_read_before_verifying_a_signed_payload() {
    let vs = vectors();
    let v = vs.iter().find(|v| v.name.starts_with("HW-2")).unwrap();
    let snap = snapshot(&[(v.key.as_str(), v.secret.as_str())]);
    let req = Req::from(v);
    let mut head = req.head();
    head.body = None;
    let d = decide(
        &snap,
        &head,
        &VirtualEnv::new(sdk_millis(&v.headers_in["X-Sdk-Date"])),
    );
    assert!(
        matches!(d.outcome, Outcome::NeedBody { .. }),
        "{:?}",
        d.outcome
    );
}

#[test]
fn an_app_not_bound_to_the_route_gets_apig_0304() {
    // Sign a request to "/" with the vector's key; "/" is bound only to `outsider`.
    let vs = vectors();
    let v = vs.iter().find(|v| v.name.starts_with("HW-1")).unwrap();
    let snap = snapshot(&[(v.key.as_str(), v.secret.as_str())]);
    let mut req = Req::from(v);
    req.target = "/".into();
    let date = &v.headers_in["X-Sdk-Date"];
    let names = vec!["host".to_string(), "x-sdk-date".to_string()];
    let canonical = canonical_request(
        &req.head(),
        &names,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    use hmac::Mac;
    use sha2::Digest;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let to_sign = format!(
        "SDK-HMAC-SHA256\n{date}\n{}",
        hex(&sha2::Sha256::digest(canonical.as_bytes()))
    );
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(v.secret.as_bytes())
            .unwrap();
    mac.update(to_sign.as_bytes());
    let auth = format!(
        "SDK-HMAC-SHA256 Access={}, SignedHeaders=host;x-sdk-date, Signature={}",
        v.key,
        hex(&mac.finalize().into_bytes())
    );
    req.headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    assert_eq!(
        req.call(&snap, sdk_millis(date)),
        (
            403,
            huawei("APIG.0304", "The app is not authorized to access the API.")
        )
    );
}
