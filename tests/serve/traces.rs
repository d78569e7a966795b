//! W3C trace context over real sockets: what the backend receives as `traceparent` and
//! `tracestate`, the access line's `trace`, and the spans `serve --otlp` exports to a real
//! OTLP/HTTP receiver (a Python one decoding with opentelemetry-proto, started here).

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn traces_policy(main: &str) -> TempDir {
    let dir = TempDir::new();
    dir.write("shop.policy", &fixture("traces.policy", &[("MAIN", main)]));
    dir
}

/// The `traceparent` a backend received, split: (version, trace id, parent id, flags).
fn fields(traceparent: &str) -> (String, String, String, String) {
    let f: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(f.len(), 4, "{traceparent}");
    (f[0].into(), f[1].into(), f[2].into(), f[3].into())
}

#[test]
fn a_valid_traceparent_is_continued_with_the_gateway_as_parent_and_its_tracestate_kept() {
    let backend = Backend::text("ok");
    let dir = traces_policy(&backend.url());
    let gw = Gateway::start(dir.path());
    let r = gw.send(&request(
        "GET",
        "/api/items?x=1",
        "shop.test",
        &[
            ("traceparent", VALID),
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
        b"",
    ));
    expect_status(&r, 200);
    let id = r.header("x-request-id").unwrap().to_string();
    let got = &backend.wait_for(1)[0];
    let (version, trace, parent, flags) = fields(got.header("traceparent").unwrap());
    assert_eq!(
        (version.as_str(), trace.as_str(), flags.as_str()),
        ("00", TRACE, "01")
    );
    // the gateway's span, not the client's: the request id's last 16 hex digits
    assert_ne!(parent, "00f067aa0ba902b7");
    assert_eq!(parent, id[16..]);
    assert_eq!(
        got.header("tracestate"),
        Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    );
    let headers: Vec<&str> = got.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        headers.iter().filter(|k| **k == "traceparent").count(),
        1,
        "{headers:?}"
    );
    assert_eq!(gw.access_line(&id)["trace"], TRACE);

    // not sampled by the client: not sampled at the backend either
    let unsampled = VALID.replace("-01", "-00");
    gw.send(&request(
        "GET",
        "/api/items",
        "shop.test",
        &[("traceparent", &unsampled)],
        b"",
    ));
    let got = &backend.wait_for(2)[1];
    let (_, trace, _, flags) = fields(got.header("traceparent").unwrap());
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "00"));
}

#[test]
fn an_absent_invalid_duplicated_or_uppercase_traceparent_starts_a_new_trace() {
    let backend = Backend::text("ok");
    let dir = traces_policy(&backend.url());
    let gw = Gateway::start(dir.path());
    let upper = VALID.to_uppercase();
    let spaced = VALID.replacen('-', " -", 1);
    let long = "a".repeat(10_000);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("absent", vec![("tracestate", "rojo=1")]),
        (
            "uppercase",
            vec![("traceparent", &upper), ("tracestate", "rojo=1")],
        ),
        (
            "duplicated",
            vec![
                ("traceparent", VALID),
                ("traceparent", VALID),
                ("tracestate", "rojo=1"),
            ],
        ),
        (
            "spaced",
            vec![("traceparent", &spaced), ("tracestate", "rojo=1")],
        ),
        (
            "long",
            vec![("traceparent", &long), ("tracestate", "rojo=1")],
        ),
        (
            "all-zero trace",
            vec![(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )],
        ),
        (
            "version ff",
            vec![(
                "traceparent",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
        ),
    ];
    for (n, (what, headers)) in cases.iter().enumerate() {
        let r = gw.send(&request("GET", "/api/x", "shop.test", headers, b""));
        expect_status(&r, 200);
        let id = r.header("x-request-id").unwrap().to_string();
        let got = &backend.wait_for(n + 1)[n];
        // a new trace: the request id's bits, the gateway's span its last 16 hex digits
        assert_eq!(
            got.header("traceparent"),
            Some(format!("00-{id}-{}-01", &id[16..]).as_str()),
            "{what}"
        );
        assert_eq!(
            got.header("tracestate"),
            None,
            "{what}: dropped with the trace"
        );
        assert_eq!(gw.access_line(&id)["trace"], id.as_str(), "{what}");
    }
}

/// The Python receiver, killed (and so also woken from SIGSTOP) on drop.
struct Receiver {
    child: std::process::Child,
    out: std::path::PathBuf,
    url: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    /// Start `otlp_receiver.py` on a free loopback port; `None` when python3 or
    /// opentelemetry-proto is missing.
    fn start(dir: &TempDir) -> Option<Receiver> {
        let found = crate::prereq::python_imports(
            "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
        );
        let what = "python3's opentelemetry-proto";
        let how = "pip install opentelemetry-proto";
        if !crate::prereq::present(found, "RULEGATE_INTEROP", what, how) {
            return None;
        }
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/serve/fixtures/otlp_receiver.py"
        );
        let out = dir.path().join("spans.jsonl");
        let addr = free_addr();
        let child = Command::new("python3")
            .arg(script)
            .arg(addr.port().to_string())
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let receiver = Receiver {
            child,
            out,
            url: format!("http://{addr}/v1/traces"),
        };
        poll(WAIT, "the OTLP receiver to listen", || {
            std::net::TcpStream::connect(addr).ok()
        });
        Some(receiver)
    }

    fn spans(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn span_of(&self, trace_id: &str) -> serde_json::Value {
        poll(WAIT, &format!("the span of trace {trace_id}"), || {
            self.spans().into_iter().find(|s| s["trace_id"] == trace_id)
        })
    }

    fn raw(&self) -> Vec<u8> {
        std::fs::read(self.out.with_extension("jsonl.raw")).unwrap_or_default()
    }
}

fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

#[test]
fn spans_arrive_at_a_real_otlp_receiver_without_secrets_and_a_stuck_one_never_delays_requests() {
    let spans_dir = TempDir::new();
    let Some(mut receiver) = Receiver::start(&spans_dir) else {
        return;
    };
    let backend = Backend::text("ok");
    let dir = traces_policy(&backend.url());
    let gw = Gateway::start_with(dir.path(), &["--otlp", &receiver.url]);

    // forwarded, continuing the client's trace
    let r = gw.send(&request(
        "GET",
        "/api/items",
        "shop.test",
        &[("traceparent", VALID), ("tracestate", "rojo=1")],
        b"",
    ));
    expect_status(&r, 200);
    let forwarded = receiver.span_of(TRACE);
    let id = r.header("x-request-id").unwrap();
    assert_eq!(forwarded["path"], "/v1/traces");
    assert_eq!(forwarded["content_type"], "application/x-protobuf");
    assert_eq!(forwarded["resource"]["service.name"], "rulegate");
    assert_eq!(forwarded["name"], "GET /api/{rest+}");
    assert_eq!(forwarded["kind"], 2, "SERVER");
    assert_eq!(forwarded["span_id"], id[16..]);
    assert_eq!(forwarded["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(
        forwarded["trace_state"], "",
        "a header value, never exported"
    );
    assert_eq!(forwarded["status"], 0);
    let a = &forwarded["attributes"];
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["url.path"], "/api/items");
    assert_eq!(a["http.route"], "GET /api/{rest+}");
    assert_eq!(a["http.response.status_code"], 200);
    assert_eq!(a["server.address"], "shop.test");
    assert_eq!(a["rulegate.service"], "shop");
    assert_eq!(a["rulegate.step"], "action");
    assert!(a["rulegate.upstream.duration_ms"].as_f64().is_some(), "{a}");
    assert!(a.get("rulegate.code").is_none(), "{a}");
    let (start, end) = (forwarded["start"].as_u64(), forwarded["end"].as_u64());
    assert!(start.unwrap() > 0 && start <= end, "{forwarded}");

    // a trace the client does not sample is not exported (the refused request's span below
    // is queued after it: had it been exported, it would be there first)
    let unsampled = "00-11111111111111111111111111111111-00f067aa0ba902b7-00";
    let r = gw.send(&request(
        "GET",
        "/api/items",
        "shop.test",
        &[("traceparent", unsampled)],
        b"",
    ));
    expect_status(&r, 200);

    // refused by a check, with Huawei's code: a new trace, the request id's
    let r = gw.send(&request("GET", "/private", "shop.test", &[], b""));
    expect_status(&r, 403);
    let id = r.header("x-request-id").unwrap().to_string();
    let refused = receiver.span_of(&id);
    assert_eq!(refused["parent_span_id"], "");
    assert_eq!(refused["attributes"]["rulegate.step"], "client-ip");
    assert!(
        refused["attributes"]["rulegate.code"]
            .as_str()
            .is_some_and(|c| c.starts_with("APIG.")),
        "{refused}"
    );
    assert!(refused["attributes"]
        .get("rulegate.upstream.duration_ms")
        .is_none());
    let traces: Vec<String> = receiver
        .spans()
        .iter()
        .map(|s| s["trace_id"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        !traces.contains(&unsampled[3..35].to_string()),
        "{traces:?}"
    );

    // unrouted, with an API key in the query and credentials in a header
    let r = gw.send(&request(
        "GET",
        "/nowhere?apikey=SECRET-KEY-42",
        "shop.test",
        &[("Authorization", "Basic QUxBRERJTjpPUEVOU0VTQU1F")],
        b"",
    ));
    expect_status(&r, 404);
    let id = r.header("x-request-id").unwrap().to_string();
    let unrouted = receiver.span_of(&id);
    assert_eq!(unrouted["name"], "unrouted");
    assert_eq!(unrouted["attributes"]["url.path"], "/nowhere");
    assert_eq!(unrouted["attributes"]["rulegate.step"], "routing");
    let raw = receiver.raw();
    for secret in [
        "SECRET-KEY-42",
        "apikey",
        "QUxBRERJTjpPUEVOU0VTQU1F",
        "rojo",
    ] {
        assert!(
            find(&raw, secret.as_bytes()).is_none(),
            "{secret} was exported"
        );
    }
    assert!(metric(&gw.metrics(), "rulegate_otlp_spans_exported_total") >= 3);

    // A receiver that hangs: requests stay fast, and the spans that do not fit are dropped.
    signal_pid(receiver.child.id() as i32, 19); // SIGSTOP
    let mut conn = gw.conn();
    let mock = request("GET", "/mock", "shop.test", &[], b"");
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    let n = 3_000;
    for _ in 0..n {
        let t = Instant::now();
        let r = conn.round_trip(&mock).expect("an answer");
        assert_eq!(r.status, 200);
        slowest = slowest.max(t.elapsed());
    }
    let total = started.elapsed();
    eprintln!("{n} requests with the receiver stopped: {total:?} in all, the slowest {slowest:?}");
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
    let metrics = gw.metrics();
    assert!(
        metric(&metrics, "rulegate_otlp_spans_dropped_total") > 0,
        "{metrics}"
    );
    signal_pid(receiver.child.id() as i32, 18); // SIGCONT
    let _ = receiver.child.kill();
}
