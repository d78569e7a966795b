//! Counters for `/metrics` (Prometheus text format), kept lock-free on the request path.

use dashmap::DashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// (service, route, status, vendor code) by address; `None` labels are address 0 and print
/// as `-`.
///
/// Identity is the labels' addresses, not their text: a snapshot shares one `Arc<str>` per
/// service and route name and the codes are the catalogue's statics, so hashing four words
/// finds the counter, and looking it up takes no reference count. The counter keeps the
/// labels themselves, so an address in the map is never freed and reused for other text.
/// After a reload the same name has a new address and gets a new counter; `render` adds
/// counters with the same text together.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key(usize, usize, u16, usize);

impl Key {
    fn of(service: Option<&Arc<str>>, route: Option<&Arc<str>>, status: u16, code: &str) -> Key {
        let address = |l: Option<&Arc<str>>| l.map_or(0, |l| Arc::as_ptr(l) as *const u8 as usize);
        Key(
            address(service),
            address(route),
            status,
            code.as_ptr() as usize,
        )
    }
}

/// One counter of [`Metrics::request`]'s, with the labels its key stands for.
struct Counter {
    service: Option<Arc<str>>,
    route: Option<Arc<str>>,
    status: u16,
    code: &'static str,
    n: AtomicU64,
}

/// [`Key`]s are addresses and small numbers no client chooses: the pool's word hasher, not
/// SipHash.
type WordHash = super::pool::PolicyKeys;

#[derive(Default)]
pub struct Metrics {
    /// (service, route, status, code) → count
    requests: DashMap<Key, Counter, WordHash>,
    /// Requests by latency, one bucket each: under each of [`BUCKETS`], and the last for those
    /// above every bound. Their total is the histogram's count (read with the buckets, so a
    /// scrape never sees a count that disagrees with its `+Inf` bucket).
    latency_buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of latencies in microseconds.
    latency_sum_us: AtomicU64,
    /// canonical reason (snake case) → count
    upstream_errors: DashMap<String, AtomicU64>,
    /// The span exporter's counts, with `--otlp`.
    pub otlp: std::sync::OnceLock<Arc<super::otlp::Counters>>,
}

impl Metrics {
    pub fn request(
        &self,
        service: Option<&Arc<str>>,
        route: Option<&Arc<str>>,
        status: u16,
        code: &'static str,
        seconds: f64,
    ) {
        let key = Key::of(service, route, status, code);
        if let Some(c) = self.requests.get(&key) {
            c.n.fetch_add(1, Ordering::Relaxed);
        } else {
            let counter = || Counter {
                service: service.cloned(),
                route: route.cloned(),
                status,
                code,
                n: AtomicU64::new(0),
            };
            let entry = self.requests.entry(key).or_insert_with(counter);
            entry.n.fetch_add(1, Ordering::Relaxed);
        }
        let bucket = BUCKETS.iter().position(|b| seconds <= *b);
        self.latency_buckets[bucket.unwrap_or(BUCKETS.len())].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn upstream_error(&self, reason: &str) {
        self.upstream_errors
            .entry(reason.to_string())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The backends' breakers and targets as gauges, and the breakers' transitions.
    fn render_backends(out: &mut String, backends: &[crate::upstream::state::BackendView]) {
        use crate::upstream::breaker::Phase;
        out.push_str(
            "# HELP rulegate_breaker_state Each breaker's phase: 1 for the phase it is in.\n",
        );
        out.push_str("# TYPE rulegate_breaker_state gauge\n");
        for b in backends {
            let Some(phase) = b.breaker else { continue };
            let now = match phase {
                Phase::Closed => "closed",
                Phase::Open { .. } => "open",
                Phase::HalfOpen { .. } => "half-open",
            };
            for state in ["closed", "open", "half-open"] {
                let _ = writeln!(
                    out,
                    "rulegate_breaker_state{{backend=\"{}\",state=\"{state}\"}} {}",
                    escape(&b.key),
                    u8::from(state == now)
                );
            }
        }
        out.push_str("# HELP rulegate_breaker_transitions_total Breaker phase changes, by the phase entered.\n");
        out.push_str("# TYPE rulegate_breaker_transitions_total counter\n");
        for b in backends.iter().filter(|b| b.breaker.is_some()) {
            for (to, n) in ["open", "half-open", "closed"].iter().zip(b.transitions) {
                let _ = writeln!(
                    out,
                    "rulegate_breaker_transitions_total{{backend=\"{}\",to=\"{to}\"}} {n}",
                    escape(&b.key)
                );
            }
        }
        out.push_str("# HELP rulegate_target_available Whether a target takes requests (healthy, not ejected).\n");
        out.push_str("# TYPE rulegate_target_available gauge\n");
        for b in backends {
            for t in &b.targets {
                let _ = writeln!(
                    out,
                    "rulegate_target_available{{backend=\"{}\",target=\"{}\"}} {}",
                    escape(&b.key),
                    escape(&t.url),
                    u8::from(t.available)
                );
            }
        }
        out.push_str(
            "# HELP rulegate_target_requests_in_flight Requests waiting on a target's answer.\n",
        );
        out.push_str("# TYPE rulegate_target_requests_in_flight gauge\n");
        for b in backends {
            for t in &b.targets {
                let _ = writeln!(
                    out,
                    "rulegate_target_requests_in_flight{{backend=\"{}\",target=\"{}\"}} {}",
                    escape(&b.key),
                    escape(&t.url),
                    t.inflight
                );
            }
        }
    }

    pub fn render(
        &self,
        reloads_ok: u64,
        reloads_failed: u64,
        version: u64,
        backends: &[crate::upstream::state::BackendView],
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP rulegate_requests_total Requests answered, by service, route, status and vendor code.\n");
        out.push_str("# TYPE rulegate_requests_total counter\n");
        let mut rows = std::collections::BTreeMap::<_, u64>::new();
        for e in self.requests.iter() {
            let c = e.value();
            let labels = (
                c.service.as_deref().unwrap_or("-").to_string(),
                c.route.as_deref().unwrap_or("-").to_string(),
                c.status,
                c.code,
            );
            *rows.entry(labels).or_default() += c.n.load(Ordering::Relaxed);
        }
        for ((service, route, status, code), n) in rows {
            let _ = writeln!(
                out,
                "rulegate_requests_total{{service=\"{}\",route=\"{}\",status=\"{status}\",code=\"{}\"}} {n}",
                escape(&service),
                escape(&route),
                escape(code)
            );
        }
        out.push_str(
            "# HELP rulegate_request_duration_seconds Time from request to response head.\n",
        );
        out.push_str("# TYPE rulegate_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.latency_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "rulegate_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = cumulative + self.latency_buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "rulegate_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "rulegate_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "rulegate_request_duration_seconds_count {count}");
        out.push_str("# HELP rulegate_upstream_errors_total Failed forwards, by reason.\n");
        out.push_str("# TYPE rulegate_upstream_errors_total counter\n");
        let mut errors: Vec<_> = self
            .upstream_errors
            .iter()
            .map(|e| (e.key().clone(), e.value().load(Ordering::Relaxed)))
            .collect();
        errors.sort();
        for (reason, n) in errors {
            let _ = writeln!(
                out,
                "rulegate_upstream_errors_total{{reason=\"{}\"}} {n}",
                escape(&reason)
            );
        }
        out.push_str("# HELP rulegate_reloads_total Policy reloads, by result.\n");
        out.push_str("# TYPE rulegate_reloads_total counter\n");
        let _ = writeln!(out, "rulegate_reloads_total{{result=\"ok\"}} {reloads_ok}");
        let _ = writeln!(
            out,
            "rulegate_reloads_total{{result=\"failed\"}} {reloads_failed}"
        );
        out.push_str("# HELP rulegate_snapshot_version The version of the policy being served.\n");
        out.push_str("# TYPE rulegate_snapshot_version gauge\n");
        let _ = writeln!(out, "rulegate_snapshot_version {version}");
        Self::render_backends(&mut out, backends);
        if let Some(otlp) = self.otlp.get() {
            Self::render_otlp(&mut out, otlp);
        }
        out
    }

    /// The span exporter's counters: spans sent, dropped (the queue was full) and failed.
    fn render_otlp(out: &mut String, c: &super::otlp::Counters) {
        for (name, help, n) in [
            (
                "exported",
                "Spans the OTLP collector accepted.",
                &c.exported,
            ),
            (
                "dropped",
                "Spans dropped because the export queue was full.",
                &c.dropped,
            ),
            ("failed", "Spans whose export failed twice.", &c.failed),
        ] {
            let _ = writeln!(out, "# HELP rulegate_otlp_spans_{name}_total {help}");
            let _ = writeln!(out, "# TYPE rulegate_otlp_spans_{name}_total counter");
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(out, "rulegate_otlp_spans_{name}_total {n}");
        }
    }
}

/// Escape a Prometheus label value.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: &Metrics) -> String {
        m.render(0, 0, 1, &[])
    }

    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn a_request_slower_than_every_bound_counts_only_in_the_inf_bucket() {
        let m = Metrics::default();
        m.request(None, None, 200, "-", 7.0);
        m.request(None, None, 200, "-", 0.0004);
        let text = render(&m);
        let buckets = lines(&text, "rulegate_request_duration_seconds_bucket");
        assert_eq!(
            buckets.first(),
            Some(&r#"rulegate_request_duration_seconds_bucket{le="0.0005"} 1"#)
        );
        assert_eq!(
            buckets[BUCKETS.len() - 1],
            r#"rulegate_request_duration_seconds_bucket{le="5"} 1"#
        );
        assert_eq!(
            buckets.last(),
            Some(&r#"rulegate_request_duration_seconds_bucket{le="+Inf"} 2"#)
        );
        assert!(
            text.contains("rulegate_request_duration_seconds_count 2\n"),
            "{text}"
        );
        assert!(
            text.contains("rulegate_request_duration_seconds_sum 7.0004\n"),
            "{text}"
        );
    }

    #[test]
    fn the_same_names_from_two_snapshots_are_one_row() {
        let m = Metrics::default();
        let (s1, r1): (Arc<str>, Arc<str>) = ("shop".into(), "list".into());
        let (s2, r2): (Arc<str>, Arc<str>) = ("shop".into(), "list".into());
        m.request(Some(&s1), Some(&r1), 200, "-", 0.001);
        m.request(Some(&s1), Some(&r1), 200, "-", 0.001);
        m.request(Some(&s2), Some(&r2), 200, "-", 0.001);
        m.request(Some(&s2), Some(&r2), 404, "APIG.0101", 0.001);
        let text = render(&m);
        assert_eq!(
            lines(&text, "rulegate_requests_total{"),
            [
                r#"rulegate_requests_total{service="shop",route="list",status="200",code="-"} 3"#,
                r#"rulegate_requests_total{service="shop",route="list",status="404",code="APIG.0101"} 1"#,
            ]
        );
    }

    #[test]
    fn a_counter_keeps_its_names_after_the_snapshot_that_named_them_is_gone() {
        let m = Metrics::default();
        {
            let (s, r): (Arc<str>, Arc<str>) = ("old".into(), "gone".into());
            m.request(Some(&s), Some(&r), 502, "-", 0.001);
        }
        // whatever is allocated now may take the freed addresses: it is counted apart
        let (s, r): (Arc<str>, Arc<str>) = ("new".into(), "here".into());
        m.request(Some(&s), Some(&r), 502, "-", 0.001);
        let text = render(&m);
        assert_eq!(
            lines(&text, "rulegate_requests_total{"),
            [
                r#"rulegate_requests_total{service="new",route="here",status="502",code="-"} 1"#,
                r#"rulegate_requests_total{service="old",route="gone",status="502",code="-"} 1"#,
            ]
        );
    }
}
