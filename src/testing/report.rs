//! The results of a run, for people (`human`, with a coloured diff on a terminal) and for CI
//! (`json`, and `junit`, which every CI system displays).
//!
//! A failure always names the test and where it is written, the request, the pipeline step
//! that decided, and both answers: the expectation against what happened, or the snapshot
//! file against the new answer as a unified diff.

use super::{Failure, Report, RequestReport};
use similar::{ChangeTag, TextDiff};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Junit,
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
}

/// The report for a terminal or a log.
pub fn human(r: &Report, color: bool) -> String {
    let p = Paint { on: color };
    let mut out = String::new();
    for f in &r.files {
        if f.tests.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}", p.bold(&f.path.display().to_string()));
        for t in &f.tests {
            let mark = if t.failures.is_empty() {
                p.green("ok  ")
            } else {
                p.red("FAIL")
            };
            let _ = writeln!(out, "  {mark}  {}", t.name);
        }
    }
    let failed: Vec<_> = r
        .files
        .iter()
        .flat_map(|f| &f.tests)
        .filter(|t| !t.failures.is_empty())
        .collect();
    if !failed.is_empty() {
        out.push_str("\nfailures:\n");
    }
    for t in failed {
        let _ = writeln!(
            out,
            "\n{} {:?} ({})",
            p.red(&p.bold("FAIL")),
            t.name,
            t.location
        );
        for f in &t.failures {
            failure(&mut out, f, &p);
        }
    }
    out.push('\n');
    for w in &r.written {
        let _ = writeln!(out, "snapshot written: {}", w.display());
    }
    for s in &r.removed {
        let _ = writeln!(out, "stale snapshot removed: {}", s.display());
    }
    for s in &r.stale {
        let _ = writeln!(
            out,
            "stale snapshot: {} (no test writes it; `--update` removes it)",
            s.display()
        );
    }
    let (hit, all) = r.coverage.counts();
    let _ = writeln!(
        out,
        "coverage: {:.1}% of the decision tree ({hit} of {all} branches: routes reached, rejection steps taken, actions reached)",
        r.coverage.percent()
    );
    let missed = r.coverage.missed();
    if !missed.is_empty() && !r.filtered {
        out.push_str("not covered:\n");
        for m in &missed {
            let _ = writeln!(
                out,
                "  {} {} ({}): {}",
                m.service, m.route, m.location, m.branch
            );
        }
    }
    if let (true, Some(min)) = (r.coverage_failed(), r.fail_under) {
        let _ = writeln!(
            out,
            "{}",
            p.red(&format!(
                "coverage {:.1}% is under the required {min}%",
                r.coverage.percent()
            ))
        );
    }
    let (passed, failed) = r.counts();
    let verdict = if r.passed() {
        p.green("ok")
    } else {
        p.red("FAILED")
    };
    let _ = writeln!(out, "\ntest result: {verdict}");
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    out
}

fn request_lines(out: &mut String, req: &RequestReport, p: &Paint) {
    let rep = if req.repetition.1 > 1 {
        format!(" (sending {} of {})", req.repetition.0, req.repetition.1)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  request {} of {}{rep}: {}  {}",
        req.index,
        req.of,
        req.line,
        p.dim(&format!("({})", req.location))
    );
    if !req.deciding_step.is_empty() {
        let _ = writeln!(out, "  decided by: {}", req.deciding_step.trim_start());
    }
}

fn failure(out: &mut String, f: &Failure, p: &Paint) {
    match f {
        Failure::Expectations { request, failed } => {
            request_lines(out, request, p);
            for f in failed {
                let _ = writeln!(
                    out,
                    "  expect {}  {}",
                    f.what,
                    p.dim(&format!("({})", f.location))
                );
                for line in f.mismatch.expected.lines() {
                    let _ = writeln!(out, "  {}", p.red(&format!("- expected: {line}")));
                }
                for line in f.mismatch.actual.lines() {
                    let _ = writeln!(out, "  {}", p.green(&format!("+ actual:   {line}")));
                }
            }
            out.push_str("  what rulegate did:\n");
            for line in request.explain.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
        Failure::Snapshot {
            requests,
            path,
            expected,
            actual,
        } => {
            for r in requests {
                request_lines(out, r, p);
            }
            match expected {
                None => {
                    let _ = writeln!(
                        out,
                        "  no snapshot yet at {} (`rulegate test --update` writes it); the answer:",
                        path.display()
                    );
                    for line in actual.lines() {
                        let _ = writeln!(out, "  {}", p.green(&format!("+{line}")));
                    }
                }
                Some(expected) => {
                    let _ = writeln!(
                        out,
                        "  snapshot {} differs ({}, {}):",
                        path.display(),
                        p.red("- expected"),
                        p.green("+ actual")
                    );
                    diff(out, expected, actual, p);
                    out.push_str("  if the new answer is right: rulegate test --update\n");
                }
            }
        }
        Failure::Error { request, message } => {
            request_lines(out, request, p);
            let _ = writeln!(out, "  {}", p.red(&format!("error: {message}")));
        }
    }
}

/// A unified diff with three lines of context.
fn diff(out: &mut String, expected: &str, actual: &str, p: &Paint) {
    let d = TextDiff::from_lines(expected, actual);
    for group in d.grouped_ops(3) {
        let (first, last) = (&group[0], &group[group.len() - 1]);
        let old = first.old_range().start..last.old_range().end;
        let new = first.new_range().start..last.new_range().end;
        let _ = writeln!(
            out,
            "  {}",
            p.dim(&format!(
                "@@ -{},{} +{},{} @@",
                old.start + 1,
                old.len(),
                new.start + 1,
                new.len()
            ))
        );
        for op in &group {
            for change in d.iter_changes(op) {
                let line = change.value().trim_end_matches('\n');
                let _ = match change.tag() {
                    ChangeTag::Equal => writeln!(out, "   {line}"),
                    ChangeTag::Delete => writeln!(out, "  {}", p.red(&format!("-{line}"))),
                    ChangeTag::Insert => writeln!(out, "  {}", p.green(&format!("+{line}"))),
                };
            }
        }
    }
}

/// The report as one JSON document.
pub fn json(r: &Report) -> String {
    use serde_json::json;
    let request = |q: &RequestReport| {
        json!({
            "index": q.index,
            "sending": q.repetition.0,
            "request": q.line,
            "location": q.location,
            "decided_by": q.deciding_step.trim_start(),
            "explain": q.explain,
        })
    };
    let failure = |f: &Failure| match f {
        Failure::Expectations { request: q, failed } => json!({
            "kind": "expectation",
            "request": request(q),
            "failed": failed.iter().map(|f| json!({
                "expect": f.what,
                "location": f.location,
                "expected": f.mismatch.expected,
                "actual": f.mismatch.actual,
            })).collect::<Vec<_>>(),
        }),
        Failure::Snapshot {
            requests,
            path,
            expected,
            actual,
        } => json!({
            "kind": if expected.is_some() { "snapshot changed" } else { "snapshot missing" },
            "snapshot": path.display().to_string(),
            "expected": expected,
            "actual": actual,
            "requests": requests.iter().map(request).collect::<Vec<_>>(),
        }),
        Failure::Error {
            request: q,
            message,
        } => json!({
            "kind": "error",
            "message": message,
            "request": request(q),
        }),
    };
    let tests: Vec<_> = r
        .files
        .iter()
        .flat_map(|f| {
            f.tests.iter().map(move |t| {
                json!({
                    "file": f.path.display().to_string(),
                    "name": t.name,
                    "location": t.location,
                    "passed": t.failures.is_empty(),
                    "failures": t.failures.iter().map(failure).collect::<Vec<_>>(),
                })
            })
        })
        .collect();
    let (passed, failed) = r.counts();
    let (hit, all) = r.coverage.counts();
    let doc = json!({
        "passed": passed,
        "failed": failed,
        "ok": r.passed(),
        "tests": tests,
        "snapshots": {
            "written": r.written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "stale": r.stale.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "removed": r.removed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        },
        "coverage": {
            "percent": (r.coverage.percent() * 10.0).round() / 10.0,
            "covered": hit,
            "branches": all,
            "fail_under": r.fail_under,
            "missed": r.coverage.missed(),
        },
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

/// JUnit XML: one `testsuite` per tests file, one `testcase` per test.
pub fn junit(r: &Report) -> String {
    let (passed, failed) = r.counts();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"rulegate test\" tests=\"{}\" failures=\"{failed}\" errors=\"0\">",
        passed + failed
    );
    for f in &r.files {
        let file = f.path.display().to_string();
        let failures = f.tests.iter().filter(|t| !t.failures.is_empty()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">",
            xml(&file),
            f.tests.len()
        );
        for t in &f.tests {
            let line = t.location.rsplit(':').nth(1).unwrap_or("0").to_string();
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" line=\"{}\"",
                xml(&file),
                xml(&t.name),
                xml(&file),
                xml(&line)
            );
            if t.failures.is_empty() {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            for fl in &t.failures {
                let (message, kind) = match fl {
                    Failure::Expectations { failed, .. } => (
                        failed
                            .iter()
                            .map(|f| {
                                format!(
                                    "expect {}: expected {}, got {}",
                                    f.what, f.mismatch.expected, f.mismatch.actual
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                        "expectation",
                    ),
                    Failure::Snapshot { path, expected, .. } => (
                        format!(
                            "snapshot {} {}",
                            path.display(),
                            if expected.is_some() {
                                "differs"
                            } else {
                                "is missing"
                            }
                        ),
                        "snapshot",
                    ),
                    Failure::Error { message, .. } => (message.clone(), "error"),
                };
                let mut body = String::new();
                failure(&mut body, fl, &Paint { on: false });
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\" type=\"{kind}\">{}</failure>",
                    xml(&message),
                    xml(&body)
                );
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Escape text for an XML attribute or element; characters XML 1.0 cannot carry are dropped.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn xml_escapes_markup_and_drops_control_characters() {
        assert_eq!(
            super::xml("a<b>&\"c\"\x1b[0m"),
            "a&lt;b&gt;&amp;&quot;c&quot;[0m"
        );
    }
}
