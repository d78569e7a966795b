//! A full-TLS-handshake load generator for bench/run.sh's handshake workload.
//!
//!   handshakes --cert cert.pem [--duration 10s] [--warmup 3s] [--connections 32] https://host:port/path
//!
//! keeps `--connections` TLS connections opening at once, each a fresh TLS 1.3 client (no
//! session to resume, no early data) that sends one `GET path` with `Connection: close`, reads
//! the answer, and is replaced by the next as soon as the server has closed it. It prints one
//! JSON line: handshakes completed in the measured window and per second, errors, non-2xx, what
//! the first connection negotiated (version, cipher suite, key exchange group, full or resumed),
//! and p50/p99 of connect-to-answer in ms.
//!
//! Why by hand: on this 2-core machine the load generator gets one core and the server the
//! other, so the generator has to spend less CPU on a handshake than the server does, or it
//! measures itself. h2load (OpenSSL 3.0) spends about 500 µs of its core on a handshake, more
//! than any server measured here (137–312 µs), and every server tied at its ~2k/s. This one
//! does the client's half of the same handshake with rustls (ring): an X25519 key share and its
//! agreement, the key schedule, one request — and little else. The certificate is pinned (the
//! server must present the bench's one) rather than chain-verified, and the server's
//! CertificateVerify signature is checked on one connection in [`tls::CHECK_EVERY`] (the first
//! included): an ECDSA P-256 verification is a quarter of this client's CPU (perf), it tells
//! the servers apart no better on every connection than on a sample, and a server cannot know
//! which of its handshakes are checked, so every one must be signed right. With every
//! signature checked this client managed ~5k handshakes/s on its core, which is what the
//! fastest server here accepts; the servers do all of their usual work either way.
//!
//! Same preferences as the OpenSSL clients of bench/run.sh (`client.cnf`): TLS 1.3 only,
//! AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305; groups X25519 then P-256; ALPN http/1.1.
#[allow(dead_code)] // the latency generator reads every field of an answer; this one its status
mod shared;
mod tls;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use shared::{or_exit, percentile, response_end, seconds, split_url, Response};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    cert: String,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    url: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        cert: String::new(),
        duration: Duration::from_secs(10),
        warmup: Duration::ZERO,
        connections: 32,
        url: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--cert" => a.cert = value()?,
            "--duration" => a.duration = seconds(&value()?)?,
            "--warmup" => a.warmup = seconds(&value()?)?,
            "--connections" => {
                a.connections = value()?.parse().map_err(|_| "--connections is a number")?
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => a.url = arg,
        }
    }
    if a.cert.is_empty() || a.url.is_empty() || a.connections == 0 {
        return Err("usage: handshakes --cert cert.pem [--duration 10s] [--warmup 0s] [--connections 32] https://host:port/path".into());
    }
    Ok(a)
}

/// The address to connect to, the server name to send, and the request's bytes.
fn request(url: &str) -> Result<(SocketAddr, ServerName<'static>, Vec<u8>), String> {
    let (addr, authority, path) = split_url(url, "https")?;
    let name = tls::server_name(authority)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    Ok((addr, name, req.into_bytes()))
}

/// One connection: from `connect` to the server's close.
struct Conn {
    stream: TcpStream,
    tls: ClientConnection,
    opened: Instant,
    /// The answer's bytes so far.
    buf: Vec<u8>,
    answered: bool,
}

#[derive(Default)]
struct Tally {
    /// Connections answered within the measured window: handshakes.
    handshakes: u64,
    non2xx: u64,
    errors: u64,
    /// The first connection's negotiated parameters.
    negotiated: Option<String>,
    /// Connect-to-answer times of the measured handshakes, in µs.
    micros: Vec<u32>,
}

struct Target {
    addr: SocketAddr,
    name: ServerName<'static>,
    req: Vec<u8>,
    config: Arc<ClientConfig>,
}

impl Target {
    fn open(&self, poll: &Poll, token: usize) -> Result<Conn, String> {
        let mut stream = TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        poll.registry()
            .register(
                &mut stream,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| e.to_string())?;
        let mut tls = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(|e| e.to_string())?;
        // written once the handshake is done, in the same flight as the client's Finished
        tls.writer()
            .write_all(&self.req)
            .map_err(|e| e.to_string())?;
        Ok(Conn {
            stream,
            tls,
            opened: Instant::now(),
            buf: Vec::with_capacity(512),
            answered: false,
        })
    }
}

/// What a turn on a connection came to.
enum Step {
    Going,
    /// The server closed it (after its answer, or before: an error).
    Closed,
    Failed,
}

/// Moves one connection on: writes what TLS has to send, reads and decrypts what came, and
/// writes what that called for (the client's Finished and the request, after the server's
/// flight).
fn drive(c: &mut Conn) -> Step {
    let mut chunk = [0u8; 4096];
    if tls::flush(&mut c.tls, &mut c.stream).is_err() {
        return Step::Failed;
    }
    match tls::receive(&mut c.tls, &mut c.stream, &mut chunk, &mut c.buf) {
        tls::Received::Closed => Step::Closed,
        tls::Received::Failed => Step::Failed,
        tls::Received::Pending => match tls::flush(&mut c.tls, &mut c.stream) {
            Ok(_) => Step::Going,
            Err(_) => Step::Failed,
        },
    }
}

/// `TLSv1_3 TLS13_AES_128_GCM_SHA256 X25519 Full`: what a connection negotiated.
fn describe(tls: &ClientConnection) -> String {
    fn shown(v: Option<impl std::fmt::Debug>) -> String {
        v.map_or("none".into(), |v| format!("{v:?}"))
    }
    [
        shown(tls.protocol_version()),
        shown(tls.negotiated_cipher_suite().map(|s| s.suite())),
        shown(tls.negotiated_key_exchange_group().map(|g| g.name())),
        shown(tls.handshake_kind()),
    ]
    .join(" ")
}

fn run(a: &Args) -> Result<Tally, String> {
    let (addr, name, req) = request(&a.url)?;
    let target = Target {
        addr,
        name,
        req,
        config: tls::config(&a.cert)?,
    };
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let (record_from, end) = (start + a.warmup, start + a.warmup + a.duration);
    // connections still open this long after the end never answered
    let give_up = end + Duration::from_secs(5);
    let mut conns = Vec::with_capacity(a.connections);
    for i in 0..a.connections {
        conns.push(Some(target.open(&poll, i)?));
    }
    let mut t = Tally::default();
    let mut events = Events::with_capacity(1024);
    let mut open = conns.len();
    while open > 0 && Instant::now() < give_up {
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(c) = conns[i].as_mut() else { continue };
            let step = drive(c);
            let now = Instant::now();
            if !c.answered {
                match response_end(&c.buf) {
                    Response::Partial => {}
                    Response::Done { status, .. } => {
                        c.answered = true;
                        if t.negotiated.is_none() {
                            t.negotiated = Some(describe(&c.tls));
                        }
                        if now >= record_from && now < end {
                            t.handshakes += 1;
                            t.non2xx += !(200..300).contains(&status) as u64;
                            let us = now.saturating_duration_since(c.opened).as_micros();
                            t.micros.push(us.min(u32::MAX as u128) as u32);
                        }
                    }
                    Response::Bad => c.answered = true,
                }
            }
            let done = match step {
                Step::Going => continue,
                Step::Closed => c.answered,
                Step::Failed => false,
            };
            if !done && now < end {
                t.errors += 1;
                if t.errors > 1000 && t.handshakes == 0 {
                    return Err(format!("{addr}: 1000 connections failed, none answered"));
                }
            }
            conns[i] = None; // closes the socket
            open -= 1;
            if now < end {
                conns[i] = Some(target.open(&poll, i)?);
                open += 1;
            }
        }
    }
    if open > 0 {
        t.errors += open as u64;
    }
    Ok(t)
}

fn main() {
    let a = or_exit("handshakes", parse_args());
    let mut t = or_exit("handshakes", run(&a));
    t.micros.sort_unstable();
    let pct = |p| percentile(&t.micros, p);
    println!(
        "{{\"connections\":{},\"handshakes\":{},\"per_second\":{:.1},\"errors\":{},\"non2xx\":{},\"negotiated\":\"{}\",\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        a.connections,
        t.handshakes,
        t.handshakes as f64 / a.duration.as_secs_f64(),
        t.errors,
        t.non2xx,
        t.negotiated.as_deref().unwrap_or("none"),
        pct(50.0),
        pct(99.0),
    );
}
