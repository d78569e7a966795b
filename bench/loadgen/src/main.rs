//! A constant-rate (open-loop) HTTP/1.1 load generator for bench/run.sh's latency workload.
//!
//!   loadgen --rate R --duration 10s [--warmup 2s] [--connections 64] [--header 'N: v']… [--cert cert.pem] URL
//!
//! prints one JSON line: the rate asked, requests sent and answered, non-2xx, errors, late
//! sends, the generator's own headroom, the achieved rate, and p50/p90/p99/p99.9/max latency
//! in ms.
//!
//! Why by hand: the latency bars need a generator that holds a fixed rate without coordinated
//! omission at 80 % of a mock's peak, about 95k requests a second, on the one core the client
//! gets. oha (`-q --latency-correction`) tops out at 45–60k/s on that core, wrk runs flat out
//! (its closed loop hides stalls), and wrk2 is not packaged here. What this one does is small:
//! HTTP/1.1 keep-alive, the same pre-written request on every connection, one request in
//! flight per connection, responses read by `Content-Length` (chunked answers are counted as
//! errors: the servers measured answer with a length). Over `https://` it speaks TLS 1.3 with
//! [`tls::config`] (the server must present `--cert`); each connection's handshake is done
//! before the run, or when it is reopened, and the request is written and the answer read
//! through it — about 85k requests a second on one core, where oha managed ~60k.
//!
//! How it measures: request *i* is due at `start + i / R`, whatever the connections do. Every
//! due request goes out on a free connection (keep-alive, one request in flight on each); when
//! none is free it waits for one. Its latency is counted from when it was **due**, not when it
//! could be sent, so a server that stalls is charged for every request that queued behind the
//! stall (the coordinated-omission correction). One thread, non-blocking sockets on epoll
//! (mio), polled without sleeping while a send is due within 2 ms. A connection the server
//! closes (after `Connection: close`, or at nginx's `keepalive_requests`) is opened anew, its
//! last answer counted; a request that fails counts in `errors`, and so does one still
//! unanswered 5 s after the end.
//!
//! Is it the generator or the server: `late_sends` counts sends that left more than 1 ms after
//! they were due, whoever held them up; `client_late` those of them whose connection had been
//! free for over 1 ms too (the generator's own lag on the sending side), and `idle_pct` the
//! share of the run spent in turns of the loop with nothing to send or read. A run with
//! `idle_pct` near 0 measured the generator (on this machine it nears 0 at about 160k/s).
mod shared;
mod tls;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use shared::{or_exit, percentile, response_end, seconds, split_url, Response};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    rate: f64,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    headers: Vec<String>,
    /// The certificate an https:// server must present.
    cert: Option<String>,
    url: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        rate: 0.0,
        duration: Duration::from_secs(10),
        warmup: Duration::ZERO,
        connections: 64,
        headers: Vec::new(),
        cert: None,
        url: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--rate" => a.rate = value()?.parse().map_err(|_| "--rate is a number")?,
            "--duration" => a.duration = seconds(&value()?)?,
            "--warmup" => a.warmup = seconds(&value()?)?,
            "--connections" => {
                a.connections = value()?.parse().map_err(|_| "--connections is a number")?
            }
            "--header" => a.headers.push(value()?),
            "--cert" => a.cert = Some(value()?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => a.url = arg,
        }
    }
    if a.rate <= 0.0 || a.url.is_empty() || a.connections == 0 {
        return Err("usage: loadgen --rate R [--duration 10s] [--warmup 0s] [--connections 64] [--header 'N: v']... [--cert cert.pem] http(s)://host:port/path".into());
    }
    Ok(a)
}

/// Where to connect and how: plain, or TLS with this configuration and server name.
struct Target {
    addr: SocketAddr,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// The target and the request's bytes.
fn request(a: &Args) -> Result<(Target, Vec<u8>), String> {
    let (url, headers) = (&a.url, &a.headers);
    let (addr, authority, path, tls) = if url.starts_with("https://") {
        let cert = a.cert.as_deref().ok_or("an https:// URL needs --cert")?;
        let (addr, authority, path) = split_url(url, "https")?;
        let name = tls::server_name(authority)?;
        (addr, authority, path, Some((tls::config(cert)?, name)))
    } else {
        let (addr, authority, path) = split_url(url, "http")?;
        (addr, authority, path, None)
    };
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    Ok((Target { addr, tls }, r.into_bytes()))
}

/// A connection's bytes: as they are, or through TLS (its handshake done when it opened).
enum Wire {
    Plain(TcpStream),
    Tls(TcpStream, Box<ClientConnection>),
}

impl Wire {
    /// Writes a whole request: `false` if the socket did not take all of it at once.
    fn send(&mut self, req: &[u8]) -> bool {
        match self {
            Wire::Plain(s) => matches!(s.write(req), Ok(n) if n == req.len()),
            Wire::Tls(s, tls) => {
                tls.writer().write_all(req).is_ok() && matches!(tls::flush(tls, s), Ok(true))
            }
        }
    }

    /// Reads what has come into `buf`; whether the server closed the connection (or it failed).
    fn receive(&mut self, chunk: &mut [u8], buf: &mut Vec<u8>) -> bool {
        match self {
            Wire::Plain(s) => loop {
                match s.read(chunk) {
                    Ok(0) => return true,
                    // a short read drained the socket: epoll reports the next bytes anew
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if n < chunk.len() {
                            return false;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return true,
                }
            },
            Wire::Tls(s, tls) => {
                !matches!(tls::receive(tls, s, chunk, buf), tls::Received::Pending)
            }
        }
    }
}

/// What one connection is doing.
struct Conn {
    stream: Wire,
    /// The request in flight: when it was due, and whether it is recorded.
    in_flight: Option<(Instant, bool)>,
    /// When it last became free (connected, or its answer read).
    free_since: Instant,
    buf: Vec<u8>,
}

#[derive(Default)]
struct Tally {
    sent: u64,
    completed: u64,
    non2xx: u64,
    errors: u64,
    /// Sends that left more than 1 ms after they were due.
    late: u64,
    /// Of those, the ones whose connection had been free for more than 1 ms too: the
    /// generator's own lag, not a wait for the server to answer on every connection.
    client_late: u64,
    /// Time spent in turns of the loop that had nothing to send or read: the headroom.
    idle: Duration,
    /// How long the run took, to the last answer.
    wall: Duration,
    /// Latencies of the recorded requests, in µs.
    micros: Vec<u32>,
}

/// Opens a connection, its TLS handshake done (blocking: before the run, or at a reconnect).
fn connect(target: &Target, poll: &Poll, token: usize) -> std::io::Result<Wire> {
    let mut s = std::net::TcpStream::connect(target.addr)?;
    s.set_nodelay(true)?;
    let tls = match &target.tls {
        None => None,
        Some((config, name)) => {
            let mut tls = ClientConnection::new(config.clone(), name.clone())
                .map_err(std::io::Error::other)?;
            while tls.is_handshaking() {
                tls.complete_io(&mut s)?;
            }
            Some(Box::new(tls))
        }
    };
    s.set_nonblocking(true)?;
    let mut s = TcpStream::from_std(s);
    poll.registry()
        .register(&mut s, Token(token), Interest::READABLE)?;
    Ok(match tls {
        None => Wire::Plain(s),
        Some(tls) => Wire::Tls(s, tls),
    })
}

/// Drops what `c` was doing (its request in flight failed) and opens it anew.
fn reopen(
    c: &mut Conn,
    target: &Target,
    poll: &Poll,
    token: usize,
    t: &mut Tally,
) -> Result<(), String> {
    if c.in_flight.take().is_some() {
        t.errors += 1;
    }
    c.stream =
        connect(target, poll, token).map_err(|e| format!("reconnect to {}: {e}", target.addr))?;
    c.buf.clear();
    c.free_since = Instant::now();
    Ok(())
}

fn run(a: &Args) -> Result<Tally, String> {
    let (target, req) = request(a)?;
    let addr = target.addr;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let start = Instant::now() + Duration::from_millis(50);
    let record_from = start + a.warmup;
    let end = record_from + a.duration;
    // request i is due at start + i/R, for every i due before `end`
    let total = ((a.warmup + a.duration).as_secs_f64() * a.rate).ceil() as u64;
    let due = |i: u64| start + Duration::from_secs_f64(i as f64 / a.rate);
    let mut conns = Vec::with_capacity(a.connections);
    for c in 0..a.connections {
        let stream = connect(&target, &poll, c).map_err(|e| format!("connect to {addr}: {e}"))?;
        conns.push(Conn {
            stream,
            in_flight: None,
            free_since: start,
            buf: Vec::with_capacity(512),
        });
    }
    let mut t = Tally {
        // no reallocation (a copy of the samples) during the run
        micros: Vec::with_capacity((a.rate * a.duration.as_secs_f64() * 1.1) as usize),
        ..Tally::default()
    };
    let (mut next, mut next_due, mut busy) = (0u64, start, 0usize);
    let mut events = Events::with_capacity(1024);
    let mut chunk = [0u8; 16 * 1024];
    let ms = Duration::from_millis(1);
    let began = Instant::now();
    loop {
        let now = Instant::now();
        if next >= total && busy == 0 {
            break;
        }
        if now >= end + Duration::from_secs(5) {
            t.errors += busy as u64; // answers that never came
            break;
        }
        let sent_before = t.sent;
        // every request that is due goes out on a free connection; the rest wait for one
        if next < total && next_due <= now && busy < conns.len() {
            for (i, c) in conns.iter_mut().enumerate() {
                if next >= total || next_due > now {
                    break;
                }
                if c.in_flight.is_some() {
                    continue;
                }
                if now - next_due > ms {
                    t.late += 1;
                    if now.saturating_duration_since(c.free_since) > ms {
                        t.client_late += 1;
                    }
                }
                if c.stream.send(&req) {
                    t.sent += 1;
                    busy += 1;
                    c.in_flight = Some((next_due, next_due >= record_from));
                } else {
                    t.errors += 1;
                    reopen(c, &target, &poll, i, &mut t)?;
                }
                next += 1;
                next_due = due(next);
            }
        }
        // spin while a send is due within 2 ms and a connection is free; else sleep on epoll
        let wait = next_due.saturating_duration_since(Instant::now());
        let timeout = if next >= total || busy == conns.len() {
            10 * ms
        } else if wait > 2 * ms {
            wait - ms
        } else {
            Duration::ZERO
        };
        poll.poll(&mut events, Some(timeout))
            .map_err(|e| e.to_string())?;
        if events.is_empty() && sent_before == t.sent {
            t.idle += now.elapsed(); // a turn with nothing to do
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut conns[i];
            // closed by the server: read what it sent first
            let mut closed = c.stream.receive(&mut chunk, &mut c.buf);
            closed |= ev.is_read_closed() || ev.is_error();
            match response_end(&c.buf) {
                Response::Partial => {}
                Response::Done { len, status, close } => {
                    c.buf.drain(..len);
                    if let Some((due, recorded)) = c.in_flight.take() {
                        let now = Instant::now();
                        busy -= 1;
                        c.free_since = now;
                        t.completed += 1;
                        if !(200..300).contains(&status) {
                            t.non2xx += 1;
                        }
                        if recorded {
                            let us = now.saturating_duration_since(due).as_micros();
                            t.micros.push(us.min(u32::MAX as u128) as u32);
                        }
                    }
                    closed |= close;
                }
                Response::Bad => closed = true,
            }
            if closed {
                busy -= c.in_flight.is_some() as usize;
                reopen(c, &target, &poll, i, &mut t)?;
            }
        }
    }
    t.wall = began.elapsed();
    Ok(t)
}

fn main() {
    let a = or_exit("loadgen", parse_args());
    let mut t = or_exit("loadgen", run(&a));
    t.micros.sort_unstable();
    let pct = |p| percentile(&t.micros, p);
    let recorded = t.micros.len() as f64;
    println!(
        "{{\"rate\":{},\"sent\":{},\"completed\":{},\"recorded\":{},\"errors\":{},\"non2xx\":{},\"late_sends\":{},\"client_late\":{},\"idle_pct\":{:.1},\"achieved_rps\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
        a.rate, t.sent, t.completed, t.micros.len(), t.errors, t.non2xx, t.late, t.client_late, 100.0 * t.idle.as_secs_f64() / t.wall.as_secs_f64().max(1e-9),
        recorded / a.duration.as_secs_f64(),
        pct(50.0), pct(90.0), pct(99.0), pct(99.9), pct(100.0)
    );
}
