//! Keep-alive connections to backends, over TCP or TLS, kept idle per endpoint and reused
//! most-recent first; each exchange runs on the request's task ([`super::h1`]).
//!
//! hyper-util's pooled `Client` does the same with more generality (any connector, HTTP/2,
//! pool keys by scheme and authority, checkout races between a new connection and a returned
//! one); on the bench's forward route its checkout and return cost about as many instructions
//! as the rest of the forwarding code. Here a connection is taken from a vector under a mutex,
//! checked to be still open (the backend may have closed it while it sat idle), and put back
//! when its response body has been read to the end.

use super::h1::{Broken, Conn, Exchange, Failed, Head, Stream};
use super::handler::Body;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, SizeHint};
use hyper::{Request, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Idle connections kept per address; more are closed when returned.
const MAX_IDLE: usize = 512;
/// An idle connection older than this is closed rather than reused.
const IDLE_FOR: Duration = Duration::from_secs(60);

type Idle = Arc<Mutex<HashMap<Endpoint, Vec<(Conn, Instant)>, PolicyKeys>>>;

/// The hashing of maps whose keys the policy names, never a client: endpoints resolved from
/// its backends here, backend names and target URLs in `proxy.rs`. They are looked up on every
/// forwarded request (the pool twice), and std's SipHash, whose point is that a client cannot
/// choose keys that collide, cost more than the rest of each lookup. A client chooses none of
/// these keys, and there are as many as the policy has targets, so a multiply-rotate over
/// whole words is enough.
pub type PolicyKeys = std::hash::BuildHasherDefault<WordHasher>;

/// See [`PolicyKeys`].
#[derive(Default, Clone, Copy)]
pub struct WordHasher(u64);

impl WordHasher {
    /// An odd constant with its bits spread (2^64 / the golden ratio).
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(n as u64);
    }

    fn write_u16(&mut self, n: u16) {
        self.mix(n as u64);
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Where a pooled connection goes: an address and, over TLS, the name the peer's certificate
/// must carry (also sent as SNI). Connections to the same address under different names are
/// never mixed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub tls: Option<Arc<str>>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tls {
            None => write!(f, "{}", self.addr),
            Some(name) => write!(f, "{} (TLS, {name})", self.addr),
        }
    }
}

pub struct Pool {
    idle: Idle,
    tls: tokio_rustls::TlsConnector,
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made: refused, unreachable, or the connect timeout passed.
    Connect(String),
    /// The connection failed while the request was sent or the response head read.
    Http(Broken),
    /// Connected, but the response head did not arrive by the deadline given to
    /// [`Pool::send_by`].
    Timeout,
}

impl Pool {
    /// A pool whose TLS connections verify their peers with `tls` (see `tls::client_config`).
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Pool {
        Pool {
            idle: Idle::default(),
            tls: tokio_rustls::TlsConnector::from(tls),
        }
    }

    /// Send `request` to `to` on an idle connection or a new one. A request that a reused
    /// connection could not take (the backend closed it while it sat idle) is sent once more
    /// on a new connection (the exchange hands such a request back unsent). When `answer_by` is
    /// given, [`SendError::Timeout`] if the response head has not arrived by then: callers
    /// that answer a slow peer differently from one that cannot be reached (the external
    /// authorizer, the health probes) tell the two apart this way.
    pub async fn send_by(
        &self,
        to: &Endpoint,
        connect_timeout: Duration,
        answer_by: Option<tokio::time::Instant>,
        request: Request<Body>,
    ) -> Result<Response<PooledBody>, SendError> {
        let (parts, body) = request.into_parts();
        let head = Head::of(&parts);
        let now = Instant::now();
        self.send_or_return(to, now, connect_timeout, answer_by, head, body)
            .await
            .map_err(|(e, _)| e)
    }

    /// [`Pool::send_by`] for a request whose head is written already, handing its body back
    /// when no connection could be made: nothing of it was sent, so it may go to another
    /// target (the forward's retries). `now` is the caller's reading of the clock as the
    /// exchange begins: idle connections are judged by it, and one that carried the exchange
    /// is stamped with it when it goes back (so a connection that carried a long exchange is
    /// taken for older than it is, and closed sooner rather than reused).
    pub async fn send_or_return(
        &self,
        to: &Endpoint,
        now: Instant,
        connect_timeout: Duration,
        answer_by: Option<tokio::time::Instant>,
        mut head: Head,
        mut body: Body,
    ) -> Result<Response<PooledBody>, (SendError, Option<Body>)> {
        loop {
            let (conn, reused) = match self.checkout(to, now) {
                Some(conn) => (conn, true),
                // boxed: a connection being made (TCP, TLS) is kilobytes of state that a
                // request on a pooled connection never enters (see `handler::effects`)
                None => match Box::pin(self.connect(to, connect_timeout)).await {
                    Ok(conn) => (conn, false),
                    Err(e) => return Err((e, Some(body))),
                },
            };
            let exchange = Exchange::new(conn, head, body).response();
            let sent = match answer_by {
                None => exchange.await,
                Some(deadline) => match tokio::time::timeout_at(deadline, exchange).await {
                    Ok(sent) => sent,
                    Err(_) => return Err((SendError::Timeout, None)),
                },
            };
            match sent {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let mut body = PooledBody(Box::new(Pooled {
                        body,
                        home: Some((self.idle.clone(), to.clone(), now)),
                    }));
                    body.give_back_at_end();
                    return Ok(Response::from_parts(parts, body));
                }
                // a reused connection the backend had closed, found before anything was sent
                Err(Failed {
                    unsent: Some(unsent),
                    ..
                }) if reused => (head, body) = unsent,
                Err(Failed { error, .. }) => return Err((SendError::Http(error), None)),
            }
        }
    }

    /// The most recently used idle connection to `to` that is still open and, at `now`, not
    /// idle for longer than [`IDLE_FOR`].
    fn checkout(&self, to: &Endpoint, now: Instant) -> Option<Conn> {
        loop {
            let (mut conn, since) = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let list = idle.get_mut(to)?;
                list.pop()?
            };
            if now.saturating_duration_since(since) <= IDLE_FOR && conn.is_open() {
                return Some(conn);
            }
        }
    }

    /// A new connection: TCP, then TLS for an `https://` endpoint, both within `timeout`. A
    /// TLS failure (an untrusted or misnamed certificate, no common protocol) is a failure to
    /// connect, like a refusal.
    async fn connect(&self, to: &Endpoint, timeout: Duration) -> Result<Conn, SendError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let late = || {
            SendError::Connect(format!(
                "connect to {to}: no answer within {} ms",
                timeout.as_millis()
            ))
        };
        let connecting = tokio::net::TcpStream::connect(to.addr);
        let stream = match tokio::time::timeout_at(deadline, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(SendError::Connect(format!("connect to {to}: {e}"))),
            Err(_) => return Err(late()),
        };
        let _ = stream.set_nodelay(true);
        let Some(name) = &to.tls else {
            return Ok(Conn::new(Stream::Tcp(stream)));
        };
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|e| SendError::Connect(format!("{name:?} is not a TLS server name: {e}")))?;
        match tokio::time::timeout_at(deadline, self.tls.connect(server_name, stream)).await {
            Ok(Ok(tls)) => Ok(Conn::new(Stream::Tls(Box::new(tls)))),
            Ok(Err(e)) => Err(SendError::Connect(format!("TLS with {to}: {e}"))),
            Err(_) => Err(late()),
        }
    }
}

/// A backend's response body that returns its connection to the pool once read to the end.
/// Dropped earlier (the client went away), the connection is closed instead: it may still
/// carry the rest of the body.
///
/// Boxed: a response and its body are moved through every layer between the exchange and
/// hyper (the attempt, the retry loop, the handler, hyper's dispatcher), and a body of a
/// pointer's size makes each of those moves a copy of registers rather than a call to
/// `memcpy` for 176 bytes (callgrind, `/data`: 30.8k → 30.0k instructions a forward, the
/// allocation included).
pub struct PooledBody(Box<Pooled>);

struct Pooled {
    body: super::h1::Incoming,
    /// Where the connection goes back, and the stamp it goes back with.
    home: Option<(Idle, Endpoint, Instant)>,
}

impl PooledBody {
    /// Put the connection back if the body has been read to its end and the connection may
    /// carry another request.
    fn give_back_at_end(&mut self) {
        if !self.0.body.is_end_stream() {
            return;
        }
        let (Some(conn), Some((idle, addr, since))) = (self.0.body.reusable(), self.0.home.take())
        else {
            return;
        };
        let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE {
            list.push((conn, since));
        }
    }

    /// The backend's connection after a `101 Switching Protocols`.
    pub fn upgrade(&mut self) -> Option<super::h1::Upgraded> {
        self.0.body.upgrade()
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = Broken;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Broken>>> {
        let frame = Pin::new(&mut self.0.body).poll_frame(cx);
        if frame.is_ready() {
            self.give_back_at_end();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.0.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.body.size_hint()
    }
}
