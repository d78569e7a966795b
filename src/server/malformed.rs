//! Requests too malformed to parse get the dialect's row, not hyper's bare status.
//!
//! hyper answers a request it cannot parse itself (`400`, `414` or `431`, with
//! `connection: close`, `content-length: 0` and no body) and never shows it to the service.
//! This wrapper around the connection's stream recognises that exact answer on its way out and
//! writes the policy's default dialect's row in its place: the same status line family, the
//! vendor's body and request-id header. Nothing else is touched, and the check is a prefix
//! comparison on writes that begin with an HTTP/1.1 4xx status line, which rulegate's own
//! answers never share (they always carry a request-id header after the status line).
//!
//! It also serves the two things `serve_connection` needs from the stream: bytes already read
//! (the HTTP/2 preface sniff, or a head to parse again) are replayed before the socket's, and
//! on a connection served with hyper's default header count a `431` is held back instead of
//! written, with the shutdown after it, so the head can be parsed again with the wider count
//! (see `mod.rs`, `MAX_HEADER_LINES`). Bytes that only look like it (the end of a response
//! body) are written as soon as hyper reads or writes again, or by `serve_h1` when the
//! connection ends without hyper's parse error: a response is never cut short.

use super::Gateway;
use crate::dialect::{self, Reason};
use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// hyper's automatic answers to parse errors, up to their `date` header.
const AUTOMATIC: [(&[u8], u16); 3] = [
    (
        b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n",
        400,
    ),
    (
        b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n",
        414,
    ),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n",
        431,
    ),
];

pub struct Answering<S> {
    inner: S,
    gw: Arc<Gateway>,
    /// The dialect's answer still to be written, and how many bytes of hyper's it replaces.
    pending: Option<(Vec<u8>, usize)>,
    /// Bytes read from `inner` already, to be read again first.
    replay: Bytes,
    /// Hold back hyper's `431` (and the shutdown after it) instead of answering it.
    hold: bool,
    /// What looks like hyper's `431`, not written (yet).
    held: Option<Vec<u8>>,
}

impl<S> Answering<S> {
    pub fn new(inner: S, gw: Arc<Gateway>) -> Answering<S> {
        Answering {
            inner,
            gw,
            pending: None,
            replay: Bytes::new(),
            hold: false,
            held: None,
        }
    }

    /// The stream reads `bytes` before anything else.
    pub fn replay(&mut self, bytes: Bytes) {
        debug_assert!(self.replay.is_empty());
        self.replay = bytes;
    }

    /// Whether hyper's `431` is held back from now on (it is answered when not).
    /// Anything held back is dropped: hyper's `431` that will not be answered.
    pub fn hold_too_large(&mut self, hold: bool) {
        self.hold = hold;
        self.held = None;
    }

    /// Whether what looks like hyper's `431` is held back.
    pub fn held_too_large(&self) -> bool {
        self.held.is_some()
    }
}

impl<S: AsyncWrite + Unpin> Answering<S> {
    /// Write what was held back: it was not hyper's answer to a parse error after all.
    fn release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(bytes) = &mut self.held {
            while !bytes.is_empty() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, bytes))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                bytes.drain(..n);
            }
            ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
            self.held = None;
        }
        Poll::Ready(Ok(()))
    }

    /// Write what was held back, then shut the stream down.
    pub async fn release_and_shutdown(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.release(cx)).await?;
        std::future::poll_fn(|cx| Pin::new(&mut self.inner).poll_shutdown(cx)).await
    }
}

/// Where hyper's automatic `431` begins in `buf`, if `buf` ends with it. It is the last
/// thing hyper writes on a connection, and its length is fixed (an HTTP date is 29 bytes).
fn too_large_at(buf: &[u8]) -> Option<usize> {
    const HEAD: &[u8] = AUTOMATIC[2].0;
    const LEN: usize = HEAD.len() + "date: \r\n\r\n".len() + 29;
    let at = buf.len().checked_sub(LEN)?;
    (buf[at..].starts_with(HEAD) && buf.ends_with(b"\r\n\r\n")).then_some(at)
}

/// The dialect's answer for hyper's automatic `status`, as bytes on the wire.
fn replacement(gw: &Gateway, status: u16) -> Vec<u8> {
    let reason = match status {
        414 => Reason::UriTooLarge,
        431 => Reason::HeadersTooLarge,
        _ => Reason::BadRequest,
    };
    let dialect = gw.snapshot.load().default_dialect;
    let id = crate::decide::RequestId::random();
    let e = dialect::render(dialect, &reason, &id);
    let mut out = dialect::status_line(e.status) + "\r\n";
    for (k, v) in &e.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "connection: close\r\ncontent-length: {}\r\ndate: {}\r\n\r\n",
        e.body.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now())
    ));
    out.push_str(&e.body);
    tracing::debug!(request_id = %id, status, "answered a request that does not parse");
    out.into_bytes()
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Answering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // hyper reads no more after a parse error: what it held back was a response's end
        if self.held.is_some() {
            ready!(self.release(cx))?;
        }
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.remaining());
            buf.put_slice(&self.replay[..n]);
            self.replay.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Answering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.held.is_some() {
            // hyper writes nothing after its answer to a parse error
            ready!(self.release(cx))?;
        }
        if self.hold {
            if let Some(at) = too_large_at(buf) {
                if at > 0 {
                    // a response before it (pipelining): hyper writes the rest again
                    return Pin::new(&mut self.inner).poll_write(cx, &buf[..at]);
                }
                self.held = Some(buf.to_vec());
                return Poll::Ready(Ok(buf.len()));
            }
        }
        if self.pending.is_none() && buf.starts_with(b"HTTP/1.1 4") {
            if let Some((_, status)) = AUTOMATIC.iter().find(|(head, _)| buf.starts_with(head)) {
                let bytes = replacement(&self.gw, *status);
                self.pending = Some((bytes, buf.len()));
            }
        }
        let this = &mut *self;
        match &mut this.pending {
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
            Some((bytes, replaces)) => {
                while !bytes.is_empty() {
                    let n = ready!(Pin::new(&mut this.inner).poll_write(cx, bytes))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    bytes.drain(..n);
                }
                let replaced = *replaces;
                this.pending = None;
                Poll::Ready(Ok(replaced))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.held.is_some() {
            // `serve_h1` decides, once it knows how the connection ended
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOO_LARGE: &[u8] =
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
        content-length: 0\r\ndate: Fri, 04 Dec 2026 09:59:00 GMT\r\n\r\n";

    #[test]
    fn hypers_431_is_found_alone_or_after_a_pipelined_response_and_nowhere_else() {
        assert_eq!(too_large_at(TOO_LARGE), Some(0));
        let before = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let both = [&before[..], TOO_LARGE].concat();
        assert_eq!(too_large_at(&both), Some(before.len()));
        assert_eq!(too_large_at(before), None);
        // a body that merely quotes it, with more after it, is not hyper's answer
        let quoted = [TOO_LARGE, b"x"].concat();
        assert_eq!(too_large_at(&quoted), None);
        assert_eq!(too_large_at(&TOO_LARGE[1..]), None);
    }
}
