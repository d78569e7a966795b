//! A compiled service → an OpenAPI 3.0 document: its hosts as servers, each route's operations
//! with their declared parameters (types, ranges, lengths, enumerations), its providers as
//! security schemes, and every refusal of its error contract ([`crate::contract`]) as the
//! vendor's response, body and all. Derived from the same snapshot `serve` runs, so the
//! published description of an API cannot drift from its gateway.
//!
//! What OpenAPI cannot say is said in descriptions and `x-rulegate-*` extensions: a `{path+}`
//! variable (several segments) is an ordinary path parameter with `x-rulegate-rest: true`;
//! signature schemes (HMAC key pairs, Huawei's and JD's signing, Tencent app authentication)
//! have no OpenAPI type and are `apiKey` schemes on `Authorization` that name the scheme.

use crate::auth::{Settings, TokenFrom};
use crate::check::{Check, ParamCheck, ParamTy};
use crate::compile::{Action, Route, Service, Snapshot};
use crate::contract;
use crate::dialect;
use crate::vocab::{Method, ParamLocation, Segment};
use serde_json::{json, Map, Value};

/// The document for service `service`.
pub fn document(snap: &Snapshot, service: usize) -> Value {
    let s = &snap.services[service];
    let mut paths = Map::new();
    let mut ids = std::collections::HashSet::new();
    for (index, route) in s.routes.iter().enumerate() {
        let path = route.template.to_string().replace('+', "");
        for method in methods(route) {
            let mut op = operation(snap, service, index);
            op["operationId"] = json!(operation_id(&mut ids, method, &path));
            let item = paths.entry(path.clone()).or_insert_with(|| json!({}));
            item[method] = op;
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": &*s.name,
            "version": format!("policy-{}", &snap.source_hash[..12.min(snap.source_hash.len())]),
            "description": format!(
                "Service `{}` as rulegate serves it ({} dialect): every operation lists the \
                 refusals the gateway can answer with.",
                s.name, s.dialect
            ),
        },
        "servers": servers(snap, service),
        "paths": paths,
        "components": { "securitySchemes": security_schemes(s) },
    })
}

/// The operation's keys (`get`, …): a route of `ANY` takes every method OpenAPI names.
fn methods(route: &Route) -> Vec<&'static str> {
    let all = ["get", "put", "post", "delete", "options", "head", "patch"];
    if route.methods.contains(&Method::Any) {
        return all.to_vec();
    }
    let name = |m: &Method| m.name().to_ascii_lowercase();
    all.into_iter()
        .filter(|a| route.methods.iter().any(|m| name(m) == *a))
        .collect()
}

/// `http://` and `https://` for each host the service claims (a `*.` host as a server
/// variable); a path-selected stage as a `{stage}` variable.
fn servers(snap: &Snapshot, service: usize) -> Vec<Value> {
    let mut hosts: Vec<String> = snap
        .hosts
        .exact
        .iter()
        .filter(|(_, s)| **s == service)
        .map(|(h, _)| h.clone())
        .collect();
    hosts.sort();
    let wild = snap.hosts.suffixes.iter().filter(|(_, s)| *s == service);
    hosts.extend(wild.map(|(suffix, _)| format!("{{sub}}{suffix}")));
    let stages = match &snap.services[service].stages {
        crate::compile::StageSelector::Path { names } => Some(names.clone()),
        _ => None,
    };
    let mut out = Vec::new();
    for host in hosts {
        for scheme in ["https", "http"] {
            let mut url = format!("{scheme}://{host}");
            let mut variables = Map::new();
            if host.starts_with("{sub}") {
                variables.insert("sub".into(), json!({ "default": "api" }));
            }
            if let Some(names) = &stages {
                url.push_str("/{stage}");
                variables.insert(
                    "stage".into(),
                    json!({ "default": names[0], "enum": names }),
                );
            }
            let mut server = json!({ "url": url });
            if !variables.is_empty() {
                server["variables"] = Value::Object(variables);
            }
            out.push(server);
        }
    }
    out
}

fn operation(snap: &Snapshot, service: usize, index: usize) -> Value {
    let s = &snap.services[service];
    let route = &s.routes[index];
    let params: Vec<&ParamCheck> = route
        .program
        .iter()
        .filter_map(|c| match c {
            Check::Param(p) => Some(p),
            _ => None,
        })
        .collect();
    let mut op = json!({
        "summary": &*route.label,
        "description": format!("Defined at {}.", route.location),
        "parameters": parameters(route, &params),
        "responses": responses(snap, service, index),
    });
    if let Some(body) = form_body(&params) {
        op["requestBody"] = body;
    }
    let auth = route.program.iter().find_map(|c| match c {
        Check::Auth(a) => Some(&s.providers[a.provider].name),
        _ => None,
    });
    if let Some(provider) = auth {
        op["security"] = json!([{ provider.as_str(): [] }]);
    }
    op
}

/// `get` `/orders/{id}` → `get_orders_id`, with `_2`, `_3`… should two routes (of different
/// stages) share a method and path: OpenAPI wants every id once.
fn operation_id(taken: &mut std::collections::HashSet<String>, method: &str, path: &str) -> String {
    let mut id = String::new();
    let mut gap = false;
    for c in format!("{method} {path}").chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !id.is_empty() {
                id.push('_');
            }
            id.push(c.to_ascii_lowercase());
            gap = false;
        } else {
            gap = true;
        }
    }
    let mut unique = id.clone();
    let mut n = 1;
    while !taken.insert(unique.clone()) {
        n += 1;
        unique = format!("{id}_{n}");
    }
    unique
}

/// Every path variable (declared or not: OpenAPI requires each), then the declared header,
/// query and cookie-free parameters.
fn parameters(route: &Route, params: &[&ParamCheck]) -> Vec<Value> {
    let mut out = Vec::new();
    for segment in route.template.segments() {
        let (name, rest) = match segment {
            Segment::Var(v) => (v, false),
            Segment::Rest(v) => (v, true),
            Segment::Literal(_) => continue,
        };
        let declared = params
            .iter()
            .find(|p| p.location == ParamLocation::Path && p.name == *name);
        let schema = declared.map_or_else(|| json!({ "type": "string" }), |p| schema(&p.ty));
        let mut param = json!({ "name": name, "in": "path", "required": true, "schema": schema });
        if rest {
            param["description"] = json!("One or more path segments.");
            param["x-rulegate-rest"] = json!(true);
        }
        out.push(param);
    }
    for p in params {
        let place = match p.location {
            ParamLocation::Header => "header",
            ParamLocation::Query => "query",
            ParamLocation::Path | ParamLocation::Form => continue,
        };
        out.push(json!({
            "name": p.name,
            "in": place,
            "required": p.required,
            "schema": schema(&p.ty),
        }));
    }
    out
}

/// Form parameters as an `application/x-www-form-urlencoded` body.
fn form_body(params: &[&ParamCheck]) -> Option<Value> {
    let form: Vec<&&ParamCheck> = params
        .iter()
        .filter(|p| p.location == ParamLocation::Form)
        .collect();
    if form.is_empty() {
        return None;
    }
    let properties: Map<String, Value> = form
        .iter()
        .map(|p| (p.name.clone(), schema(&p.ty)))
        .collect();
    let required: Vec<&str> = form
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name.as_str())
        .collect();
    let mut object = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        object["required"] = json!(required);
    }
    Some(json!({
        "required": !required.is_empty(),
        "content": { "application/x-www-form-urlencoded": { "schema": object } },
    }))
}

/// A declared type as a JSON schema.
fn schema(ty: &ParamTy) -> Value {
    let mut s = match ty {
        ParamTy::Any => json!({ "type": "string" }),
        ParamTy::String { min_len, max_len } => {
            let mut s = json!({ "type": "string" });
            set(&mut s, "minLength", min_len.map(Value::from));
            set(&mut s, "maxLength", max_len.map(Value::from));
            s
        }
        ParamTy::Int { min, max } => {
            let mut s = json!({ "type": "integer", "format": "int64" });
            set(&mut s, "minimum", min.map(Value::from));
            set(&mut s, "maximum", max.map(Value::from));
            s
        }
        ParamTy::Decimal { min, max } => {
            let mut s = json!({ "type": "number" });
            set(&mut s, "minimum", min.map(Value::from));
            set(&mut s, "maximum", max.map(Value::from));
            s
        }
        ParamTy::Bool => json!({ "type": "boolean" }),
        ParamTy::Enum(values) => json!({ "type": "string", "enum": values }),
    };
    if let Value::Object(o) = &mut s {
        o.retain(|_, v| !v.is_null());
    }
    s
}

fn set(s: &mut Value, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        s[key] = v;
    }
}

/// The route's own answer (a mock's, or the backend's), then each status of its error
/// contract with every refusal of that status as an example body.
fn responses(snap: &Snapshot, service: usize, index: usize) -> Value {
    let s = &snap.services[service];
    let route = &s.routes[index];
    let mut out = Map::new();
    match &route.action {
        Action::Mock(m) => {
            let mut answer = json!({ "description": "The route's mock answer." });
            if let Some(ct) = m.content_type {
                let body = String::from_utf8_lossy(&m.answer.body).into_owned();
                let example = serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body));
                answer["content"] = json!({ ct: { "example": example } });
            }
            out.insert(m.answer.status.to_string(), answer);
        }
        Action::Forward(_) => {
            out.insert(
                "default".into(),
                json!({ "description": "The backend's answer, forwarded." }),
            );
        }
        Action::IssueTokens { .. } => {
            out.insert(
                "200".into(),
                json!({ "description": "Access and refresh tokens (Huawei's OAuth2 token endpoint)." }),
            );
        }
    }
    for (status, refusals) in by_status(snap, service, index) {
        let text: Vec<String> = refusals
            .iter()
            .map(|(code, message, _)| format!("`{code}` {message}"))
            .collect();
        let examples: Map<String, Value> = refusals
            .iter()
            .enumerate()
            .map(|(i, (code, _, body))| {
                (format!("{i}-{}", sanitize(code)), json!({ "value": body }))
            })
            .collect();
        let schema = body_schema(&refusals[0].2);
        let entry = out
            .entry(status.to_string())
            .or_insert_with(|| json!({ "description": "" }));
        let before = entry["description"].as_str().unwrap_or("").to_string();
        let joined = text.join("; ");
        entry["description"] = json!(match before.is_empty() {
            true => format!("Refused by the gateway: {joined}"),
            false => format!("{before} Or refused by the gateway: {joined}"),
        });
        if entry.get("content").is_none() {
            entry["content"] =
                json!({ "application/json": { "schema": schema, "examples": examples } });
        }
    }
    Value::Object(out)
}

/// The contract's refusals by status, each as (code, message, body as the dialect writes it).
fn by_status(
    snap: &Snapshot,
    service: usize,
    index: usize,
) -> std::collections::BTreeMap<u16, Vec<(String, String, Value)>> {
    let dialect = snap.services[service].dialect;
    let mut out: std::collections::BTreeMap<u16, Vec<(String, String, Value)>> = Default::default();
    for a in contract::answers(snap, service, index) {
        let rendered = dialect::render(dialect, &a.reason, &"0".repeat(32));
        let row = dialect::row(dialect, &a.reason);
        let body = serde_json::from_str(&rendered.body).unwrap_or(Value::String(rendered.body));
        let message = dialect::message(dialect, &a.reason);
        out.entry(rendered.status)
            .or_default()
            .push((row.code.to_string(), message, body));
    }
    out
}

/// An example name: letters, digits, `.`, `-`, `_` (what OpenAPI's component keys allow).
fn sanitize(code: &str) -> String {
    code.chars()
        .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
            true => c,
            false => '_',
        })
        .collect()
}

/// The schema of a dialect's error body, read off one body (every body of a dialect has the
/// same shape).
fn body_schema(body: &Value) -> Value {
    match body {
        Value::Object(o) => {
            let properties: Map<String, Value> =
                o.iter().map(|(k, v)| (k.clone(), body_schema(v))).collect();
            let required: Vec<&String> = o.keys().collect();
            json!({ "type": "object", "properties": properties, "required": required })
        }
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "type": "integer" }),
        Value::Number(_) => json!({ "type": "number" }),
        Value::Bool(_) => json!({ "type": "boolean" }),
        _ => json!({ "type": "string" }),
    }
}

/// One scheme per provider, named as the provider.
fn security_schemes(s: &Service) -> Value {
    let mut out = Map::new();
    for p in &s.providers {
        let signature = |what: &str| {
            json!({
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": format!("{what}: the request is signed; see the vendor's signing documentation."),
            })
        };
        let token = |from: &TokenFrom, what: &str| match from {
            TokenFrom::Header { name, bearer: true }
                if name.eq_ignore_ascii_case("authorization") =>
            {
                json!({ "type": "http", "scheme": "bearer", "bearerFormat": what })
            }
            TokenFrom::Header { name, .. } => {
                json!({ "type": "apiKey", "in": "header", "name": name })
            }
            TokenFrom::Query(name) => json!({ "type": "apiKey", "in": "query", "name": name }),
            TokenFrom::Cookie(name) => json!({ "type": "apiKey", "in": "cookie", "name": name }),
        };
        let scheme = match &p.settings {
            Settings::ApiKey(c) => token(&c.from, "API key"),
            Settings::Basic(_) => json!({ "type": "http", "scheme": "basic" }),
            Settings::Jwt(c) => token(&c.token_from, "JWT"),
            Settings::Oauth2(c) => token(&c.token_from, "JWT"),
            Settings::Keypair(_) => signature("Tencent key pair (HMAC)"),
            Settings::AppSignature(_) => signature("Huawei app authentication (SDK-HMAC-SHA256)"),
            Settings::JdSignature(_) => signature("JD Cloud signature (JDCLOUD2-HMAC-SHA256)"),
            Settings::ApiApp(_) => signature("Tencent app authentication (ApiAppKey)"),
            Settings::Authorizer(c) => {
                let name = c
                    .identity_headers
                    .first()
                    .map_or("Authorization", String::as_str);
                json!({
                    "type": "apiKey",
                    "in": "header",
                    "name": name,
                    "description": "Checked by an external authorizer.",
                })
            }
        };
        out.insert(p.name.clone(), scheme);
    }
    Value::Object(out)
}
