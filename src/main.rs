//! The `rulegate` command line.
//!
//! Every result goes to standard output through `outln!`/`out!`: a reader that goes away
//! (`rulegate errors | head`) ends the command quietly, as it ends `cat`, where `println!`
//! would panic. Clippy's `print_stdout` keeps it that way.

#![deny(clippy::print_stdout)]

use clap::{Parser, Subcommand, ValueEnum};
use rulegate::compile::{compile, Compiled, ProcessSecrets};
use rulegate::dialect::gateway_response::ResponseType;
use rulegate::policy::{self, diag};
use rulegate::vocab::Dialect;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `print!` that ends the command quietly when the reader has gone (see the module doc).
macro_rules! out {
    ($($arg:tt)*) => {
        write_out(format_args!($($arg)*))
    };
}

/// `println!` that ends the command quietly when the reader has gone.
macro_rules! outln {
    () => {
        write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Write to standard output. A closed pipe (EPIPE) exits at once with status 0 and no
/// message: the reader has what it wanted. Any other failure is reported, status 1.
fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("rulegate: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

#[derive(Parser)]
#[command(
    name = "rulegate",
    version,
    about = "An API gateway whose behaviour is a policy language"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check policy files: every diagnostic at once. Exit 0 valid, 1 invalid, 2 usage.
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Also print the compiled decision tree.
        #[arg(long)]
        print_tree: bool,
    },
    /// Run one request through the pipeline; print every step and the exact response.
    Explain {
        /// A policy file or directory.
        path: PathBuf,
        /// The request method, e.g. GET.
        method: String,
        /// `http://host/path?query`, or `/path?query` with `-H 'Host: …'`.
        url: String,
        /// A request header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The request body; `@FILE` reads a file.
        #[arg(long)]
        data: Option<String>,
        /// The client's address (the TCP peer).
        #[arg(long, default_value = "127.0.0.1")]
        client_ip: IpAddr,
        /// The time of the request, RFC 3339 (default: now).
        #[arg(long)]
        at: Option<String>,
        /// The request arrives over TLS with a verified client certificate.
        #[arg(long)]
        client_cert: bool,
    },
    /// Format policy files in place (canonical, idempotent, comments kept).
    Fmt {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Change nothing; list files that are not formatted and exit 1 if any.
        #[arg(long)]
        check: bool,
    },
    /// Run the gateway on a policy directory; reloads when a file changes or on SIGHUP.
    Serve {
        #[arg(default_value = "policies")]
        policy_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Also serve HTTPS here (TLS 1.2 and 1.3); needs --cert and --key.
        #[arg(long, requires_all = ["cert", "key"])]
        tls_listen: Option<SocketAddr>,
        /// PEM certificate chain for --tls-listen.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// PEM private key for --tls-listen.
        #[arg(long)]
        key: Option<PathBuf>,
        /// PEM roots to verify TLS client certificates against (for `client certificate required`).
        #[arg(long, requires = "tls_listen")]
        client_ca: Option<PathBuf>,
        /// Serve /healthz, /readyz, /config and /metrics here.
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// Access and event logs as JSON lines.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// How long SIGTERM waits for in-flight requests.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        drain: std::time::Duration,
        /// How long a client may take to send a request's headers; also how long any
        /// connection (HTTP/1 or HTTP/2, plain or TLS) may sit with no request in progress,
        /// counted from accept or from its last response. Then the connection is closed
        /// (HTTP/2: GOAWAY).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        header_timeout: std::time::Duration,
        /// How long a client may take to send a whole request body, from when the gateway
        /// starts reading it; then the request is refused with the dialect's bad-request row.
        /// The default matches a backend's default timeout, which bounded forwarded uploads
        /// already.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        body_timeout: std::time::Duration,
        /// PEM roots to trust for `https://` backends and authorizers, besides the system's
        /// (for a private CA).
        #[arg(long, value_name = "FILE")]
        backend_ca: Option<PathBuf>,
        /// Keep quota counts here (DIR/counters.redb), so a restart loses none.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Count every rate and quota in this Redis (redis://HOST:PORT/DB), shared by every
        /// gateway pointing at it. For a Redis Cluster give several seed URLs (repeat
        /// --redis) or one redis+cluster://HOST:PORT[,HOST:PORT...]; each request's counters
        /// and nonce then share one slot (the service's counter group is their hash tag).
        #[arg(long, value_name = "URL")]
        redis: Vec<String>,
        /// How long one Redis call may take (connecting and cluster redirects included) before
        /// the limit's `on store error` applies.
        #[arg(long, default_value = "200ms", value_parser = parse_duration, requires = "redis")]
        redis_timeout: std::time::Duration,
        /// Export one span per request over OTLP/HTTP (binary protobuf) to this URL, e.g.
        /// http://127.0.0.1:4318/v1/traces; batched, and never delaying a request.
        #[arg(long, value_name = "URL")]
        otlp: Option<String>,
    },
    /// Run the policy tests (`.tests` files beside the policies) on the engine `serve` runs.
    /// Exit 0 all passed, 1 a failure, 2 nothing was tested.
    Test {
        /// Policy directories or files; their `.tests` files are run against the policy set.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Write new and changed snapshots (and remove stale ones) instead of failing on them.
        #[arg(long)]
        update: bool,
        #[arg(long, value_enum, default_value_t = TestFormat::Human)]
        format: TestFormat,
        /// Run only the tests whose name contains PATTERN.
        #[arg(long, value_name = "PATTERN")]
        filter: Option<String>,
        /// Fail when the tests cover less than PERCENT of the decision tree's branches.
        #[arg(long, value_name = "PERCENT")]
        fail_under: Option<f64>,
    },
    /// Write a policy (and its tests) from another description of the API.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Which requests two policy sets answer differently: each change with a witness request
    /// and both answers. Exit 0 unchanged, 1 changed (or, with --fail-on, changed in one of
    /// those ways), 2 usage or a policy that does not compile.
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_enum, default_value = "human")]
        format: ContractFormat,
        /// Fail only on these kinds: added, removed, moved, tightened, loosened, changed.
        #[arg(long, value_name = "KINDS", value_delimiter = ',', value_parser = parse_kind)]
        fail_on: Vec<rulegate::diff::Kind>,
    },
    /// Describe a policy for other tools.
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
    /// Print the error catalogue and mark the rows rulegate can emit; with `--route` or
    /// `--service`, the error contract of a policy's routes instead.
    Errors {
        #[arg(long, value_parser = parse_dialect)]
        dialect: Option<Dialect>,
        /// Also mark the rows a service of this policy answers with its own gateway response
        /// (the policy `--route` and `--service` read).
        #[arg(long, value_name = "PATH")]
        policy: Option<PathBuf>,
        /// Every refusal the routes `METHOD /path/{var}` can answer with (the policy's own
        /// spelling of the path), derived from their compiled checks and actions.
        #[arg(long, value_name = "ROUTE", requires = "policy")]
        route: Option<String>,
        /// The error contract of every route of this service (or, with --route, the service
        /// whose route is meant).
        #[arg(long, value_name = "NAME", requires = "policy")]
        service: Option<String>,
        /// With --route or --service: `human` or `json`.
        #[arg(long, value_enum, default_value = "human")]
        format: ContractFormat,
    },
    /// A Language Server Protocol server on stdio for editors: diagnostics, hover with error
    /// rows, definitions, references, rename, completion and formatting of policy files.
    Lsp,
}

#[derive(Clone, Copy, ValueEnum)]
enum ContractFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_kind(s: &str) -> Result<rulegate::diff::Kind, String> {
    rulegate::diff::Kind::parse(s)
        .ok_or_else(|| format!("{s:?}: one of added, removed, moved, tightened, loosened, changed"))
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: expected e.g. 30s"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        _ => return Err(format!("{s:?}: the unit must be ms, s or m")),
    };
    Ok(std::time::Duration::from_millis(ms))
}

#[derive(Subcommand)]
enum ImportSource {
    /// An OpenAPI 3 or Swagger 2 document (YAML or JSON): routes, typed parameters, a mock per
    /// route from the spec's examples. Exit 0 imported, 1 the document has problems.
    Openapi {
        spec: PathBuf,
        /// Write the policy here, and its tests beside it (FILE with `.tests`); default: stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ExportTarget {
    /// An OpenAPI 3 document of one service: its servers, operations, typed parameters,
    /// security schemes and every refusal of each route's error contract. Exit 0 written,
    /// 1 the policy does not compile, 2 usage.
    Openapi {
        path: PathBuf,
        /// The service to describe (needed when the policy has several).
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// Write the document here (JSON); default: stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum TestFormat {
    Human,
    Json,
    Junit,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    Dialect::parse(s)
        .ok_or_else(|| format!("expected {}", rulegate::dialect::listed(str::to_string)))
}

/// mimalloc instead of the system allocator: a request makes a few dozen small allocations
/// (hyper's buffers, headers, the decision), and glibc's malloc and free were a fifth of the
/// gateway's instructions per request (callgrind, bench/README.md). Its v2 allocator (the
/// `v2` feature): the crate sends every allocation through `mi_malloc_aligned`, which v3
/// serves for hyper's 8 KiB read buffers by over-allocating on a slow path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            paths,
            format,
            print_tree,
        } => check(&paths, format, print_tree),
        Command::Explain {
            path,
            method,
            url,
            headers,
            data,
            client_ip,
            at,
            client_cert,
        } => explain(
            path,
            &method,
            &url,
            &headers,
            data,
            client_ip,
            at,
            client_cert,
        ),
        Command::Errors {
            policy: Some(policy),
            route,
            service,
            format,
            ..
        } if route.is_some() || service.is_some() => {
            contracts(policy, route.as_deref(), service.as_deref(), format)
        }
        Command::Errors {
            dialect, policy, ..
        } => errors(dialect, policy),
        Command::Diff {
            old,
            new,
            format,
            fail_on,
        } => diff(old, new, format, &fail_on),
        Command::Export {
            target:
                ExportTarget::Openapi {
                    path,
                    service,
                    output,
                },
        } => export_openapi(path, service.as_deref(), output.as_deref()),
        Command::Import {
            source: ImportSource::Openapi { spec, output },
        } => ExitCode::from(rulegate::import::openapi_cli(
            &spec,
            output.as_deref(),
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        )),
        Command::Test {
            paths,
            update,
            format,
            filter,
            fail_under,
        } => {
            use rulegate::testing::{cli, Format as F, Options};
            // Colour on a terminal only; NO_COLOR wins, CLICOLOR_FORCE forces it in a CI log.
            let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0");
            let color =
                !set("NO_COLOR") && (set("CLICOLOR_FORCE") || std::io::stdout().is_terminal());
            ExitCode::from(cli(&Options {
                paths,
                update,
                filter,
                format: match format {
                    TestFormat::Human => F::Human,
                    TestFormat::Json => F::Json,
                    TestFormat::Junit => F::Junit,
                },
                fail_under,
                color,
            }))
        }
        Command::Fmt { paths, check } => fmt(&paths, check),
        Command::Lsp => match rulegate::lsp::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rulegate lsp: {e}");
                ExitCode::from(1)
            }
        },
        Command::Serve {
            policy_dir,
            listen,
            tls_listen,
            cert,
            key,
            client_ca,
            admin,
            log_format,
            drain,
            header_timeout,
            body_timeout,
            backend_ca,
            state,
            redis,
            redis_timeout,
            otlp,
        } => {
            let opts = rulegate::server::Options {
                policy_dir,
                listen,
                tls: tls_listen.zip(cert).zip(key).map(|((listen, cert), key)| {
                    rulegate::server::TlsOptions {
                        listen,
                        cert,
                        key,
                        client_ca,
                    }
                }),
                admin,
                log_json: matches!(log_format, LogFormat::Json),
                drain,
                header_timeout,
                body_timeout,
                backend_ca,
                state,
                redis: (!redis.is_empty()).then_some(rulegate::limits::redis::Options {
                    urls: redis,
                    timeout: redis_timeout,
                }),
                otlp,
            };
            match rulegate::server::run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rulegate: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Load and compile; `Err` is the exit code after reporting.
/// The policy at `path` compiled; else its diagnostics on stderr and `the policy does not
/// compile{then}`, exit 1.
fn compiled_snapshot(path: PathBuf, then: &str) -> Result<rulegate::compile::Snapshot, ExitCode> {
    let (loaded, compiled) = load_and_compile(&[path])?;
    compiled.snapshot.ok_or_else(|| {
        let color = std::io::stderr().is_terminal();
        eprint!(
            "{}",
            diag::render_human(&loaded.sources, &compiled.diagnostics, color)
        );
        eprintln!("rulegate: the policy does not compile{then}");
        ExitCode::from(1)
    })
}

fn load_and_compile(paths: &[PathBuf]) -> Result<(policy::Loaded, Compiled), ExitCode> {
    let loaded = policy::load(paths).map_err(|e| {
        eprintln!("rulegate: {e}");
        ExitCode::from(2)
    })?;
    if loaded.sources.is_empty() {
        eprintln!(
            "rulegate: no .policy files under {}",
            policy::display_paths(paths)
        );
        return Err(ExitCode::from(2));
    }
    let compiled = compile(&loaded, &ProcessSecrets);
    Ok((loaded, compiled))
}

fn check(paths: &[PathBuf], format: Format, print_tree: bool) -> ExitCode {
    let (loaded, compiled) = match load_and_compile(paths) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let diags = &compiled.diagnostics;
    let errors = diags
        .iter()
        .filter(|d| d.severity == diag::Severity::Error)
        .count();
    let warnings = diags.len() - errors;
    match format {
        Format::Json => {
            let out = serde_json::json!({
                "valid": errors == 0,
                "files": loaded.sources.len(),
                "errors": errors,
                "warnings": warnings,
                "diagnostics": diag::to_json(&loaded.sources, diags),
            });
            outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        }
        Format::Human => {
            out!(
                "{}",
                diag::render_human(&loaded.sources, diags, std::io::stdout().is_terminal())
            );
            let files = loaded.sources.len();
            let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
            outln!(
                "{}: {}, {}, {}",
                if errors == 0 { "valid" } else { "invalid" },
                plural(files, "file"),
                plural(errors, "error"),
                plural(warnings, "warning"),
            );
            if let (true, Some(snap)) = (print_tree, &compiled.snapshot) {
                out!("\n{}", snap.render());
            }
        }
    }
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[allow(clippy::too_many_arguments)]
fn explain(
    path: PathBuf,
    method: &str,
    url: &str,
    header_args: &[String],
    data: Option<String>,
    client_ip: IpAddr,
    at: Option<String>,
    client_cert: bool,
) -> ExitCode {
    let snap = match compiled_snapshot(path, "; nothing to explain") {
        Ok(snap) => snap,
        Err(code) => return code,
    };
    let body = match data {
        None => Vec::new(),
        Some(d) => match d.strip_prefix('@') {
            Some(file) => match std::fs::read(file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("rulegate: {file}: {e}");
                    return ExitCode::from(2);
                }
            },
            None => d.into_bytes(),
        },
    };
    let asked = match rulegate::explain::Asked::new(method, url, header_args, body) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rulegate: {e}");
            return ExitCode::from(2);
        }
    };
    let now_ms = match at {
        None => jiff::Timestamp::now().as_millisecond(),
        Some(t) => match t.parse::<jiff::Timestamp>() {
            Ok(ts) => ts.as_millisecond(),
            Err(e) => {
                eprintln!("rulegate: --at {t:?}: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let (_, text) = asked.run(&snap, client_ip, client_cert, now_ms);
    out!("{text}");
    ExitCode::SUCCESS
}

/// (service, error type) of every custom gateway response of the policy at `path`.
fn gateway_responses(path: PathBuf) -> Result<Vec<(String, ResponseType)>, ExitCode> {
    let snap = compiled_snapshot(path, "")?;
    Ok(snap
        .services
        .iter()
        .flat_map(|s| {
            s.gateway_responses
                .iter()
                .map(|r| (s.name.to_string(), r.kind))
        })
        .collect())
}

/// `rulegate diff OLD NEW`.
fn diff(
    old: PathBuf,
    new: PathBuf,
    format: ContractFormat,
    fail_on: &[rulegate::diff::Kind],
) -> ExitCode {
    let (old, new) = match (
        compiled_snapshot(old, " (OLD)"),
        compiled_snapshot(new, " (NEW)"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return ExitCode::from(2),
    };
    let changes = rulegate::diff::changes(&old, &new, true);
    match format {
        ContractFormat::Human => outln!("{}", rulegate::diff::human(&changes).trim_end()),
        ContractFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&changes).unwrap_or_default()
        ),
    }
    let failing = changes
        .iter()
        .any(|c| fail_on.is_empty() || fail_on.contains(&c.kind));
    ExitCode::from(u8::from(failing))
}

/// `rulegate export openapi`: the document on stdout or in `output`.
fn export_openapi(path: PathBuf, service: Option<&str>, output: Option<&Path>) -> ExitCode {
    let snap = match compiled_snapshot(path, "; nothing to export") {
        Ok(snap) => snap,
        Err(code) => return code,
    };
    let service = match rulegate::export::pick_service(&snap, service) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rulegate: {e}");
            return ExitCode::from(2);
        }
    };
    let doc = rulegate::export::openapi::document(&snap, service);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    match output {
        None => outln!("{text}"),
        Some(file) => {
            if let Err(e) = std::fs::write(file, format!("{text}\n")) {
                eprintln!("rulegate: {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}

/// `rulegate errors --route/--service`: the error contracts of the routes meant.
fn contracts(
    path: PathBuf,
    route: Option<&str>,
    service: Option<&str>,
    format: ContractFormat,
) -> ExitCode {
    let snap = match compiled_snapshot(path, "") {
        Ok(snap) => snap,
        Err(code) => return code,
    };
    let routes = match rulegate::contract::select(&snap, service, route) {
        Ok(routes) => routes,
        Err(e) => {
            eprintln!("rulegate: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match format {
        ContractFormat::Human => rulegate::contract::human(&snap, &routes),
        ContractFormat::Json => rulegate::contract::json(&snap, &routes),
    };
    outln!("{text}");
    ExitCode::SUCCESS
}

/// `  [answered by service S's TYPE response]` for an emitted row whose refusals are of a type
/// some service answers its own way.
fn answered_by(
    d: Dialect,
    row: &rulegate::dialect::Row,
    custom: &[(String, ResponseType)],
) -> String {
    let types: Vec<ResponseType> = rulegate::dialect::Reason::examples()
        .iter()
        .filter(|r| rulegate::dialect::row(d, r).same_entry(row))
        .map(|r| ResponseType::of(r, row.status))
        .collect();
    custom
        .iter()
        .filter(|(_, t)| types.contains(t))
        .map(|(s, t)| format!("  [answered by service {s}'s {t} response]"))
        .collect()
}

fn errors(dialect: Option<Dialect>, policy: Option<PathBuf>) -> ExitCode {
    let custom = match policy.map(gateway_responses) {
        None => Vec::new(),
        Some(Ok(c)) => c,
        Some(Err(code)) => return code,
    };
    let dialects: Vec<Dialect> = match dialect {
        Some(d) => vec![d],
        None => Dialect::ALL.to_vec(),
    };
    for d in dialects {
        let entries = rulegate::dialect::catalogue(d);
        let stand_ins = rulegate::dialect::stand_ins(d);
        // `[stands in for …]` after a row that also answers a situation with no vendor row
        let standing = |row: &rulegate::dialect::Row| -> String {
            stand_ins
                .iter()
                .filter(|s| s.row.same_entry(row))
                .map(|s| format!("  [stands in for {}]", s.reason))
                .collect()
        };
        let emitted = entries.iter().filter(|e| e.emitted).count();
        let why = |row: &rulegate::dialect::Row| rulegate::dialect::unemitted::why(d, row);
        // rows that describe a gateway's answer to a request (not a console's)
        let runtime = entries
            .iter()
            .filter(|e| e.emitted || why(&e.row).is_some_and(|w| w.runtime()))
            .count();
        outln!(
            "# {d}: {} documented rows, {emitted} emitted by rulegate (✓); of the {runtime} that \
             answer requests, {emitted} ({:.0} %); every other row says why",
            entries.len(),
            100.0 * emitted as f64 / runtime.max(1) as f64
        );
        for e in &entries {
            let mark = if e.emitted { "✓" } else { " " };
            outln!(
                "{mark} {:<38} {:>3}  {}{}{}",
                e.row.code,
                e.row.status,
                e.row.message,
                standing(&e.row),
                answered_by(d, &e.row, &custom)
            );
            if let Some(w) = why(&e.row).filter(|_| !e.emitted) {
                outln!("      — {w}");
            }
        }
        let undocumented = rulegate::dialect::undocumented(d);
        if !undocumented.is_empty() {
            outln!("\n# {d}: undocumented answers (no vendor row exists for the situation)");
            for r in undocumented {
                outln!(
                    "✓ {:<38} {:>3}  {}{}\n      {}",
                    r.code,
                    r.status,
                    r.message,
                    standing(r),
                    r.note
                );
            }
        }
        outln!("\n# {d}: stand-ins (the closest row answers a situation the vendor has none for)");
        for s in &stand_ins {
            outln!(
                "✓ {:<38} {:>3}  {}  [stands in for {}]\n      {}",
                s.row.code,
                s.row.status,
                s.row.message,
                s.reason,
                s.note
            );
        }
        outln!();
    }
    ExitCode::SUCCESS
}

fn fmt(paths: &[PathBuf], check_only: bool) -> ExitCode {
    let files = match policy::policy_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rulegate: {e}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    let mut unformatted = 0;
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("rulegate: {}: {e}", file.display());
                failed = true;
                continue;
            }
        };
        match policy::fmt::format_file(&text) {
            Err(diags) => {
                let mut sources = diag::Sources::new();
                sources.add(file.display().to_string(), text);
                eprint!(
                    "{}",
                    diag::render_human(&sources, &diags, std::io::stderr().is_terminal())
                );
                failed = true;
            }
            Ok(formatted) if formatted != text => {
                unformatted += 1;
                if check_only {
                    outln!("{}", file.display());
                } else if let Err(e) = std::fs::write(file, formatted) {
                    eprintln!("rulegate: {}: {e}", file.display());
                    failed = true;
                }
            }
            Ok(_) => {}
        }
    }
    if failed || (check_only && unformatted > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
