//! HTTP/1.1 exchanges with backends, run on the task of the request they serve.
//!
//! Why by hand: hyper's client connection (what rulegate used before) runs each backend
//! connection on a task of its own; a request reaches it through one channel, its answer comes
//! back through another, and every exchange wakes both tasks. On the bench's forward (2 cores,
//! nginx as the backend) the floor — tokio and hyper's server with nothing of rulegate in them —
//! forwarded at 0.75× nginx's `proxy_pass` over hyper's client connections and at 0.98–1.0×
//! with the exchange written out on the request's task (bench/README.md, "the backend leg").
//! No maintained crate offers an HTTP/1 exchange on a connection its caller owns and polls, so
//! the exchange is here: httparse (hyper's own parser) reads the response head and the chunk
//! sizes; this module frames the request, reads the response's body and says when a connection
//! may carry the next request. Keeping connections idle is `pool.rs`'s.
//!
//! The rules, with RFC 9112's sections:
//! - The request goes out in origin form with its headers as given (names lower-case, as
//!   hyper writes them). Its framing is this module's alone (§6): a `Transfer-Encoding` in the
//!   given headers is never written; a valid `Content-Length` is written back as one number
//!   and held to, a body of known size gets one, any other is sent chunked; an empty body is
//!   sent as is, and refused when a `Content-Length` above 0 was given for it.
//! - The body is sent while the response is read: a backend may answer before it has read the
//!   whole body (a 413, a streaming echo). When sending fails after nothing but the request
//!   head could have been refused, the response that may already be on its way is still read;
//!   the connection is not reused.
//! - Response framing (§6.3): no body for `HEAD`, 1xx, 204 and 304; 1xx other than 101 are
//!   read and dropped; `Transfer-Encoding` ending in `chunked` is chunked, any other is read to
//!   the close; a response with both `Transfer-Encoding` and `Content-Length` loses the
//!   `Content-Length` (it is what a response-splitting backend would send) and its connection;
//!   differing or malformed `Content-Length`s are refused; neither header: read to the close.
//! - A chunk-size line must start with a hex digit and carry no control character (a bare LF in
//!   an extension is how chunk-based smuggling starts); trailers are read and dropped.
//! - A connection is reused only when the whole request was sent, the response was HTTP/1.1
//!   without `Connection: close`, its body was framed and read to its end, and the backend sent
//!   nothing after it.
//! - Limits: the response head at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields, a chunk
//!   size line or a trailer line at most [`MAX_LINE`] bytes.

use super::handler::{Body, BoxError};
use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use hyper::body::{Frame, SizeHint};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The largest response head read (nginx's `proxy_buffer_size` is 4 or 8 KiB; hyper's
/// client allowed about 400 KiB).
pub const MAX_HEAD: usize = 64 << 10;
/// The most header fields a response head may have.
pub const MAX_HEADERS: usize = 128;
/// The longest chunk-size line or trailer line.
pub const MAX_LINE: usize = 4 << 10;
/// The free space each read asks for.
const READ_SIZE: usize = 8 << 10;

/// A connection to a backend: TCP, or TLS over TCP.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum Broken {
    /// The connection failed: reset, refused a write, or timed out in the kernel.
    Io(io::Error),
    /// The backend closed the connection before its response was complete.
    Closed,
    /// The backend's bytes are not an HTTP/1 response rulegate accepts.
    Malformed(String),
    /// The request's body failed: the client's doing (`client_body::failure_in` finds why).
    Body(BoxError),
    /// The request's body does not fit the `Content-Length` its head gives: a head and a body
    /// paired wrongly by rulegate itself, never the backend's doing (found before a byte is
    /// written, except for a streamed body that turns out longer or shorter).
    Unframed(&'static str),
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Io(e) => write!(f, "connection failed: {e}"),
            Broken::Closed => f.write_str("the backend closed the connection mid-response"),
            Broken::Malformed(why) => write!(f, "malformed response: {why}"),
            Broken::Body(e) => write!(f, "request body: {e}"),
            Broken::Unframed(why) => write!(f, "request not sent as framed: {why}"),
        }
    }
}

impl std::error::Error for Broken {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Broken::Io(e) => Some(e),
            Broken::Body(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

fn malformed(why: impl Into<String>) -> Broken {
    Broken::Malformed(why.into())
}

/// A connection and the bytes read from it but not yet used.
pub struct Conn {
    stream: Stream,
    buf: BytesMut,
}

impl Conn {
    pub fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle connection can take a request: the backend has neither closed it nor
    /// sent anything unasked. One read with a waker that does nothing: it never waits.
    pub fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.buf.is_empty() && self.poll_fill(&mut cx).is_pending()
    }

    /// Read what the backend has sent into the buffer: the number of bytes, 0 at its close.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buf)
    }

    /// Whether there are bytes to use: in the buffer, else read from the connection; `false`
    /// at its close.
    fn poll_some(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if !self.buf.is_empty() {
            return Poll::Ready(Ok(true));
        }
        Poll::Ready(Ok(ready!(self.poll_fill(cx))? > 0))
    }
}

/// How the request's body is framed on the wire.
enum Out {
    /// This many bytes are still to come.
    Length(u64),
    Chunked,
}

/// A request's head as it goes out: the request line and the header lines, written once as
/// the headers are chosen (the forward writes them straight from the client's, with no map in
/// between: `outgoing.rs`). The framing headers are kept aside, never written here: the
/// exchange frames the body as the module's rules say, holding it to the `Content-Length`
/// given.
pub struct Head {
    bytes: Vec<u8>,
    /// The `Content-Length` lines given, read as one number (see [`content_length`]).
    length: Result<Option<u64>, ()>,
    head_request: bool,
}

impl Head {
    /// The request line; `target` in origin form (`/` when empty). `room`: the bytes the
    /// header lines are expected to take.
    pub fn new(method: &Method, target: &str, room: usize) -> Head {
        let target = if target.is_empty() { "/" } else { target };
        let mut bytes = Vec::with_capacity(method.as_str().len() + target.len() + room + 64);
        bytes.extend_from_slice(method.as_str().as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(target.as_bytes());
        bytes.extend_from_slice(b" HTTP/1.1\r\n");
        Head {
            bytes,
            length: Ok(None),
            head_request: *method == Method::HEAD,
        }
    }

    /// The head of a request built as an `http::Request` (the authorizer's call, a health
    /// probe): its headers in the map's order.
    pub fn of(parts: &http::request::Parts) -> Head {
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        Head::with(&parts.method, target, &parts.headers)
    }

    /// The request line and the headers of a map, in the map's order (a signed forward's:
    /// the signer reads and adds to a map).
    pub fn with(method: &Method, target: &str, headers: &HeaderMap) -> Head {
        let mut head = Head::new(method, target, room(headers));
        for (name, value) in headers {
            head.header(name, value);
        }
        head
    }

    /// One header line (a `Content-Length` is read, a `Transfer-Encoding` dropped: the
    /// exchange writes the framing).
    pub fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.line(name, value.as_bytes());
    }

    /// A value made from pieces (a chain, an id): written only when it is a valid field
    /// value, as `HeaderValue::from_bytes` would take it, else left out.
    pub fn made(&mut self, name: &HeaderName, value: &[u8]) {
        if is_field_value(value) {
            self.line(name, value);
        }
    }

    fn line(&mut self, name: &HeaderName, value: &[u8]) {
        if *name == header::CONTENT_LENGTH {
            self.length = self.length.and_then(|agreed| agree(agreed, value));
        } else if *name != header::TRANSFER_ENCODING {
            self.bytes.extend_from_slice(name.as_str().as_bytes());
            self.bytes.extend_from_slice(b": ");
            self.bytes.extend_from_slice(value);
            self.bytes.extend_from_slice(b"\r\n");
        }
    }

    /// The request line and header lines as written so far (tests, fuzzing).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The request on its way out: framing bytes, then body data, as the body yields them.
struct Sender {
    /// The head, a chunk's size line or end: written before `data`, from `written` on.
    prefix: Vec<u8>,
    /// How long the request line and header lines are (the rest of the head is framing),
    /// and the `Content-Length` they gave: to hand the head back unsent.
    head_len: usize,
    given: Result<Option<u64>, ()>,
    written: usize,
    data: Bytes,
    /// The body still to be read; `None` once it has ended.
    body: Option<Body>,
    out: Out,
    /// A chunk's data was queued and its CRLF is not yet.
    chunk_open: bool,
    /// A bufferred body's bytes, kept to give the request back while nothing was written.
    replay: Option<Bytes>,
    /// Something reached the connection.
    wrote: bool,
    done: bool,
    /// The request cannot be framed as its headers say (a buffered body that does not match
    /// the `Content-Length` given): the exchange fails before anything is written.
    broken: Option<Broken>,
}

impl Sender {
    fn new(head: Head, mut body: Body) -> Sender {
        let mut replay = None;
        let mut ended = hyper::body::Body::is_end_stream(&body);
        // a buffered body is taken at once: its bytes leave with the head in one write
        if let (Body::Full(full), false) = (&mut body, ended) {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            if let Poll::Ready(Some(Ok(frame))) =
                hyper::body::Body::poll_frame(Pin::new(full), &mut cx)
            {
                replay = frame.into_data().ok();
            }
            ended = true;
        }
        let length = replay.as_ref().map(|b| b.len() as u64);
        let (head_len, given) = (head.bytes.len(), head.length);
        let (prefix, out, broken) = framed(head, &body, ended, length);
        let mut sender = Sender {
            prefix,
            head_len,
            given,
            written: 0,
            data: Bytes::new(),
            body: (!ended).then_some(body),
            out,
            chunk_open: false,
            replay: None,
            wrote: false,
            done: false,
            broken,
        };
        if let Some(bytes) = replay {
            // held to a Content-Length the headers gave, like any body
            let queued = sender.queue(bytes.clone()).and_then(|_| sender.finish());
            sender.broken = sender.broken.take().or(queued.err());
            sender.replay = Some(bytes);
        }
        sender
    }

    /// The head and the body back, if nothing of the request was written.
    fn unsent(mut self, head_request: bool) -> Option<(Head, Body)> {
        if self.wrote {
            return None;
        }
        self.prefix.truncate(self.head_len);
        let head = Head {
            bytes: self.prefix,
            length: self.given,
            head_request,
        };
        let body = match (self.replay, self.body) {
            (Some(bytes), _) => super::handler::full(bytes),
            (None, Some(body)) => body,
            (None, None) => super::handler::full(Bytes::new()),
        };
        Some((head, body))
    }

    /// Write what is ready: `Ready(Ok)` once all of the request is written and flushed.
    fn poll_send(&mut self, io: &mut Stream, cx: &mut Context<'_>) -> Poll<Result<(), Broken>> {
        if let Some(broken) = self.broken.take() {
            return Poll::Ready(Err(broken));
        }
        loop {
            ready!(self.poll_write_queued(io, cx)).map_err(Broken::Io)?;
            ready!(Pin::new(&mut *io).poll_flush(cx)).map_err(Broken::Io)?;
            let Some(body) = &mut self.body else {
                self.done = true;
                return Poll::Ready(Ok(()));
            };
            match ready!(hyper::body::Body::poll_frame(Pin::new(body), cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.queue(data)?;
                    }
                }
                Some(Err(e)) => {
                    self.body = None;
                    return Poll::Ready(Err(Broken::Body(e)));
                }
                None => {
                    self.body = None;
                    self.finish()?;
                }
            }
        }
    }

    fn poll_write_queued(&mut self, io: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.prefix.len() || !self.data.is_empty() {
            let head = &self.prefix[self.written..];
            let io = Pin::new(&mut *io);
            let n = ready!(match (head.is_empty(), self.data.is_empty()) {
                (true, _) => io.poll_write(cx, &self.data),
                (false, true) => io.poll_write(cx, head),
                (false, false) => {
                    io.poll_write_vectored(cx, &[IoSlice::new(head), IoSlice::new(&self.data)])
                }
            })?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wrote = true;
            let from_head = n.min(head.len());
            self.written += from_head;
            self.data.advance(n - from_head);
        }
        self.prefix.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Queue one frame's data with its framing.
    fn queue(&mut self, data: Bytes) -> Result<(), Broken> {
        if data.is_empty() {
            return Ok(());
        }
        match &mut self.out {
            Out::Length(left) => {
                *left = left.checked_sub(data.len() as u64).ok_or_else(|| {
                    Broken::Unframed("the request body is longer than its Content-Length")
                })?;
            }
            Out::Chunked => {
                if std::mem::replace(&mut self.chunk_open, true) {
                    self.prefix.extend_from_slice(b"\r\n");
                }
                self.prefix
                    .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            }
        }
        self.data = data;
        Ok(())
    }

    /// The body has ended: the last chunk, or a check that all the announced bytes came.
    fn finish(&mut self) -> Result<(), Broken> {
        match self.out {
            Out::Length(0) => Ok(()),
            Out::Length(_) => Err(Broken::Unframed(
                "the request body is shorter than its Content-Length",
            )),
            Out::Chunked => {
                if self.chunk_open {
                    self.prefix.extend_from_slice(b"\r\n");
                }
                self.prefix.extend_from_slice(b"0\r\n\r\n");
                Ok(())
            }
        }
    }
}

/// The head with its framing lines and the blank line that ends it, and how the body is
/// framed (see the module's rules). `ended`: the body has no bytes to read (any it had are
/// `length` bytes taken already). A `Content-Length` given for a body known to be empty must
/// say 0: anything else would leave the backend waiting for bytes that never come, and read
/// the next request on the connection as the rest of this one.
fn framed(
    head: Head,
    body: &Body,
    ended: bool,
    length: Option<u64>,
) -> (Vec<u8>, Out, Option<Broken>) {
    let Head {
        mut bytes,
        length: given,
        ..
    } = head;
    let mut broken = None;
    let (out, write) = match (ended, length, given) {
        (true, None, Ok(Some(n))) => {
            if n > 0 {
                broken = Some(Broken::Unframed(
                    "the request's Content-Length promises a body it does not have",
                ));
            }
            (Out::Length(0), Some(0))
        }
        (true, None, _) => (Out::Length(0), None),
        (_, _, Ok(Some(n))) => (Out::Length(n), Some(n)),
        (true, Some(n), _) => (Out::Length(n), Some(n)),
        (false, _, _) => match hyper::body::Body::size_hint(body).exact() {
            Some(n) => (Out::Length(n), Some(n)),
            None => (Out::Chunked, None),
        },
    };
    match (&out, write) {
        (_, Some(n)) => {
            bytes.extend_from_slice(b"content-length: ");
            bytes.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        (Out::Chunked, None) => bytes.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    bytes.extend_from_slice(b"\r\n");
    (bytes, out, broken)
}

/// The bytes `headers` take as header lines.
pub fn room(headers: &HeaderMap) -> usize {
    let lines = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4);
    lines.sum()
}

/// The value every `Content-Length` line agrees on: `Ok(None)` without one, `Err` when they
/// differ or one is not a number (each line may be a comma list of the same number).
fn content_length<'a>(lines: impl IntoIterator<Item = &'a HeaderValue>) -> Result<Option<u64>, ()> {
    lines
        .into_iter()
        .try_fold(None, |agreed, line| agree(agreed, line.as_bytes()))
}

/// [`content_length`] one line at a time: the number so far and the next line's.
fn agree(mut agreed: Option<u64>, line: &[u8]) -> Result<Option<u64>, ()> {
    for item in line.split(|b| *b == b',') {
        let n = number(item.trim_ascii()).ok_or(())?;
        if agreed.is_some_and(|a| a != n) {
            return Err(());
        }
        agreed = Some(n);
    }
    Ok(agreed)
}

/// 1 to 19 decimal digits (no sign, no space: a number that cannot overflow) as a number.
fn number(digits: &[u8]) -> Option<u64> {
    let plain = (1..=19).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit);
    plain.then(|| digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// One request's exchange on one connection.
pub struct Exchange {
    conn: Conn,
    sender: Sender,
    head_request: bool,
}

/// What failed, with the request's head and body when none of the request was written (the
/// request may then go to another connection).
pub struct Failed {
    pub error: Broken,
    pub unsent: Option<(Head, Body)>,
}

impl Exchange {
    pub fn new(conn: Conn, head: Head, body: Body) -> Exchange {
        let head_request = head.head_request;
        Exchange {
            conn,
            sender: Sender::new(head, body),
            head_request,
        }
    }

    /// Send the request and read the response's head; its body reads on from the connection.
    pub async fn response(mut self) -> Result<http::Response<Incoming>, Failed> {
        let mut send_failed = None;
        let head = std::future::poll_fn(|cx| self.poll_head(cx, &mut send_failed)).await;
        let (parts, framing, keep_alive) = match head {
            Ok(head) => head,
            Err(error) => {
                let unsent = match &error {
                    Broken::Io(_) | Broken::Closed => self.sender.unsent(self.head_request),
                    _ => None,
                };
                return Err(Failed {
                    error: send_failed.unwrap_or(error),
                    unsent,
                });
            }
        };
        let sending = !self.sender.done && send_failed.is_none();
        let body = Incoming {
            keep_alive: keep_alive && send_failed.is_none(),
            sender: sending.then(|| Box::new(self.sender)),
            conn: Some(self.conn),
            framing,
        };
        Ok(http::Response::from_parts(parts, body))
    }

    /// Send what is ready, then look for the response's head. A failure to send is kept in
    /// `send_failed` while the response may still come: a backend that answers early (a
    /// 413) may close its side before the body is all written.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        send_failed: &mut Option<Broken>,
    ) -> Poll<Result<(http::response::Parts, In, bool), Broken>> {
        let mut fresh = !self.conn.buf.is_empty();
        loop {
            if !self.sender.done && send_failed.is_none() {
                match self.sender.poll_send(&mut self.conn.stream, cx) {
                    Poll::Ready(Err(Broken::Io(e))) if self.sender.wrote => {
                        *send_failed = Some(Broken::Io(e))
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    _ => {}
                }
            }
            if fresh {
                if let Some(head) = read_head(&mut self.conn.buf, self.head_request)? {
                    return Poll::Ready(Ok(head));
                }
            }
            match ready!(self.conn.poll_fill(cx)) {
                Ok(0) => return Poll::Ready(Err(send_failed.take().unwrap_or(Broken::Closed))),
                Ok(_) => fresh = true,
                Err(e) => return Poll::Ready(Err(send_failed.take().unwrap_or(Broken::Io(e)))),
            }
        }
    }
}

/// How the response's body is framed, and how far it has been read.
enum In {
    Length(u64),
    Chunked(Chunk),
    /// Read to the connection's close.
    Close,
    /// A 101: the connection is the protocol's now.
    Upgrade,
    Done,
}

/// Where a chunked body's reading is.
enum Chunk {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
}

/// Parse the response head at the front of `buf`, if it is all there; 1xx responses other
/// than 101 are taken off and skipped. `head_request`: the request was `HEAD`.
fn read_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<(http::response::Parts, In, bool)>, Broken> {
    loop {
        let Some((mut parts, closes)) = parse_head(buf)? else {
            return Ok(None);
        };
        let status = parts.status.as_u16();
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let (framing, clean) = framing(&mut parts, head_request)?;
        let keep_alive = clean
            && parts.version == Version::HTTP_11
            && !matches!(framing, In::Close | In::Upgrade)
            && !closes;
        // the version is the connection's: the client is answered in its own
        parts.version = Version::HTTP_11;
        return Ok(Some((parts, framing, keep_alive)));
    }
}

/// The status, version and headers of the head at the front of `buf`, taken off it once it
/// is all there, and whether a `Connection` header says `close`. The header values share the
/// head's bytes (one allocation, not one each). `Connection` headers that say nothing but
/// `keep-alive` or `close`, and `Keep-Alive`, are this connection's alone and are left out
/// (the client's answer would drop them anyway); any other `Connection` header is kept, so that
/// the names it lists are dropped from the answer (`proxy::downstream_response`).
fn parse_head(buf: &mut BytesMut) -> Result<Option<(http::response::Parts, bool)>, Broken> {
    let mut fields: smallvec::SmallVec<[(HeaderName, usize, usize); 24]> = Default::default();
    let (len, code, version, reason) = {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            buf,
            &mut slots,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
            Ok(_) => return Err(malformed(format!("the head is over {MAX_HEAD} bytes"))),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(malformed(format!("more than {MAX_HEADERS} header fields")))
            }
            Err(e) => return Err(malformed(e.to_string())),
        };
        let base = buf.as_ptr() as usize;
        for h in response.headers.iter() {
            let name = header_name(h.name.as_bytes())
                .ok_or_else(|| malformed(format!("invalid header name {:?}", h.name)))?;
            fields.push((name, h.value.as_ptr() as usize - base, h.value.len()));
        }
        let reason = response
            .reason
            .map(|r| (r.as_ptr() as usize - base, r.len()));
        (len, response.code, response.version, reason)
    };
    let status =
        StatusCode::from_u16(code.unwrap_or(0)).map_err(|_| malformed("no valid status code"))?;
    let mut parts = http::Response::new(()).into_parts().0;
    let shared = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut closes = false;
    // drained, not consumed: `into_iter` would move the whole inline array (over 1 KiB)
    for (name, start, len) in fields.drain(..) {
        let bytes = &shared[start..start + len];
        if name == header::CONNECTION {
            let tokens = || bytes.split(|b| *b == b',').map(<[u8]>::trim_ascii);
            closes |= tokens().any(|t| t.eq_ignore_ascii_case(b"close"));
            let own = |t: &[u8]| {
                t.eq_ignore_ascii_case(b"keep-alive") || t.eq_ignore_ascii_case(b"close")
            };
            if tokens().all(own) {
                continue;
            }
        } else if name.as_str() == "keep-alive" {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(shared.slice(start..start + len))
            .map_err(|_| malformed(format!("invalid value in header {name}")))?;
        headers.append(name, value);
    }
    // a reason phrase other than the status's own goes to the client as the backend wrote it
    if let Some((start, len)) = reason {
        let reason = shared.slice(start..start + len);
        if status.canonical_reason().map(str::as_bytes) != Some(&reason[..]) {
            if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason) {
                parts.extensions.insert(reason);
            }
        }
    }
    parts.status = status;
    parts.version = match version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    parts.headers = headers;
    Ok(Some((parts, closes)))
}

/// A response header's name. The names nearly every backend answer carries are told by their
/// length and one comparison; `HeaderName::from_bytes` lower-cases every name into a buffer
/// before it looks it up, several times the work, for each header of each answer.
fn header_name(name: &[u8]) -> Option<HeaderName> {
    let common = match name.len() {
        4 => header::DATE,
        6 => header::SERVER,
        10 => header::CONNECTION,
        12 => header::CONTENT_TYPE,
        14 => header::CONTENT_LENGTH,
        17 => header::TRANSFER_ENCODING,
        _ => return HeaderName::from_bytes(name).ok(),
    };
    match token_is(name, common.as_str().as_bytes()) {
        true => Some(common),
        false => HeaderName::from_bytes(name).ok(),
    }
}

/// `name` equal, in any case, to `lower`: letters and `-` in lower case. Setting the 0x20 bit
/// lower-cases a letter; the only other byte it turns into a letter or `-` is CR (into `-`),
/// which is refused with every byte below `!`, so any bytes are answered right. Every byte
/// is compared, with no early exit, so the comparison runs on whole vectors
/// (`eq_ignore_ascii_case` goes byte by byte, lower-casing both sides).
fn token_is(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name.iter().zip(lower).fold(0, |diff, (&n, &l)| {
            diff | ((n | 0x20) ^ l) | u8::from(n < b'!')
        }) == 0
}

/// The body's framing from the status and headers (see the module's rules), and whether it
/// leaves the connection fit for another request.
fn framing(parts: &mut http::response::Parts, head_request: bool) -> Result<(In, bool), Broken> {
    match parts.status.as_u16() {
        101 => return Ok((In::Upgrade, false)),
        204 | 304 => return Ok((In::Done, true)),
        _ if head_request => return Ok((In::Done, true)),
        _ => {}
    }
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        if parts.version == Version::HTTP_10 {
            return Err(malformed("Transfer-Encoding in an HTTP/1.0 response"));
        }
        let both = parts.headers.remove(header::CONTENT_LENGTH).is_some();
        let chunked = parts
            .headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.as_bytes().rsplit(|b| *b == b',').next())
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        let framing = if chunked {
            In::Chunked(Chunk::Size)
        } else {
            In::Close
        };
        return Ok((framing, !both));
    }
    match content_length(parts.headers.get_all(header::CONTENT_LENGTH)) {
        Ok(Some(0)) => Ok((In::Done, true)),
        Ok(Some(n)) => Ok((In::Length(n), true)),
        Ok(None) => Ok((In::Close, false)),
        Err(()) => Err(malformed("invalid Content-Length")),
    }
}

/// A response's body, read from its connection. Read to its end, the connection may carry
/// another request ([`Incoming::reusable`]).
pub struct Incoming {
    conn: Option<Conn>,
    /// The request's body, still being sent (boxed: a body it sends may be a response's body).
    sender: Option<Box<Sender>>,
    framing: In,
    keep_alive: bool,
}

/// A connection given over to another protocol, with the bytes the backend already sent on it.
pub struct Upgraded {
    pub stream: Stream,
    pub read: Bytes,
}

impl Incoming {
    /// The connection, once the body has been read to its end and may carry another request.
    pub fn reusable(&mut self) -> Option<Conn> {
        let clean = matches!(self.framing, In::Done)
            && self.keep_alive
            && self.sender.is_none()
            && self.conn.as_ref().is_some_and(|c| c.buf.is_empty());
        clean.then(|| self.conn.take()).flatten()
    }

    /// The connection of a 101 response.
    pub fn upgrade(&mut self) -> Option<Upgraded> {
        if !matches!(self.framing, In::Upgrade) {
            return None;
        }
        self.framing = In::Done;
        let conn = self.conn.take()?;
        Some(Upgraded {
            stream: conn.stream,
            read: conn.buf.freeze(),
        })
    }

    /// Go on sending the request's body; a failure ends the sending, not the response.
    fn drive_sender(&mut self, cx: &mut Context<'_>) {
        let (Some(sender), Some(conn)) = (&mut self.sender, &mut self.conn) else {
            return;
        };
        match sender.poll_send(&mut conn.stream, cx) {
            Poll::Pending => {}
            Poll::Ready(done) => {
                if done.is_err() {
                    self.keep_alive = false;
                }
                self.sender = None;
            }
        }
    }

    /// The next piece of the body, `None` at its end.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Broken>>> {
        loop {
            let Some(conn) = &mut self.conn else {
                return Poll::Ready(None);
            };
            let have = match &self.framing {
                In::Done | In::Upgrade => return Poll::Ready(None),
                _ => ready!(conn.poll_some(cx)).map_err(Broken::Io)?,
            };
            let buf = &mut conn.buf;
            match &mut self.framing {
                In::Length(left) => {
                    if !have {
                        return Poll::Ready(Some(Err(Broken::Closed)));
                    }
                    let n = (*left).min(buf.len() as u64);
                    *left -= n;
                    if *left == 0 {
                        self.framing = In::Done;
                    }
                    return Poll::Ready(Some(Ok(buf.split_to(n as usize).freeze())));
                }
                In::Close => {
                    if !have {
                        self.framing = In::Done;
                        self.keep_alive = false;
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(buf.split().freeze())));
                }
                In::Chunked(chunk) => {
                    if !have {
                        return Poll::Ready(Some(Err(Broken::Closed)));
                    }
                    match chunked(chunk, buf)? {
                        Step::Data(data) => return Poll::Ready(Some(Ok(data))),
                        Step::More => {
                            // what is buffered is not enough: read more, even if some is there
                            if ready!(conn.poll_fill(cx)).map_err(Broken::Io)? == 0 {
                                return Poll::Ready(Some(Err(Broken::Closed)));
                            }
                        }
                        Step::On => {}
                        Step::End => self.framing = In::Done,
                    }
                }
                In::Done | In::Upgrade => unreachable!("returned above"),
            }
        }
    }
}

/// What a step through a chunked body gave.
enum Step {
    Data(Bytes),
    /// The buffer holds too little to go on.
    More,
    /// A part was read (a size, a CRLF): go on.
    On,
    End,
}

/// One step through a chunked body, from what `buf` holds (never empty here).
fn chunked(chunk: &mut Chunk, buf: &mut BytesMut) -> Result<Step, Broken> {
    match chunk {
        Chunk::Size => {
            let Some(line) = line_at(buf)? else {
                return Ok(Step::More);
            };
            if !buf[0].is_ascii_hexdigit() || buf[..line - 2].iter().any(|b| is_control(*b)) {
                return Err(malformed("invalid chunk size line"));
            }
            let size = match httparse::parse_chunk_size(&buf[..line]) {
                Ok(httparse::Status::Complete((_, size))) => size,
                _ => return Err(malformed("invalid chunk size line")),
            };
            buf.advance(line);
            *chunk = if size == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(size)
            };
            Ok(Step::On)
        }
        Chunk::Data(left) => {
            let n = (*left).min(buf.len() as u64);
            *left -= n;
            if *left == 0 {
                *chunk = Chunk::DataEnd;
            }
            Ok(Step::Data(buf.split_to(n as usize).freeze()))
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(Step::More);
            }
            if &buf[..2] != b"\r\n" {
                return Err(malformed("a chunk's data does not end with CRLF"));
            }
            buf.advance(2);
            *chunk = Chunk::Size;
            Ok(Step::On)
        }
        Chunk::Trailers => {
            let Some(line) = line_at(buf)? else {
                return Ok(Step::More);
            };
            buf.advance(line);
            Ok(if line == 2 { Step::End } else { Step::On })
        }
    }
}

/// The length of the CRLF-ended line at the front of `buf`, CRLF included; `None` while it
/// is incomplete. A bare LF, or a line over [`MAX_LINE`], is malformed.
fn line_at(buf: &[u8]) -> Result<Option<usize>, Broken> {
    match buf.iter().take(MAX_LINE).position(|b| *b == b'\n') {
        Some(0) => Err(malformed("a bare LF in chunked framing")),
        Some(lf) if buf[lf - 1] != b'\r' => Err(malformed("a bare LF in chunked framing")),
        Some(lf) => Ok(Some(lf + 1)),
        None if buf.len() >= MAX_LINE => Err(malformed("a chunked framing line is too long")),
        None => Ok(None),
    }
}

/// No control character but tab: what `HeaderValue::from_bytes` takes. Every byte is looked
/// at, with no early exit, so the check runs on whole vectors (the values are made here and
/// nearly always pass: an early exit would only cost).
fn is_field_value(value: &[u8]) -> bool {
    value.iter().fold(true, |ok, &b| ok & !is_control(b))
}

fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

impl hyper::body::Body for Incoming {
    type Data = Bytes;
    type Error = Broken;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Broken>>> {
        let this = self.get_mut();
        this.drive_sender(cx);
        let data = ready!(this.poll_data(cx));
        if let Some(Err(_)) = &data {
            this.keep_alive = false;
            this.framing = In::Done;
            this.conn = None;
        }
        Poll::Ready(data.map(|d| d.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, In::Done | In::Upgrade)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            In::Length(n) => SizeHint::with_exact(n),
            In::Done | In::Upgrade => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunked body decoded from `parts` arriving one after another: the data, or why not.
    fn decode(parts: &[&[u8]]) -> Result<Vec<u8>, String> {
        let (mut buf, mut chunk, mut data) = (BytesMut::new(), Chunk::Size, Vec::new());
        let mut parts = parts.iter();
        loop {
            if buf.is_empty() {
                match parts.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => return Err("incomplete".into()),
                }
                continue;
            }
            match chunked(&mut chunk, &mut buf).map_err(|e| e.to_string())? {
                Step::Data(d) => data.extend_from_slice(&d),
                Step::More => match parts.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => return Err("incomplete".into()),
                },
                Step::On => {}
                Step::End => return Ok(data),
            }
        }
    }

    const BODY: &[u8] = b"5;ext=\"q\"\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";

    #[test]
    fn a_chunked_body_decodes_the_same_however_its_bytes_are_split() {
        assert_eq!(decode(&[BODY]).unwrap(), b"hello world");
        for at in 1..BODY.len() {
            let (a, b) = BODY.split_at(at);
            assert_eq!(decode(&[a, b]).unwrap(), b"hello world", "split at {at}");
        }
        let bytes: Vec<&[u8]> = BODY.chunks(1).collect();
        assert_eq!(decode(&bytes).unwrap(), b"hello world");
    }

    #[test]
    fn chunk_lines_a_lenient_parser_would_take_are_refused() {
        for bad in [
            &b"5;x\nhello\r\n0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"g\r\nhello\r\n0\r\n\r\n",
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"11111111111111111\r\n",
            b"0\r\nTrailer: x\n\r\n",
        ] {
            let got = decode(&[bad]);
            assert!(
                got.as_ref().is_err_and(|e| e.starts_with("malformed")),
                "{:?}: {got:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_chunk_size_line_longer_than_the_limit_is_refused_before_it_ends() {
        let mut long = b"5;".to_vec();
        long.resize(MAX_LINE + 10, b'a');
        assert!(decode(&[&long]).is_err_and(|e| e.contains("too long")));
    }

    #[test]
    fn content_lengths_must_be_one_plain_number() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(content_length([&v("5")]), Ok(Some(5)));
        assert_eq!(content_length([&v("5, 5")]), Ok(Some(5)));
        assert_eq!(content_length([&v("5"), &v("5")]), Ok(Some(5)));
        assert_eq!(content_length(std::iter::empty()), Ok(None));
        for bad in ["5, 6", "+5", "-5", "0x5", "5 5", "", "99999999999999999999"] {
            assert_eq!(content_length([&v(bad)]), Err(()), "{bad:?}");
        }
        assert_eq!(content_length([&v("5"), &v("6")]), Err(()));
    }

    fn head_of(
        raw: &[u8],
        head_request: bool,
    ) -> Result<(http::response::Parts, In, bool), Broken> {
        let mut buf = BytesMut::from(raw);
        read_head(&mut buf, head_request).map(|h| h.expect("a whole head"))
    }

    #[test]
    fn transfer_encoding_in_an_http_1_0_answer_is_refused() {
        let raw = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(head_of(raw, false).is_err_and(|e| e.to_string().contains("HTTP/1.0")));
    }

    #[test]
    fn a_response_with_both_framings_is_chunked_loses_its_content_length_and_its_connection() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (parts, framing, keep) = head_of(raw, false).unwrap();
        assert!(matches!(framing, In::Chunked(_)));
        assert!(!parts.headers.contains_key(header::CONTENT_LENGTH));
        assert!(!keep);
    }

    #[test]
    fn framing_follows_the_status_the_method_and_the_headers() {
        let cases: [(&[u8], bool, &str, bool); 8] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
                false,
                "length 4",
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
                true,
                "done",
                true,
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", false, "done", true),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false,
                "done",
                true,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", false, "close", false),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                "close",
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: x, close\r\n\r\n",
                false,
                "length 4",
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\n",
                false,
                "length 4",
                false,
            ),
        ];
        for (raw, head_request, want, reusable) in cases {
            let (parts, framing, keep) = head_of(raw, head_request).unwrap();
            let got = match framing {
                In::Length(n) => format!("length {n}"),
                In::Chunked(_) => "chunked".into(),
                In::Close => "close".into(),
                In::Upgrade => "upgrade".into(),
                In::Done => "done".into(),
            };
            let raw = String::from_utf8_lossy(raw);
            assert_eq!((got.as_str(), keep), (want, reusable), "{raw:?}");
            assert_eq!(parts.version, Version::HTTP_11, "{raw:?}");
        }
    }

    #[test]
    fn connection_headers_of_this_connection_alone_are_left_out_and_others_kept() {
        let names = |raw: &[u8]| {
            let (parts, _, keep) = head_of(raw, false).unwrap();
            let names: Vec<String> = parts.headers.keys().map(|n| n.to_string()).collect();
            (names.join(" "), keep)
        };
        let kept = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
                     Content-Length: 0\r\n\r\n";
        assert_eq!(names(kept), ("content-length".into(), true));
        let closed = b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(names(closed), ("content-length".into(), false));
        let listing = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
                        Content-Length: 0\r\n\r\n";
        assert_eq!(
            names(listing),
            ("connection x-hop content-length".into(), true)
        );
    }

    #[test]
    fn interim_answers_are_skipped_and_a_101_is_an_upgrade() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n\
                    HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let (parts, framing, _) = head_of(raw, false).unwrap();
        assert_eq!(
            (parts.status, matches!(framing, In::Done)),
            (StatusCode::OK, true)
        );
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
        assert!(matches!(head_of(raw, false).unwrap().1, In::Upgrade));
    }

    #[test]
    fn a_reason_phrase_of_the_backends_own_is_kept_and_the_standard_one_is_not() {
        let (parts, _, _) =
            head_of(b"HTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n", false).unwrap();
        let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>().unwrap();
        assert_eq!(reason.as_bytes(), b"Fine");
        let (parts, _, _) =
            head_of(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false).unwrap();
        assert!(parts.extensions.get::<hyper::ext::ReasonPhrase>().is_none());
    }

    #[test]
    fn a_head_is_read_only_once_whole_and_only_up_to_the_limit() {
        let mut part = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Le"[..]);
        assert!(read_head(&mut part, false).unwrap().is_none());
        let mut huge = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX: "[..]);
        huge.resize(MAX_HEAD + 1, b'a');
        assert!(read_head(&mut huge, false).is_err());
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let mut many = BytesMut::from(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes());
        assert!(read_head(&mut many, false).is_err_and(|e| e.to_string().contains("header fields")));
    }

    fn head_for(method: &str, headers: &[(&str, &str)], body: Body) -> String {
        let mut request = http::Request::builder().method(method).uri("/p?q=1");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        let sender = Sender::new(Head::of(&parts), body);
        String::from_utf8(sender.prefix).unwrap()
    }

    #[test]
    fn the_request_head_carries_framing_of_rulegates_own() {
        let empty = || super::super::handler::full(Bytes::new());
        let full = |b: &'static str| super::super::handler::full(Bytes::from_static(b.as_bytes()));
        assert_eq!(
            head_for("GET", &[("host", "h")], empty()),
            "GET /p?q=1 HTTP/1.1\r\nhost: h\r\n\r\n"
        );
        assert_eq!(
            head_for("POST", &[("transfer-encoding", "chunked")], full("abc")),
            "POST /p?q=1 HTTP/1.1\r\ncontent-length: 3\r\n\r\n"
        );
        assert_eq!(
            head_for("POST", &[("content-length", "nope")], full("abc")),
            "POST /p?q=1 HTTP/1.1\r\ncontent-length: 3\r\n\r\n"
        );
        assert_eq!(
            head_for("POST", &[("content-length", "3")], full("abc")),
            "POST /p?q=1 HTTP/1.1\r\ncontent-length: 3\r\n\r\n"
        );
    }

    #[test]
    fn a_made_value_that_is_no_field_value_is_left_out_of_the_head() {
        let name = HeaderName::from_static("x-made");
        let mut head = Head::new(&Method::GET, "", 0);
        head.made(&name, b"ok\tvisible \x80");
        for bad in [&b"a\r\nx-evil: 1"[..], b"a\nb", b"nul\0", b"del\x7f"] {
            head.made(&name, bad);
        }
        assert_eq!(
            head.as_bytes(),
            b"GET / HTTP/1.1\r\nx-made: ok\tvisible \x80\r\n"
        );
    }

    /// A POST's head with this `Content-Length`.
    fn post_with_length(length: &str) -> Head {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .header("content-length", length)
            .body(())
            .unwrap()
            .into_parts();
        Head::of(&parts)
    }

    #[test]
    fn a_common_name_is_the_name_from_bytes_gives_in_any_case() {
        for name in [
            "Date",
            "date",
            "SERVER",
            "Connection",
            "content-type",
            "Content-Length",
            "Transfer-Encoding",
            "Dave",
            "Servers",
            "x-a",
            "Content-Lengtx",
            "",
            "Content~Type",
            "Content^Type",
            "Content_Type",
            "Date`",
            "@ATE",
        ] {
            let want = HeaderName::from_bytes(name.as_bytes()).ok();
            assert_eq!(header_name(name.as_bytes()), want, "{name:?}");
        }
    }

    #[test]
    fn a_content_length_promising_a_body_that_is_empty_is_never_sent() {
        let empty = || super::super::handler::full(Bytes::new());
        let sender = Sender::new(post_with_length("5"), empty());
        assert!(matches!(sender.broken, Some(Broken::Unframed(_))));
        let sender = Sender::new(post_with_length("0"), empty());
        assert!(sender.broken.is_none());
        assert!(String::from_utf8(sender.prefix)
            .unwrap()
            .ends_with("content-length: 0\r\n\r\n"));
    }

    #[test]
    fn a_buffered_body_that_disagrees_with_its_content_length_is_never_sent() {
        let sender = Sender::new(post_with_length("5"), super::super::handler::full("abc"));
        assert!(matches!(sender.broken, Some(Broken::Unframed(_))));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// `body` chunked in pieces of the given sizes (cycled), with an extension now and then.
        fn encode(body: &[u8], sizes: &[usize]) -> Vec<u8> {
            let (mut out, mut at, mut i) = (Vec::new(), 0, 0);
            while at < body.len() {
                let n = sizes[i % sizes.len()].min(body.len() - at);
                let ext = if i % 3 == 1 { ";k=v" } else { "" };
                out.extend_from_slice(format!("{n:X}{ext}\r\n").as_bytes());
                out.extend_from_slice(&body[at..at + n]);
                out.extend_from_slice(b"\r\n");
                (at, i) = (at + n, i + 1);
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any name, a common one in any case with a byte changed (a CR, a space, any
            /// token byte) included, is the name `HeaderName::from_bytes` gives.
            #[test]
            fn a_names_fast_path_agrees_with_from_bytes(
                name in prop_oneof![
                    "[-!#$%&'*+.^_`|~0-9A-Za-z\r\n\t @]{0,20}",
                    prop::sample::select(vec![
                        "date", "server", "connection", "content-type", "content-length",
                        "transfer-encoding",
                    ])
                    .prop_flat_map(|n| (Just(n), any::<u64>(), 0..n.len(), "[-!#$%&'*+.^_`|~0-9A-Za-z\r\n\t @]"))
                    .prop_map(|(n, case, at, other)| {
                        let mut name: String = n
                            .chars()
                            .enumerate()
                            .map(|(i, c)| if case >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                            .collect();
                        if case % 3 == 0 {
                            name.replace_range(at..at + 1, &other);
                        }
                        name
                    }),
                ],
            ) {
                prop_assert_eq!(header_name(name.as_bytes()), HeaderName::from_bytes(name.as_bytes()).ok());
            }

            /// Any body, chunked any way and arriving in any pieces, decodes to itself.
            #[test]
            fn any_chunking_of_any_body_decodes_to_the_body(
                body in proptest::collection::vec(any::<u8>(), 0..600),
                sizes in proptest::collection::vec(1usize..200, 1..6),
                cuts in proptest::collection::vec(1usize..64, 1..40),
            ) {
                let wire = encode(&body, &sizes);
                let mut pieces: Vec<&[u8]> = Vec::new();
                let (mut at, mut c) = (0, 0);
                while at < wire.len() {
                    let n = cuts[c % cuts.len()].min(wire.len() - at);
                    pieces.push(&wire[at..at + n]);
                    (at, c) = (at + n, c + 1);
                }
                prop_assert_eq!(decode(&pieces).unwrap(), body);
            }

            /// Whatever a backend sends, reading a head or a chunked body answers: a head, a
            /// wait for more, or a refusal — never a panic.
            #[test]
            fn any_bytes_are_read_or_refused(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
                let mut buf = BytesMut::from(&raw[..]);
                let _ = read_head(&mut buf, false);
                let _ = decode(&[&raw]);
            }

            /// The same for bytes that start as a response head does, so that the parser gets
            /// past the status line.
            #[test]
            fn any_head_like_bytes_are_read_or_refused(
                tail in proptest::collection::vec(
                    prop_oneof![Just(b'\r'), Just(b'\n'), Just(b':'), Just(b' '), Just(b','),
                                Just(b'0'), Just(b'5'), Just(b'a'), any::<u8>()], 0..300),
                name in prop_oneof![Just("Content-Length"), Just("Transfer-Encoding"),
                                    Just("Connection"), Just("X")],
            ) {
                let mut raw = format!("HTTP/1.1 200 OK\r\n{name}: ").into_bytes();
                raw.extend_from_slice(&tail);
                let mut buf = BytesMut::from(&raw[..]);
                let _ = read_head(&mut buf, false);
            }
        }
    }
}
