//! A policy file parsed one statement at a time, so that pest never holds a whole file's
//! tokens.
//!
//! Why: pest builds its token queue for the whole input before the first pair can be read,
//! and every token is a heap entry. A 100k-route file (22 MB) held about 500 MB of tokens at
//! once and spent a fifth of its parse time having the kernel zero fresh pages for them.
//! Parsed a statement at a time, the queue of one route is reused by the next, and the file
//! costs what its AST costs.
//!
//! How it stays the same language: the grammar's `file` and `service` rules are sequences and
//! repetitions of statements, and the steps in grammar/policy.pest (`file_open`, `top_step`,
//! `service_open`, `service_step`, `service_close`, `file_end`) are exactly their parts.
//! This module takes them in the order those two rules do, each parsed from where the last
//! ended to the end of the file. A PEG rule's match at a position depends only on the text
//! from there on (pest has no look-behind), so every step matches what the whole-file parse
//! matched at the same place. Where the rules would backtrack over more than one statement (a
//! service whose closing `}` never comes, text after it on its line, a file that does not end
//! after its last statement) this module does not follow: it answers `None` and the file is
//! parsed whole, with the diagnostics it always had.

use super::{child, Lower, Parsed, PolicyParser, Rule, P};
use crate::policy::ast::{File, Service, Span, Spanned, TopItem};
use pest::Parser as _;

/// The file parsed a statement at a time, or `None` where it must be parsed whole.
pub(super) fn parse_by_statement(file_id: u32, text: &str) -> Option<Parsed> {
    let mut lower = Lower::new(file_id);
    let mut items = Vec::new();
    let mut at = step(&mut lower, Rule::file_open, text, 0)?.1;
    loop {
        if step(&mut lower, Rule::file_end, text, at).is_some() {
            break;
        }
        if let Some((service, end)) = service(&mut lower, text, at) {
            items.push(service);
            at = end;
            continue;
        }
        let (pair, end) = step(&mut lower, Rule::top_step, text, at)?;
        for c in pair.into_inner() {
            lower.top_item(c, &mut items);
        }
        at = end;
    }
    Some(Parsed {
        file: Some(File { items }),
        diagnostics: lower.diags,
    })
}

/// `service NAME { … }` at `at` and the separator after it, statement by statement; `None`
/// (with nothing reported) where the service rule would not match this way.
fn service(lower: &mut Lower, text: &str, at: usize) -> Option<(Spanned<TopItem>, usize)> {
    let (head, mut end) = step(lower, Rule::service_open, text, at)?;
    let start = lower.base + child(&head, Rule::kw_service)?.as_span().start();
    let name = lower.ident(child(&head, Rule::ident)?);
    let reported = lower.diags.len();
    let mut items = Vec::new();
    while let Some((pair, next)) = step(lower, Rule::service_step, text, end) {
        for c in pair.into_inner() {
            items.extend(lower.service_item(c));
        }
        end = next;
    }
    let Some((close, next)) = step(lower, Rule::service_close, text, end) else {
        lower.diags.truncate(reported);
        return None;
    };
    let brace = lower.base + child(&close, Rule::close_brace)?.as_span().start();
    let span = Span::new(
        lower.file,
        start,
        start + super::content_len(&text[start..=brace]),
    );
    let service = Service { name, items };
    Some((Spanned::new(TopItem::Service(service), span), next))
}

/// One step parsed from `at` to the end of the file: its pair and where the next starts.
/// Later spans of `lower` count from `at`.
fn step<'t>(lower: &mut Lower, rule: Rule, text: &'t str, at: usize) -> Option<(P<'t>, usize)> {
    let pair = PolicyParser::parse(rule, &text[at..]).ok()?.next()?;
    lower.base = at;
    let end = at + pair.as_span().end();
    Some((pair, end))
}

/// The statement-at-a-time parse against the whole-file parse it stands in for: every shipped
/// and fixture policy, and thousands of damaged copies of them (bytes cut out, brackets,
/// quotes, separators, continuations and stray words put in). Wherever the fast way answers,
/// it must answer exactly what the whole file gives: the same AST, the same diagnostics.
#[cfg(test)]
mod agreement {
    use super::super::{check_braces, parse_by_statement, parse_whole};

    fn corpus() -> Vec<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                let name = e.file_name();
                if name.to_string_lossy().starts_with('.') || name == "target" {
                    continue;
                }
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "policy") {
                    out.push(std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut out = Vec::new();
        for dir in ["policies", "tests", "bench", "examples"] {
            if root.join(dir).is_dir() {
                walk(&root.join(dir), &mut out);
            }
        }
        assert!(out.len() > 20, "the corpus is the repository's policies");
        out
    }

    /// Whether the fast way answered (and then agreed); `parse_file` checks braces first.
    fn agree(text: &str) -> bool {
        if check_braces(0, text).is_some() {
            return false;
        }
        let Some(fast) = parse_by_statement(0, text) else {
            return false;
        };
        let whole = parse_whole(0, text);
        let (a, b) = (format!("{:?}", fast.file), format!("{:?}", whole.file));
        if a != b {
            std::fs::write("/tmp/fail.policy", text).unwrap();
            let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            let lo = at.saturating_sub(300);
            panic!(
                "AST differs for:\n{text}\n--- fast: {}\n--- whole: {}",
                &a[lo..(at + 300).min(a.len())],
                &b[lo..(at + 300).min(b.len())]
            );
        }
        assert_eq!(
            format!("{:?}", fast.diagnostics),
            format!("{:?}", whole.diagnostics),
            "diagnostics differ for:\n{text}"
        );
        true
    }

    #[test]
    fn every_well_formed_repository_policy_parses_the_fast_way_and_agrees() {
        for text in corpus() {
            let clean =
                check_braces(0, &text).is_none() && parse_whole(0, &text).diagnostics.is_empty();
            assert!(
                agree(&text) || !clean,
                "not parsed statement by statement:\n{text}"
            );
        }
    }

    #[test]
    fn damaged_policies_agree_wherever_the_fast_way_answers() {
        const PUT: [&str; 16] = [
            "{",
            "}",
            "[",
            "]",
            "\"",
            "\\\n",
            "\\",
            ";",
            "#",
            "\n",
            "\r\n",
            "\r",
            "routee ",
            "service x {",
            " json {\"a\": [1,\n2]}",
            "\u{FEFF}",
        ];
        let mut rng = fastrand::Rng::with_seed(17);
        let (mut fast, mut total) = (0, 0);
        for text in corpus() {
            for _ in 0..40 {
                let mut t = text.clone();
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..=t.len());
                    let at = (0..=at).rev().find(|&i| t.is_char_boundary(i)).unwrap();
                    if rng.bool() {
                        t.insert_str(at, PUT[rng.usize(..PUT.len())]);
                    } else {
                        let end = (at + rng.usize(1..40)).min(t.len());
                        let end = (end..=t.len()).find(|&i| t.is_char_boundary(i)).unwrap();
                        t.replace_range(at..end, "");
                    }
                }
                total += 1;
                fast += usize::from(agree(&t));
            }
        }
        // most damage is local, so most damaged files still take the fast way
        assert!(fast * 2 > total, "{fast} of {total} took the fast way");
    }
}
