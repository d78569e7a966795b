//! CORS as a real browser judges it: headless Chromium loads a page from one loopback origin
//! whose script calls the gateway on another with `fetch` (credentials included), and writes
//! what it could read into the page. A refusal on a cors route must be readable (status and
//! the dialect's body), and a PUT to an `ANY` cors route must pass its preflight. The
//! byte-level checks of the same answers are in `tests/serve/cors.rs`.
//!
//! CI (`.ci/run`) installs Debian's `chromium` and sets `RULEGATE_BROWSER=required`; without
//! that, a machine lacking it skips this test with a notice rather than failing. Everything
//! stays on 127.0.0.1.

#[allow(dead_code)]
#[path = "serve/common.rs"]
mod common;

#[path = "support/prereq.rs"]
mod prereq;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The page's script: each probe's outcome on a line of `#out`, then the title `done`.
const PAGE: &str = r#"<!doctype html>
<html><head><title>running</title></head><body><pre id="out"></pre>
<script>
const gateway = "@GATEWAY@";
async function probe(name, path, init) {
  try {
    const r = await fetch(gateway + path, Object.assign({credentials: "include"}, init));
    return name + " " + r.status + " " + (await r.text());
  } catch (e) {
    return name + " blocked";
  }
}
(async () => {
  const lines = [
    await probe("param", "/search?q=abc", {}),
    await probe("body", "/upload", {method: "POST", body: "hello world"}),
    await probe("put", "/items/7", {
      method: "PUT",
      headers: {"Content-Type": "application/json"},
      body: "{}",
    }),
  ];
  document.getElementById("out").textContent = lines.join("\n");
  document.title = "done";
})();
</script></body></html>
"#;

/// Answer one connection of the page server with the page.
fn answer_page(mut stream: TcpStream, page: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    // the request head, up to its blank line (the page's GETs have no body)
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
}

/// Chromium's serialised DOM of `url` once the page's script has run.
fn dump_dom(url: &str) -> String {
    let profile = TempDir::new();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        let _ = stdout.read_to_string(&mut dom);
        dom
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("read chromium's output")
}

#[test]
fn a_browser_reads_refusals_on_a_cors_route_and_passes_the_preflight_of_an_any_route() {
    let found = prereq::runs("chromium");
    if !prereq::present(
        found,
        "RULEGATE_BROWSER",
        "chromium",
        "apt-get install chromium",
    ) {
        return;
    }
    // The page's origin must be known to the policy, and the gateway's address to the page.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let dir = TempDir::new();
    dir.write(
        "cors.policy",
        &fixture("cors.policy", &[("ORIGIN", &origin)]),
    );
    dir.write("buyer.secret", "s3cret-buyer");
    let gw = Gateway::start(dir.path());
    let page = PAGE.replace("@GATEWAY@", &format!("http://{}", gw.addr));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer_page(stream, &page);
        }
    });

    let dom = dump_dom(&format!("{origin}/"));
    assert!(
        dom.contains("<title>done</title>"),
        "the script did not finish:\n{dom}"
    );
    let out = dom
        .split("<pre id=\"out\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no #out in:\n{dom}"));
    let lines: Vec<&str> = out.lines().collect();
    // The request ids are the gateway's own; everything else is the dialect's row.
    let body = |code: &str, msg: &str| {
        format!(r#"{{"error_code": "{code}", "error_msg": "{msg}", "request_id": ""#)
    };
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with(&format!(
            "param 400 {}",
            body(
                "APIG.0201",
                "API request error: query parameter q must be int"
            )
        )),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "body 413 {}",
            body("APIG.0201", "Request entity too large.")
        )),
        "{out}"
    );
    assert_eq!(lines[2], r#"put 200 {"ok":true}"#, "{out}");
}
