//! `rulegate test`: policy tests that users run in their CI.
//!
//! Tests live beside the policies in `.tests` files ([`format`]); each request goes through
//! the same `decide` and the same response rendering as `serve` ([`run`]), on a virtual clock
//! with in-memory counters, so sequences against rate limits and quotas are exact and
//! reproducible. Whole answers can be pinned as reviewable snapshot files ([`snapshot`]); the
//! run measures which routes and rejection branches the tests reached ([`coverage`]) and is
//! reported for people or for CI ([`report`]). Hermetic: the policy set and its secrets are
//! read, nothing is sent anywhere, and only `--update` writes files.

pub mod backends;
pub mod coverage;
pub mod format;
pub mod report;
pub mod run;
pub mod sign;
pub mod snapshot;

use crate::compile::{compile, ProcessSecrets, Snapshot};
use crate::decide::VirtualEnv;
use crate::policy::{self, diag};
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub use coverage::Coverage;
pub use report::Format;

/// What `rulegate test` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    pub update: bool,
    /// Run only tests whose name contains this.
    pub filter: Option<String>,
    pub format: Format,
    pub fail_under: Option<f64>,
    pub color: bool,
}

/// Everything a run found, for the reporters.
#[derive(Debug, Default)]
pub struct Report {
    pub files: Vec<FileReport>,
    pub written: Vec<PathBuf>,
    /// Snapshot files no test uses (only looked for when no filter narrows the run).
    pub stale: Vec<PathBuf>,
    /// Stale snapshot files `--update` removed.
    pub removed: Vec<PathBuf>,
    pub coverage: Coverage,
    pub fail_under: Option<f64>,
    /// A filter narrowed the run: coverage gaps are those of the tests that ran, not listed.
    pub filtered: bool,
}

impl Report {
    pub fn counts(&self) -> (usize, usize) {
        let tests = self.files.iter().flat_map(|f| &f.tests);
        let failed = tests.clone().filter(|t| !t.failures.is_empty()).count();
        (tests.count() - failed, failed)
    }

    pub fn coverage_failed(&self) -> bool {
        self.fail_under
            .is_some_and(|min| self.coverage.percent() + 1e-9 < min)
    }

    pub fn passed(&self) -> bool {
        self.counts().1 == 0 && !self.coverage_failed()
    }
}

#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub tests: Vec<TestReport>,
}

#[derive(Debug)]
pub struct TestReport {
    pub name: String,
    /// `file:line:col` of the `test` keyword.
    pub location: String,
    pub failures: Vec<Failure>,
}

/// Which request of a test, and what the gateway did with it.
#[derive(Debug, Clone)]
pub struct RequestReport {
    /// 1-based, and of how many requests the test sends.
    pub index: usize,
    pub of: usize,
    /// 1-based sending of a request written with `times N`, and N.
    pub repetition: (u32, u32),
    /// `GET http://localhost/orders/42`
    pub line: String,
    pub location: String,
    /// The trace's last step, as `explain` prints it.
    pub deciding_step: String,
    /// The `explain` text.
    pub explain: String,
}

#[derive(Debug)]
pub enum Failure {
    /// Expectations of one request that did not hold.
    Expectations {
        request: RequestReport,
        failed: Vec<Failed>,
    },
    Snapshot {
        requests: Vec<RequestReport>,
        path: PathBuf,
        /// `None`: there is no snapshot file yet.
        expected: Option<String>,
        actual: String,
    },
    /// The test cannot run against this policy (e.g. it signs as an app the service lacks).
    Error {
        request: RequestReport,
        message: String,
    },
}

/// One `expect` statement that did not hold.
#[derive(Debug)]
pub struct Failed {
    /// `file:line:col` of the statement.
    pub location: String,
    /// `status 200`, `header Retry-After: 12`, …
    pub what: String,
    pub mismatch: run::Mismatch,
}

/// Run `rulegate test`; prints the report and returns the exit code: 0 all passed, 1 a test
/// failed (or the policy, a test file or the coverage threshold did), 2 nothing was tested.
pub fn cli(opts: &Options) -> u8 {
    // A `.tests` file given alone is tested against the policy set of its directory.
    let policy_paths: Vec<PathBuf> = opts
        .paths
        .iter()
        .map(|p| match p.extension() {
            Some(e) if e == "tests" => p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            _ => p.clone(),
        })
        .collect();
    let loaded = match load_relative(&policy_paths) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rulegate: {e}");
            return 2;
        }
    };
    let test_files = match test_files(&opts.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rulegate: {e}");
            return 2;
        }
    };
    if test_files.is_empty() {
        eprintln!(
            "rulegate: nothing was tested: no .tests files under {}",
            policy::display_paths(&opts.paths)
        );
        return 2;
    }
    if loaded.sources.is_empty() {
        eprintln!(
            "rulegate: no .policy files under {} to test",
            policy::display_paths(&opts.paths)
        );
        return 2;
    }
    let compiled = compile(&loaded, &ProcessSecrets);
    let Some(snap) = compiled
        .snapshot
        .filter(|_| !diag::has_errors(&compiled.diagnostics))
    else {
        // Reported as `check` reports them, with the paths as given.
        if let Ok(full) = policy::load(&policy_paths) {
            let compiled = compile(&full, &ProcessSecrets);
            eprint!(
                "{}",
                diag::render_human(&full.sources, &compiled.diagnostics, opts.color)
            );
        }
        eprintln!("rulegate: the policy does not compile; no test was run");
        return 1;
    };
    // Every test file is parsed before any test runs: a broken file is reported whole.
    let mut sources = diag::Sources::new();
    let mut parsed = Vec::new();
    let mut diags = Vec::new();
    for path in &test_files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("rulegate: {}: {e}", path.display());
                return 2;
            }
        };
        let id = sources.add(path.display().to_string(), text);
        let (file, d) = format::parse(id, sources.text(id));
        diags.extend(d);
        parsed.push((path.clone(), id, file));
    }
    if !diags.is_empty() {
        diag::sort(&mut diags);
        eprint!("{}", diag::render_human(&sources, &diags, opts.color));
        eprintln!(
            "rulegate: {} in the test files; no test was run",
            plural(diags.len(), "error")
        );
        return 1;
    }
    let report = run_all(&snap, &sources, &parsed, opts);
    if report.files.iter().all(|f| f.tests.is_empty()) {
        eprintln!(
            "rulegate: nothing was tested: no test matches {:?}",
            opts.filter.as_deref().unwrap_or("")
        );
        return 2;
    }
    let text = match opts.format {
        Format::Human => report::human(&report, opts.color),
        Format::Json => report::json(&report),
        Format::Junit => report::junit(&report),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    if report.passed() {
        0
    } else {
        1
    }
}

/// Run every parsed test file against the snapshot.
pub fn run_all(
    snap: &Snapshot,
    sources: &diag::Sources,
    files: &[(PathBuf, u32, format::TestFile)],
    opts: &Options,
) -> Report {
    let mut report = Report {
        coverage: Coverage::of(snap),
        fail_under: opts.fail_under,
        filtered: opts.filter.is_some(),
        ..Report::default()
    };
    for (path, _, file) in files {
        let mut used = Vec::new();
        let mut tests = Vec::new();
        for t in &file.tests {
            if opts.filter.as_deref().is_some_and(|f| !t.name.contains(f)) {
                continue;
            }
            let snap_path = snapshot::path_of(path, &format::slug(&t.name));
            if t.snapshots() {
                used.push(snap_path.clone());
            }
            let failures = run_test(snap, sources, path, t, &snap_path, opts, &mut report);
            tests.push(TestReport {
                name: t.name.clone(),
                location: sources.location(t.span),
                failures,
            });
        }
        if opts.filter.is_none() {
            for stale in snapshot::stale(&snapshot::dir_of(path), &used) {
                if opts.update && std::fs::remove_file(&stale).is_ok() {
                    report.removed.push(stale);
                } else {
                    report.stale.push(stale);
                }
            }
        }
        report.files.push(FileReport {
            path: path.clone(),
            tests,
        });
    }
    report
}

#[allow(clippy::too_many_arguments)]
fn run_test(
    snap: &Snapshot,
    sources: &diag::Sources,
    path: &Path,
    t: &format::Test,
    snap_path: &Path,
    opts: &Options,
    report: &mut Report,
) -> Vec<Failure> {
    // Each test starts from a fresh world: its own clock, request ids and counters.
    let world = VirtualEnv::new(0);
    let mut scripted = backends::Backends::default();
    let mut snapshotted = Vec::new();
    let mut requests = Vec::new();
    let of = t.exchanges.len();
    for (i, e) in t.exchanges.iter().enumerate() {
        for k in 0..e.times {
            let request = |sent: Option<&run::Sent>| RequestReport {
                index: i + 1,
                of,
                repetition: (k + 1, e.times),
                line: format!("{} {}", e.method, e.url),
                location: sources.location(e.span),
                deciding_step: sent.map(|s| s.deciding_step()).unwrap_or_default(),
                explain: sent.map(|s| s.explain.clone()).unwrap_or_default(),
            };
            let at = e.at_ms + e.every_ms * i64::from(k);
            let scripts = if k == 0 { e.backends.as_slice() } else { &[] };
            let sent = match run::send(snap, e, at, &world, &mut scripted, scripts) {
                Ok(s) => s,
                Err(message) => {
                    return vec![Failure::Error {
                        request: request(None),
                        message,
                    }]
                }
            };
            report.coverage.record(snap, &sent.decision);
            let failed: Vec<Failed> = e
                .expects
                .iter()
                .filter_map(|x| {
                    run::judge(snap, &x.what, &sent).map(|mismatch| Failed {
                        location: sources.location(x.span),
                        what: x.what.to_string(),
                        mismatch,
                    })
                })
                .collect();
            // A sequence stops at its first failing request: what follows depends on it.
            if !failed.is_empty() {
                return vec![Failure::Expectations {
                    request: request(Some(&sent)),
                    failed,
                }];
            }
            if e.snapshot {
                snapshotted.push(sent.explain.clone());
                requests.push(request(Some(&sent)));
            }
        }
    }
    if snapshotted.is_empty() {
        return Vec::new();
    }
    let actual = snapshot::document(path, &t.name, &snapshotted);
    let expected = match snapshot::compare(snap_path, &actual) {
        snapshot::Verdict::Same => return Vec::new(),
        snapshot::Verdict::New => None,
        snapshot::Verdict::Changed(old) => Some(old),
    };
    if opts.update {
        let written = snap_path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(snap_path, &actual));
        if written.is_ok() {
            report.written.push(snap_path.to_path_buf());
            return Vec::new();
        }
    }
    vec![Failure::Snapshot {
        requests,
        path: snap_path.to_path_buf(),
        expected,
        actual,
    }]
}

/// The policy set with each file named relative to the directory it was found under
/// (`shop.policy`, `sub/x.policy`), so the route locations in traces, and so the snapshots,
/// are the same wherever the policies are copied and however the path is written.
pub fn load_relative(paths: &[PathBuf]) -> Result<policy::Loaded, policy::LoadError> {
    let mut texts = Vec::new();
    for f in policy::policy_files(paths)? {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| policy::LoadError(format!("{}: {e}", f.display())))?;
        let base = paths.iter().find(|p| p.is_dir() && f.starts_with(p));
        let relative = match base {
            Some(b) => f.strip_prefix(b).unwrap_or(&f).to_path_buf(),
            None => f
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| f.clone()),
        };
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
        texts.push((name, text, dir));
    }
    Ok(policy::parse_texts(texts))
}

/// The `.tests` files of the given paths: every one under a directory, a `.tests` file as
/// given, and the sibling `NAME.tests` of a `NAME.policy` file.
pub fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, policy::LoadError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(policy::files_under(p, "tests")?);
        } else if p.extension().is_some_and(|e| e == "tests") {
            out.push(p.clone());
        } else {
            let sibling = p.with_extension("tests");
            if sibling.is_file() {
                out.push(sibling);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

pub(crate) fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
