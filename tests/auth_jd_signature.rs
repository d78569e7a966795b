//! JD Cloud JDCLOUD2-HMAC-SHA256: the vendor signer's vectors pass, a replayed nonce is refused,
//! and the answers are JD's UNAUTHENTICATED / HTTP_FORBIDDEN rows byte for byte.

mod support;

use http::{HeaderMap, HeaderName, HeaderValue};
use rulegate::compile::Snapshot;
use rulegate::decide::{decide, render_response, RequestHead, VirtualEnv};
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    ak: String,
    sk: String,
    method: String,
    url: String,
    body: String,
    headers_out: Option<BTreeMap<String, String>>,
}

fn vectors() -> Vec<Vector> {
    let all: Vec<Vector> = serde_json::from_str(&support::vector_file("jdcloud.json")).unwrap();
    // JD3-compare is JDCLOUD3 (a later OpenAPI scheme), not the gateway's JDCLOUD2
    all.into_iter()
        .filter(|v| v.headers_out.is_some())
        .collect()
}

fn snapshot(vs: &[Vector]) -> Snapshot {
    let keys: Vec<(&str, &str)> = vs.iter().map(|v| (v.ak.as_str(), v.sk.as_str())).collect();
    let (apps, secrets) = support::apps(&keys);
    let policy = format!(
        "service gw {{\n    dialect jdcloud\n    hosts \"*\"\n    auth jd jd-signature {{}}\n{apps}    route ANY \"/{{p+}}\" {{\n        auth jd\n        mock 200 text \"ok\"\n    }}\n}}\n"
    );
    support::compile_text(policy, secrets)
}

fn millis(date: &str) -> i64 {
    jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", date)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_millisecond()
}

/// The vector's request as it goes on the wire: its URL's host (port kept unless default),
/// path and query, and every header the SDK sent.
fn send(
    snap: &Snapshot,
    env: &VirtualEnv,
    v: &Vector,
    edit: &dyn Fn(&mut HeaderMap, &mut Vec<u8>),
) -> (u16, String) {
    let rest = v.url.split_once("://").unwrap().1;
    let (authority, target) = rest.split_at(rest.find('/').unwrap());
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(authority).unwrap());
    for (k, val) in v.headers_out.as_ref().unwrap() {
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(val).unwrap(),
        );
    }
    let mut body = v.body.clone().into_bytes();
    if !body.is_empty() {
        headers.insert("content-length", HeaderValue::from(body.len()));
    }
    edit(&mut headers, &mut body);
    let head = RequestHead {
        version: http::Version::HTTP_11,
        method: &v.method,
        target,
        host: Some(authority),
        host_from: Default::default(),
        headers: &headers,
        peer: IpAddr::from([127, 0, 0, 1]),
        tls: true,
        client_cert: false,
        body: Some(&body),
    };
    let d = decide(snap, &head, env);
    let r = render_response(&d).expect("answered directly");
    (r.status, String::from_utf8(r.body.to_vec()).unwrap())
}

fn jd(code: u16, status: &str, message: &str) -> String {
    format!(
        r#"{{"requestId":"00000000000000000000000000000001","error":{{"code":{code},"status":"{status}","message":"{message}"}}}}"#
    )
}

fn date_of(v: &Vector) -> i64 {
    millis(&v.headers_out.as_ref().unwrap()["x-jdcloud-date"])
}

#[test]
fn every_jdcloud2_vector_passes() {
    let vs = vectors();
    assert_eq!(vs.len(), 2);
    let snap = snapshot(&vs);
    for v in &vs {
        let env = VirtualEnv::new(date_of(v));
        assert_eq!(
            send(&snap, &env, v, &|_, _| {}),
            (200, "ok".into()),
            "{}",
            v.name
        );
    }
}

#[test]
fn a_replayed_nonce_gets_http_forbidden() {
    let vs = vectors();
    let snap = snapshot(&vs);
    let env = VirtualEnv::new(date_of(&vs[0]));
    assert_eq!(send(&snap, &env, &vs[0], &|_, _| {}).0, 200);
    assert_eq!(
        send(&snap, &env, &vs[0], &|_, _| {}),
        (
            403,
            jd(403, "HTTP_FORBIDDEN", "No Resource Permission").replace("0001", "0002")
        ),
        "the same nonce again"
    );
}

#[test]
fn tampering_and_stale_dates_get_unauthenticated() {
    let vs = vectors();
    let snap = snapshot(&vs);
    let v = &vs[1]; // POST with a body and a custom signed header
    let unauthenticated = (401, jd(401, "UNAUTHENTICATED", "Verification Failed"));
    let fresh = || VirtualEnv::new(date_of(v));
    assert_eq!(
        send(&snap, &fresh(), v, &|_, body| *body =
            br#"{"id":2,"name":"x"}"#.to_vec()),
        unauthenticated,
        "body"
    );
    assert_eq!(
        send(&snap, &fresh(), v, &|h, _| {
            h.insert("x-my-header", HeaderValue::from_static("other"));
        }),
        unauthenticated,
        "signed header"
    );
    assert_eq!(
        send(&snap, &fresh(), v, &|h, _| {
            h.remove("x-jdcloud-nonce");
        }),
        unauthenticated,
        "nonce missing"
    );
    assert_eq!(
        send(
            &snap,
            &VirtualEnv::new(date_of(v) + 16 * 60_000),
            v,
            &|_, _| {}
        ),
        unauthenticated,
        "16 minutes late"
    );
    assert_eq!(
        send(
            &snap,
            &VirtualEnv::new(date_of(v) + 14 * 60_000),
            v,
            &|_, _| {}
        )
        .0,
        200,
        "14 minutes late"
    );
    assert_eq!(
        send(&snap, &fresh(), v, &|h, _| {
            h.remove("authorization");
        }),
        unauthenticated,
        "no Authorization"
    );
}

#[test]
fn a_provider_pinned_to_a_region_and_group_refuses_other_scopes() {
    let vs = vectors();
    let jd1 = &vs[0]; // scoped cn-north-1 / xapw9ul97y4p
    let (apps, secrets) = support::apps(&[(jd1.ak.as_str(), jd1.sk.as_str())]);
    let pinned = |region: &str, group: &str| {
        support::compile_text(
            format!(
                "service gw {{\n    dialect jdcloud\n    hosts \"*\"\n    auth jd jd-signature {{\n        region \"{region}\"\n        group \"{group}\"\n    }}\n{apps}    route ANY \"/{{p+}}\" {{\n        auth jd\n        mock 200 text \"ok\"\n    }}\n}}\n"
            ),
            secrets.clone(),
        )
    };
    let unauthenticated = (401, jd(401, "UNAUTHENTICATED", "Verification Failed"));
    let env = || VirtualEnv::new(date_of(jd1));
    let ok = pinned("cn-north-1", "xapw9ul97y4p");
    assert_eq!(send(&ok, &env(), jd1, &|_, _| {}), (200, "ok".into()));
    let other_region = pinned("cn-east-2", "xapw9ul97y4p");
    assert_eq!(
        send(&other_region, &env(), jd1, &|_, _| {}),
        unauthenticated
    );
    let other_group = pinned("cn-north-1", "another-group");
    assert_eq!(send(&other_group, &env(), jd1, &|_, _| {}), unauthenticated);
}
