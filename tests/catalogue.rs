//! The catalogue against the vendors' documents, and golden bytes of rendered rejections.
//!
//! Expected values here are written from the spec (wire-formats.md, errors/*.tsv), never copied
//! from rulegate's output, so that a change in the renderer or the mapping shows up as a diff.

use std::collections::HashSet;
use std::path::Path;

use rulegate::dialect::{
    catalogue, message, reason_phrase, render, request_id_header, row, undocumented, AuthFailure,
    Reason, Row,
};
use rulegate::vocab::{Dialect, ParamLocation, Protocol};

const ID: &str = "0123456789abcdef0123456789abcdef";

/// The seed whose rows count as documented (the newer document of each vendor).
fn newest_seed(d: Dialect) -> &'static str {
    match d {
        Dialect::Tencent => "001_e848cb234e21db11.txt",
        Dialect::Huawei => "003_7abb9b69a0954cdb.txt",
        Dialect::Jdcloud => "004_fe4e34096a19d54d.txt",
    }
}

/// (code, status, message) of every row of the newer seed, parsed here independently of the
/// crate's own parser.
fn documented(d: Dialect) -> Vec<(String, u16, String)> {
    let text = rulegate::dialect::catalogue::tsv(d);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("code\thttp_status\tmessage\tdescription\tseed")
    );
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c[4] == newest_seed(d))
        .map(|c| (c[0].to_string(), c[1].parse().unwrap(), c[2].to_string()))
        .collect()
}

fn is_documented(d: Dialect, r: &Row) -> bool {
    documented(d)
        .iter()
        .any(|(c, s, m)| c == r.code && *s == r.status && m == r.message)
}

#[test]
fn embedded_tsvs_are_byte_identical_to_shared() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/errors");
    for d in Dialect::ALL {
        let path = shared.join(format!("{}.tsv", d.name()));
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                bytes == rulegate::dialect::catalogue::tsv(d).as_bytes(),
                "src/dialect/tsv/{}.tsv differs from {}",
                d.name(),
                path.display()
            );
        }
    }
}

#[test]
fn every_emitted_row_is_documented_or_marked_undocumented() {
    let mut failures = Vec::new();
    for d in Dialect::ALL {
        let marked: Vec<&Row> = undocumented(d);
        for reason in Reason::examples() {
            let r = row(d, &reason);
            let ok = if r.documented {
                r.note.is_empty() && is_documented(d, r)
            } else {
                !r.note.trim().is_empty() && marked.contains(&r)
            };
            if !ok {
                failures.push(format!("{d}: {reason:?} -> {r:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "rows that are neither documented in the newer seed nor marked undocumented:\n{}",
        failures.join("\n")
    );
}

#[test]
fn undocumented_entries_are_reachable_and_really_undocumented() {
    for d in Dialect::ALL {
        for u in undocumented(d) {
            assert!(!u.documented, "{d}: {u:?}");
            assert!(!u.note.is_empty(), "{d}: {u:?}");
            assert!(
                !is_documented(d, u),
                "{d}: {u:?} is in the vendor table; mark it documented"
            );
            assert!(
                Reason::examples().iter().any(|r| row(d, r) == u),
                "{d}: {u:?} is listed but no reason maps to it"
            );
        }
    }
}

/// A body that does not arrive in time is the client's fault: every dialect answers with its
/// bad-request row (documented where the vendor documents one), never a backend timeout row,
/// and `rulegate errors` lists the row as the body timeout's stand-in.
#[test]
fn the_body_timeout_stands_in_on_the_bad_request_row_of_every_dialect() {
    for d in Dialect::ALL {
        let r = row(d, &Reason::BodyTimeout);
        assert_eq!(r, row(d, &Reason::BadRequest), "{d}");
        assert_eq!(r.status, 400, "{d}");
        assert_eq!(r.documented, d != Dialect::Tencent, "{d}: {r:?}");
        let stand_ins = rulegate::dialect::stand_ins(d);
        assert!(
            stand_ins
                .iter()
                .any(|s| s.reason == "body_timeout" && s.row == r && !s.note.is_empty()),
            "{d}: {stand_ins:?}"
        );
    }
    let huawei = row(Dialect::Huawei, &Reason::BodyTimeout);
    assert_eq!((huawei.code, huawei.message), ("APIG.0602", "Bad request."));
    let jd = row(Dialect::Jdcloud, &Reason::BodyTimeout);
    assert_eq!(
        (jd.code, jd.message),
        ("INVALID_ARGUMENT", "Parameter Argument Error")
    );
}

#[test]
fn tencent_doc_artefact_is_never_emitted() {
    for reason in Reason::examples() {
        assert!(
            !row(Dialect::Tencent, &reason).message.contains("或者"),
            "{reason:?}"
        );
    }
}

/// The placeholder values a reason supplies, per dialect, written out independently.
fn expected_fills(d: Dialect, reason: &Reason) -> Vec<(&'static str, String)> {
    use AuthFailure as A;
    match (d, reason) {
        (Dialect::Tencent, Reason::NoHost { host }) => vec![("$host", host.clone())],
        (Dialect::Tencent, Reason::NoStage { stage, .. }) => {
            vec![("$env_mapping", stage.clone())]
        }
        (Dialect::Tencent, Reason::NoRoute { uri })
        | (Dialect::Tencent, Reason::CrossOriginWithoutCors { uri }) => vec![("$uri", uri.clone())],
        (Dialect::Tencent, Reason::ParamMissing { name, .. })
        | (Dialect::Tencent, Reason::ParamInvalid { name, .. })
        | (Dialect::Tencent, Reason::ParamOutOfRange { name, .. })
        | (Dialect::Tencent, Reason::OrchestrationFailed { name, .. })
        | (Dialect::Tencent, Reason::Auth(A::HmacHeaderMissing { name })) => {
            vec![("xxx", name.clone())]
        }
        (Dialect::Tencent, Reason::Auth(A::HmacAlgorithmUnsupported { algorithm })) => {
            vec![("xxx", algorithm.clone())]
        }
        (Dialect::Huawei, Reason::ProtocolNotAllowed { allowed, .. }) => {
            let names: Vec<&str> = allowed.iter().map(|p| p.upper()).collect();
            vec![("{xxx}", names.join(","))]
        }
        (Dialect::Jdcloud, Reason::ProtocolNotAllowed { used, .. }) => {
            vec![("argument", used.upper().to_string())]
        }
        (Dialect::Jdcloud, Reason::ParamMissing { name, .. }) => vec![("argument", name.clone())],
        (Dialect::Jdcloud, Reason::ParamInvalid { name, expected, .. }) => {
            vec![("argument", name.clone()), ("a format", expected.clone())]
        }
        (Dialect::Jdcloud, Reason::FormContentTypeRequired) => vec![
            ("argument", "Content-Type".into()),
            ("a format", "application/x-www-form-urlencoded".into()),
        ],
        (Dialect::Jdcloud, Reason::WebSocketKeyMissing) => {
            vec![("argument", "Sec-WebSocket-Key".into())]
        }
        (Dialect::Jdcloud, Reason::WebSocketVersionMissing) => {
            vec![("argument", "Sec-WebSocket-Version".into())]
        }
        _ => Vec::new(),
    }
}

#[test]
fn messages_are_the_templates_filled() {
    const LEFTOVERS: [&str; 7] = [
        "$host",
        "$uri",
        "$env_mapping",
        "{xxx}",
        " xxx ",
        "parameter argument",
        "of a format",
    ];
    for d in Dialect::ALL {
        for reason in Reason::examples() {
            let template = row(d, &reason).message;
            let mut expected = template.to_string();
            for (token, value) in expected_fills(d, &reason) {
                assert!(
                    template.contains(token),
                    "{d}: {reason:?}: row {template:?} lacks {token}"
                );
                expected = expected.replace(token, &value);
            }
            if let (Dialect::Huawei, Some(detail)) = (d, reason.detail()) {
                let base = expected.strip_suffix('.').unwrap_or(&expected).to_string();
                expected = format!("{base}: {detail}");
            }
            let got = message(d, &reason);
            assert_eq!(got, expected, "{d}: {reason:?}");
            for token in LEFTOVERS {
                assert!(
                    !got.contains(token),
                    "{d}: {reason:?}: {got:?} keeps {token}"
                );
            }
        }
    }
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tencent_headers() -> Vec<(String, String)> {
    headers(&[
        ("Content-Type", "application/json"),
        ("X-Api-RequestId", ID),
    ])
}

fn huawei_headers() -> Vec<(String, String)> {
    headers(&[
        ("Content-Type", "application/json"),
        ("X-Request-Id", ID),
        ("Server", "api-gateway"),
    ])
}

fn jdcloud_headers() -> Vec<(String, String)> {
    headers(&[
        ("Content-Type", "application/json"),
        ("x-jdcloud-request-id", ID),
    ])
}

fn assert_render(d: Dialect, reason: Reason, status: u16, body: &str) {
    let got = render(d, &reason, ID);
    assert_eq!(got.body, body, "{d}: {reason:?}");
    assert_eq!(got.status, status, "{d}: {reason:?}");
    let expected_headers = match d {
        Dialect::Tencent => tencent_headers(),
        Dialect::Huawei => huawei_headers(),
        Dialect::Jdcloud => jdcloud_headers(),
    };
    assert_eq!(got.headers, expected_headers, "{d}: {reason:?}");
}

#[test]
fn golden_tencent() {
    assert_render(
        Dialect::Tencent,
        Reason::OrchestrationFailed {
            location: ParamLocation::Header,
            name: "X-Region".into(),
        },
        403,
        r#"{"message":"Get X-Region params fail."}"#,
    );
    assert_render(
        Dialect::Tencent,
        Reason::BackendSigningFailed,
        500,
        r#"{"message":"Internal Server Error."}"#,
    );
    assert_render(
        Dialect::Tencent,
        Reason::NoRoute {
            uri: "/api/v1".into(),
        },
        404,
        r#"{"message":"There is no api match uri[\/api\/v1]."}"#,
    );
    assert_render(
        Dialect::Tencent,
        Reason::NoHost {
            host: r#"a"b\c"#.into(),
        },
        404,
        r#"{"message":"There is no api match host[a\"b\\c]."}"#,
    );
    assert_render(
        Dialect::Tencent,
        Reason::NoStage {
            stage: "staging".into(),
            from_path: true,
        },
        404,
        r#"{"message":"There is no api match default env_mapping[staging]."}"#,
    );
    assert_render(
        Dialect::Tencent,
        Reason::ProtocolNotAllowed {
            used: Protocol::Http,
            allowed: vec![Protocol::Https],
        },
        426,
        r#"{"message":"Not allow use HTTP protocol."}"#,
    );
    assert_render(
        Dialect::Tencent,
        Reason::ParamMissing {
            location: ParamLocation::Query,
            name: "page".into(),
        },
        403,
        r#"{"message":"querystring page is required."}"#,
    );
    assert_render(
        Dialect::Tencent,
        Reason::Auth(AuthFailure::HmacAlgorithmUnsupported {
            algorithm: "hmac-md5".into(),
        }),
        401,
        r#"{"message":"HMAC algorithm hmac-md5 not supported."}"#,
    );
    assert_render(
        Dialect::Tencent,
        Reason::CrossOriginWithoutCors {
            uri: "/orders\n".into(),
        },
        429,
        r#"{"message":"req is cross origin, api \/orders\n need open cors flag on qcloud apigateway."}"#,
    );
    assert_render(
        Dialect::Tencent,
        Reason::NoBackendAvailable,
        503,
        r#"{"message":"Apigw balancer error"}"#,
    );
}

#[test]
fn golden_huawei() {
    assert_render(
        Dialect::Huawei,
        Reason::OrchestrationFailed {
            location: ParamLocation::Query,
            name: "uid".into(),
        },
        400,
        r#"{"error_code": "APIG.0106", "error_msg": "Orchestration error.", "request_id": "0123456789abcdef0123456789abcdef"}"#,
    );
    assert_render(
        Dialect::Huawei,
        Reason::BackendSigningFailed,
        500,
        r#"{"error_code": "APIG.0705", "error_msg": "Backend signature calculation failed.", "request_id": "0123456789abcdef0123456789abcdef"}"#,
    );
    assert_render(
        Dialect::Huawei,
        Reason::MethodNotAllowed {
            method: "DELETE".into(),
            uri: "/orders".into(),
        },
        404,
        r#"{"error_code": "APIG.0101", "error_msg": "The API does not exist.", "request_id": "0123456789abcdef0123456789abcdef"}"#,
    );
    assert_render(
        Dialect::Huawei,
        Reason::NoRoute {
            uri: "/nowhere".into(),
        },
        404,
        r#"{"error_code": "APIG.0101", "error_msg": "The API does not exist or has not been published in the environment.", "request_id": "0123456789abcdef0123456789abcdef"}"#,
    );
    assert_render(
        Dialect::Huawei,
        Reason::ParamMissing {
            location: ParamLocation::Header,
            name: "X-Tenant".into(),
        },
        400,
        r#"{"error_code": "APIG.0201", "error_msg": "API request error: header parameter X-Tenant is required", "request_id": "0123456789abcdef0123456789abcdef"}"#,
    );
    assert_render(
        Dialect::Huawei,
        Reason::ProtocolNotAllowed {
            used: Protocol::Https,
            allowed: vec![Protocol::Http, Protocol::Https],
        },
        400,
        r#"{"error_code": "APIG.0607", "error_msg": "The following protocol is supported: HTTP,HTTPS", "request_id": "0123456789abcdef0123456789abcdef"}"#,
    );
    assert_render(
        Dialect::Huawei,
        Reason::Auth(AuthFailure::Signature {
            detail: r#"verify signature fail, canonicalRequest:GET|/a/"b"\c|"#.into(),
        }),
        401,
        r#"{"error_code": "APIG.0303", "error_msg": "Incorrect app authentication information: verify signature fail, canonicalRequest:GET|/a/\"b\"\\c|", "request_id": "0123456789abcdef0123456789abcdef"}"#,
    );
    assert_render(
        Dialect::Huawei,
        Reason::BackendTimeout,
        504,
        r#"{"error_code": "APIG.0203", "error_msg": "Backend timeout", "request_id": "0123456789abcdef0123456789abcdef"}"#,
    );
    assert_render(
        Dialect::Huawei,
        Reason::HeadersTooLarge,
        494,
        r#"{"error_code": "APIG.0201", "error_msg": "Request headers too large.", "request_id": "0123456789abcdef0123456789abcdef"}"#,
    );
    assert_render(
        Dialect::Huawei,
        Reason::QuotaExceeded,
        405,
        r#"{"error_code": "APIG.0501", "error_msg": "The app quota has been used up.", "request_id": "0123456789abcdef0123456789abcdef"}"#,
    );
}

#[test]
fn golden_jdcloud() {
    assert_render(
        Dialect::Jdcloud,
        Reason::OrchestrationFailed {
            location: ParamLocation::Query,
            name: "uid".into(),
        },
        400,
        r#"{"requestId":"0123456789abcdef0123456789abcdef","error":{"code":400,"status":"OUT_OF_RANGE","message":"The parameter value is illegal or exceeds the range"}}"#,
    );
    assert_render(
        Dialect::Jdcloud,
        Reason::BackendSigningFailed,
        500,
        r#"{"requestId":"0123456789abcdef0123456789abcdef","error":{"code":500,"status":"INTERNAL","message":"Internal Error"}}"#,
    );
    assert_render(
        Dialect::Jdcloud,
        Reason::RateLimited {
            hit: Some("policy api over ratelimit,limit:1,time:1 second".into()),
        },
        429,
        r#"{"requestId":"0123456789abcdef0123456789abcdef","error":{"code":429,"status":"RATE_LIMIT_EXCEEDED","message":"Your requests are too frequent"}}"#,
    );
    assert_render(
        Dialect::Jdcloud,
        Reason::ParamInvalid {
            location: ParamLocation::Query,
            name: "page".into(),
            expected: "int 1..1000".into(),
        },
        400,
        r#"{"requestId":"0123456789abcdef0123456789abcdef","error":{"code":400,"status":"ARGUMENT_WRONG_FORMAT","message":"Type of parameter page shall be of int 1..1000"}}"#,
    );
    assert_render(
        Dialect::Jdcloud,
        Reason::ParamMissing {
            location: ParamLocation::Header,
            name: r#"X-"q"/p"#.into(),
        },
        400,
        r#"{"requestId":"0123456789abcdef0123456789abcdef","error":{"code":400,"status":"ARGUMENT_NOT_FOUND","message":"The parameter X-\"q\"/p is required"}}"#,
    );
    assert_render(
        Dialect::Jdcloud,
        Reason::MethodNotAllowed {
            method: "DELETE".into(),
            uri: "/orders".into(),
        },
        501,
        r#"{"requestId":"0123456789abcdef0123456789abcdef","error":{"code":501,"status":"NOT_IMPLEMENTED","message":"method is not supported now"}}"#,
    );
    assert_render(
        Dialect::Jdcloud,
        Reason::ClientClosed,
        499,
        r#"{"requestId":"0123456789abcdef0123456789abcdef","error":{"code":499,"status":"CANCELLED","message":"Cancel Operation"}}"#,
    );
}

#[test]
fn request_id_headers_and_reason_phrases() {
    assert_eq!(request_id_header(Dialect::Tencent), "X-Api-RequestId");
    assert_eq!(request_id_header(Dialect::Huawei), "X-Request-Id");
    assert_eq!(request_id_header(Dialect::Jdcloud), "x-jdcloud-request-id");
    for d in Dialect::ALL {
        for reason in Reason::examples() {
            let status = row(d, &reason).status;
            assert!(!reason_phrase(status).is_empty(), "{d}: {status}");
        }
    }
    assert_eq!(reason_phrase(494), "Request Header Or Cookie Too Large");
    assert_eq!(reason_phrase(404), "Not Found");
}

#[test]
fn catalogue_lists_the_newer_seed_and_marks_emitted_rows() {
    for d in Dialect::ALL {
        let entries = catalogue(d);
        let docs = documented(d);
        assert_eq!(entries.len(), docs.len(), "{d}");
        let emitted: HashSet<(String, u16, String)> = Reason::examples()
            .iter()
            .map(|r| row(d, r))
            .filter(|r| r.documented)
            .map(|r| (r.code.to_string(), r.status, r.message.to_string()))
            .collect();
        for (entry, (code, status, msg)) in entries.iter().zip(&docs) {
            assert!(entry.row.documented, "{d}: {entry:?}");
            assert_eq!(
                (entry.row.code, entry.row.status, entry.row.message),
                (code.as_str(), *status, msg.as_str())
            );
            let key = (code.clone(), *status, msg.clone());
            assert_eq!(entry.emitted, emitted.contains(&key), "{d}: {entry:?}");
        }
    }

    let huawei = catalogue(Dialect::Huawei);
    let find = |code: &str, msg: &str| {
        huawei
            .iter()
            .find(|e| e.row.code == code && e.row.message == msg)
            .unwrap_or_else(|| panic!("{code} {msg}"))
    };
    assert!(find("APIG.0101", "The API does not exist.").emitted);
    assert!(
        find(
            "APIG.0101",
            "The API does not exist or has not been published in the environment."
        )
        .emitted
    );
    assert!(
        !find(
            "APIG.0107",
            "The custom lua script encountered an unexpected error"
        )
        .emitted
    );
    assert!(find("APIG.0203", "Backend timeout").emitted);
    assert!(!huawei
        .iter()
        .any(|e| e.row.code == "APIG.0203" && e.row.message == "Backend timeout."));

    let tencent = catalogue(Dialect::Tencent);
    assert!(tencent
        .iter()
        .any(|e| e.row.message == "Method Not Allowed." && e.emitted));
    assert!(tencent
        .iter()
        .any(|e| e.row.message.contains("或者") && !e.emitted));
    assert!(!tencent
        .iter()
        .any(|e| e.row.message == "Client closed connetion."));

    let jd = catalogue(Dialect::Jdcloud);
    assert!(jd.iter().any(|e| e.row.code == "NOT_FOUND" && e.emitted));
    assert!(jd
        .iter()
        .any(|e| e.row.code == "APIGATEWAY_API_PATH_ISREPEAT" && !e.emitted));
}

/// Every documented row is either emitted (✓) or has a reason why not (`dialect::unemitted`),
/// never both, and every reason still names a documented row; the check codes reasons cite
/// exist.
#[test]
fn every_documented_row_is_emitted_or_says_why_not() {
    use rulegate::dialect::unemitted::{listed, why, Why};
    let codes: Vec<&str> = rulegate::policy::diag::ALL_CODES
        .iter()
        .map(|c| c.id)
        .collect();
    for d in Dialect::ALL {
        let entries = catalogue(d);
        for e in &entries {
            let reason = why(d, &e.row);
            match (e.emitted, reason) {
                (true, Some(w)) => panic!(
                    "{d}: {} {} {:?} is emitted but still has an excuse: {w}",
                    e.row.code, e.row.status, e.row.message
                ),
                (false, None) => panic!(
                    "{d}: {} {} {:?} is neither emitted nor explained (add it to dialect/unemitted.rs)",
                    e.row.code, e.row.status, e.row.message
                ),
                (_, Some(Why::RefusedByCheck { code, .. })) => {
                    assert!(codes.contains(&code), "{d}: no check code {code}")
                }
                _ => {}
            }
        }
        for (code, status, message) in listed(d) {
            assert!(
                entries.iter().any(|e| e.row.code == code
                    && e.row.status == status
                    && e.row.message == message),
                "{d}: the excuse for {code} {status} {message:?} names no documented row"
            );
        }
    }
}
