//! Completion: at the start of a statement, the keywords its block takes (from the parser's
//! table, [`Block::statements`], so completion offers exactly what the parser accepts there);
//! after `forward`, `auth`, `throttle`, `apps`, … the names defined for it in scope.
//!
//! The block at the cursor is found by reading the text, not the AST: while a statement is
//! being typed the file often does not parse (an open `{`, a half-written line), and the
//! braces and block headers before the cursor still say where it stands.

use super::docs;
use super::names::{self, Kind, Occurrence, Scope};
use crate::policy::parse::{usage_text, Block};
use lsp_types::{CompletionItem, CompletionItemKind, Documentation, MarkupContent, MarkupKind};

/// Where the cursor stands: the blocks around it, innermost last, and the statement typed so
/// far on its line.
#[derive(Debug, PartialEq)]
pub struct Context<'t> {
    /// Each open block: its kind (`None` for one without statements of its own table, such as
    /// `limits { … }`) and its header's words.
    pub blocks: Vec<(Option<Block>, Vec<&'t str>)>,
    /// The statement before the cursor, from its start.
    pub statement: &'t str,
}

impl Context<'_> {
    pub fn block(&self) -> Option<Block> {
        match self.blocks.last() {
            None => Some(Block::Top),
            Some((b, _)) => *b,
        }
    }

    /// The name of the service the cursor is in.
    pub fn service(&self) -> Option<&str> {
        self.blocks
            .iter()
            .find(|(b, _)| *b == Some(Block::Service))
            .and_then(|(_, words)| words.get(1).copied())
    }
}

/// The block a header opens inside `parent`.
fn opens(parent: Option<Block>, header: &[&str]) -> Option<Block> {
    let first = *header.first()?;
    Some(match (parent?, first) {
        (Block::Top, "service") => Block::Service,
        (Block::Top, "throttle") => Block::Throttle,
        (Block::Service, "backend") => Block::Backend,
        (Block::Service, "app") => Block::App,
        (Block::Service, "plan") => Block::Plan,
        (Block::Service, "auth") => Block::Auth,
        (Block::Service, "route") => Block::Route,
        (Block::Service, "gateway") => Block::GatewayResponse,
        (Block::Backend, "breaker") => Block::Breaker,
        (Block::Route, "policy") => Block::Policy,
        (Block::Route, "orchestrate") => Block::Orchestrate,
        _ => return None,
    })
}

/// Read `text` up to `offset` (clamped to a character boundary).
pub fn context(text: &str, offset: usize) -> Context<'_> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let bytes = before.as_bytes();
    let mut blocks: Vec<(Option<Block>, Vec<&str>)> = Vec::new();
    let mut start = 0; // where the current statement starts
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => {
                let header: Vec<&str> = before[start..i].split_whitespace().collect();
                let parent = blocks.last().map_or(Some(Block::Top), |(b, _)| *b);
                // `json {…}` bodies and other braces inside a statement open no block of
                // statements; they are skipped as the statement's text.
                if header.contains(&"json") {
                    i = skip_json(bytes, i);
                    continue;
                }
                blocks.push((opens(parent, &header), header));
                start = i + 1;
            }
            b'}' => {
                blocks.pop();
                start = i + 1;
            }
            b'\n' | b';' => start = i + 1,
            _ => {}
        }
        i += 1;
    }
    Context {
        blocks,
        statement: before
            .get(start.min(before.len())..)
            .unwrap_or("")
            .trim_start(),
    }
}

/// The index after the balanced `{…}` starting at `i` (or the end).
fn skip_json(bytes: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The completions at the cursor: `all` are the names of the workspace.
pub fn complete(cx: &Context<'_>, all: &[Occurrence]) -> Vec<CompletionItem> {
    let Some(block) = cx.block() else {
        return Vec::new();
    };
    let words: Vec<&str> = cx.statement.split_whitespace().collect();
    // The words before the one being typed (all of them after a space).
    let typing_new = cx.statement.is_empty() || cx.statement.ends_with(char::is_whitespace);
    let before = if typing_new {
        &words[..]
    } else {
        &words[..words.len() - 1]
    };
    if before.is_empty() {
        return keywords(block);
    }
    let Some(kind) = names::expected(block, before) else {
        return Vec::new();
    };
    let scope = match kind {
        Kind::Throttle => Scope::Global,
        _ => match cx.service() {
            Some(s) => Scope::Service(s.to_string()),
            None => Scope::Global,
        },
    };
    let mut out: Vec<CompletionItem> = Vec::new();
    if kind == Kind::Provider && before == ["auth"] {
        out.push(item(
            "none",
            CompletionItemKind::KEYWORD,
            "no authentication",
        ));
    }
    for o in all.iter().filter(|o| o.definition && o.kind == kind) {
        let visible = scope == Scope::Global || o.scope == scope;
        if visible && !out.iter().any(|c| c.label == o.name) {
            out.push(item(&o.name, CompletionItemKind::REFERENCE, kind.name()));
        }
    }
    out
}

fn keywords(block: Block) -> Vec<CompletionItem> {
    let mut out: Vec<CompletionItem> = Vec::new();
    for (keyword, usage) in block.statements() {
        if out.iter().any(|c| c.label == *keyword) {
            continue;
        }
        let mut c = item(keyword, CompletionItemKind::KEYWORD, &usage_text(usage));
        c.documentation = docs::meaning(block, keyword).map(|(_, meaning)| {
            Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value: meaning,
            })
        });
        out.push(c);
    }
    out
}

fn item(label: &str, kind: CompletionItemKind, detail: &str) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: Some(detail.to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_end(text: &str) -> Context<'_> {
        context(text, text.len())
    }

    #[test]
    fn the_block_comes_from_the_braces_before_the_cursor() {
        let text = "service shop {\n  route GET \"/{x}\" { # {\n    mock 200 json {\"a\": \"}\"}\n    forw";
        let cx = at_end(text);
        assert_eq!(cx.block(), Some(Block::Route));
        assert_eq!(cx.service(), Some("shop"));
        assert_eq!(cx.statement, "forw");
        let cx = at_end("service s {\n backend b {\n  breaker {\n   downgrade backend ");
        assert_eq!(cx.block(), Some(Block::Breaker));
        assert_eq!(cx.statement, "downgrade backend ");
        let cx = at_end("service s { route GET \"/\" { limits { ");
        assert_eq!(cx.block(), None);
        assert_eq!(at_end("service s { }\n").block(), Some(Block::Top));
        // a cursor inside a character, or past the end, is clamped
        assert_eq!(context("é", 1).statement, "");
        assert_eq!(context("ab", 99).statement, "ab");
    }

    #[test]
    fn keywords_of_the_block_then_names_in_scope() {
        let all = vec![
            Occurrence {
                kind: Kind::Backend,
                scope: Scope::Service("s".into()),
                name: "orders".into(),
                span: Default::default(),
                definition: true,
            },
            Occurrence {
                kind: Kind::Backend,
                scope: Scope::Service("other".into()),
                name: "elsewhere".into(),
                span: Default::default(),
                definition: true,
            },
        ];
        let labels = |text: &str| -> Vec<String> {
            complete(&at_end(text), &all)
                .into_iter()
                .map(|c| c.label)
                .collect()
        };
        let route = labels("service s {\n route GET \"/\" {\n  ");
        assert!(route.contains(&"require".to_string()));
        assert!(route.contains(&"forward".to_string()));
        assert!(!route.contains(&"hosts".to_string()));
        assert_eq!(
            labels("service s {\n route GET \"/\" {\n  forward "),
            ["orders"]
        );
        assert_eq!(
            labels("service s {\n route GET \"/\" {\n  forward or"),
            ["orders"]
        );
        assert_eq!(labels("service s { route GET \"/\" { auth "), ["none"]);
        assert!(labels("service s {\n route GET \"/\" {\n  mock 200 ").is_empty());
    }
}
