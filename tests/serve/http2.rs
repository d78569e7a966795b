//! HTTP/2 with prior knowledge (h2c) on the plain listener: the same answers as HTTP/1.1.

use crate::common::*;
use crate::forward::forward_policy;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// (status, headers, body) of one HTTP/2 GET over a fresh connection.
async fn h2_get(
    addr: std::net::SocketAddr,
    authority: &str,
    path: &str,
) -> (u16, http::HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .uri(format!("http://{authority}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[test]
fn http2_prior_knowledge_gets_the_same_answers() {
    let dir = forward_policy(&closed_url());
    let gw = Gateway::start(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (status, headers, body) = h2_get(gw.addr, "shop.test", "/mock").await;
        assert_eq!((status, body.as_str()), (200, r#"{"ok":true}"#));
        assert_eq!(headers["content-type"], "application/json");
        assert_generated_id(headers["x-request-id"].to_str().unwrap());

        let (status, headers, body) = h2_get(gw.addr, "shop.test", "/nowhere").await;
        let id = headers["x-request-id"].to_str().unwrap();
        assert_generated_id(id);
        assert_eq!(status, 404);
        assert_eq!(
            body,
            huawei_body(
                "APIG.0101",
                "The API does not exist or has not been published in the environment.",
                id
            )
        );
    });
}
