//! The floor: what rulegate's HTTP stack does with nothing of rulegate in it. The same tokio
//! multi-thread runtime, hyper-util `auto::Builder` (HTTP/1 header read timeout on a TokioTimer),
//! `serve_connection_with_upgrades` and graceful watch as `rulegate serve`; no policy, no access
//! log, no metrics.
//!
//!   floor LISTEN BACKEND_PORT
//!
//! GET /health  a static `{"status":"ok"}` (the mock route)
//! GET /data    forwarded with hyper-util's legacy `Client`, inside a `tokio::time::timeout`,
//!              the backend's body streamed back
//! GET /data2   forwarded over a hand-rolled pool of `hyper::client::conn::http1` connections
//!              (what rulegate used until 2026-12), the (small) body collected so the
//!              connection is reused at once
//! GET /data3   forwarded over a pool of plain TCP connections, the exchange written out on the
//!              request's task: a fixed request, the head parsed by httparse, a
//!              `Content-Length` body (what rulegate's `server/h1.rs` does, without its
//!              generality)
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{body::Incoming, Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;
type Pool = Arc<Mutex<Vec<SendRequest<Full<Bytes>>>>>;

const TIMEOUT: Duration = Duration::from_secs(30);

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = code;
    r
}

async fn legacy(client: &Client<HttpConnector, Body>, uri: hyper::Uri) -> Response<Body> {
    let mut up = Request::new(full(Bytes::new()));
    *up.uri_mut() = uri;
    match tokio::time::timeout(TIMEOUT, client.request(up)).await {
        Ok(Ok(r)) => r.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()),
        _ => status(StatusCode::BAD_GATEWAY),
    }
}

async fn pooled(pool: &Pool, port: u16) -> Result<Response<Body>, BoxError> {
    let idle = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut sender = match idle {
        Some(s) if !s.is_closed() => s,
        _ => {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            stream.set_nodelay(true)?;
            let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            s
        }
    };
    let mut up = Request::new(Full::new(Bytes::new()));
    *up.uri_mut() = hyper::Uri::from_static("/data");
    up.headers_mut().insert(
        hyper::header::HOST,
        hyper::header::HeaderValue::from_static("127.0.0.1"),
    );
    sender.ready().await?;
    let response = tokio::time::timeout(TIMEOUT, sender.send_request(up)).await??;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await?.to_bytes();
    pool.lock().unwrap_or_else(|e| e.into_inner()).push(sender);
    Ok(Response::from_parts(parts, full(bytes)))
}

type RawPool = Arc<Mutex<Vec<(tokio::net::TcpStream, bytes::BytesMut)>>>;

/// The backend request written by hand on the request's own task: no connection task, no
/// channel, one write and (usually) one read.
async fn raw(pool: &RawPool, port: u16) -> Result<Response<Body>, BoxError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let idle = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let (mut stream, mut buf) = match idle {
        Some(c) => c,
        None => {
            let s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            s.set_nodelay(true)?;
            (s, bytes::BytesMut::with_capacity(8192))
        }
    };
    stream
        .write_all(b"GET /data HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await?;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = parsed.parse(&buf)? {
            let code = parsed.code.unwrap_or(502);
            let mut len = 0usize;
            let mut ctype = None;
            for h in parsed.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    len = std::str::from_utf8(h.value)?.parse()?;
                } else if h.name.eq_ignore_ascii_case("content-type") {
                    ctype = Some(hyper::header::HeaderValue::from_bytes(h.value)?);
                }
            }
            while buf.len() < head + len {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err("eof".into());
                }
            }
            let _ = buf.split_to(head);
            let body = buf.split_to(len).freeze();
            pool.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((stream, buf));
            let mut r = Response::new(full(body));
            *r.status_mut() = StatusCode::from_u16(code)?;
            if let Some(c) = ctype {
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, c);
            }
            return Ok(r);
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(8192);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err("eof".into());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: floor LISTEN BACKEND_PORT");
        std::process::exit(2);
    }
    let listen: std::net::SocketAddr = args[1].parse().expect("LISTEN is an address");
    let port: u16 = args[2].parse().expect("BACKEND_PORT is a port");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let uri: hyper::Uri = format!("http://127.0.0.1:{port}/data")
            .parse()
            .expect("uri");
        let pool: Pool = Arc::default();
        let rawpool: RawPool = Arc::default();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .max_buf_size(2 << 20);
        let builder = Arc::new(builder);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (client, uri, pool, rawpool) =
                (client.clone(), uri.clone(), pool.clone(), rawpool.clone());
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (client, uri, pool, rawpool) =
                    (client.clone(), uri.clone(), pool.clone(), rawpool.clone());
                async move {
                    let response = match req.uri().path() {
                        "/health" => {
                            let mut r =
                                Response::new(full(Bytes::from_static(b"{\"status\":\"ok\"}")));
                            r.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            r
                        }
                        "/data" => legacy(&client, uri).await,
                        "/data2" => pooled(&pool, port)
                            .await
                            .unwrap_or_else(|_| status(StatusCode::BAD_GATEWAY)),
                        "/data3" => raw(&rawpool, port)
                            .await
                            .unwrap_or_else(|_| status(StatusCode::BAD_GATEWAY)),
                        _ => status(StatusCode::NOT_FOUND),
                    };
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
}
