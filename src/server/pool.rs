//! Keep-alive connections to backends: hyper's HTTP/1 client connections, kept idle per
//! backend address and reused most-recent first.
//!
//! hyper-util's pooled `Client` does the same with more generality (any connector, HTTP/2,
//! pool keys by scheme and authority, checkout races between a new connection and a returned
//! one); on the bench's forward route its checkout and return cost about as many instructions
//! as the rest of the forwarding code. Here a connection is taken from a vector under a mutex
//! and put back when its response body has been read to the end.

use super::handler::Body;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
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

type Idle = Arc<Mutex<HashMap<SocketAddr, Vec<(SendRequest<Body>, Instant)>>>>;

#[derive(Default)]
pub struct Pool {
    idle: Idle,
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made: refused, unreachable, or the connect timeout passed.
    Connect(String),
    /// The connection failed while the request was sent or the response head read.
    Http(hyper::Error),
    /// Connected, but the response head did not arrive by the deadline given to
    /// [`Pool::send_by`].
    Timeout,
}

impl Pool {
    /// Send `request` to `addr` on an idle connection or a new one. A request that a reused
    /// connection could not take (the backend closed it while it sat idle) is sent once more
    /// on a new connection; hyper hands such a request back unsent.
    pub async fn send(
        &self,
        addr: SocketAddr,
        connect_timeout: Duration,
        request: Request<Body>,
    ) -> Result<Response<PooledBody>, SendError> {
        self.send_by(addr, connect_timeout, None, request).await
    }

    /// [`Pool::send`], and when `answer_by` is given, [`SendError::Timeout`] if the response
    /// head has not arrived by then: callers that answer a slow peer differently from one that
    /// cannot be reached (the external authorizer) tell the two apart this way.
    pub async fn send_by(
        &self,
        addr: SocketAddr,
        connect_timeout: Duration,
        answer_by: Option<tokio::time::Instant>,
        mut request: Request<Body>,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            let (mut sender, reused) = match self.checkout(addr).await {
                Some(sender) => (sender, true),
                None => (connect(addr, connect_timeout).await?, false),
            };
            let sent = match answer_by {
                None => sender.try_send_request(request).await,
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, sender.try_send_request(request)).await
                    {
                        Ok(sent) => sent,
                        Err(_) => return Err(SendError::Timeout),
                    }
                }
            };
            match sent {
                Ok(response) => {
                    let upgraded = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    let home = (!upgraded).then(|| (self.idle.clone(), addr, sender));
                    let (parts, body) = response.into_parts();
                    let mut body = PooledBody { body, home };
                    if body.body.is_end_stream() {
                        body.give_back();
                    }
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection to `addr` that is still open.
    async fn checkout(&self, addr: SocketAddr) -> Option<SendRequest<Body>> {
        loop {
            let (mut sender, since) = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let list = idle.get_mut(&addr)?;
                list.pop()?
            };
            if since.elapsed() > IDLE_FOR || sender.is_closed() {
                continue;
            }
            // Ready once the connection's task has finished the previous exchange.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }
}

async fn connect(addr: SocketAddr, timeout: Duration) -> Result<SendRequest<Body>, SendError> {
    let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(SendError::Connect(format!("connect to {addr}: {e}"))),
        Err(_) => {
            return Err(SendError::Connect(format!(
                "connect to {addr}: no answer within {} ms",
                timeout.as_millis()
            )))
        }
    };
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendError::Connect(format!("handshake with {addr}: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(%addr, "backend connection ended: {e}");
        }
    });
    Ok(sender)
}

/// A backend's response body that returns its connection to the pool once read to the end.
/// Dropped earlier (the client went away), the connection is closed instead: it may still
/// carry the rest of the body.
pub struct PooledBody {
    body: Incoming,
    home: Option<(Idle, SocketAddr, SendRequest<Body>)>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some((idle, addr, sender)) = self.home.take() {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            let list = idle.entry(addr).or_default();
            if list.len() < MAX_IDLE {
                list.push((sender, Instant::now()));
            }
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.home = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
