//! A constant-rate (open-loop) HTTP/1.1 load generator for bench/run.sh's latency workload.
//!
//!   loadgen --rate R --duration 10s [--warmup 2s] [--connections 64] [--header 'N: v']… URL
//!
//! prints one JSON line: the rate asked, requests sent and answered, non-2xx, errors, late
//! sends, the achieved rate, and p50/p90/p99/p99.9/max latency in ms.
//!
//! Why by hand: the latency bars need a generator that holds a fixed rate without coordinated
//! omission at 80 % of a mock's peak, about 95k requests a second, on the one core the client
//! gets. oha (`-q --latency-correction`) tops out at 45–60k/s on that core, wrk runs flat out
//! (its closed loop hides stalls), and wrk2 is not packaged here. What this one does is small:
//! plain HTTP/1.1 keep-alive, the same pre-written request on every connection, one request in
//! flight per connection, responses read by `Content-Length` (chunked answers are counted as
//! errors: the servers measured answer with a length).
//!
//! How it measures: request *i* of connection *c* is due at `start + (c + i·C) / R` (the C
//! connections interleave to one stream at rate R). A connection sends its next request when it
//! is due and its previous answer is in; the latency of every request is counted from when it
//! was **due**, not when it could be sent, so a server that stalls is charged for every request
//! that queued behind the stall (the coordinated-omission correction). One thread, non-blocking
//! sockets on epoll (mio), polled without sleeping while a send is due within a millisecond:
//! the client's core is all the generator's. A send that leaves more than 1 ms after it was due
//! counts as `late_sends`: if many are, the run measured the generator, not the server.
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

struct Args {
    rate: f64,
    duration: Duration,
    warmup: Duration,
    connections: usize,
    headers: Vec<String>,
    url: String,
}

fn seconds(v: &str) -> Result<Duration, String> {
    let (n, unit) = match v.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => (v.strip_suffix('s').unwrap_or(v), 1.0),
    };
    n.parse::<f64>()
        .map(|n| Duration::from_secs_f64(n * unit))
        .map_err(|_| format!("not a duration: {v:?} (10s, 500ms)"))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        rate: 0.0,
        duration: Duration::from_secs(10),
        warmup: Duration::ZERO,
        connections: 64,
        headers: Vec::new(),
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
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => a.url = arg,
        }
    }
    if a.rate <= 0.0 || a.url.is_empty() || a.connections == 0 {
        return Err("usage: loadgen --rate R [--duration 10s] [--warmup 0s] [--connections 64] [--header 'N: v']... http://host:port/path".into());
    }
    Ok(a)
}

/// The address to connect to and the request's bytes.
fn request(url: &str, headers: &[String]) -> Result<(SocketAddr, Vec<u8>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or(format!("{authority}: no address"))?;
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    Ok((addr, r.into_bytes()))
}

/// What one connection is doing.
struct Conn {
    stream: TcpStream,
    /// When its next request is due.
    next_due: Instant,
    /// The request in flight: when it was due, and whether it is recorded.
    in_flight: Option<(Instant, bool)>,
    buf: Vec<u8>,
}

/// The end of the first complete response in `buf`: its length and status, or `Err` for one
/// this generator does not read (chunked, no length, malformed).
fn response_end(buf: &[u8]) -> Option<Result<(usize, u16), ()>> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let status = head.get(9..12).and_then(|s| s.parse().ok());
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    match (status, length) {
        (Some(s), Some(n)) if buf.len() >= head_end + n => Some(Ok((head_end + n, s))),
        (Some(_), Some(_)) => None,
        _ => Some(Err(())),
    }
}

#[derive(Default)]
struct Tally {
    sent: u64,
    completed: u64,
    non2xx: u64,
    errors: u64,
    late: u64,
    /// Latencies of the recorded requests, in µs.
    micros: Vec<u32>,
}

fn connect(addr: SocketAddr, poll: &Poll, token: usize) -> std::io::Result<TcpStream> {
    let s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    let mut s = TcpStream::from_std(s);
    poll.registry()
        .register(&mut s, Token(token), Interest::READABLE)?;
    Ok(s)
}

fn run(a: &Args) -> Result<Tally, String> {
    let (addr, req) = request(&a.url, &a.headers)?;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let interval = Duration::from_secs_f64(a.connections as f64 / a.rate);
    let start = Instant::now() + Duration::from_millis(50);
    let record_from = start + a.warmup;
    let end = record_from + a.duration;
    let mut conns = Vec::with_capacity(a.connections);
    for c in 0..a.connections {
        let stream = connect(addr, &poll, c).map_err(|e| format!("connect to {addr}: {e}"))?;
        conns.push(Conn {
            stream,
            next_due: start + Duration::from_secs_f64(c as f64 / a.rate),
            in_flight: None,
            buf: Vec::with_capacity(512),
        });
    }
    let mut t = Tally {
        // no reallocation (a copy of the samples) during the run
        micros: Vec::with_capacity((a.rate * a.duration.as_secs_f64() * 1.1) as usize),
        ..Tally::default()
    };
    let mut events = Events::with_capacity(1024);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let now = Instant::now();
        if now >= end && conns.iter().all(|c| c.in_flight.is_none()) {
            break;
        }
        if now >= end + Duration::from_secs(5) {
            break; // answers that never came: left out
        }
        // send every request that is due on a free connection
        let mut soonest = end;
        for (i, c) in conns.iter_mut().enumerate() {
            if c.in_flight.is_none() && c.next_due < end && c.next_due <= now {
                if now - c.next_due > Duration::from_millis(1) {
                    t.late += 1;
                }
                if c.stream.write_all(&req).is_err() {
                    t.errors += 1;
                    c.stream = connect(addr, &poll, i).map_err(|e| e.to_string())?;
                    c.buf.clear();
                    c.next_due += interval;
                    continue;
                }
                t.sent += 1;
                c.in_flight = Some((c.next_due, c.next_due >= record_from));
                c.next_due += interval;
            }
            if c.in_flight.is_none() {
                soonest = soonest.min(c.next_due);
            }
        }
        let wait = soonest.saturating_duration_since(Instant::now());
        let timeout = if wait > Duration::from_millis(2) {
            Some(wait - Duration::from_millis(1))
        } else {
            Some(Duration::ZERO)
        };
        poll.poll(&mut events, timeout).map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut conns[i];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        // closed by the server: what was in flight failed
                        if c.in_flight.take().is_some() {
                            t.errors += 1;
                        }
                        c.stream = connect(addr, &poll, i).map_err(|e| e.to_string())?;
                        c.buf.clear();
                        break;
                    }
                    Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        if c.in_flight.take().is_some() {
                            t.errors += 1;
                        }
                        c.stream = connect(addr, &poll, i).map_err(|e| e.to_string())?;
                        c.buf.clear();
                        break;
                    }
                }
            }
            match response_end(&c.buf) {
                None => {}
                Some(Ok((len, status))) => {
                    c.buf.drain(..len);
                    if let Some((due, recorded)) = c.in_flight.take() {
                        t.completed += 1;
                        if !(200..300).contains(&status) {
                            t.non2xx += 1;
                        }
                        if recorded {
                            let us = Instant::now().saturating_duration_since(due).as_micros();
                            t.micros.push(us.min(u32::MAX as u128) as u32);
                        }
                    }
                }
                Some(Err(())) => {
                    t.errors += 1;
                    c.in_flight = None;
                    c.buf.clear();
                }
            }
        }
    }
    Ok(t)
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    };
    let mut t = match run(&a) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    };
    t.micros.sort_unstable();
    let pct = |p: f64| -> f64 {
        if t.micros.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * t.micros.len() as f64).ceil() as usize;
        t.micros[i.clamp(1, t.micros.len()) - 1] as f64 / 1000.0
    };
    let recorded = t.micros.len() as f64;
    println!(
        "{{\"rate\":{},\"sent\":{},\"completed\":{},\"recorded\":{},\"errors\":{},\"non2xx\":{},\"late_sends\":{},\"achieved_rps\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
        a.rate, t.sent, t.completed, t.micros.len(), t.errors, t.non2xx, t.late,
        recorded / a.duration.as_secs_f64(),
        pct(50.0), pct(90.0), pct(99.0), pct(99.9), pct(100.0)
    );
}
