//! The external authorizer on `decide`: what a route asks for (`Outcome::NeedAuthorization`
//! with the call), and how each answer — stubbed here as the server's env would hold it —
//! becomes a forward or the dialect's exact row. Real sockets are in `tests/serve/authorizer.rs`.

mod support;

use http::{HeaderMap, HeaderValue};
use rulegate::auth::authorizer::{Answer, Call, Failure};
use rulegate::compile::{Provider, Snapshot};
use rulegate::decide::{
    decide, render_response, Decision, Env, Limiter, Outcome, RequestHead, VirtualEnv,
};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

const TOKEN: &str = "Bearer s3cret-token-value";

fn snapshot() -> Snapshot {
    let mut policy = String::from("default dialect huawei\n");
    for (name, dialect) in [("hw", "huawei"), ("tc", "tencent"), ("jd", "jdcloud")] {
        policy.push_str(&format!(
            r#"service {name} {{
    dialect {dialect}
    hosts "{name}.test"
    auth ext authorizer {{
        url "http://127.0.0.1:9400/check"
        timeout 500ms
        cache 30s
        identity header "Authorization" "X-Tenant"
    }}
    backend b {{
        targets "http://127.0.0.1:9"
    }}
    route GET "/orders/{{id}}" {{
        auth ext
        forward b path "/v1/orders/{{id}}"
    }}
}}
"#
        ));
    }
    support::compile_text(policy, HashMap::new())
}

fn head<'a>(host: &'a str, headers: &'a HeaderMap) -> RequestHead<'a> {
    RequestHead {
        version: http::Version::HTTP_11,
        method: "GET",
        target: "/orders/12?full=1",
        host: Some(host),
        host_from: Default::default(),
        headers,
        peer: IpAddr::from([10, 0, 0, 7]),
        tls: false,
        client_cert: false,
        body: None,
    }
}

fn headers(identities: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in identities {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn both() -> HeaderMap {
    headers(&[("authorization", TOKEN), ("x-tenant", "acme")])
}

/// Decide on `host` with the authorizer answering `answer` (a stub, as `rulegate test` has).
fn with_answer(snap: &Snapshot, host: &str, h: &HeaderMap, answer: Option<Answer>) -> Decision {
    let env = VirtualEnv::new(1_795_000_000_000);
    env.stub_authorizer("ext", answer);
    decide(snap, &head(host, h), &env)
}

/// (status, body, request-id header) of a rejection.
type Answered = (u16, String, Option<String>);

fn answer(d: &Decision) -> Answered {
    let r = render_response(d).expect("a rendered answer");
    let id_header = rulegate::dialect::request_id_header(d.dialect);
    let id = r
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(id_header))
        .map(|(_, v)| v.clone());
    (r.status, String::from_utf8(r.body.to_vec()).unwrap(), id)
}

const ID: &str = "00000000000000000000000000000001";

fn huawei(status: u16, code: &str, msg: &str) -> Answered {
    (
        status,
        format!(r#"{{"error_code": "{code}", "error_msg": "{msg}", "request_id": "{ID}"}}"#),
        Some(ID.to_string()),
    )
}

fn failed(failure: Failure) -> Option<Answer> {
    Some(Answer::Failed {
        failure,
        detail: "test".into(),
    })
}

/// The server's side of the contract: no answer at hand until one is fetched; counts the
/// times `decide` asked.
struct Remote {
    inner: VirtualEnv,
    fetched: Option<Answer>,
    asked: Mutex<Vec<Call>>,
}

impl Env for Remote {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
    fn request_id(&self) -> rulegate::decide::RequestId {
        rulegate::decide::RequestId::given(ID)
    }
    fn limiter(&self) -> &dyn Limiter {
        self.inner.limiter()
    }
    fn upstreams(&self) -> &rulegate::decide::env::Upstreams {
        self.inner.upstreams()
    }
    fn authorizer_answer(&self, _provider: &Provider, call: &Call) -> Option<Answer> {
        self.asked.lock().unwrap().push(call.clone());
        self.fetched.clone()
    }
}

#[test]
fn without_an_answer_decide_asks_for_the_call() {
    let snap = snapshot();
    let env = Remote {
        inner: VirtualEnv::new(0),
        fetched: None,
        asked: Mutex::new(Vec::new()),
    };
    let h = both();
    let d = decide(&snap, &head("hw.test", &h), &env);
    let Outcome::NeedAuthorization(call) = &d.outcome else {
        panic!("{:?}", d.outcome)
    };
    assert_eq!(
        call.identities,
        vec![
            ("Authorization".to_string(), TOKEN.to_string()),
            ("X-Tenant".to_string(), "acme".to_string())
        ]
    );
    assert_eq!(
        (
            call.method.as_str(),
            call.path.as_str(),
            call.query.as_deref(),
            call.host.as_str()
        ),
        ("GET", "/orders/12", Some("full=1"), "hw.test")
    );
    assert_eq!(call.client_ip, IpAddr::from([10, 0, 0, 7]));
    assert!(render_response(&d).is_none(), "nothing is answered yet");
    // the credential never shows in the outcome's Debug or the trace
    let shown = format!("{:?} {:?}", d.outcome, d.trace);
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("Authorization=‹redacted›"), "{shown}");

    // with the answer fetched, the same request goes on
    let env = Remote {
        fetched: Some(Answer::Allow { context: vec![] }),
        ..env
    };
    let d = decide(&snap, &head("hw.test", &h), &env);
    assert!(
        matches!(&d.outcome, Outcome::Forward(p) if p.target == "/v1/orders/12?full=1"),
        "{:?}",
        d.outcome
    );
    assert_eq!(env.asked.lock().unwrap().last(), Some(&**call));
}

#[test]
fn allow_forwards_with_the_context() {
    let snap = snapshot();
    let context = vec![("user".to_string(), "ann".to_string())];
    let d = with_answer(
        &snap,
        "hw.test",
        &both(),
        Some(Answer::Allow {
            context: context.clone(),
        }),
    );
    assert!(matches!(d.outcome, Outcome::Forward(_)), "{:?}", d.outcome);
    assert_eq!(d.authorizer_context, Some(context));
    let auth = d.trace.iter().find(|s| s.name == "auth").unwrap();
    assert_eq!(
        auth.detail,
        "provider ext: the authorizer allowed (Authorization=‹redacted›, X-Tenant=‹redacted›); context user"
    );
}

#[test]
fn every_huawei_refusal_is_the_documented_row() {
    let snap = snapshot();
    let m = "Incorrect third-party authentication";
    let cases: Vec<(&str, HeaderMap, Option<Answer>, Answered)> = vec![
        (
            "deny",
            both(),
            Some(Answer::Deny),
            huawei(401, "APIG.0312", &format!("{m} information,auth fail")),
        ),
        (
            "403",
            both(),
            Some(Answer::Forbidden),
            huawei(403, "APIG.0314", &format!("{m} information,access deny")),
        ),
        (
            "no Authorization",
            headers(&[("x-tenant", "acme")]),
            Some(Answer::Deny),
            huawei(
                401,
                "APIG.0313",
                &format!("{m} information,identities error"),
            ),
        ),
        (
            "empty X-Tenant",
            headers(&[("authorization", TOKEN), ("x-tenant", " ")]),
            Some(Answer::Allow { context: vec![] }),
            huawei(
                401,
                "APIG.0313",
                &format!("{m} information,identities error"),
            ),
        ),
        (
            "unresolved",
            both(),
            failed(Failure::Unresolved),
            huawei(500, "APIG.0615", &format!("{m} VPC information")),
        ),
        (
            "unreachable",
            both(),
            failed(Failure::Unreachable),
            huawei(500, "APIG.0616", &format!("{m} request information")),
        ),
        (
            "bad response",
            both(),
            failed(Failure::BadResponse),
            huawei(500, "APIG.0617", &format!("{m} response information")),
        ),
        (
            "not stubbed",
            both(),
            None,
            huawei(500, "APIG.0616", &format!("{m} request information")),
        ),
    ];
    for (what, h, stub, expected) in cases {
        let d = with_answer(&snap, "hw.test", &h, stub);
        assert_eq!(answer(&d), expected, "{what}");
        let last = d.trace.last().unwrap();
        assert_eq!((last.n, last.name), (7, "auth"), "{what}");
        assert!(!last.detail.contains("s3cret"), "{what}: {}", last.detail);
    }
}

#[test]
fn explain_says_the_authorizer_was_not_called() {
    let snap = snapshot();
    let d = with_answer(&snap, "hw.test", &both(), None);
    assert_eq!(
        d.trace.last().unwrap().detail,
        "provider ext: not called: explain and test never call http://127.0.0.1:9400/check (stub its answer with `authorizer ext allow|deny|forbidden|…` in a .tests file)"
    );
}

#[test]
fn tencent_and_jd_rows() {
    let snap = snapshot();
    let tencent = |msg: &str| format!(r#"{{"message":"{msg}"}}"#);
    let cases = [
        (
            Some(Answer::Deny),
            both(),
            401,
            tencent("Oauth call authentication server fail."),
        ),
        (
            Some(Answer::Forbidden),
            both(),
            401,
            tencent("Oauth call authentication server fail."),
        ),
        (
            failed(Failure::Unreachable),
            both(),
            401,
            tencent("Oauth call authentication server fail."),
        ),
        (
            failed(Failure::BadResponse),
            both(),
            401,
            tencent("Oauth call authentication server fail."),
        ),
        (
            failed(Failure::Unresolved),
            both(),
            401,
            tencent("Oauth call authentication server fail."),
        ),
        (
            Some(Answer::Deny),
            headers(&[]),
            401,
            tencent(
                "Oauth signature cannot be verified, a validate authorization header is required.",
            ),
        ),
    ];
    for (stub, h, status, body) in cases {
        let d = with_answer(&snap, "tc.test", &h, stub.clone());
        let (s, b, id) = answer(&d);
        assert_eq!((s, b.as_str()), (status, body.as_str()), "{stub:?}");
        assert_eq!(id.as_deref(), Some(ID));
    }
    let jd = |status: u16, code: &str, msg: &str| {
        format!(
            r#"{{"requestId":"{ID}","error":{{"code":{status},"status":"{code}","message":"{msg}"}}}}"#
        )
    };
    let cases = [
        (
            Some(Answer::Deny),
            both(),
            401,
            jd(401, "UNAUTHENTICATED", "Verification Failed"),
        ),
        (
            Some(Answer::Forbidden),
            both(),
            403,
            jd(403, "HTTP_FORBIDDEN", "No Resource Permission"),
        ),
        (
            failed(Failure::Unreachable),
            both(),
            500,
            jd(500, "INTERNAL", "Internal Error"),
        ),
        (
            failed(Failure::BadResponse),
            both(),
            500,
            jd(500, "INTERNAL", "Internal Error"),
        ),
        (
            failed(Failure::Unresolved),
            both(),
            500,
            jd(500, "INTERNAL", "Internal Error"),
        ),
        (
            Some(Answer::Deny),
            headers(&[]),
            401,
            jd(401, "UNAUTHENTICATED", "Verification Failed"),
        ),
    ];
    for (stub, h, status, body) in cases {
        let d = with_answer(&snap, "jd.test", &h, stub.clone());
        let (s, b, id) = answer(&d);
        assert_eq!((s, b.as_str()), (status, body.as_str()), "{stub:?}");
        assert_eq!(id.as_deref(), Some(ID));
    }
}

#[test]
fn a_missing_identity_never_asks_the_authorizer() {
    let snap = snapshot();
    let env = Remote {
        inner: VirtualEnv::new(0),
        fetched: None,
        asked: Mutex::new(Vec::new()),
    };
    let h = headers(&[("authorization", TOKEN)]);
    let d = decide(&snap, &head("hw.test", &h), &env);
    assert!(matches!(d.outcome, Outcome::Reject(_)), "{:?}", d.outcome);
    assert!(env.asked.lock().unwrap().is_empty());
    assert_eq!(
        d.trace.last().unwrap().detail,
        "provider ext: identity header X-Tenant is missing or empty"
    );
}
