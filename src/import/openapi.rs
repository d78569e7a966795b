//! OpenAPI 3 and Swagger 2 (YAML or JSON) → a `.policy` skeleton and its `.tests`.
//!
//! Each operation becomes a route with its typed path, query and header parameters
//! (`require` / `optional`, with the schema's range, length or enumeration) and a mock that
//! answers with the spec's example for the first success response, or a body made from its
//! schema when the spec has no example. The service answers in JD Cloud's dialect, since JD's
//! console is where an OpenAPI import is documented, and its errors keep JD's codes:
//! `APIGATEWAY_SWAGGER_PARSE_ERROR`, `APIGATEWAY_SWAGGER_NULL_ERRO`, and
//! `APIGATEWAY_API_PATH_ISREPEAT` for two paths that differ only in variable names.
//!
//! The tests send each route a request with its required parameters filled from the schema,
//! expecting the mock, and leave out each required query or header parameter in turn,
//! expecting JD's `ARGUMENT_NOT_FOUND`.

use super::{Imported, NULL_ERROR, PARSE_ERROR};
use crate::auth::sig::encode;
use crate::policy::ast::{Segment, Span};
use crate::policy::diag::{self, Diagnostic};
use crate::policy::fmt::quote;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

/// Import the document `text` (file id `file` in the caller's `Sources`, for positions).
pub fn import(file: u32, name: &str, text: &str) -> Result<Imported, Vec<Diagnostic>> {
    let at = |offset: usize| Span::new(file, offset, offset);
    let doc: Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let offset = e.location().map_or(0, |l| l.index());
            let kind = if text.trim().is_empty() {
                NULL_ERROR
            } else {
                PARSE_ERROR
            };
            return Err(vec![Diagnostic::error(
                kind,
                at(offset),
                format!("{}: {e}", jd_message(kind)),
            )]);
        }
    };
    if doc.is_null() {
        return Err(vec![Diagnostic::error(
            NULL_ERROR,
            at(0),
            format!("{}: the document is empty", jd_message(NULL_ERROR)),
        )]);
    }
    let version = if doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")) {
        3
    } else if doc["swagger"].as_str() == Some("2.0") {
        2
    } else {
        return Err(vec![Diagnostic::error(
            PARSE_ERROR,
            at(0),
            format!(
                "{}: not an OpenAPI 3 or Swagger 2 document",
                jd_message(PARSE_ERROR)
            ),
        )
        .help(
            "the document must start with `openapi: 3.x.y` or `swagger: \"2.0\"`",
        )]);
    };
    let paths = match doc.get("paths").and_then(Value::as_object) {
        Some(p) if !p.is_empty() => p,
        _ => {
            return Err(vec![Diagnostic::error(
                NULL_ERROR,
                at(text.find("paths").unwrap_or(0)),
                format!("{}: the document has no paths", jd_message(NULL_ERROR)),
            )])
        }
    };
    let spec = Spec { doc: &doc, version };
    let (hosts, base, schemes) = spec.servers();
    let mut diags = Vec::new();
    let mut routes: Vec<Route> = Vec::new();
    let mut seen: Vec<(String, Vec<&str>, String)> = Vec::new();
    for (path, item) in paths {
        let full = format!("{base}{path}");
        let shape = match crate::policy::parse::parse_template(&full) {
            Ok(t) => t
                .segments()
                .map(|s| match s {
                    Segment::Literal(l) => l.to_string(),
                    Segment::Var(_) | Segment::Rest(_) => "{}".to_string(),
                })
                .collect::<Vec<_>>()
                .join("/"),
            Err(why) => {
                diags.push(
                    Diagnostic::error(
                        PARSE_ERROR,
                        key_span(file, text, path),
                        format!("path {path:?} cannot be routed: {why}"),
                    )
                    .help("rulegate routes whole segments: `/pets/{id}`, not `/pets/{id}.json`"),
                );
                continue;
            }
        };
        let methods: Vec<&str> = METHODS
            .iter()
            .copied()
            .filter(|m| item.get(*m).is_some())
            .collect();
        if let Some((first, _, _)) = seen
            .iter()
            .find(|(_, ms, s)| *s == shape && ms.iter().any(|m| methods.contains(m)))
        {
            let first_at = key_offset(text, first, 0);
            let here = key_offset(text, path, first_at + 1);
            diags.push(
                Diagnostic::error(
                    diag::DUPLICATE_ROUTE,
                    Span::new(file, here, here + path.len()),
                    format!("API Path Repeated: {path} and {first} differ only in variable names"),
                )
                .related(
                    Span::new(file, first_at, first_at + first.len()),
                    "the first one",
                )
                .help("one path per shape: rename the variables to match, or merge the operations"),
            );
            continue;
        }
        seen.push((path.clone(), methods.clone(), shape));
        for m in methods {
            match spec.route(&full, m, item) {
                Ok(r) => routes.push(r),
                Err(why) => diags.push(Diagnostic::error(
                    PARSE_ERROR,
                    key_span(file, text, path),
                    format!("{} {path}: {why}", m.to_ascii_uppercase()),
                )),
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let title = doc["info"]["title"].as_str().unwrap_or("api");
    let service = ident(title);
    let policy = policy_text(name, &spec, &service, &hosts, &schemes, &routes);
    // Should it not parse, the caller's compile check reports it as the importer's bug.
    let policy = crate::policy::fmt::format_file(&policy).unwrap_or(policy);
    let tests = tests_text(name, &hosts[0], &schemes, &routes);
    Ok(Imported { policy, tests })
}

fn jd_message(code: diag::Code) -> &'static str {
    if code == NULL_ERROR {
        "yaml file cannot be null"
    } else {
        "yaml File Resolution Exception"
    }
}

/// The first place `key` is written as a mapping key.
fn key_span(file: u32, text: &str, key: &str) -> Span {
    let at = key_offset(text, key, 0);
    Span::new(file, at, at + key.len())
}

/// Where `key` is written as a mapping key, searching from `from`.
fn key_offset(text: &str, key: &str, from: usize) -> usize {
    let from = from.min(text.len());
    for candidate in [format!("{key}:"), format!("\"{key}\""), format!("'{key}'")] {
        if let Some(i) = text[from..].find(&candidate) {
            return from + i;
        }
    }
    from
}

/// A name for the policy language: lower case, words joined by `-`.
fn ident(s: &str) -> String {
    let slug = crate::testing::format::slug(s);
    if slug.starts_with(|c: char| c.is_ascii_alphabetic()) {
        slug
    } else {
        format!("api-{slug}")
    }
}

struct Spec<'a> {
    doc: &'a Value,
    version: u8,
}

struct Route {
    method: String,
    path: String,
    summary: String,
    params: Vec<Param>,
    status: u16,
    /// `json …` or `text …`, as the policy writes it; `None` for an empty answer.
    body: Option<MockBody>,
    from_example: bool,
    skipped: Vec<String>,
}

enum MockBody {
    Json(Value),
    Text(String),
}

struct Param {
    location: &'static str,
    name: String,
    required: bool,
    /// The policy's type, e.g. `int 1..100`; empty for any string.
    ty: String,
    /// A value the type admits, for the tests.
    sample: String,
    /// A number just outside the declared range, for a test that it is refused.
    outside: Option<String>,
}

impl<'a> Spec<'a> {
    /// Follow `$ref`s within the document.
    fn resolve(&self, v: &'a Value) -> Result<&'a Value, String> {
        let mut v = v;
        for _ in 0..32 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return Ok(v);
            };
            let Some(pointer) = r.strip_prefix('#') else {
                return Err(format!("the reference {r:?} points outside the document"));
            };
            v = self
                .doc
                .pointer(pointer)
                .ok_or_else(|| format!("the reference {r:?} points at nothing"))?;
        }
        Err("a chain of references that does not end".into())
    }

    /// (hosts, base path, schemes)
    fn servers(&self) -> (Vec<String>, String, Vec<String>) {
        let mut hosts = Vec::new();
        let mut base = String::new();
        let mut schemes = Vec::new();
        if self.version == 2 {
            if let Some(h) = self.doc["host"].as_str() {
                hosts.push(h.split(':').next().unwrap_or(h).to_string());
            }
            base = self.doc["basePath"].as_str().unwrap_or("").to_string();
            if let Some(s) = self.doc["schemes"].as_array() {
                schemes.extend(s.iter().filter_map(Value::as_str).map(String::from));
            }
        } else if let Some(servers) = self.doc["servers"].as_array() {
            for s in servers {
                let Some(url) = s["url"].as_str() else {
                    continue;
                };
                if url.contains('{') {
                    continue;
                }
                let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
                if !scheme.is_empty() && !schemes.iter().any(|x| x == scheme) {
                    schemes.push(scheme.to_string());
                }
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                if !authority.is_empty() {
                    let host = authority.split(':').next().unwrap_or(authority);
                    if !hosts.iter().any(|h| h == host) {
                        hosts.push(host.to_string());
                    }
                }
                if base.is_empty() {
                    base = path.to_string();
                }
            }
        }
        let base = base.trim_end_matches('/').to_string();
        schemes.retain(|s| s == "http" || s == "https");
        if hosts.is_empty() {
            hosts.push("localhost".to_string());
        }
        (hosts, base, schemes)
    }

    fn route(&self, path: &str, method: &str, item: &'a Value) -> Result<Route, String> {
        let op = self.resolve(&item[method])?;
        let mut skipped = Vec::new();
        // Path-level parameters, overridden by the operation's of the same name and place.
        let mut raw: Vec<&Value> = Vec::new();
        for list in [&item["parameters"], &op["parameters"]] {
            for p in list.as_array().into_iter().flatten() {
                let p = self.resolve(p)?;
                raw.retain(|q| !(q["name"] == p["name"] && q["in"] == p["in"]));
                raw.push(p);
            }
        }
        // OpenAPI 3 puts form fields in the request body's schema: each a `form` parameter.
        let form_fields = self.form_fields(op)?;
        let raw = raw.into_iter().chain(form_fields.iter());
        let mut params = Vec::new();
        for p in raw {
            let name = p["name"].as_str().unwrap_or_default().to_string();
            let location = match p["in"].as_str() {
                Some("path") => "path",
                Some("query") => "query",
                Some("header") => "header",
                Some("formData") => "form",
                other => {
                    skipped.push(format!(
                        "{} parameter {name:?} is not checked by the gateway",
                        other.unwrap_or("an unplaced")
                    ));
                    continue;
                }
            };
            if location == "header" && http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!(
                    "header parameter {name:?} is not a valid header name"
                ));
            }
            // Swagger 2 keeps the type on the parameter, OpenAPI 3 (and the form fields read
            // from its request body) in a schema.
            let schema = if p["schema"].is_null() {
                p
            } else {
                self.resolve(&p["schema"])?
            };
            let (ty, sample) = self.param_type(schema)?;
            let outside = match schema["type"].as_str() {
                Some("integer") => schema["maximum"]
                    .as_i64()
                    .map(|m| m + 1)
                    .or(schema["minimum"].as_i64().map(|m| m - 1))
                    .map(|v| v.to_string()),
                Some("number") => schema["maximum"]
                    .as_f64()
                    .map(|m| m + 1.0)
                    .or(schema["minimum"].as_f64().map(|m| m - 1.0))
                    .map(decimal),
                _ => None,
            };
            params.push(Param {
                location,
                name,
                required: location == "path" || p["required"].as_bool() == Some(true),
                ty,
                sample,
                outside,
            });
        }
        let (status, body, from_example) = self.mock(op)?;
        Ok(Route {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            summary: [op["operationId"].as_str(), op["summary"].as_str()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": "),
            params,
            status,
            body,
            from_example,
            skipped,
        })
    }

    /// An OpenAPI 3 operation's `application/x-www-form-urlencoded` body fields, as Swagger 2
    /// `formData` parameters: `{name, in: formData, required, schema}`.
    fn form_fields(&self, op: &Value) -> Result<Vec<Value>, String> {
        if self.version != 3 {
            return Ok(Vec::new());
        }
        let body = self.resolve(&op["requestBody"])?;
        let form = &body["content"]["application/x-www-form-urlencoded"]["schema"];
        let schema = self.resolve(form)?;
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let fields = schema["properties"].as_object().into_iter().flatten();
        Ok(fields
            .map(|(name, s)| {
                serde_json::json!({
                    "name": name,
                    "in": "formData",
                    "required": required.contains(&name.as_str()),
                    "schema": s,
                })
            })
            .collect())
    }

    /// The policy's type for a parameter schema, and a value it admits.
    fn param_type(&self, s: &Value) -> Result<(String, String), String> {
        let range = |min: Option<String>, max: Option<String>| match (&min, &max) {
            (None, None) => String::new(),
            _ => format!(
                " {}..{}",
                min.clone().unwrap_or_default(),
                max.clone().unwrap_or_default()
            ),
        };
        let example = s.get("example").or(s.get("default"));
        if let Some(values) = s["enum"].as_array() {
            let words: Vec<String> = values
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .collect();
            let quoted: Vec<String> = words.iter().map(|w| quote(w)).collect();
            let sample = words.first().cloned().unwrap_or_default();
            return Ok((format!("enum {}", quoted.join(" ")), sample));
        }
        Ok(match s["type"].as_str() {
            Some("integer") => {
                let min = s["minimum"].as_i64();
                let max = s["maximum"].as_i64();
                let sample = example
                    .and_then(Value::as_i64)
                    .unwrap_or_else(|| min.unwrap_or(1).max(max.map_or(1, |m| m.min(1))));
                (
                    format!(
                        "int{}",
                        range(min.map(|m| m.to_string()), max.map(|m| m.to_string()))
                    ),
                    sample.to_string(),
                )
            }
            Some("number") => {
                let min = s["minimum"].as_f64();
                let max = s["maximum"].as_f64();
                let sample = example.and_then(Value::as_f64).unwrap_or_else(|| {
                    let v = min.unwrap_or(1.0);
                    max.map_or(v, |m| v.min(m))
                });
                (
                    format!("decimal{}", range(min.map(decimal), max.map(decimal))),
                    decimal(sample),
                )
            }
            Some("boolean") => ("bool".to_string(), "true".to_string()),
            Some("string") | None => {
                let min = s["minLength"].as_u64();
                let max = s["maxLength"].as_u64();
                let sample = example
                    .and_then(Value::as_str)
                    .map(String::from)
                    .unwrap_or_else(|| "x".repeat(min.unwrap_or(1).max(1) as usize));
                let ty = match (min, max) {
                    (None, None) => String::new(),
                    _ => format!(
                        "string{}",
                        range(min.map(|m| m.to_string()), max.map(|m| m.to_string()))
                    ),
                };
                (ty, sample)
            }
            // Arrays and objects in a query or header: taken as text.
            Some(_) => (String::new(), "x".to_string()),
        })
    }

    /// (status, body, whether the body is the spec's own example)
    fn mock(&self, op: &'a Value) -> Result<(u16, Option<MockBody>, bool), String> {
        let responses = op["responses"].as_object().cloned().unwrap_or_default();
        let mut codes: Vec<(u16, &str)> = responses
            .keys()
            .filter_map(|k| k.parse::<u16>().ok().map(|c| (c, k.as_str())))
            .filter(|(c, _)| (200..300).contains(c))
            .collect();
        codes.sort();
        let (status, key) = match codes.first() {
            Some(&(c, k)) => (c, k.to_string()),
            None if responses.contains_key("default") => (200, "default".to_string()),
            None => return Ok((200, None, false)),
        };
        let response = self.resolve(&op["responses"][key.as_str()])?;
        if self.version == 2 {
            if let Some(ex) = response["examples"]
                .as_object()
                .and_then(|e| e.values().next())
            {
                return Ok((status, Some(MockBody::Json(ex.clone())), true));
            }
            if response.get("schema").is_none() {
                return Ok((status, None, false));
            }
            let schema = self.resolve(&response["schema"])?;
            return Ok((status, Some(MockBody::Json(self.sample(schema, 0)?)), false));
        }
        let Some(content) = response["content"].as_object().filter(|c| !c.is_empty()) else {
            return Ok((status, None, false));
        };
        let (media, body) = content
            .iter()
            .find(|(m, _)| m.contains("json"))
            .or_else(|| content.iter().next())
            .expect("not empty");
        let example = body.get("example").cloned().or_else(|| {
            body["examples"]
                .as_object()
                .and_then(|e| e.values().next())
                .and_then(|e| self.resolve(e).ok())
                .and_then(|e| e.get("value").cloned())
        });
        let (value, from_example) = match example {
            Some(v) => (v, true),
            None => (self.sample(self.resolve(&body["schema"])?, 0)?, false),
        };
        Ok(match (media.contains("json"), value) {
            (true, v) => (status, Some(MockBody::Json(v)), from_example),
            (false, Value::String(s)) => (status, Some(MockBody::Text(s)), from_example),
            (false, v) => (status, Some(MockBody::Text(v.to_string())), from_example),
        })
    }

    /// A value for a schema: its example, default or first enum value, else one made from its
    /// type (one item for an array, every property for an object).
    fn sample(&self, s: &'a Value, depth: usize) -> Result<Value, String> {
        let s = self.resolve(s)?;
        if let Some(v) = s.get("example").or(s.get("default")) {
            return Ok(v.clone());
        }
        if let Some(v) = s["enum"].as_array().and_then(|e| e.first()) {
            return Ok(v.clone());
        }
        if depth > 8 {
            return Ok(Value::Null);
        }
        Ok(match s["type"].as_str() {
            Some("array") => json!([self.sample(&s["items"], depth + 1)?]),
            Some("integer") => json!(s["minimum"].as_i64().unwrap_or(1)),
            Some("number") => json!(s["minimum"].as_f64().unwrap_or(1.5)),
            Some("boolean") => json!(true),
            Some("string") => json!("string"),
            _ => {
                let mut out = Map::new();
                for (k, v) in s["properties"].as_object().into_iter().flatten() {
                    out.insert(k.clone(), self.sample(v, depth + 1)?);
                }
                if out.is_empty() && s.get("allOf").is_some() {
                    for part in s["allOf"].as_array().into_iter().flatten() {
                        if let Value::Object(m) = self.sample(part, depth + 1)? {
                            out.extend(m);
                        }
                    }
                }
                Value::Object(out)
            }
        })
    }
}

/// `1`, `-2.5`: what the policy's decimal type and range take (no exponent).
fn decimal(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn policy_text(
    name: &str,
    spec: &Spec<'_>,
    service: &str,
    hosts: &[String],
    schemes: &[String],
    routes: &[Route],
) -> String {
    let info = &spec.doc["info"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Imported from {name} ({} {}): {} {}.",
        if spec.version == 2 {
            "Swagger"
        } else {
            "OpenAPI"
        },
        spec.doc["openapi"]
            .as_str()
            .or(spec.doc["swagger"].as_str())
            .unwrap_or(""),
        info["title"].as_str().unwrap_or("an API"),
        info["version"].as_str().unwrap_or("")
    );
    out.push_str("# Every route answers with a mock made from the spec; point a backend at the\n");
    out.push_str("# real service and replace `mock …` with `forward NAME` route by route.\n\n");
    let _ = writeln!(out, "service {service} {{");
    out.push_str("    dialect jdcloud\n");
    let quoted: Vec<String> = hosts.iter().map(|h| quote(h)).collect();
    let _ = writeln!(out, "    hosts {}", quoted.join(" "));
    if !schemes.is_empty() {
        let _ = writeln!(out, "    protocols {}", schemes.join(" "));
    }
    for r in routes {
        out.push('\n');
        if !r.summary.is_empty() {
            let _ = writeln!(out, "    # {}", r.summary.replace('\n', " "));
        }
        let _ = writeln!(out, "    route {} {} {{", r.method, quote(&r.path));
        for s in &r.skipped {
            let _ = writeln!(out, "        # {s}");
        }
        for p in &r.params {
            let kind = if p.required { "require" } else { "optional" };
            let ty = if p.ty.is_empty() {
                String::new()
            } else {
                format!(" {}", p.ty)
            };
            let _ = writeln!(out, "        {kind} {} {}{ty}", p.location, quote(&p.name));
        }
        if r.body.is_some() && !r.from_example {
            out.push_str("        # the spec has no example: a body made from its schema\n");
        }
        match &r.body {
            None => {
                let _ = writeln!(out, "        mock {}", r.status);
            }
            Some(MockBody::Json(v)) => {
                let _ = writeln!(out, "        mock {} json {v}", r.status);
            }
            Some(MockBody::Text(t)) => {
                let _ = writeln!(out, "        mock {} text {}", r.status, quote(t));
            }
        }
        out.push_str("    }\n");
    }
    out.push_str("}\n");
    out
}

fn tests_text(name: &str, host: &str, schemes: &[String], routes: &[Route]) -> String {
    let scheme = if schemes.iter().any(|s| s == "http") || schemes.is_empty() {
        "http"
    } else {
        "https"
    };
    let mut out = format!(
        "# Tests for the policy imported from {name}. Run: rulegate test DIR\n\nat 2026-01-01T00:00:00Z\n"
    );
    let mut names: Vec<String> = Vec::new();
    for r in routes {
        let required: Vec<&Param> = r
            .params
            .iter()
            .filter(|p| p.required && matches!(p.location, "query" | "header"))
            .collect();
        // The route's request: required parameters filled, one left out or one replaced.
        let request = |leave_out: Option<&Param>, replace: Option<(&Param, &str)>| {
            let value = |p: &Param| match replace {
                Some((q, v)) if q.name == p.name && q.location == p.location => v.to_string(),
                _ => p.sample.clone(),
            };
            let sent = |p: &&Param| {
                (p.required || replace.is_some_and(|(q, _)| q.name == p.name))
                    && leave_out.is_none_or(|l| l.name != p.name || l.location != p.location)
            };
            let query: Vec<String> = r
                .params
                .iter()
                .filter(|p| p.location == "query")
                .filter(sent)
                .map(|p| {
                    format!(
                        "{}={}",
                        encode(p.name.as_bytes()),
                        encode(value(p).as_bytes())
                    )
                })
                .collect();
            let path: String = r
                .path
                .split('/')
                .map(
                    |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(var) => r
                            .params
                            .iter()
                            .find(|p| p.location == "path" && p.name == var)
                            .map_or("1".to_string(), |p| encode(value(p).as_bytes())),
                        None => seg.to_string(),
                    },
                )
                .collect::<Vec<_>>()
                .join("/");
            let url = if query.is_empty() {
                format!("{scheme}://{host}{path}")
            } else {
                format!("{scheme}://{host}{path}?{}", query.join("&"))
            };
            let mut s = format!("    {} {}\n", r.method, quote(&url));
            for p in r
                .params
                .iter()
                .filter(|p| p.location == "header")
                .filter(sent)
            {
                let _ = writeln!(s, "    header {} {}", quote(&p.name), quote(&value(p)));
            }
            s
        };
        let label = format!("{} {}", r.method, r.path);
        let _ = write!(
            out,
            "\ntest {} {{\n{}",
            quote(&unique(
                &mut names,
                format!("{label} answers from its mock")
            )),
            request(None, None)
        );
        let _ = writeln!(out, "    expect status {}", r.status);
        match &r.body {
            Some(MockBody::Json(v)) if r.method != "HEAD" => {
                let _ = writeln!(out, "    expect body json {v}");
            }
            Some(MockBody::Text(t)) if r.method != "HEAD" => {
                let _ = writeln!(out, "    expect body {}", quote(t));
            }
            _ => {}
        }
        out.push_str("}\n");
        for p in &required {
            let name = format!("{label} needs the {} parameter {}", p.location, p.name);
            let line = request(Some(p), None);
            refusal(&mut out, &mut names, name, &line, "ARGUMENT_NOT_FOUND");
        }
        let ranged = r
            .params
            .iter()
            .filter(|p| matches!(p.location, "path" | "query" | "header"));
        for p in ranged {
            let Some(v) = &p.outside else { continue };
            let name = format!("{label} refuses {} parameter {} = {v}", p.location, p.name);
            let line = request(None, Some((p, v)));
            refusal(&mut out, &mut names, name, &line, "OUT_OF_RANGE");
        }
        if let [only] = schemes {
            let other = if only == "http" { "https" } else { "http" };
            let line = request(None, None).replacen(
                &format!("\"{scheme}://"),
                &format!("\"{other}://"),
                1,
            );
            let name = format!("{label} is not served over {other}");
            refusal(&mut out, &mut names, name, &line, "ARGUMENT_NOT_SUPPORT");
        }
    }
    out
}

/// `base`, or `base (2)`, … when a test of that name exists already.
fn unique(names: &mut Vec<String>, base: String) -> String {
    let mut n = base.clone();
    let mut i = 2;
    while names.contains(&n) {
        n = format!("{base} ({i})");
        i += 1;
    }
    names.push(n.clone());
    n
}

/// A test that `request` is refused with 400 and JD's `code`.
fn refusal(out: &mut String, names: &mut Vec<String>, name: String, request: &str, code: &str) {
    let _ = write!(
        out,
        "\ntest {} {{\n{request}    expect status 400\n    expect code {code}\n}}\n",
        quote(&unique(names, name))
    );
}
