//! API keys and Basic credentials over real sockets (issue 15.2): the backend never receives
//! the key (header or query) or the `Authorization` of a provider with `hide credentials`, and
//! every refusal is the dialect's row byte for byte.

use crate::common::*;

/// `printf %s k-partner-7f3a9c | sha256sum`
const KEY_HASH: &str = "11cc9a754cea82d3062af36437371b765b27a5164bc6f65cfe050a5dcaf88f56";
/// argon2id of "open sesame"
const PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$cnVsZWdhdGUtZml4dHVyZQ$aLL6Wvq3db+PYD6AyKEvAyDLAZK0xXJRh3vD9udsV2Y";
/// base64("ak-partner:open sesame")
const BASIC: &str = "Basic YWstcGFydG5lcjpvcGVuIHNlc2FtZQ==";

fn start(backend: &Backend) -> (TempDir, Gateway) {
    let dir = TempDir::new();
    let policy = format!(
        r#"default dialect huawei
service shop {{
    dialect huawei
    hosts "shop.test"
    auth keys apikey {{
        hide credentials
    }}
    auth querykeys apikey {{
        token from query "key"
        hide credentials
    }}
    auth users basic {{
        hide credentials
    }}
    auth open apikey {{}}
    app partner {{
        key "ak-partner"
        apikey sha256 "{KEY_HASH}"
        password argon2 "{PASSWORD_HASH}"
    }}
    backend b {{
        targets "{}"
    }}
    route GET "/orders" {{
        auth keys
        forward b
    }}
    route GET "/search" {{
        auth querykeys
        forward b
    }}
    route GET "/me" {{
        auth users
        forward b
    }}
    route GET "/shown" {{
        auth open
        forward b
    }}
}}
"#,
        backend.url()
    );
    dir.write("shop.policy", &policy);
    let gw = Gateway::start(dir.path());
    (dir, gw)
}

#[test]
fn hidden_credentials_never_reach_the_backend_and_shown_ones_do() {
    let backend = Backend::text("ok");
    let (_dir, gw) = start(&backend);
    let key = [("apikey", "k-partner-7f3a9c"), ("X-Other", "kept")];
    expect_status(
        &gw.send(&request("GET", "/orders", "shop.test", &key, b"")),
        200,
    );
    let query = "/search?q=a&key=k-partner-7f3a9c&key2=x";
    expect_status(&gw.send(&request("GET", query, "shop.test", &[], b"")), 200);
    let basic = [("Authorization", BASIC)];
    expect_status(
        &gw.send(&request("GET", "/me", "shop.test", &basic, b"")),
        200,
    );
    // the same password again: remembered, not hashed anew (the answer is the same)
    expect_status(
        &gw.send(&request("GET", "/me", "shop.test", &basic, b"")),
        200,
    );
    expect_status(
        &gw.send(&request("GET", "/shown", "shop.test", &key, b"")),
        200,
    );
    let got = backend.wait_for(5);
    assert!(!got[0].has("apikey"), "{:?}", got[0].headers);
    assert_eq!(got[0].header("x-other"), Some("kept"));
    assert_eq!(got[1].target, "/search?q=a&key2=x");
    assert!(!got[2].has("authorization"), "{:?}", got[2].headers);
    assert!(!got[3].has("authorization"));
    assert_eq!(got[4].header("apikey"), Some("k-partner-7f3a9c"));
}

#[test]
fn every_refusal_is_huaweis_app_authentication_row() {
    let backend = Backend::text("ok");
    let (_dir, gw) = start(&backend);
    let refused = [
        request("GET", "/orders", "shop.test", &[], b""),
        request("GET", "/orders", "shop.test", &[("apikey", "guess")], b""),
        request("GET", "/search?key=", "shop.test", &[], b""),
        request("GET", "/me", "shop.test", &[], b""),
        request(
            "GET",
            "/me",
            "shop.test",
            // ak-partner:open sesamE
            &[("Authorization", "Basic YWstcGFydG5lcjpvcGVuIHNlc2FtRQ==")],
            b"",
        ),
        request(
            "GET",
            "/me",
            "shop.test",
            &[("Authorization", "Basic !!")],
            b"",
        ),
    ];
    for raw in &refused {
        assert_huawei(
            &gw.send(raw),
            401,
            "APIG.0303",
            "Incorrect app authentication information.",
        );
    }
    assert_eq!(backend.count(), 0);
}

/// What a hostile client tries with hidden credentials: the key header twice (the second a
/// forgery), the key parameter twice, and its name percent-encoded. Every copy is kept from the
/// backend, and the first copy is the one verified.
#[test]
fn duplicated_and_encoded_credentials_are_all_hidden() {
    let backend = Backend::text("ok");
    let (_dir, gw) = start(&backend);
    let twice = [("apikey", "k-partner-7f3a9c"), ("apikey", "forged")];
    expect_status(
        &gw.send(&request("GET", "/orders", "shop.test", &twice, b"")),
        200,
    );
    let forged_first = [("apikey", "forged"), ("apikey", "k-partner-7f3a9c")];
    assert_huawei(
        &gw.send(&request("GET", "/orders", "shop.test", &forged_first, b"")),
        401,
        "APIG.0303",
        "Incorrect app authentication information.",
    );
    let query = "/search?key=k-partner-7f3a9c&q=a&key=again&k%65y=encoded";
    expect_status(&gw.send(&request("GET", query, "shop.test", &[], b"")), 200);
    let got = backend.wait_for(2);
    assert!(!got[0].has("apikey"), "{:?}", got[0].headers);
    assert_eq!(got[1].target, "/search?q=a");
}
