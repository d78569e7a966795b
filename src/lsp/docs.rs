//! What a statement means, for hover and completion, from the two places that already say it:
//! the parser's table of statements per block ([`Block::statements`]: keyword and usage, the
//! text of its "not a keyword here" diagnostics) and the README's "Statements" table (one-line
//! meanings and defaults, which users read). The README is compiled in and its table read
//! here, so the meanings are written once, where users already look, and an edit there shows
//! in the editor with the next build.

use crate::policy::parse::{usage_text, Block};

const README: &str = include_str!("../../README.md");

/// The usage line of `keyword` in `block` (`DIALECT` spelled out).
pub fn usage(block: Block, keyword: &str) -> Option<String> {
    block
        .statements()
        .iter()
        .find(|(k, _)| *k == keyword)
        .map(|(_, u)| usage_text(u))
}

/// The README's name for the block in its table's first column.
fn readme_block(block: Block) -> Option<&'static str> {
    Some(match block {
        Block::Top => "top",
        Block::Service => "service",
        Block::Backend => "backend",
        Block::App => "app",
        Block::Plan => "plan",
        Block::Auth => "auth",
        Block::Route => "route",
        _ => return None,
    })
}

/// The README's statement and meaning for `keyword` in `block`: the first row of its
/// "Statements" table whose block column names the block and one of whose statements (the
/// code spans of the second column) starts with the keyword.
pub fn meaning(block: Block, keyword: &str) -> Option<(String, String)> {
    let wanted = readme_block(block)?;
    let start = README.find("### Statements")?;
    let table = &README[start..];
    let table = &table[..table[4..].find("\n#").map_or(table.len(), |i| i + 4)];
    for line in table.lines().filter(|l| l.starts_with("| ")) {
        // `\|` is a `|` inside a cell
        let line = line.replace("\\|", "\u{0}");
        let cells: Vec<String> = line
            .split('|')
            .map(|c| c.trim().replace('\u{0}', "|"))
            .collect();
        let [_, blocks, statement, meaning, ..] = cells.as_slice() else {
            continue;
        };
        let names_block = blocks
            .split(',')
            .filter_map(|b| b.split_whitespace().next())
            .any(|b| b == wanted);
        let mut spans = statement.split('`').skip(1).step_by(2);
        // `require|optional path|…`: either word starts the statement
        let names_keyword = spans.any(|s| {
            s.split_whitespace()
                .next()
                .is_some_and(|w| w.split('|').any(|w| w == keyword))
        });
        if names_block && names_keyword {
            return Some((statement.clone(), meaning.clone()));
        }
    }
    None
}

/// Markdown for a statement: its usage and, where the README has it, its meaning.
pub fn markdown(block: Block, keyword: &str) -> Option<String> {
    let usage = usage(block, keyword)?;
    let mut out = format!("**`{keyword}`** ({})\n\n```\n{usage}\n```", block.name());
    if let Some((_, meaning)) = meaning(block, keyword) {
        out.push_str(&format!("\n\n{meaning}"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_gives_meanings_and_defaults() {
        let (statement, m) = meaning(Block::Service, "limits").unwrap();
        assert!(statement.contains("limits {"), "{statement}");
        assert!(m.contains("defaults 12MiB"), "{m}");
        let (_, m) = meaning(Block::Route, "require").unwrap();
        assert!(m.contains("TYPE is"), "{m}");
        // `\|` inside a cell is one `|`, not a column
        let (_, m) = meaning(Block::Route, "rate").unwrap();
        assert!(m.contains("GCRA"), "{m}");
        let (_, m) = meaning(Block::Top, "throttle").unwrap();
        assert!(m.contains("throttling policy"), "{m}");
        assert!(meaning(Block::Route, "frobnicate").is_none());
    }

    #[test]
    fn every_block_keyword_has_a_usage() {
        for block in Block::ALL {
            for (k, _) in block.statements() {
                assert!(markdown(block, k).unwrap().contains(k));
            }
        }
    }
}
