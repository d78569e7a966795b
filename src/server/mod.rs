//! `rulegate serve`: a tokio + hyper gateway around `decide`.
//!
//! One `ArcSwap<Snapshot>` holds the compiled policy. Each request loads the current snapshot
//! once and keeps that `Arc` until it is done, so a reload never changes a request half-way;
//! a reload swaps the whole snapshot in one store, and only a policy that compiles is ever
//! stored.

mod admin;
mod handler;
mod metrics;
mod proxy;
mod reload;
mod tls;

use crate::compile::{compile, ProcessSecrets, Snapshot};
use crate::decide::{Env, Limiter, MemoryLimiter};
use crate::policy::{self, diag};
use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// What `serve` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub policy_dir: PathBuf,
    pub listen: SocketAddr,
    /// HTTPS: (address, certificate chain PEM, private key PEM).
    pub tls: Option<(SocketAddr, PathBuf, PathBuf)>,
    /// Where `/healthz`, `/readyz`, `/config` and `/metrics` are served, if anywhere.
    pub admin: Option<SocketAddr>,
    pub log_json: bool,
    /// Time allowed for in-flight requests after SIGTERM / SIGINT.
    pub drain: Duration,
}

/// Everything the request handlers share.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    policy_dir: PathBuf,
    limiter: MemoryLimiter,
    upstream: proxy::Upstream,
    /// Bumped on every successful reload (the initial load is version 1).
    version: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// RFC 3339 time the served snapshot was loaded.
    loaded_at: Mutex<String>,
    metrics: metrics::Metrics,
}

impl Gateway {
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
        match Gateway::compile(&self.policy_dir) {
            Ok(snapshot) => {
                let changed = snapshot.source_hash != self.snapshot.load().source_hash;
                if changed {
                    self.snapshot.store(Arc::new(snapshot));
                    let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
                    *self.loaded_at.lock().unwrap_or_else(|e| e.into_inner()) =
                        jiff::Timestamp::now().to_string();
                    tracing::info!(version = v, "policy reloaded");
                }
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                true
            }
            Err(diagnostics) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "policy reload failed; still serving the previous policy\n{diagnostics}"
                );
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(diagnostics);
                false
            }
        }
    }
}

/// The real world for `decide`: the system clock, random request ids, in-memory counters.
struct LiveEnv<'a> {
    limiter: &'a MemoryLimiter,
}

impl Env for LiveEnv<'_> {
    fn now_ms(&self) -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }

    fn request_id(&self) -> String {
        format!("{:032x}", fastrand::u128(..))
    }

    fn limiter(&self) -> &dyn Limiter {
        self.limiter
    }
}

/// Run the gateway until SIGTERM or SIGINT. Returns an error message if it cannot start.
pub fn run(opts: Options) -> Result<(), String> {
    init_logging(opts.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
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

async fn serve(opts: Options) -> Result<(), String> {
    let snapshot = Gateway::compile(&opts.policy_dir)
        .map_err(|d| format!("the policy does not compile:\n{d}"))?;
    let gateway = Arc::new(Gateway {
        snapshot: ArcSwap::from_pointee(snapshot),
        policy_dir: opts.policy_dir.clone(),
        limiter: MemoryLimiter::new(),
        upstream: proxy::Upstream::new(),
        version: AtomicU64::new(1),
        reloads_ok: AtomicU64::new(0),
        reloads_failed: AtomicU64::new(0),
        last_error: Mutex::new(None),
        loaded_at: Mutex::new(jiff::Timestamp::now().to_string()),
        metrics: metrics::Metrics::default(),
    });
    if let Some(addr) = opts.admin {
        let admin = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (admin): {e}"))?;
        tracing::info!(admin = %addr, "admin endpoints: /healthz /readyz /config /metrics");
        tokio::spawn(admin::serve(gateway.clone(), admin));
    }
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(listen = %local, policy = %opts.policy_dir.display(), "rulegate serving");

    let tls = match &opts.tls {
        None => None,
        Some((addr, cert, key)) => {
            let acceptor = tls::acceptor(cert, key)?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (TLS): {e}"))?;
            tracing::info!(tls_listen = %addr, "rulegate serving TLS 1.2/1.3");
            Some((listener, acceptor))
        }
    };

    let _watcher = reload::watch(gateway.clone());

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        // Large enough that the policy's own header limits (which answer in the dialect)
        // trip before hyper's.
        .max_buf_size(2 << 20);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let tls_accept = async |tls: &Option<(TcpListener, tokio_rustls::TlsAcceptor)>| match tls {
        Some((listener, _)) => listener.accept().await,
        None => std::future::pending().await,
    };

    loop {
        tokio::select! {
            accepted = tls_accept(&tls) => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let acceptor = tls.as_ref().map(|(_, a)| a.clone()).expect("TLS listener has an acceptor");
                let gw = gateway.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
                    let stream = match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let gw = gw.clone();
                        async move { Ok::<_, std::convert::Infallible>(handler::handle(gw, req, peer, true).await) }
                    });
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, "TLS connection ended: {e}");
                    }
                });
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let gw = gateway.clone();
                let service = hyper::service::service_fn(move |req| {
                    let gw = gw.clone();
                    async move { Ok::<_, std::convert::Infallible>(handler::handle(gw, req, peer, false).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down: draining in-flight requests");
                break;
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("drained"),
        _ = tokio::time::sleep(opts.drain) => tracing::warn!("drain timed out; closing remaining connections"),
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
