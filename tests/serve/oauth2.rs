//! Huawei's OAuth2 token endpoint over real sockets: an app gets tokens from `rulegate serve`
//! with a form POST (body credentials and HTTP Basic), calls a route with its access token,
//! refreshes, and every refusal is Huawei's row byte for byte.

use crate::common::*;
use base64::Engine as _;

const POLICY: &str = r#"
service shop {
    dialect huawei
    hosts "shop.test"
    app mobile {
        key "ak-mobile"
        secret file "mobile"
    }
    app web {
        key "ak-web"
        secret file "web"
    }
    auth tokens oauth2 {
        signing key file "signing"
        access ttl 1h
        refresh ttl 1d
    }
    route ANY "/oauth2/token" { issue tokens tokens }
    route GET "/orders" {
        auth tokens apps mobile
        mock 200 text "orders"
    }
}
"#;

fn gateway() -> (TempDir, Gateway) {
    let dir = TempDir::new();
    dir.write("shop.policy", POLICY);
    dir.write("mobile", "mobile-secret\n");
    dir.write("web", "web-secret\n");
    dir.write("signing", "serve-test-signing-key-0123456789\n");
    let gw = Gateway::start(dir.path());
    (dir, gw)
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn token_request(gw: &Gateway, headers: &[(&str, &str)], body: &str) -> Resp {
    gw.send(&request(
        "POST",
        "/oauth2/token",
        "shop.test",
        headers,
        body.as_bytes(),
    ))
}

/// A token answer: exactly RFC 6749's headers and fields. Returns (access, refresh).
pub fn assert_tokens(r: &Resp) -> (String, String) {
    expect_status(r, 200);
    let id = r.header("x-request-id").expect("X-Request-Id").to_string();
    expect_headers(
        r,
        vec![
            ("cache-control".into(), "no-store".into()),
            (
                "content-type".into(),
                "application/json;charset=UTF-8".into(),
            ),
            ("pragma".into(), "no-cache".into()),
            ("x-request-id".into(), id),
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    let fields: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        ["access_token", "token_type", "expires_in", "refresh_token"]
    );
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 3600);
    (
        json["access_token"].as_str().unwrap().to_string(),
        json["refresh_token"].as_str().unwrap().to_string(),
    )
}

fn orders(gw: &Gateway, authorization: &str) -> Resp {
    gw.send(&request(
        "GET",
        "/orders",
        "shop.test",
        &[("Authorization", authorization)],
        b"",
    ))
}

#[test]
fn an_app_gets_a_token_calls_a_route_with_it_and_refreshes() {
    let (_dir, gw) = gateway();
    let r = token_request(
        &gw,
        &[FORM],
        "grant_type=client_credentials&client_id=ak-mobile&client_secret=mobile-secret",
    );
    let (access, refresh) = assert_tokens(&r);

    let r = orders(&gw, &format!("Bearer {access}"));
    assert_mock(
        &r,
        200,
        "X-Request-Id",
        "text/plain; charset=utf-8",
        &[],
        "orders",
    );

    // The refresh grant, with the client's credentials in HTTP Basic (RFC 6749 §2.3.1).
    let basic = base64::engine::general_purpose::STANDARD.encode("ak-mobile:mobile-secret");
    let r = token_request(
        &gw,
        &[FORM, ("Authorization", &format!("Basic {basic}"))],
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
    );
    let (renewed, _) = assert_tokens(&r);
    let r = orders(&gw, &format!("Bearer {renewed}"));
    assert_mock(
        &r,
        200,
        "X-Request-Id",
        "text/plain; charset=utf-8",
        &[],
        "orders",
    );

    // The access log names the app the token was issued to, never a token or secret.
    let log = gw.log_lines().join("\n");
    for secret in [
        access.as_str(),
        refresh.as_str(),
        "mobile-secret",
        "serve-test-signing",
    ] {
        let shown = secret.rsplit('.').next().unwrap();
        assert!(!log.contains(shown), "the log shows a secret: {log}");
    }
}

#[test]
fn refusals_are_huaweis_rows_byte_for_byte() {
    let (_dir, gw) = gateway();
    let r = gw.get("shop.test", "/oauth2/token");
    assert_huawei(&r, 400, "APIG.2206", "Auth method invalid");
    let r = token_request(&gw, &[("Content-Type", "application/json")], "{}");
    assert_huawei(&r, 400, "APIG.2204", "ContentType invalid");
    let r = token_request(&gw, &[FORM], "client_id=ak-mobile");
    assert_huawei(&r, 400, "APIG.2210", "Lack of grant_type");
    let r = token_request(&gw, &[FORM], "grant_type=password");
    assert_huawei(
        &r,
        400,
        "APIG.2209",
        "The value of grant_type is not in enum List",
    );
    let r = token_request(&gw, &[FORM], "grant_type=client_credentials");
    assert_huawei(&r, 400, "APIG.2211", "Lack of client_id");
    let r = token_request(
        &gw,
        &[FORM],
        "grant_type=client_credentials&client_id=ak-mobile",
    );
    assert_huawei(&r, 400, "APIG.2212", "Lack of client_secret");
    let r = token_request(
        &gw,
        &[FORM],
        "grant_type=refresh_token&client_id=ak-mobile&client_secret=mobile-secret",
    );
    assert_huawei(&r, 400, "APIG.2213", "Lack of refresh_token");
    let r = token_request(
        &gw,
        &[FORM],
        "grant_type=client_credentials&client_id=ak-nobody&client_secret=x",
    );
    assert_huawei(&r, 401, "APIG.1004", "App not exist");
    let r = token_request(
        &gw,
        &[FORM],
        "grant_type=client_credentials&client_id=ak-mobile&client_secret=web-secret",
    );
    assert_huawei(&r, 400, "APIG.2201", "Appkey or SecretKey is invalid");

    // web's refresh token presented by mobile; web's access token on a route bound to mobile.
    let r = token_request(
        &gw,
        &[FORM],
        "grant_type=client_credentials&client_id=ak-web&client_secret=web-secret",
    );
    let (web_access, web_refresh) = assert_tokens(&r);
    let r = token_request(
        &gw,
        &[FORM],
        &format!("grant_type=refresh_token&client_id=ak-mobile&client_secret=mobile-secret&refresh_token={web_refresh}"),
    );
    assert_huawei(&r, 401, "APIG.1003", "App not match refresh token");
    let r = orders(&gw, &format!("Bearer {web_access}"));
    assert_huawei(
        &r,
        403,
        "APIG.0304",
        "The app is not authorized to access the API.",
    );
    let r = orders(&gw, &format!("Bearer {web_refresh}"));
    assert_huawei(&r, 400, "APIG.2203", "Access token is invalid");
    let r = orders(&gw, "Basic eDp5");
    assert_huawei(&r, 400, "APIG.2205", "Auth parameter invalid");
}
