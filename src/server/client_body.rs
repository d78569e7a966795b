//! A client's request body as rulegate reads it: capped at the route's limit, bounded in time
//! by `serve --body-timeout`, and its failures told apart from a backend's.
//!
//! One reader for every place a body is read — buffered for a form, a signature or the token
//! endpoint, discarded for a mock with a body limit, streamed to a backend — so the same
//! request gets the same answer wherever its body is read. Its error is a [`BodyError`]
//! carrying the canonical reason: the forwarding code finds it in hyper's error chain and
//! answers it as the client's fault, never as a failed backend.
//!
//! The deadline counts from the first time the body is read and covers the whole body (not
//! the gap between two reads: one byte every two seconds would otherwise never end). Its
//! sleep comes from the gateway's coarse timer and is only made when the client keeps rulegate
//! waiting, so a body already in the buffer costs no timer at all.

use super::header_timer::HeaderTimer;
use crate::dialect::Reason;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::rt::{Sleep, Timer};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A body left unread by a refusal is read and thrown away, so the connection can serve the
/// next request, when it announces at most this many bytes (nginx discards unread bodies the
/// same way); a larger or unannounced one closes the connection, and the answer says so.
pub const DISCARD_AT_MOST: u64 = 64 << 10;

/// The body timeout and the timer its deadlines sleep on.
#[derive(Clone)]
pub struct Clock {
    pub timer: HeaderTimer,
    pub timeout: Duration,
}

/// Why a client's body could not be read, as the reason to answer with.
#[derive(Debug)]
pub struct BodyError(pub Reason);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Reason::BodyTimeout => f.write_str("the client's request body did not arrive in time"),
            Reason::BodyTooLarge => f.write_str("the client's request body is over the limit"),
            Reason::BadRequest => f.write_str("the client's request body is malformed"),
            _ => f.write_str("the client went away while sending its request body"),
        }
    }
}

impl std::error::Error for BodyError {}

/// A client's request body, capped and timed.
pub struct ClientBody {
    inner: Incoming,
    /// Bytes still allowed under the route's limit.
    remaining: u64,
    clock: Clock,
    /// Set on the first read.
    deadline: Option<Instant>,
    /// Made the first time the client keeps rulegate waiting.
    sleep: Option<Pin<Box<dyn Sleep>>>,
    /// Whether rulegate is waiting for the client right now (shared with the forwarding code,
    /// which blames the client, not the backend, when a backend timeout strikes meanwhile).
    waiting: Arc<AtomicBool>,
}

impl ClientBody {
    pub fn new(inner: Incoming, limit: u64, clock: &Clock) -> ClientBody {
        ClientBody {
            inner,
            remaining: limit,
            clock: clock.clone(),
            deadline: None,
            sleep: None,
            waiting: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A handle that tells whether rulegate is waiting for the client's bytes.
    pub fn waiting(&self) -> Arc<AtomicBool> {
        self.waiting.clone()
    }

    /// Whether the deadline has passed; arms the sleep that wakes this task when it does.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + self.clock.timeout);
        let sleep = self
            .sleep
            .get_or_insert_with(|| self.clock.timer.sleep_until(deadline));
        sleep.as_mut().poll(cx).is_ready()
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.deadline.is_none() {
            this.deadline = Some(Instant::now() + this.clock.timeout);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                this.waiting.store(true, Ordering::Relaxed);
                if this.timed_out(cx) {
                    return Poll::Ready(Some(Err(BodyError(Reason::BodyTimeout))));
                }
                Poll::Pending
            }
            Poll::Ready(frame) => {
                this.waiting.store(false, Ordering::Relaxed);
                Poll::Ready(match frame {
                    None => None,
                    Some(Err(e)) => Some(Err(BodyError(classify(&e)))),
                    Some(Ok(frame)) => {
                        let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                        match this.remaining.checked_sub(len) {
                            Some(left) => {
                                this.remaining = left;
                                Some(Ok(frame))
                            }
                            None => Some(Err(BodyError(Reason::BodyTooLarge))),
                        }
                    }
                })
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that hyper could not read: framing it cannot decode (a malformed chunk) is a bad
/// request; anything else (the connection closed or reset mid-body) is a client gone away.
fn classify(e: &hyper::Error) -> Reason {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            ) {
                return Reason::BadRequest;
            }
        }
        source = err.source();
    }
    Reason::ClientClosed
}

/// Read the whole body, up to `limit` bytes, within the body timeout.
pub async fn read(body: Incoming, limit: u64, clock: &Clock) -> Result<Bytes, Reason> {
    match ClientBody::new(body, limit, clock).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(BodyError(reason)) => Err(reason),
    }
}

/// Whether `reason` is one a client's body fails with (see [`BodyError`]): from a forward, the
/// body is the only source of these.
pub fn is_body_failure(reason: &Reason) -> bool {
    matches!(
        reason,
        Reason::BodyTooLarge | Reason::BodyTimeout | Reason::BadRequest | Reason::ClientClosed
    )
}

/// The reason a client's body failed, if `e` (a backend exchange's error) came from it.
pub fn failure_in(e: &(dyn std::error::Error + 'static)) -> Option<Reason> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(BodyError(reason)) = err.downcast_ref::<BodyError>() {
            return Some(reason.clone());
        }
        source = err.source();
    }
    None
}

/// Settle a body the answer left unread on an HTTP/1 connection: one that announces at most
/// [`DISCARD_AT_MOST`] bytes is read and thrown away once the answer is on its way, within the
/// body timeout, and hyper then reads the connection's next request. A larger or unannounced
/// one, or one a client holds back until it gets `100 Continue` (which a refusal never sends:
/// it may or may not send the body next), cannot be kept. Returns whether the connection must
/// close (the answer then says so). A discarded body that fails or is late still ends the
/// connection: hyper closes it when the body is dropped unread.
pub fn unread(body: Incoming, expects_continue: bool, clock: &Clock) -> bool {
    if body.is_end_stream() {
        return false;
    }
    match body.size_hint().exact() {
        Some(n) if n <= DISCARD_AT_MOST && !expects_continue => {
            let body = ClientBody::new(body, DISCARD_AT_MOST, clock);
            tokio::spawn(async move {
                let _ = body.collect().await;
            });
            false
        }
        _ => true,
    }
}
