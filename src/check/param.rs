//! Step 8: the route's `require` / `optional` parameters (path, header, query, form), each
//! with its type and range.

use super::{Answering, Build, Cx, Phase, RouteCheck, RouteFacts, Verdict};
use crate::policy::ast::{self, RouteItem};
use crate::policy::diag::{self, did_you_mean, Diagnostic};
use crate::dialect::Reason;
use crate::request::head::form_value;
use crate::vocab::ParamLocation;
use std::fmt;

const PHASE: Phase = Phase::Param;

#[derive(Debug, Clone)]
pub struct ParamCheck {
    pub required: bool,
    pub location: ParamLocation,
    pub name: String,
    pub ty: ParamTy,
}

impl fmt::Display for ParamCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.required { "require" } else { "optional" };
        write!(f, "{kind} {} {:?} {}", self.location, self.name, self.ty)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParamTy {
    Any,
    String {
        min_len: Option<u64>,
        max_len: Option<u64>,
    },
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Decimal {
        min: Option<f64>,
        max: Option<f64>,
    },
    Bool,
    Enum(Vec<String>),
}

impl fmt::Display for ParamTy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn range<T: fmt::Display>(
            f: &mut fmt::Formatter<'_>,
            min: &Option<T>,
            max: &Option<T>,
        ) -> fmt::Result {
            if min.is_none() && max.is_none() {
                return Ok(());
            }
            f.write_str(" ")?;
            if let Some(m) = min {
                write!(f, "{m}")?;
            }
            f.write_str("..")?;
            if let Some(m) = max {
                write!(f, "{m}")?;
            }
            Ok(())
        }
        match self {
            ParamTy::Any => f.write_str("string"),
            ParamTy::String { min_len, max_len } => {
                f.write_str("string")?;
                range(f, min_len, max_len)
            }
            ParamTy::Int { min, max } => {
                f.write_str("int")?;
                range(f, min, max)
            }
            ParamTy::Decimal { min, max } => {
                f.write_str("decimal")?;
                range(f, min, max)
            }
            ParamTy::Bool => f.write_str("bool"),
            ParamTy::Enum(v) => write!(f, "enum {}", v.join("|")),
        }
    }
}

impl RouteCheck for ParamCheck {
    const PHASE: Phase = PHASE;

    /// Each declared parameter, by location (path, header, query, form), in declaration order
    /// within one; a parameter declared twice, or a path variable not in the path, is refused.
    fn compile(r: &RouteFacts<'_>, b: &mut dyn Build) -> Vec<Self> {
        let mut seen: Vec<(&ast::Param, ast::Span)> = Vec::new();
        for item in &r.route.items {
            let RouteItem::Param(p) = &item.value else {
                continue;
            };
            let twice = seen.iter().find(|(q, _)| {
                q.location.value == p.location.value
                    && q.name.value.eq_ignore_ascii_case(&p.name.value)
            });
            match twice {
                Some((_, prev)) => b.error(
                    Diagnostic::error(
                        diag::REPEATED_STATEMENT,
                        item.span,
                        format!(
                            "{} parameter {:?} is declared twice",
                            p.location.value, p.name.value
                        ),
                    )
                    .label("second declaration")
                    .related(*prev, "first declaration"),
                ),
                None => seen.push((p, item.span)),
            }
        }
        let mut out: Vec<ParamCheck> = Vec::new();
        for (p, _) in seen {
            if p.location.value == ParamLocation::Path && !r.vars.contains(&p.name.value) {
                b.error(undeclared_path_var(r, p));
                continue;
            }
            out.push(ParamCheck {
                required: p.required,
                location: p.location.value,
                name: p.name.value.clone(),
                ty: p.ty.as_ref().map_or(ParamTy::Any, |t| param_ty(&t.value)),
            });
        }
        out.sort_by_key(|p| p.location);
        out
    }

    /// A path variable is there whenever the route matched: only its type can refuse; any
    /// other parameter refuses when required or typed.
    fn can_refuse(&self, _: u64) -> bool {
        match self.location {
            ParamLocation::Path => self.ty != ParamTy::Any,
            _ => self.required || self.ty != ParamTy::Any,
        }
    }

    /// Missing (when required), not of its type (an undecodable value is not of any), outside
    /// its range, length or values, and a form parameter without a form body.
    fn answers(&self, _: &Answering<'_>) -> Vec<Reason> {
        let (location, name) = (self.location, self.name.clone());
        let expected = self.ty.to_string();
        let path = location == ParamLocation::Path;
        let typed = matches!(
            self.ty,
            ParamTy::Int { .. } | ParamTy::Decimal { .. } | ParamTy::Bool
        );
        let ranged = match &self.ty {
            ParamTy::String { min_len, max_len } => min_len.is_some() || max_len.is_some(),
            ParamTy::Int { min, max } => min.is_some() || max.is_some(),
            ParamTy::Decimal { min, max } => min.is_some() || max.is_some(),
            ParamTy::Enum(_) => true,
            ParamTy::Any | ParamTy::Bool => false,
        };
        let mut out = Vec::new();
        if location == ParamLocation::Form {
            out.push(Reason::FormContentTypeRequired);
        }
        if self.required && !path {
            let name = name.clone();
            out.push(Reason::ParamMissing { location, name });
        }
        if typed || !path {
            let (name, expected) = (name.clone(), expected.clone());
            out.push(Reason::ParamInvalid { location, name, expected });
        }
        if ranged {
            out.push(Reason::ParamOutOfRange { location, name, expected });
        }
        out
    }

    fn run<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        self.check(cx)
    }
}

fn undeclared_path_var(r: &RouteFacts<'_>, p: &ast::Param) -> Diagnostic {
    let template = &r.route.path.value;
    Diagnostic::error(
        diag::UNDECLARED_PATH_VAR,
        p.name.span,
        format!("path variable `{}` is not in the route's path", p.name.value),
    )
    .label("not declared")
    .related(r.route.path.span, "the route's path")
    .help(
        did_you_mean(&p.name.value, r.vars.iter().map(String::as_str)).unwrap_or_else(|| {
            format!(
                "declare it in the path, e.g. `{template}/{{{}}}`",
                p.name.value
            )
        }),
    )
}

fn param_ty(t: &ast::ParamType) -> ParamTy {
    match t {
        ast::ParamType::String { len } => ParamTy::String {
            min_len: len.and_then(|r| r.min),
            max_len: len.and_then(|r| r.max),
        },
        ast::ParamType::Int { range } => ParamTy::Int {
            min: range.and_then(|r| r.min),
            max: range.and_then(|r| r.max),
        },
        ast::ParamType::Decimal { range } => ParamTy::Decimal {
            min: range.and_then(|r| r.min),
            max: range.and_then(|r| r.max),
        },
        ast::ParamType::Bool => ParamTy::Bool,
        ast::ParamType::Enum(v) => ParamTy::Enum(v.iter().map(|s| s.value.clone()).collect()),
    }
}

/// How a parameter value measures up to its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeCheck {
    Ok,
    /// Not a value of the type at all (`abc` for an int).
    WrongType,
    /// A value of the type outside the declared range, length or enumeration.
    OutOfRange,
}

/// Check a parameter value against its declared type and range.
pub fn type_check(ty: &ParamTy, v: &str) -> TypeCheck {
    fn within<T: PartialOrd>(x: T, min: &Option<T>, max: &Option<T>) -> TypeCheck {
        if min.as_ref().is_none_or(|m| x >= *m) && max.as_ref().is_none_or(|m| x <= *m) {
            TypeCheck::Ok
        } else {
            TypeCheck::OutOfRange
        }
    }
    match ty {
        ParamTy::Any => TypeCheck::Ok,
        ParamTy::String { min_len, max_len } => within(v.chars().count() as u64, min_len, max_len),
        ParamTy::Int { min, max } => v
            .parse::<i64>()
            .map_or(TypeCheck::WrongType, |x| within(x, min, max)),
        ParamTy::Decimal { min, max } => match v.parse::<f64>() {
            Ok(x) if is_decimal(v) && x.is_finite() => within(x, min, max),
            _ => TypeCheck::WrongType,
        },
        ParamTy::Bool if v == "true" || v == "false" => TypeCheck::Ok,
        ParamTy::Bool => TypeCheck::WrongType,
        ParamTy::Enum(values) if values.iter().any(|x| x == v) => TypeCheck::Ok,
        ParamTy::Enum(_) => TypeCheck::OutOfRange,
    }
}

/// `-12`, `3.50`: plain decimal notation only (no `inf`, `NaN`, exponents or hex).
fn is_decimal(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

impl ParamCheck {
    /// Refuse a missing required parameter, or a value not of its type or outside its range.
    fn check<'a, C: Cx<'a>>(&self, cx: &mut C) -> Result<(), C::Stop> {
        let (p, head) = (self, cx.head());
        let value: Option<Option<String>> = match p.location {
            ParamLocation::Path => cx.path_var(&p.name).map(Some),
            ParamLocation::Header => head
                .headers
                .get(p.name.as_str())
                .map(|v| v.to_str().ok().map(|s| s.trim().to_string())),
            ParamLocation::Query => head.query().and_then(|q| form_value(q, &p.name)),
            ParamLocation::Form => {
                let Some(body) = head.body else {
                    cx.step(
                        PHASE,
                        Verdict::Done,
                        format_args!("form parameter {:?}: read the body first", p.name),
                    );
                    return Err(cx.need_body());
                };
                let is_form = head
                    .header(http::header::CONTENT_TYPE)
                    .and_then(|ct| ct.split(';').next())
                    .is_some_and(|ct| {
                        ct.trim()
                            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                    });
                if !is_form {
                    return Err(cx.fail(
                        PHASE,
                        format_args!(
                            "form parameter {:?} needs an application/x-www-form-urlencoded body",
                            p.name
                        ),
                        Reason::FormContentTypeRequired,
                    ));
                }
                match std::str::from_utf8(body) {
                    Ok(text) => form_value(text, &p.name),
                    Err(_) => Some(None),
                }
            }
        };
        match value {
            None if p.required => Err(cx.fail(
                PHASE,
                format_args!("{} parameter {:?} is missing", p.location, p.name),
                Reason::ParamMissing {
                    location: p.location,
                    name: p.name.clone(),
                },
            )),
            None => {
                cx.step(
                    PHASE,
                    Verdict::Pass,
                    format_args!("optional {} parameter {:?} absent", p.location, p.name),
                );
                Ok(())
            }
            Some(v) => {
                let verdict = v
                    .as_deref()
                    .map_or(TypeCheck::WrongType, |v| type_check(&p.ty, v));
                let shown = Shown(v.as_deref());
                let (location, name, expected) = (p.location, &p.name, &p.ty);
                match verdict {
                    TypeCheck::Ok => {
                        cx.step(
                            PHASE,
                            Verdict::Pass,
                            format_args!("{location} {name:?} = {shown} is {expected}"),
                        );
                        Ok(())
                    }
                    TypeCheck::WrongType => Err(cx.fail(
                        PHASE,
                        format_args!("{location} {name:?} = {shown} is not {expected}"),
                        Reason::ParamInvalid {
                            location,
                            name: name.clone(),
                            expected: expected.to_string(),
                        },
                    )),
                    TypeCheck::OutOfRange => Err(cx.fail(
                        PHASE,
                        format_args!("{location} {name:?} = {shown} is outside {expected}"),
                        Reason::ParamOutOfRange {
                            location,
                            name: name.clone(),
                            expected: expected.to_string(),
                        },
                    )),
                }
            }
        }
    }
}

/// A parameter's value as the trace shows it: quoted, or `undecodable`.
struct Shown<'a>(Option<&'a str>);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:?}"),
            None => f.write_str("undecodable"),
        }
    }
}
