//! The driver (`decide::Drive`): a pipeline that stops for an effect — the body, a shared
//! store's counts, an authorizer's answer — resumes where it stopped, and the decision comes
//! out as the old protocol (decide again from the start with the answer at hand) gave it:
//! the same trace, the same deciding check, the same outcome and headers.

mod support;

use http::{HeaderMap, HeaderName, HeaderValue};
use rulegate::auth::authorizer::{Answer, Call};
use rulegate::compile::{Provider, Snapshot};
use rulegate::decide::env::Upstreams;
use rulegate::decide::{
    decide, decide_with_body, Decision, Drive, Effect, Env, Limiter, MemoryLimiter, Next, Outcome,
    RequestHead, RequestId, VirtualEnv,
};
use rulegate::dialect::Reason;
use rulegate::limits::{Count, Tallies};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

const NOW_MS: i64 = 1_795_000_000_000;

fn policy() -> Snapshot {
    let text = r#"
service intake {
    dialect huawei
    hosts "intake.example.com"
    app mobile {
        key "ak-mobile"
        secret env "MOBILE"
    }
    auth tokens oauth2 {
        signing key env "SIGNING"
    }
    auth ext authorizer {
        url "http://127.0.0.1:9400/check"
        timeout 500ms
        identity header "Authorization"
    }
    route POST "/feedback" {
        require header "X-Tenant" string 1..32
        require form "rating" int 1..5
        limits {
            body 4KiB
        }
        rate 5 per minute per ip
        mock 202 json {"accepted": true}
    }
    route POST "/oauth2/token" {
        rate 5 per minute per ip
        issue tokens tokens
    }
    route GET "/guarded" {
        auth ext
        rate 5 per minute per ip
        mock 200 text "guarded"
    }
    route POST "/small" {
        limits {
            body 8B
        }
        mock 200 text "small"
    }
}
"#;
    let secrets: HashMap<String, String> = [
        ("MOBILE", "mobile-secret"),
        ("SIGNING", "test-signing-key-for-oauth2-0123456789"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    support::compile_text(text.to_string(), secrets)
}

/// A world with a shared store and an authorizer to call: counts and nonces are not at hand
/// until fetched, answers not until asked; one request id, however often it is asked for.
struct Remote {
    inner: VirtualEnv,
    now_ms: AtomicI64,
    fetched: AtomicBool,
    answer: Option<Answer>,
    /// How often the pipeline asked for the request id and for an authorizer's answer.
    ids: AtomicUsize,
    asked: AtomicUsize,
}

impl Remote {
    fn new(answer: Option<Answer>) -> Remote {
        Remote {
            inner: VirtualEnv::new(NOW_MS),
            now_ms: AtomicI64::new(NOW_MS),
            fetched: AtomicBool::new(false),
            answer,
            ids: AtomicUsize::new(0),
            asked: AtomicUsize::new(0),
        }
    }
}

impl Limiter for Remote {
    fn count(&self, counts: &[Count], now_ms: i64) -> Option<Tallies> {
        let fetched = self.fetched.swap(false, Ordering::SeqCst);
        fetched.then(|| self.inner.limiter().count(counts, now_ms))?
    }
    fn first_use(&self, group: &str, key: &str, ttl_ms: u64, now_ms: i64) -> Option<bool> {
        let fetched = self.fetched.swap(false, Ordering::SeqCst);
        fetched.then(|| self.inner.limiter().first_use(group, key, ttl_ms, now_ms))?
    }
}

impl Env for Remote {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
    fn request_id(&self) -> RequestId {
        self.ids.fetch_add(1, Ordering::SeqCst);
        RequestId::from_u128(1)
    }
    fn limiter(&self) -> &dyn Limiter {
        self
    }
    fn upstreams(&self) -> &Upstreams {
        self.inner.upstreams()
    }
    fn authorizer_answer(&self, _provider: &Provider, _call: &Call) -> Option<Answer> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        None
    }
}

/// The same world with every answer at hand: in-memory counts, the authorizer's answer
/// stubbed. One pass of `decide` there is what a resumed pipeline must come to.
struct AtHand {
    counts: MemoryLimiter,
    answer: Option<Answer>,
    upstreams: Upstreams,
}

impl Env for AtHand {
    fn now_ms(&self) -> i64 {
        NOW_MS
    }
    fn request_id(&self) -> RequestId {
        RequestId::from_u128(1)
    }
    fn limiter(&self) -> &dyn Limiter {
        &self.counts
    }
    fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }
    fn authorizer_answer(&self, _provider: &Provider, _call: &Call) -> Option<Answer> {
        self.answer.clone()
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("host", HeaderValue::from_static("intake.example.com"));
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn head<'a>(method: &'a str, target: &'a str, headers: &'a HeaderMap) -> RequestHead<'a> {
    RequestHead {
        version: http::Version::HTTP_11,
        method,
        target,
        host: Some("intake.example.com"),
        host_from: Default::default(),
        headers,
        peer: IpAddr::from([198, 51, 100, 7]),
        tls: true,
        client_cert: false,
        body: None,
    }
}

/// Drive `head` in the remote world, answering each effect as the server would; the
/// effects asked for, and the decision.
fn driven<'r>(
    snap: &Snapshot,
    head: RequestHead<'r>,
    body: &'r [u8],
    env: &Remote,
) -> (Vec<String>, Decision) {
    let mut drive = Drive::new(snap, head, env);
    let mut asked = Vec::new();
    loop {
        match drive.advance() {
            Next::Done => break,
            Next::Need(Effect::ReadBody { limit }) => {
                asked.push(format!("read the body (≤ {limit})"));
                drive.body(body);
            }
            Next::Need(Effect::DrainBody { limit }) => {
                asked.push(format!("drain the body (≤ {limit})"));
                match body.len() as u64 > limit {
                    true => drive.refuse(Reason::BodyTooLarge),
                    false => drive.body(body),
                }
            }
            Next::Need(Effect::FetchCounts) => {
                asked.push("fetch the counts".into());
                env.fetched.store(true, Ordering::SeqCst);
                drive.counted();
            }
            Next::Need(Effect::Authorize { provider, .. }) => {
                asked.push(format!("ask authorizer {}", provider.name));
                let answer = env.answer.clone().expect("an answer to give");
                drive.authorized(answer);
            }
        }
    }
    (asked, drive.finish())
}

/// The protocol the driver replaces, with every answer at hand: decide on the head, and when
/// the pipeline asks for the body, decide again from the start with it.
fn at_hand<'r>(
    snap: &Snapshot,
    mut head: RequestHead<'r>,
    body: &'r [u8],
    answer: Option<Answer>,
) -> Decision {
    let env = AtHand {
        counts: MemoryLimiter::new(),
        answer,
        upstreams: Upstreams::new(),
    };
    let d = decide(snap, &head, &env);
    if !matches!(d.outcome, Outcome::NeedBody { .. }) {
        return d;
    }
    head.body = Some(body);
    decide(snap, &head, &env)
}

/// Everything of a decision a client or a policy test can see.
fn seen(d: &Decision) -> String {
    let trace: Vec<String> = d.trace.iter().map(|s| s.to_string()).collect();
    format!(
        "{}\ncheck {:?}\noutcome {:?}\nheaders {:?}\napp {:?}\ncontext {:?}",
        trace.join("\n"),
        d.check,
        d.outcome,
        d.headers,
        d.app,
        d.authorizer_context
    )
}

#[test]
fn a_form_route_resumed_with_its_body_decides_as_one_pass_with_the_body_at_hand() {
    let snap = policy();
    let h = headers(&[
        ("x-tenant", "acme"),
        ("content-type", "application/x-www-form-urlencoded"),
        ("content-length", "8"),
    ]);
    let env = Remote::new(None);
    let (asked, d) = driven(&snap, head("POST", "/feedback", &h), b"rating=4", &env);
    assert_eq!(asked, ["read the body (≤ 4096)", "fetch the counts"]);
    let reference = at_hand(&snap, head("POST", "/feedback", &h), b"rating=4", None);
    assert_eq!(seen(&d), seen(&reference));
    assert!(matches!(d.outcome, Outcome::Respond(_)), "{:?}", d.outcome);
    // routing and the checks before the stop ran once: one request id
    assert_eq!(env.ids.load(Ordering::SeqCst), 1);
}

#[test]
fn a_form_route_refuses_a_bad_form_value_at_the_check_that_stopped() {
    let snap = policy();
    let h = headers(&[
        ("x-tenant", "acme"),
        ("content-type", "application/x-www-form-urlencoded"),
    ]);
    let env = Remote::new(None);
    let (asked, d) = driven(&snap, head("POST", "/feedback", &h), b"rating=9", &env);
    assert_eq!(asked, ["read the body (≤ 4096)"]);
    let reference = at_hand(&snap, head("POST", "/feedback", &h), b"rating=9", None);
    assert_eq!(seen(&d), seen(&reference));
    assert_eq!(
        d.check,
        Some(1),
        "the form parameter's check, as coverage counts it"
    );
}

#[test]
fn a_token_request_resumed_with_its_body_judges_the_body_size_again() {
    let snap = policy();
    let body = b"grant_type=client_credentials&client_id=ak-mobile&client_secret=mobile-secret";
    let length = body.len().to_string();
    let h = headers(&[
        ("content-type", "application/x-www-form-urlencoded"),
        ("transfer-encoding", "chunked"),
    ]);
    let env = Remote::new(None);
    let (asked, d) = driven(&snap, head("POST", "/oauth2/token", &h), body, &env);
    // the limits are counted before the action asks for the body, and again after it, as
    // deciding again from the start did
    assert_eq!(
        asked,
        [
            "fetch the counts",
            "read the body (≤ 12582912)",
            "fetch the counts"
        ]
    );
    let reference = at_hand(&snap, head("POST", "/oauth2/token", &h), body, None);
    let trace: Vec<String> = d.trace.iter().map(|s| s.to_string()).collect();
    assert!(
        trace.iter().any(|s| s.contains(&format!("{length} ≤ "))),
        "the body-size step shows the body read: {trace:#?}"
    );
    assert_eq!(seen(&d), seen(&reference));
}

#[test]
fn an_authorizer_answer_resumes_the_check_that_asked_for_it() {
    let snap = policy();
    let h = headers(&[("authorization", "Bearer t0ken")]);
    let allow = Answer::Allow {
        context: vec![("tenant".into(), "acme".into())],
    };
    let env = Remote::new(Some(allow.clone()));
    let (asked, d) = driven(&snap, head("GET", "/guarded", &h), b"", &env);
    // a direct answer's body is drained (at once when there is none)
    assert_eq!(
        asked,
        [
            "ask authorizer ext",
            "fetch the counts",
            "drain the body (≤ 12582912)"
        ]
    );
    let reference = at_hand(&snap, head("GET", "/guarded", &h), b"", Some(allow));
    assert_eq!(seen(&d), seen(&reference));
    // the env was asked for an answer at hand once; the answer fetched went to the check
    assert_eq!(env.asked.load(Ordering::SeqCst), 1);
    assert_eq!(env.ids.load(Ordering::SeqCst), 1);
}

#[test]
fn an_effect_left_unanswered_is_asked_for_again_and_the_pipeline_waits() {
    let snap = policy();
    let h = headers(&[("authorization", "Bearer t0ken")]);
    let env = Remote::new(None);
    let mut drive = Drive::new(&snap, head("GET", "/guarded", &h), &env);
    for _ in 0..3 {
        assert!(matches!(
            drive.advance(),
            Next::Need(Effect::Authorize { .. })
        ));
    }
    assert_eq!(env.asked.load(Ordering::SeqCst), 1);
    let d = drive.finish();
    assert!(matches!(d.outcome, Outcome::NeedAuthorization(_)));
    assert_eq!(
        d.trace.last().map(|s| s.to_string()),
        Some(
            " 7 auth       done  provider ext: ask the authorizer (Authorization=‹redacted›), then decide again"
                .to_string()
        )
    );
}

#[test]
fn a_direct_answer_drains_the_body_once_and_refuses_one_over_the_route_limit() {
    let snap = policy();
    let h = headers(&[("transfer-encoding", "chunked")]);
    let env = Remote::new(None);
    let (asked, d) = driven(&snap, head("POST", "/small", &h), b"123456789", &env);
    assert_eq!(asked, ["drain the body (≤ 8)"]);
    assert_eq!(d.outcome, Outcome::Reject(Reason::BodyTooLarge));
    assert_eq!(
        d.trace.last().map(|s| s.to_string()),
        Some("11 action     done  mock 200".to_string())
    );
    let (_, d) = driven(&snap, head("POST", "/small", &h), b"12345678", &env);
    assert!(matches!(d.outcome, Outcome::Respond(_)));
    // offline, with the body at hand: the same rule
    let mut offline = head("POST", "/small", &h);
    let d = decide_with_body(&snap, &mut offline, b"123456789", &VirtualEnv::new(NOW_MS));
    assert_eq!(d.outcome, Outcome::Reject(Reason::BodyTooLarge));
}

#[test]
fn explain_of_a_form_route_with_its_body_decides_once_under_one_request_id() {
    let dir = std::env::temp_dir().join(format!("rulegate-drive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("intake.policy"),
        r#"service intake {
    dialect huawei
    hosts "intake.example.com"
    route POST "/feedback" {
        require form "rating" int 1..5
        mock 202 json {"accepted": true}
    }
}
"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rulegate"))
        .arg("explain")
        .arg(&dir)
        .args(["POST", "http://intake.example.com/feedback"])
        .args(["-H", "Content-Type: application/x-www-form-urlencoded"])
        .args(["--data", "rating=4"])
        .output()
        .expect("run rulegate explain");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.ends_with(
            "response\nHTTP/1.1 202 Accepted\nContent-Type: application/json\nX-Request-Id: 00000000000000000000000000000001\nContent-Length: 17\n\n{\"accepted\":true}\n"
        ),
        "{text}"
    );
}

#[derive(serde::Deserialize)]
struct Vector {
    ak: String,
    sk: String,
    method: String,
    url: String,
    body: String,
    headers_out: Option<std::collections::BTreeMap<String, String>>,
}

#[test]
fn a_signature_verified_before_its_nonce_is_looked_up_is_not_verified_again() {
    let vectors: Vec<Vector> = serde_json::from_str(&support::vector_file("jdcloud.json")).unwrap();
    let v = vectors.iter().find(|v| v.headers_out.is_some()).unwrap();
    let (apps, secrets) = support::apps(&[(v.ak.as_str(), v.sk.as_str())]);
    let snap = support::compile_text(
        format!("service gw {{\n    dialect jdcloud\n    hosts \"*\"\n    auth jd jd-signature {{}}\n{apps}    route ANY \"/{{p+}}\" {{\n        auth jd\n        mock 200 text \"ok\"\n    }}\n}}\n"),
        secrets,
    );
    let out = v.headers_out.as_ref().unwrap();
    let signed_at = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", &out["x-jdcloud-date"])
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_millisecond();
    let rest = v.url.split_once("://").unwrap().1;
    let (authority, target) = rest.split_at(rest.find('/').unwrap());
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_str(authority).unwrap());
    for (k, val) in out {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(val).unwrap(),
        );
    }
    if !v.body.is_empty() {
        h.insert("content-length", HeaderValue::from(v.body.len()));
    }
    let head = RequestHead {
        version: http::Version::HTTP_11,
        method: &v.method,
        target,
        host: Some(authority),
        host_from: Default::default(),
        headers: &h,
        peer: IpAddr::from([127, 0, 0, 1]),
        tls: true,
        client_cert: false,
        body: None,
    };
    let env = Remote::new(None);
    env.now_ms.store(signed_at, Ordering::SeqCst);
    let mut drive = Drive::new(&snap, head, &env);
    let mut asked = Vec::new();
    loop {
        match drive.advance() {
            Next::Done => break,
            Next::Need(Effect::ReadBody { .. } | Effect::DrainBody { .. }) => {
                asked.push("body");
                drive.body(v.body.as_bytes());
            }
            Next::Need(Effect::FetchCounts) => {
                asked.push("nonce");
                // the shared store answers an hour later: long after the signature's date
                // would be stale, had the signature been checked again
                env.now_ms.fetch_add(3_600_000, Ordering::SeqCst);
                env.fetched.store(true, Ordering::SeqCst);
                drive.counted();
            }
            Next::Need(Effect::Authorize { .. }) => unreachable!("no authorizer here"),
        }
    }
    let d = drive.finish();
    assert_eq!(asked.first(), Some(&"nonce"), "{asked:?}");
    assert!(matches!(d.outcome, Outcome::Respond(_)), "{:?}", d.trace);
    let auth: Vec<String> = d
        .trace
        .iter()
        .filter(|s| s.name == "auth")
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        auth.len(),
        1,
        "one auth step, the stop's own removed: {auth:?}"
    );
    assert!(auth[0].starts_with(" 7 auth       pass  "), "{auth:?}");
}
