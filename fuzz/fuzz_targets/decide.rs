//! Any request head through `decide` and the forwarding headers, over a small fixed policy
//! (one service per dialect, behind trusted proxies, with path rewrites, client address lists,
//! a rate, a throttle keyed by a query parameter, a mock and an external authorizer). Besides "never panics", each run asserts:
//!
//! * a forwarded path stays under its rewrite's literal prefix — read as a lenient backend
//!   reads it (percent-decoded any number of times, `\` as `/`, `;params` ignored, dot
//!   segments removed) — and a rewrite without a rest variable keeps its segment count;
//! * the request id is the gateway's (the environment's), never a client header's value, and
//!   the backend's request-id header carries that id, once;
//! * every `X-Authorizer-*` header the backend would get comes from the authorizer's answer;
//! * the backend's `X-Forwarded-For` ends with the TCP peer;
//! * a refusal is a row of the dialect's catalogue (documented, or a marked undocumented one),
//!   and of its route's error contract (`rulegate::contract`);
//! * a shaped forward never passes a removed header or a client's value under a mapped name,
//!   sends each mapped header once, and a signing backend's request is signed (one
//!   `Authorization`, the gateway's; one `X-Sdk-Date`; no client `X-Sdk-Content-Sha256`).
//!
//! Input: `METHOD TARGET\n` then `Name: value` lines; the first byte picks the peer and TLS.
//! `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run decide corpus/decide seeds-decide -- -dict=decide.dict`

#![no_main]

use libfuzzer_sys::fuzz_target;
use rulegate::auth::authorizer::Answer;
use rulegate::compile::{Action, Snapshot};
use rulegate::decide::{decide, Arrival, Env, Outcome, RequestHead, VirtualEnv};
use rulegate::policy::ast::Segment;
use std::net::IpAddr;
use std::sync::OnceLock;

const POLICY: &str = r#"
default dialect huawei

throttle tenants {
    rate 100000 per 10s
    per query "tenant" 50000
    per header "X-Tenant" 50000
    per ip 50000
    except ip 10.0.0.0/8 90000
}

service edge {
    dialect huawei
    hosts "edge.test"
    trusted proxies 127.0.0.0/8 ::1

    auth ext authorizer {
        url "http://127.0.0.1:9400/check"
        identity header "X-Token"
    }

    backend main {
        targets "http://127.0.0.1:9"
    }

    route GET "/only/{id}" {
        allow ips 10.1.2.3
        forward main path "/admitted/{id}"
    }
    route GET "/files/{path+}" {
        forward main path "/static/files/{path}"
    }
    route GET POST "/items/{id}" {
        forward main path "/v1/items/{id}/detail"
    }
    route GET "/swap/{a}/{b}" {
        forward main path "/x/{b}/y/{a}"
    }
    route ANY "/raw/{rest+}" {
        forward main
    }
    route GET "/guarded/{id}" {
        deny ips 192.0.2.0/24
        rate 1000 per second per ip
        throttle tenants
        forward main path "/g/{id}"
    }
    route GET "/authorized/{id}" {
        auth ext
        forward main path "/a/{id}"
    }
    route GET "/mock" {
        mock 200 text "ok"
    }

    # backend parameters, orchestrations and a signing backend
    backend signed {
        targets "http://127.0.0.1:9"
        sign hmac key "fuzz-gateway" secret env "FUZZ_SIGNING_SECRET"
    }
    route GET POST "/mapped/{id}" {
        backend query "uid" from path "id"
        backend header "X-Tenant" from query "tenant"
        backend header "X-Client" system client-ip
        remove header "Cookie"
        orchestrate header "X-Region" into header "X-Zone" {
            pre head 2
            list "eu" to "zone-eu"
            default "zone-other"
        }
        orchestrate query "plan" into query "tier" {
            list "gold" to "premium"
        }
        forward signed path "/m/{id}"
    }
}

service partners {
    dialect tencent
    hosts "partners.test"
    stages release test from path
    trusted proxies 10.0.0.0/8

    backend ledger {
        targets "http://127.0.0.1:9"
    }

    route GET "/docs/{page+}" {
        forward ledger path "/static/docs/{page}"
    }
    route GET "/invoices/{id}/settle" {
        forward ledger path "/internal/invoices/{id}/settle"
    }
}

service jd {
    dialect jdcloud
    hosts "jd.test"

    backend b {
        targets "http://127.0.0.1:9"
    }

    route GET "/v1/{name}" {
        forward b path "/api/{name}"
    }
}
"#;

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let loaded = rulegate::policy::parse_texts(vec![(
            "fuzz.policy".into(),
            POLICY.into(),
            std::path::PathBuf::new(),
        )]);
        let compiled = rulegate::compile::compile(&loaded, &FixedSecrets);
        compiled.snapshot.expect("the fuzz policy compiles")
    })
}

/// Every environment variable holds the same secret; no file exists.
struct FixedSecrets;

impl rulegate::compile::SecretStore for FixedSecrets {
    fn env(&self, _: &str) -> Option<String> {
        Some("fuzz-signing-secret".into())
    }
    fn file(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            path.display().to_string(),
        ))
    }
}

const PEERS: [[u8; 16]; 4] = [
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 5],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 9, 8, 7],
];

struct Head {
    method: String,
    target: String,
    headers: http::HeaderMap,
    peer: IpAddr,
    tls: bool,
}

fn parse(data: &[u8]) -> Option<Head> {
    let (&first, rest) = data.split_first()?;
    let text = std::str::from_utf8(rest).ok()?;
    let mut lines = text.split('\n');
    let (method, target) = lines.next()?.split_once(' ')?;
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    let peer = std::net::Ipv6Addr::from(PEERS[(first & 3) as usize]);
    let peer = peer.to_ipv4_mapped().map_or(IpAddr::V6(peer), IpAddr::V4);
    Some(Head {
        method: method.to_string(),
        target: target.trim_end_matches('\r').to_string(),
        headers,
        peer,
        tls: first & 4 != 0,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(h) = parse(data) else { return };
    let snap = snapshot();
    let env = VirtualEnv::new(1_700_000_000_000);
    env.stub_authorizer(
        "ext",
        Some(Answer::Allow {
            context: vec![("user".into(), "from-the-authorizer".into())],
        }),
    );
    // what hyper hands the handler: a parsed method and target; the head is built the one way
    // serve, explain and test build it
    let Ok(method) = http::Method::from_bytes(h.method.as_bytes()) else {
        return;
    };
    let Ok(uri) = h.target.parse::<http::Uri>() else {
        return;
    };
    let arrival = Arrival {
        peer: h.peer,
        tls: h.tls,
        client_cert: false,
    };
    let mut head = RequestHead::of(&method, &uri, http::Version::HTTP_11, &h.headers, arrival);
    // no body: a signing backend's signature covers the empty one
    head.body = Some(b"");
    let d = decide(snap, &head, &env);

    // the request id is the gateway's: the one a fresh environment makes first (no service
    // here takes its id from a header)
    let own = VirtualEnv::new(0).request_id();
    assert_eq!(d.request_id, own, "the request id is not the gateway's");

    if let Err(broken) = rulegate::contract::check(snap, &d) {
        panic!("{broken}");
    }
    if let Outcome::Forward(plan) = &d.outcome {
        let (Some(s), Some(r)) = (d.service, d.route) else {
            panic!("a forward without a route")
        };
        let route = &snap.services[s].routes[r];
        let Action::Forward(f) = &route.action else {
            panic!("a forward from a route that does not forward")
        };
        let path = plan.target.split('?').next().unwrap_or("");
        if let Some(t) = &f.path {
            check_rewrite(path, t, &route.template);
        }
        check_headers(&d, &h);
        check_backend_request(snap, &d, plan, &h);
    }
});

/// The literal prefix holds, and the segment count when no variable is a rest variable.
fn check_rewrite(
    path: &str,
    t: &rulegate::policy::ast::PathTemplate,
    route_path: &rulegate::policy::ast::PathTemplate,
) {
    let prefix: Vec<&str> = t
        .segments()
        .map_while(|s| match s {
            Segment::Literal(l) => Some(l),
            _ => None,
        })
        .collect();
    let rest = route_path.segments().any(|s| matches!(s, Segment::Rest(_)));
    let count = (!rest).then_some(t.segments().count());
    let mut current = path.to_string();
    for depth in 0..12 {
        let Some(view) = backend_view(&current) else {
            return;
        };
        assert!(
            view.len() >= prefix.len() && view.iter().zip(&prefix).all(|(a, b)| a == b),
            "{path} leaves /{} after {depth} decodings: {view:?}",
            prefix.join("/")
        );
        if let Some(n) = count {
            assert_eq!(view.len(), n, "{path} after {depth} decodings: {view:?}");
        }
        match decode(&current) {
            Some(next) if next != current => current = next,
            _ => return,
        }
    }
}

/// The segments a lenient backend serves for `path`: decoded once, `\` as `/`, dot segments
/// (dots only, before any `;`) removed. `None` when the decoding is not UTF-8.
fn backend_view(path: &str) -> Option<Vec<String>> {
    let decoded = decode(path)?.replace('\\', "/");
    let mut out: Vec<String> = Vec::new();
    for seg in decoded.split('/').skip(1) {
        let name = seg.split(';').next().unwrap_or(seg);
        if name == "." {
            continue;
        }
        if !name.is_empty() && name.bytes().all(|b| b == b'.') {
            out.pop();
        } else {
            out.push(seg.to_string());
        }
    }
    Some(out)
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// What a forward of `h` to a backend at `authority` sends, as `serve` builds it.
fn forwarding<'a>(
    d: &'a rulegate::decide::Decision,
    h: &'a Head,
    authority: &'a http::HeaderValue,
) -> rulegate::server::Forwarding<'a> {
    rulegate::server::Forwarding {
        d,
        client: &h.headers,
        tls: h.tls,
        authority: Some(authority),
        original_host: "",
        hops: 0,
    }
}

fn check_headers(d: &rulegate::decide::Decision, h: &Head) {
    let authority = http::HeaderValue::from_static("127.0.0.1:9");
    let forwarding = forwarding(d, h, &authority);
    let up = forwarding.headers();
    // the head a forward writes holds the same values, one line each, and nothing else
    let written = forwarding.head_lines();
    let lines: Vec<&[u8]> = written.split(|b| *b == b'\n').collect();
    let framing = up.get_all(http::header::CONTENT_LENGTH).iter().count();
    assert_eq!(
        lines.len() - 1,
        up.len() - framing,
        "written lines against the map"
    );
    for line in &lines[..lines.len() - 1] {
        let line = line.strip_suffix(b"\r").expect("a line ends with CRLF");
        assert!(!line.contains(&b'\r'), "a CR inside a written line");
        let at = line
            .windows(2)
            .position(|w| w == b": ")
            .expect("name: value");
        let name = std::str::from_utf8(&line[..at]).expect("a name");
        assert!(
            up.get_all(name)
                .iter()
                .any(|v| v.as_bytes() == &line[at + 2..]),
            "{name} written but not in the map"
        );
    }
    let id_name = rulegate::dialect::request_id_header(d.dialect);
    let ids: Vec<_> = up.get_all(id_name).iter().collect();
    assert_eq!(ids.len(), 1, "request-id headers upstream: {ids:?}");
    assert_eq!(ids[0].as_bytes(), d.request_id.as_bytes());
    let context = d.authorizer_context.clone().unwrap_or_default();
    for (name, value) in &up {
        if let Some(key) = name.as_str().strip_prefix("x-authorizer-") {
            assert!(
                context
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case(key) && v.as_bytes() == value.as_bytes()),
                "{name}: {value:?} did not come from the authorizer"
            );
        }
    }
    let xff = up
        .get(http::header::HeaderName::from_static("x-forwarded-for"))
        .expect("X-Forwarded-For upstream");
    let peer = rulegate::compile::canonical_ip(h.peer).to_string();
    assert!(
        xff.as_bytes().ends_with(peer.as_bytes()),
        "X-Forwarded-For {xff:?} does not end with the peer {peer}"
    );
}

fn check_backend_request(
    snap: &Snapshot,
    d: &rulegate::decide::Decision,
    plan: &rulegate::decide::ForwardPlan,
    h: &Head,
) {
    let Some(shaped) = &plan.shaped else { return };
    let authority = http::HeaderValue::from_static("127.0.0.1:9");
    let mut up = forwarding(d, h, &authority).headers();
    assert!(
        up.get("cookie").is_none(),
        "a removed Cookie reached the backend"
    );
    for name in ["x-tenant", "x-zone"] {
        let sent = up.get_all(name).iter().count();
        let mapped = shaped.headers.iter().filter(|(n, _)| n == name).count();
        assert_eq!(sent, mapped, "{name}: {sent} sent, {mapped} mapped");
    }
    let backend = &snap.services[d.service.unwrap()].backends[plan.backend];
    if backend.signer.is_none() {
        return;
    }
    rulegate::server::sign(plan, backend, &h.method, &mut up).expect("a signature");
    let auth: Vec<_> = up.get_all("authorization").iter().collect();
    assert_eq!(auth.len(), 1, "authorization headers: {auth:?}");
    assert!(auth[0]
        .as_bytes()
        .starts_with(b"SDK-HMAC-SHA256 Access=fuzz-gateway, SignedHeaders="));
    assert_eq!(up.get_all("x-sdk-date").iter().count(), 1);
    assert!(up.get("x-sdk-content-sha256").is_none());
}
