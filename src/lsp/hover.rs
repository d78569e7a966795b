//! Hover on a statement: what it does (its usage and the README's meaning, [`super::docs`]),
//! and for a check the exact rows it can answer with in its service's dialect.
//!
//! The rows are the route's error contract ([`crate::contract`]), the lines `rulegate errors
//! --policy DIR --route "METHOD /path"` prints, kept for the step the statement is checked in
//! (`auth` for an `auth` line, `param` and the parameter's own rows for a `require` line, …);
//! on a route's header, the whole contract. The contract is read off the compiled policy, so
//! rows appear while the policy compiles without errors; otherwise the hover says so.

use super::docs;
use super::workspace::Analysis;
use crate::contract;
use crate::dialect::Reason;
use crate::policy::ast::{self, Span, Spanned};
use crate::policy::parse::Block;
use crate::vocab::ParamLocation;

/// The statement under the cursor, with the route it is in.
struct Found<'a> {
    block: Block,
    span: Span,
    route: Option<&'a ast::Route>,
    /// The statement is one of the route's (its header when `None` and `route` is set).
    item: Option<&'a ast::RouteItem>,
    service: Option<&'a ast::Service>,
}

/// The innermost item containing `offset`.
fn inner<T>(items: &[Spanned<T>], offset: usize) -> Option<&Spanned<T>> {
    items
        .iter()
        .find(|i| i.span.start as usize <= offset && offset <= i.span.end as usize)
}

fn locate(file: &ast::File, offset: usize) -> Option<Found<'_>> {
    let top = inner(&file.items, offset)?;
    let found = |block, span| Found {
        block,
        span,
        route: None,
        item: None,
        service: None,
    };
    let ast::TopItem::Service(s) = &top.value else {
        if let ast::TopItem::Throttle(t) = &top.value {
            if let Some(i) = inner(&t.items, offset) {
                return Some(found(Block::Throttle, i.span));
            }
        }
        return Some(found(Block::Top, top.span));
    };
    let Some(si) = inner(&s.items, offset) else {
        return Some(found(Block::Top, top.span));
    };
    let within = |block, span| Found {
        service: Some(s),
        ..found(block, span)
    };
    Some(match &si.value {
        ast::ServiceItem::Route(r) => match inner(&r.items, offset) {
            Some(ri) => Found {
                route: Some(r),
                item: Some(&ri.value),
                ..within(Block::Route, ri.span)
            },
            None => Found {
                route: Some(r),
                ..within(Block::Service, si.span)
            },
        },
        ast::ServiceItem::Backend(b) => match inner(&b.items, offset) {
            Some(Spanned {
                value: ast::BackendItem::Breaker(br),
                span,
            }) => match inner(&br.items, offset) {
                Some(x) => within(Block::Breaker, x.span),
                None => within(Block::Backend, *span),
            },
            Some(bi) => within(Block::Backend, bi.span),
            None => within(Block::Service, si.span),
        },
        ast::ServiceItem::App(x) => nested(&x.items, offset, Block::App, si.span, within),
        ast::ServiceItem::Plan(x) => nested(&x.items, offset, Block::Plan, si.span, within),
        ast::ServiceItem::Auth(x) => nested(&x.items, offset, Block::Auth, si.span, within),
        ast::ServiceItem::GatewayResponse(x) => {
            nested(&x.items, offset, Block::GatewayResponse, si.span, within)
        }
        _ => within(Block::Service, si.span),
    })
}

/// A statement of a block nested in a service, or the block's own header.
fn nested<'a, T>(
    items: &[Spanned<T>],
    offset: usize,
    block: Block,
    header: Span,
    within: impl Fn(Block, Span) -> Found<'a>,
) -> Found<'a> {
    match inner(items, offset) {
        Some(i) => within(block, i.span),
        None => within(Block::Service, header),
    }
}

/// The statement's first word.
fn keyword(text: &str, span: Span) -> &str {
    let rest = text.get(span.start as usize..).unwrap_or("");
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The pipeline step a route statement is checked in, and which of that step's answers are
/// its own (all of them, unless it is one of several parameters).
fn step(item: &ast::RouteItem) -> Option<(&'static str, Option<(ParamLocation, &str)>)> {
    use ast::RouteItem as R;
    Some(match item {
        R::Auth(_) => ("auth", None),
        R::Param(p) => ("param", Some((p.location.value, p.name.value.as_str()))),
        R::Rate(_) | R::Throttle(_) => ("rate", None),
        R::AllowIps(_) | R::DenyIps(_) => ("client-ip", None),
        R::Cors(_) => ("cors", None),
        R::Protocols(_) => ("protocol", None),
        R::WebSocket => ("websocket", None),
        R::Limits(_) => ("body-size", None),
        R::Mock(_) | R::Forward(_) | R::IssueTokens(_) | R::Upstream(_) => ("action", None),
        R::Stages(_) | R::ResponseHeader { .. } => return None,
    })
}

/// Whether a `param` answer is the parameter's own.
fn names_param(reason: &Reason, (loc, name): (ParamLocation, &str)) -> bool {
    match reason {
        Reason::ParamMissing { location, name: n }
        | Reason::ParamInvalid {
            location, name: n, ..
        }
        | Reason::ParamOutOfRange {
            location, name: n, ..
        } => *location == loc && n == name,
        Reason::FormContentTypeRequired => loc == ParamLocation::Form,
        _ => false,
    }
}

/// The hover text at byte `offset` of policy file `file`.
pub fn hover(a: &Analysis, file: u32, offset: usize) -> Option<(String, Span)> {
    let found = locate(a.ast(file)?, offset)?;
    let text = a.text(file);
    let word = keyword(text, found.span);
    let mut out = docs::markdown(found.block, word).unwrap_or_else(|| format!("**`{word}`**"));
    if let (Some(route), Some(service)) = (found.route, found.service) {
        let selected = match found.item {
            None => Some(("", None)),
            Some(item) => step(item),
        };
        if let Some((step, param)) = selected {
            out.push_str("\n\n");
            out.push_str(&rows(a, service, route, step, param));
        }
    }
    Some((out, found.span))
}

/// The contract lines of `route` for `step` (every step when empty), as `rulegate errors`
/// prints them.
fn rows(
    a: &Analysis,
    service: &ast::Service,
    route: &ast::Route,
    step: &str,
    param: Option<(ParamLocation, &str)>,
) -> String {
    let Some(snap) = &a.compiled.snapshot else {
        return "Its error rows show when the policy compiles without errors \
                (`rulegate check`)."
            .to_string();
    };
    let location = a.loaded.sources.location(route.path.span);
    let Some((s, r)) = snap.services.iter().enumerate().find_map(|(i, s)| {
        let r = s.routes.iter().position(|r| *r.location == *location)?;
        (*s.name == *service.name.value).then_some((i, r))
    }) else {
        return String::new();
    };
    let answers = contract::answers(snap, s, r);
    let human = contract::human(snap, &[(s, r)]);
    let mut lines = human.lines();
    let header = lines.next().unwrap_or_default();
    let entries: Vec<&str> = lines.by_ref().take(answers.len()).collect();
    let in_step: Vec<usize> = (0..entries.len())
        .filter(|&i| step.is_empty() || answers[i].step == step)
        .collect();
    let own: Vec<usize> = match param {
        Some(p) => in_step
            .iter()
            .copied()
            .filter(|&i| names_param(&answers[i].reason, p))
            .collect(),
        None => in_step.clone(),
    };
    // A parameter whose rows read the same as another's (the dialect names no parameter)
    // shares them: show the step's.
    let kept = if own.is_empty() { in_step } else { own };
    let what = if step.is_empty() {
        "Every refusal this route can answer with".to_string()
    } else if kept.is_empty() {
        format!("This statement adds no refusal of its own (step `{step}`).")
    } else {
        format!("What it can refuse (step `{step}`)")
    };
    let mut out = what;
    if !kept.is_empty() {
        out.push_str(&format!(":\n\n```\n{header}\n"));
        for i in kept {
            out.push_str(entries[i]);
            out.push('\n');
        }
        out.push_str("```");
        let rest: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
        if !rest.is_empty() {
            out.push_str(&format!("\n\n{}", rest.join(" ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyword_is_the_first_word() {
        let text = "  require header \"X\" int";
        assert_eq!(keyword(text, Span::new(0, 2, 20)), "require");
        assert_eq!(keyword(text, Span::new(0, 99, 99)), "");
    }
}
