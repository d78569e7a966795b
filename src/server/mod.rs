//! `rulegate serve`: a tokio + hyper gateway around `decide`.
//!
//! One `ArcSwap<Snapshot>` holds the compiled policy. Each request loads the current snapshot
//! once and keeps that `Arc` until it is done, so a reload never changes a request half-way;
//! a reload swaps the whole snapshot in one store, and only a policy that compiles is ever
//! stored.

mod access_log;
mod admin;
mod authorizer;
mod client_body;
mod clock;
mod h1;
mod handler;
mod header_timer;
mod health;
mod idle;
mod malformed;
mod memory;
mod metrics;
mod otlp;
mod outgoing;
pub use outgoing::{planned_upstream, sign, Forwarding, Sink};
mod pool;
mod proxy;
mod reload;
mod tls;

use crate::compile::{compile, ProcessSecrets, Snapshot};
use crate::decide::{Env, Limiter};
use crate::limits::live::{RequestLimiter, Stores};
use crate::policy::{self, diag};
use arc_swap::ArcSwap;
use bytes::Bytes;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// What `serve` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub policy_dir: PathBuf,
    pub listen: SocketAddr,
    pub tls: Option<TlsOptions>,
    /// Where `/healthz`, `/readyz`, `/config` and `/metrics` are served, if anywhere.
    pub admin: Option<SocketAddr>,
    pub log_json: bool,
    /// Time allowed for in-flight requests after SIGTERM / SIGINT.
    pub drain: Duration,
    /// Time a client has to send a request head, counted from when the connection is ready
    /// for one: it is the slow-client guard and the keep-alive idle timeout at once. Every
    /// connection with no request in progress is closed after this long, counted from accept
    /// (TLS handshake included) or from its last response, on HTTP/1 and HTTP/2 alike.
    pub header_timeout: Duration,
    /// Time a client has to send a whole request body, counted from when rulegate starts
    /// reading it.
    pub body_timeout: Duration,
    /// Where quotas are kept across restarts (`DIR/counters.redb`).
    pub state: Option<PathBuf>,
    /// Count every rate and quota in this Redis (or Redis Cluster), shared with other gateways.
    pub redis: Option<crate::limits::redis::Options>,
    /// PEM roots trusted for `https://` backends and authorizers, besides the system's.
    pub backend_ca: Option<PathBuf>,
    /// Export one span per request over OTLP/HTTP to this URL (see `otlp`).
    pub otlp: Option<String>,
}

/// HTTPS termination.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM roots that client certificates are verified against; a client may still connect
    /// without one (services that require one answer with their dialect's row).
    pub client_ca: Option<PathBuf>,
}

/// Everything the request handlers share.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    policy_dir: PathBuf,
    stores: Stores,
    upstream: proxy::Upstream,
    authorizers: authorizer::Authorizers,
    /// What `/config` and `/metrics` report about reloads. Changed under one lock together
    /// with the snapshot store, so readers never see half a reload.
    reloads: Mutex<ReloadState>,
    /// What the file watcher follows, for `/config`.
    watch_status: Mutex<reload::WatchStatus>,
    metrics: metrics::Metrics,
    access_log: access_log::AccessLog,
    /// The span exporter, with `--otlp`.
    otlp: Option<otlp::Exporter>,
    /// The body timeout, and the coarse timer that also keeps the header and idle timeouts.
    bodies: client_body::Clock,
}

#[derive(Debug, Clone)]
struct ReloadState {
    /// Bumped on every reload that changed the policy (the initial load is version 1).
    version: u64,
    /// RFC 3339 time the served snapshot was loaded.
    loaded_at: String,
    ok: u64,
    failed: u64,
    last_error: Option<String>,
}

impl Gateway {
    /// [`Gateway::compile`] on the policy loader thread (see [`memory`]), waiting for it.
    fn compile_on_loader(dir: &std::path::Path) -> Result<Snapshot, String> {
        let dir = dir.to_path_buf();
        memory::on_loader(move || Gateway::compile(&dir))
            .wait()
            .unwrap_or_else(|| Err("the policy loader thread stopped".to_string()))
    }

    /// Load and compile the policy directory; the diagnostics on failure.
    fn compile(dir: &PathBuf) -> Result<Snapshot, String> {
        let loaded = policy::load(std::slice::from_ref(dir)).map_err(|e| e.to_string())?;
        if loaded.sources.is_empty() {
            return Err(format!("no .policy files under {}", dir.display()));
        }
        let compiled = compile(&loaded, &ProcessSecrets);
        match compiled.snapshot {
            Some(s) => {
                for d in &compiled.diagnostics {
                    tracing::warn!(code = d.code.id, location = %loaded.sources.location(d.span), "{}", d.message);
                }
                Ok(s)
            }
            None => Err(diag::render_human(
                &loaded.sources,
                &compiled.diagnostics,
                false,
            )),
        }
    }

    /// Compile the policy again and swap it in if it compiles; otherwise keep serving the
    /// current snapshot and count the failure.
    pub fn reload(&self) -> bool {
        let compiled = Gateway::compile(&self.policy_dir);
        match compiled {
            Ok(snapshot) => {
                // Everything slow happens before the reload state's lock is taken: `/config`
                // and `/metrics` read that state from the runtime's workers, and a worker that
                // waited on a 100k-route diff stalled every request it served.
                let current = self.snapshot.load_full();
                // The policy texts and every file they reference: a rotated secret is a change.
                let diff = (!snapshot.same_sources(&current)).then(|| {
                    // the state of backends that stay is kept (see upstream::state)
                    let backends: Vec<_> = snapshot
                        .services
                        .iter()
                        .flat_map(|s| s.backends.iter().map(|b| &b.targeting))
                        .collect();
                    self.upstream.state.adopt(&backends);
                    // which routes answer differently (no witnesses: off the request path, but
                    // a reload of many routes should not wait on them)
                    crate::diff::summary(&crate::diff::changes(&current, &snapshot, false))
                });
                let mut state = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(diff) = diff {
                    self.snapshot.store(Arc::new(snapshot));
                    state.version += 1;
                    state.loaded_at = jiff::Timestamp::now().to_string();
                    tracing::info!(version = state.version, %diff, "policy reloaded");
                }
                state.ok += 1;
                state.last_error = None;
                drop(state);
                // the replaced snapshot is freed here unless a request still holds it (the
                // loader thread collects after this and again when idle: see `memory`)
                drop(current);
                true
            }
            Err(diagnostics) => {
                let mut state = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
                state.failed += 1;
                state.last_error = Some(diagnostics.clone());
                drop(state);
                tracing::error!(
                    "policy reload failed; still serving the previous policy\n{diagnostics}"
                );
                false
            }
        }
    }

    fn reload_state(&self) -> ReloadState {
        self.reloads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The real world for `decide`: the system clock, a random request id, the operator's stores,
/// the authorizers' decision cache. One per request, as its limiter keeps what this request
/// asked the shared store (see `handler::effects`, which fetches it and asks authorizers).
struct LiveEnv<'a> {
    /// "Now" for the decision's current step, in Unix milliseconds, or [`LiveEnv::UNREAD`]:
    /// the request's start until the decision first waits (for the body, the limit store, an
    /// authorizer), then read again once after each wait (see [`clock`]).
    now_ms: std::sync::atomic::AtomicI64,
    limiter: RequestLimiter<'a>,
    /// Made up front: cheaper than deciding whether it will be needed.
    request_id: crate::decide::RequestId,
    authorizers: &'a authorizer::Authorizers,
    upstreams: &'a crate::upstream::state::Upstreams,
}

impl LiveEnv<'_> {
    const UNREAD: i64 = i64::MIN;

    /// The environment of a request that started at `started`.
    fn new(gw: &Gateway, started: std::time::Instant) -> LiveEnv<'_> {
        LiveEnv {
            now_ms: clock::wall_ms(started).into(),
            limiter: RequestLimiter::new(&gw.stores),
            request_id: crate::decide::RequestId::random(),
            authorizers: &gw.authorizers,
            upstreams: &gw.upstream.state,
        }
    }

    /// The decision waited: its next "now" is a new reading.
    fn waited(&self) {
        self.now_ms
            .store(Self::UNREAD, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Env for LiveEnv<'_> {
    fn now_ms(&self) -> i64 {
        use std::sync::atomic::Ordering::Relaxed;
        match self.now_ms.load(Relaxed) {
            Self::UNREAD => {
                let now = clock::wall_ms(std::time::Instant::now());
                self.now_ms.store(now, Relaxed);
                now
            }
            now => now,
        }
    }

    fn request_id(&self) -> crate::decide::RequestId {
        self.request_id.clone()
    }

    fn limiter(&self) -> &dyn Limiter {
        &self.limiter
    }

    fn keeps_trace(&self) -> bool {
        false
    }

    fn upstreams(&self) -> &crate::upstream::state::Upstreams {
        self.upstreams
    }

    /// A cached answer; otherwise the driver's effects ask the authorizer.
    fn authorizer_answer(
        &self,
        provider: &crate::compile::Provider,
        call: &crate::auth::authorizer::Call,
    ) -> Option<crate::auth::authorizer::Answer> {
        self.authorizers.cached(provider, call)
    }
}

/// Run the gateway until SIGTERM or SIGINT. Returns an error message if it cannot start.
pub fn run(opts: Options) -> Result<(), String> {
    init_logging(opts.log_json);
    // On one core (a container limit, or `taskset`) a multi-thread runtime only adds a second
    // thread to wake: the accept loop and every connection share the one core anyway.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(opts))
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RULEGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

/// Start the gateway, serve until SIGTERM or SIGINT, then drain: the phases in order, each a
/// function below.
async fn serve(opts: Options) -> Result<(), String> {
    let gateway = start(&opts)?;
    // Signals are registered before anything is served: a SIGHUP or SIGTERM that arrives as
    // soon as the gateway answers must reload or drain, not kill it.
    let shutdown = shutdown_signal(terminate_signal()?);
    reload::watch(gateway.clone())?;
    let listeners = Listeners::bind(&opts, &gateway).await?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let acceptor = Acceptor {
        builders: Builders::new(gateway.bodies.timer.clone(), opts.header_timeout),
        gateway: gateway.clone(),
        stopping,
        idle_timeout: opts.header_timeout,
    };
    acceptor.run(listeners, shutdown).await;
    let _ = stop.send(true);
    tokio::select! {
        _ = stop.closed() => tracing::info!("drained"),
        _ = tokio::time::sleep(opts.drain) => tracing::warn!("drain timed out; closing remaining connections"),
    }
    gateway.access_log.flush();
    Ok(())
}

/// Compile the policy, open the limit stores and build the shared state; the access log is
/// flushed on a timer from here on.
fn start(opts: &Options) -> Result<Arc<Gateway>, String> {
    let snapshot = Gateway::compile_on_loader(&opts.policy_dir)
        .map_err(|d| format!("the policy does not compile:\n{d}"))?;
    let gateway = Arc::new(Gateway::new(opts, snapshot)?);
    flush_access_log_periodically(gateway.clone());
    refresh_clock_periodically();
    health::start(gateway.clone());
    Ok(gateway)
}

/// The traffic listeners: plain HTTP, and TLS when configured.
struct Listeners {
    plain: TcpListener,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
}

impl Listeners {
    /// Bind traffic first and admin last: /healthz answers only once traffic can be served.
    async fn bind(opts: &Options, gateway: &Arc<Gateway>) -> Result<Listeners, String> {
        let plain =
            listen(opts.listen).map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
        let local = plain.local_addr().map_err(|e| e.to_string())?;
        let tls = match &opts.tls {
            None => None,
            Some(t) => Some(bind_tls(t).await?),
        };
        if let Some(addr) = opts.admin {
            let admin = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (admin): {e}"))?;
            tracing::info!(admin = %addr, "admin endpoints: /healthz /readyz /config /metrics");
            tokio::spawn(admin::serve(gateway.clone(), admin, opts.header_timeout));
        }
        tracing::info!(listen = %local, policy = %opts.policy_dir.display(), limits = gateway.stores.describe(), "rulegate serving");
        Ok(Listeners { plain, tls })
    }
}

/// Accepts connections and spawns one task each, until shutdown.
struct Acceptor {
    gateway: Arc<Gateway>,
    builders: Builders,
    /// Cloned into each connection; the drain waits until every clone is dropped.
    stopping: tokio::sync::watch::Receiver<bool>,
    idle_timeout: Duration,
}

impl Acceptor {
    /// Accept until `shutdown` completes; the listeners are closed on return.
    async fn run(mut self, listeners: Listeners, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let tls_accept = async |tls: &Option<(TcpListener, tokio_rustls::TlsAcceptor)>| match tls {
            Some((listener, _)) => listener.accept().await,
            None => std::future::pending().await,
        };
        loop {
            tokio::select! {
                accepted = tls_accept(&listeners.tls) => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let acceptor = listeners.tls.as_ref().map(|(_, a)| a.clone()).expect("TLS listener has an acceptor");
                    self.spawn_tls(stream, peer, acceptor);
                }
                accepted = listeners.plain.accept() => match accepted {
                    Ok((stream, peer)) => self.spawn_plain(stream, peer),
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = &mut shutdown => {
                    tracing::info!("shutting down: draining in-flight requests");
                    break;
                }
            }
        }
    }

    fn spawn_plain(&mut self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let opened = std::time::Instant::now();
        let _ = stream.set_nodelay(true);
        let gw = self.gateway.clone();
        let conn = handler::Conn::new(peer, false, false);
        let builder = self.builders.current(&self.gateway.snapshot.load());
        let (timer, stopping) = (self.gateway.bodies.timer.clone(), self.stopping.clone());
        let idle_timeout = self.idle_timeout;
        tokio::spawn(async move {
            if let Err(e) = serve_connection(
                gw,
                &builder,
                stream,
                conn,
                opened,
                idle_timeout,
                &timer,
                stopping,
            )
            .await
            {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }

    fn spawn_tls(
        &mut self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        acceptor: tokio_rustls::TlsAcceptor,
    ) {
        let opened = std::time::Instant::now();
        let _ = stream.set_nodelay(true);
        let gw = self.gateway.clone();
        let builder = self.builders.current(&self.gateway.snapshot.load());
        let (timer, stopping) = (self.gateway.bodies.timer.clone(), self.stopping.clone());
        let idle_timeout = self.idle_timeout;
        tokio::spawn(async move {
            // the idle deadline runs from accept: the handshake is part of it
            let handshake = tokio::time::timeout(idle_timeout, acceptor.accept(stream)).await;
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            // rustls has verified any certificate it accepted; its presence is what counts.
            let client_cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let conn = handler::Conn::new(peer, true, client_cert);
            if let Err(e) = serve_connection(
                gw,
                &builder,
                stream,
                conn,
                opened,
                idle_timeout,
                &timer,
                stopping,
            )
            .await
            {
                tracing::debug!(%peer, "TLS connection ended: {e}");
            }
        });
    }
}

impl Gateway {
    /// The gateway `opts` describe, serving `snapshot`: its stores opened, its clients' TLS
    /// configured.
    fn new(opts: &Options, snapshot: Snapshot) -> Result<Gateway, String> {
        let stores = Stores::open(opts.state.as_deref(), opts.redis.as_ref())?;
        let client_tls = tls::client_config(opts.backend_ca.as_deref())?;
        let metrics = metrics::Metrics::default();
        let otlp = match &opts.otlp {
            Some(url) => {
                let exporter = otlp::Exporter::start(url, client_tls.clone())?;
                let _ = metrics.otlp.set(exporter.counters.clone());
                tracing::info!(otlp = %url, "exporting a span per request");
                Some(exporter)
            }
            None => None,
        };
        Ok(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            policy_dir: opts.policy_dir.clone(),
            stores,
            upstream: proxy::Upstream::new(client_tls.clone()),
            authorizers: authorizer::Authorizers::new(client_tls),
            reloads: Mutex::new(ReloadState {
                version: 1,
                loaded_at: jiff::Timestamp::now().to_string(),
                ok: 0,
                failed: 0,
                last_error: None,
            }),
            watch_status: Mutex::new(reload::WatchStatus::default()),
            metrics,
            access_log: access_log::AccessLog::new(opts.log_json),
            otlp,
            bodies: client_body::Clock {
                timer: header_timer::HeaderTimer::start(header_timer::HeaderTimer::tick_for(
                    opts.header_timeout.min(opts.body_timeout),
                )),
                timeout: opts.body_timeout,
            },
        })
    }
}

/// Write the buffered access log out every [`access_log::FLUSH_EVERY`].
fn flush_access_log_periodically(gw: Arc<Gateway>) {
    every(access_log::FLUSH_EVERY, move || gw.access_log.flush());
}

/// Read the offset between the wall clock and the monotonic one every
/// [`clock::REFRESH_EVERY`].
fn refresh_clock_periodically() {
    every(clock::REFRESH_EVERY, clock::refresh);
}

/// Run `work` every `period` on the runtime, for as long as it runs.
fn every(period: Duration, work: impl Fn() + Send + 'static) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            work();
        }
    });
}

/// How many connections the kernel may hold for a traffic listener before they are accepted.
/// tokio (like std) asks for 128: a burst of new connections — clients reconnecting after a
/// deploy, a TLS handshake per request — overflowed it and the kernel dropped SYNs, which
/// clients retry only after a second. nginx asks for 511, Go's servers for the system maximum;
/// the kernel caps this at `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: u32 = 4096;

/// A traffic listener on `addr` with [`LISTEN_BACKLOG`] (address reuse as tokio sets it).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The HTTPS listener and its acceptor.
async fn bind_tls(t: &TlsOptions) -> Result<(TcpListener, tokio_rustls::TlsAcceptor), String> {
    let acceptor = tls::acceptor(&t.cert, &t.key, t.client_ca.as_deref())?;
    let addr = t.listen;
    let listener = listen(addr).map_err(|e| format!("cannot listen on {addr} (TLS): {e}"))?;
    tracing::info!(tls_listen = %addr, client_ca = t.client_ca.is_some(), "rulegate serving TLS 1.2/1.3");
    Ok((listener, acceptor))
}

/// How connections are served: HTTP/2 when the client opens with its preface, HTTP/1
/// otherwise (what hyper-util's `auto` builder does, done here so that an HTTP/1 connection
/// can be taken apart again: see [`MAX_HEADER_LINES`]).
struct Builder {
    /// hyper's default header count.
    h1: http1::Builder,
    /// [`MAX_HEADER_LINES`]: for the rest of a connection that sent a longer head.
    h1_wide: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

/// The connection builder, made again when a reload changes the policy's size limits: hyper's
/// read buffer and header count follow them (see [`head_budget`]).
struct Builders {
    timer: header_timer::HeaderTimer,
    header_timeout: Duration,
    /// The snapshot the budget was last worked out for: a weak reference keeps its address
    /// from being reused, so a new snapshot is never mistaken for it.
    seen: std::sync::Weak<Snapshot>,
    /// The budget the current builder was made for.
    budget: usize,
    builder: Arc<Builder>,
}

impl Builders {
    fn new(timer: header_timer::HeaderTimer, header_timeout: Duration) -> Builders {
        let budget = head_budget([crate::compile::Limits::default()]);
        Builders {
            builder: Arc::new(make_builder(timer.clone(), header_timeout, budget)),
            timer,
            header_timeout,
            seen: std::sync::Weak::new(),
            budget,
        }
    }

    /// The builder for the policy now served; made again only when a reload changed the
    /// budget.
    fn current(&mut self, snap: &Arc<Snapshot>) -> Arc<Builder> {
        if std::ptr::eq(self.seen.as_ptr(), Arc::as_ptr(snap)) {
            return self.builder.clone();
        }
        self.seen = Arc::downgrade(snap);
        let limits =
            std::iter::once(snap.default_limits).chain(snap.services.iter().map(|s| s.limits));
        let budget = head_budget(limits);
        if budget != self.budget {
            self.budget = budget;
            self.builder = Arc::new(make_builder(
                self.timer.clone(),
                self.header_timeout,
                budget,
            ));
        }
        self.builder.clone()
    }
}

/// The largest request head (in bytes on the wire) that the policy's limits allow: the URI
/// and header limits of the most generous service, a quarter more for the `: ` and CRLF of
/// each header line (enough for lines of 16 bytes or more on average), and 8 KiB for the
/// request line. hyper reads a head into a buffer of at most this size; a larger head gets
/// hyper's 431, which `malformed` answers with the default dialect's header row, so a head
/// over every limit gets the size row either way, while a head within them reaches the
/// policy. A fixed 2 MiB buffer let 200 slow clients hold over 300 MB.
fn head_budget(limits: impl IntoIterator<Item = crate::compile::Limits>) -> usize {
    let widest = limits
        .into_iter()
        .map(|l| {
            l.uri
                .saturating_add(l.headers.saturating_add(l.headers / 4))
        })
        .max()
        .unwrap_or(0);
    let budget = widest.saturating_add(8 << 10);
    // hyper's floor is 8 KiB; a usize is at least this wide on every target rulegate builds
    usize::try_from(budget).unwrap_or(usize::MAX).max(8 << 10)
}

/// The most header lines a head may have, whatever the size limits allow.
///
/// hyper's count is not free: for any count other than its default of 100 it allocates two
/// arrays of that many slots for every head it parses, and fills them, about 9 instructions
/// a slot (callgrind: a count of 256 cost 3k instructions per request, a sixth of the mock
/// path; a count of 51,200, one per 4 bytes of the default budget, 487k). 256 lines take any
/// real head — browsers send 10 to 30, and a 1 KB head of 150 tiny headers passes — and a head
/// with more gets the header-size row, as one over the sizes does.
///
/// So an HTTP/1 connection is served with hyper's default count first, which costs nothing.
/// A head of more than 100 lines fails there with a `431` that `malformed` holds back; the
/// connection is then taken apart (hyper gives back the stream and the bytes it read but did
/// not parse, the failing head among them) and served on with this count for good: the same
/// bytes are parsed again, so what is accepted does not depend on which parser saw it first.
const MAX_HEADER_LINES: usize = 256;

fn make_builder(
    timer: header_timer::HeaderTimer,
    header_timeout: Duration,
    budget: usize,
) -> Builder {
    let mut h1 = http1::Builder::new();
    h1.timer(timer)
        .header_read_timeout(header_timeout)
        .writev(false)
        .max_buf_size(budget);
    // The policy limits headers by size, not by count: see MAX_HEADER_LINES.
    let mut h1_wide = h1.clone();
    h1_wide.max_headers((budget / 4).min(MAX_HEADER_LINES));
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new());
    Builder { h1, h1_wide, h2 }
}

/// Whether the client opens with HTTP/2's preface. The bytes read for it are read again by
/// whichever protocol serves the connection.
async fn opens_h2<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut malformed::Answering<S>,
) -> std::io::Result<bool> {
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; 24];
    let mut filled = 0;
    let h2 = loop {
        let n = stream.read(&mut buf[filled..]).await?;
        let matches = buf[filled..filled + n] == PREFACE[filled..filled + n];
        filled += n;
        if n == 0 || !matches {
            break false;
        }
        if filled == PREFACE.len() {
            break true;
        }
    };
    stream.replay(Bytes::copy_from_slice(&buf[..filled]));
    Ok(h2)
}

type ConnError = Box<dyn std::error::Error + Send + Sync>;

/// What closes a connection besides its own end: the idle rule and the gateway stopping.
struct Closing<'a> {
    activity: &'a idle::Activity,
    timeout: Duration,
    timer: &'a header_timer::HeaderTimer,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Closing<'_> {
    async fn drive<C, E>(&self, conn: Pin<&mut C>, graceful: impl Fn(Pin<&mut C>)) -> Result<(), E>
    where
        C: std::future::Future<Output = Result<(), E>>,
    {
        let stopping = self.stopping.clone();
        idle::drive(
            conn,
            graceful,
            self.activity,
            self.timeout,
            self.timer,
            stopping,
        )
        .await
    }
}

/// Serve one connection until it ends, is idle for the header timeout, or the gateway stops.
#[allow(clippy::too_many_arguments)]
async fn serve_connection<S>(
    gw: Arc<Gateway>,
    builder: &Builder,
    stream: S,
    conn: Arc<handler::Conn>,
    opened: std::time::Instant,
    idle_timeout: Duration,
    timer: &header_timer::HeaderTimer,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ConnError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = idle::Activity::new(opened);
    let mut stream = malformed::Answering::new(stream, gw.clone());
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        let (gw, conn) = (gw.clone(), conn.clone());
        let in_progress = tracked.begin();
        async move {
            let response = handler::handle(gw, req, conn).await;
            Ok::<_, std::convert::Infallible>(response.map(|b| idle::Tracked::new(b, in_progress)))
        }
    });
    let closing = Closing {
        activity: &activity,
        timeout: idle_timeout,
        timer,
        stopping,
    };
    let sniff = opens_h2(&mut stream);
    let sniffed = idle::unless_idle(
        sniff,
        &activity,
        idle_timeout,
        timer,
        closing.stopping.clone(),
    );
    let Some(h2) = sniffed.await else {
        return Ok(());
    };
    if h2? {
        let connection = std::pin::pin!(builder.h2.serve_connection(TokioIo::new(stream), service));
        return Ok(closing.drive(connection, |c| c.graceful_shutdown()).await?);
    }
    serve_h1(builder, stream, service, &closing).await
}

/// Serve HTTP/1 with hyper's default header count and, once a head has more lines, go on
/// with [`MAX_HEADER_LINES`] from that head on (see there).
async fn serve_h1<S, F, B>(
    builder: &Builder,
    mut stream: malformed::Answering<S>,
    service: F,
    closing: &Closing<'_>,
) -> Result<(), ConnError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: hyper::service::HttpService<hyper::body::Incoming, ResBody = B> + Unpin,
    F::Error: Into<ConnError>,
    B: hyper::body::Body + 'static,
    B::Error: Into<ConnError>,
{
    stream.hold_too_large(true);
    let mut connection = builder
        .h1
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let graceful = |c: Pin<&mut http1::UpgradeableConnection<_, _>>| c.graceful_shutdown();
    let ended = closing.drive(Pin::new(&mut connection), graceful).await;
    let parts = match connection.into_parts() {
        Some(parts) if parts.io.inner().held_too_large() => parts,
        _ => return Ok(ended?),
    };
    let mut stream = parts.io.into_inner();
    if !matches!(&ended, Err(e) if e.is_parse_too_large()) {
        // what was held back ended a response
        stream.release_and_shutdown().await?;
        return Ok(ended?);
    }
    // nothing of hyper's 431 was written: the head is parsed again with the wider count
    stream.hold_too_large(false);
    stream.replay(parts.read_buf);
    let mut connection = builder
        .h1_wide
        .serve_connection(TokioIo::new(stream), parts.service)
        .with_upgrades();
    // polled once before anything can close it gracefully: with the head read again, hyper
    // finishes it rather than closing a connection that looks unused
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(Pin::new(&mut connection), cx))
    });
    if let std::task::Poll::Ready(ended) = first.await {
        return Ok(ended?);
    }
    Ok(closing.drive(Pin::new(&mut connection), graceful).await?)
}

fn terminate_signal() -> Result<tokio::signal::unix::Signal, String> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))
}

async fn shutdown_signal(mut term: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
