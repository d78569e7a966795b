//! The layering of `src`'s top-level modules, checked against the code.
//!
//! The layers are written once, in the module doc of `src/lib.rs` (the rows of its "Layers"
//! table); this test reads them from there. It then reads every `.rs` file under `src`, collects
//! the top-level modules each one names through `crate::…` (or `rulegate::…` in `main.rs`),
//! and fails when
//! - a module imports a module of a higher layer (an upward edge), or
//! - the modules import each other in a cycle (possible inside one layer),
//!
//! naming the edges and the file and line of every import that creates them. Unit tests
//! (`#[cfg(test)] mod …`) may use any module to build their fixtures and are not read; doc
//! comments are not read either (an intra-doc link is not a dependency).
//!
//! Edges the code still has but the layering forbids are listed in [`KNOWN_BACK_EDGES`], each
//! with the reason it is still there; the test fails when one of them disappears, so the list
//! only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Upward edges (importer, imported) that exist today, known and waiting to be removed.
/// A new upward edge or cycle fails the test; one listed here that is gone fails it too.
const KNOWN_BACK_EDGES: &[(&str, &str)] = &[];

/// Where each import of one module by another happens: "file:line".
type Sites = BTreeMap<(String, String), Vec<String>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layer table of `src/lib.rs`: rows `//! | <n> | `a`, `b` | … |`, returned as module →
/// layer number.
fn layers() -> BTreeMap<String, usize> {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs");
    let mut layers = BTreeMap::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(layer) = cells[0].parse::<usize>() else {
            continue;
        };
        for module in cells[1].split(',') {
            let module = module.trim().trim_matches('`');
            let before = layers.insert(module.to_string(), layer);
            assert!(
                before.is_none(),
                "`{module}` is in two rows of the layer table"
            );
        }
    }
    assert!(
        !layers.is_empty(),
        "no layer table in the module doc of src/lib.rs"
    );
    layers
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/compile/route.rs` → `compile`, `src/explain.rs` → `explain`.
fn top_module(rel: &Path) -> String {
    let first = rel.components().next().expect("non-empty path");
    let first = first.as_os_str().to_str().expect("utf-8 path");
    first.trim_end_matches(".rs").to_string()
}

/// The file's code without doc and line comments and without `#[cfg(test)]` modules,
/// one entry per line so that line numbers survive.
fn code_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut skipping: Option<i64> = None;
    let mut after_cfg_test = false;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let trimmed = code.trim();
        if let Some(depth) = skipping.as_mut() {
            *depth += braces(code);
            if *depth <= 0 {
                skipping = None;
            }
            out.push(String::new());
            continue;
        }
        if after_cfg_test && trimmed.starts_with("mod ") && trimmed.ends_with('{') {
            skipping = Some(braces(code));
            out.push(String::new());
            after_cfg_test = false;
            continue;
        }
        after_cfg_test = trimmed == "#[cfg(test)]" || (after_cfg_test && trimmed.starts_with("#["));
        out.push(code.to_string());
    }
    out
}

fn braces(code: &str) -> i64 {
    code.chars()
        .map(|c| match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        })
        .sum()
}

/// The top-level modules named after each `prefix` (`crate::` or `rulegate::`) in `code`,
/// with the line each is named on. `crate::{a, b::c}` names `a` and `b`.
fn imports(code: &[String], prefix: &str) -> Vec<(String, usize)> {
    let joined: String = code.iter().map(|l| format!("{l}\n")).collect();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = joined[at..].find(prefix) {
        let start = at + i;
        at = start + prefix.len();
        let before = joined[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        for (name, offset) in named_after(&joined[at..]) {
            let line = joined[..at + offset].matches('\n').count() + 1;
            found.push((name, line));
        }
    }
    found
}

/// The first path segments after `crate::`, with their offsets in `rest`: one identifier, or
/// those of a `{…}` group.
fn named_after(rest: &str) -> Vec<(String, usize)> {
    let Some(group) = rest.strip_prefix('{') else {
        return vec![(ident(rest), 0)];
    };
    let mut depth = 0;
    let mut names = Vec::new();
    let mut item_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && (c.is_alphabetic() || c == '_') => {
                names.push((ident(&group[i..]), 1 + i));
                item_start = false;
            }
            _ => {}
        }
    }
    names.retain(|(n, _)| n != "self");
    names
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every import of one top-level module by another, with where it happens.
fn module_graph(modules: &BTreeMap<String, usize>) -> Sites {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut sites = Sites::new();
    for path in files {
        let rel = path.strip_prefix(src()).expect("under src").to_path_buf();
        let from = top_module(&rel);
        if from == "lib" {
            continue;
        }
        let prefix = if from == "main" {
            "rulegate::"
        } else {
            "crate::"
        };
        let text = fs::read_to_string(&path).expect("read source");
        for (to, line) in imports(&code_lines(&text), prefix) {
            if to == from || !modules.contains_key(&to) {
                continue;
            }
            let site = format!("src/{}:{line}", rel.display());
            sites.entry((from.clone(), to)).or_default().push(site);
        }
    }
    sites
}

fn describe(edge: &(String, String), sites: &Sites) -> String {
    format!("{} -> {} at {}", edge.0, edge.1, sites[edge].join(", "))
}

#[test]
fn every_top_level_module_of_src_is_in_the_layer_table_of_lib_rs() {
    let layers = layers();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| top_module(p.strip_prefix(src()).expect("under src")))
        .filter(|m| m != "lib")
        .collect();
    let listed: BTreeSet<String> = layers.keys().cloned().collect();
    assert_eq!(
        modules, listed,
        "src's top-level modules vs the layer table of src/lib.rs"
    );
}

#[test]
fn a_module_imports_only_modules_of_its_own_layer_or_below() {
    let layers = layers();
    let sites = module_graph(&layers);
    let upward: BTreeSet<(String, String)> = sites
        .keys()
        .filter(|(from, to)| layers[to] > layers[from])
        .cloned()
        .collect();
    let known: BTreeSet<(String, String)> = KNOWN_BACK_EDGES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<String> = upward
        .difference(&known)
        .map(|e| describe(e, &sites))
        .collect();
    let gone: Vec<_> = known.difference(&upward).collect();
    assert!(
        new.is_empty(),
        "imports from a lower layer to a higher one:\n{}",
        new.join("\n")
    );
    assert!(
        gone.is_empty(),
        "remove these from KNOWN_BACK_EDGES, they are gone: {gone:?}"
    );
}

#[test]
fn the_top_level_modules_of_src_import_each_other_in_no_cycle() {
    let layers = layers();
    let sites = module_graph(&layers);
    let known: BTreeSet<(String, String)> = KNOWN_BACK_EDGES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let edges: BTreeSet<(String, String)> = sites
        .keys()
        .filter(|e| !known.contains(*e))
        .cloned()
        .collect();
    let cycles = cycles(&layers.keys().cloned().collect(), &edges);
    let report: Vec<String> = cycles
        .iter()
        .map(|cycle| {
            // Edges down the layers cannot close a cycle: the others are the ones to remove.
            let inside: Vec<String> = edges
                .iter()
                .filter(|(a, b)| cycle.contains(a) && cycle.contains(b))
                .filter(|(a, b)| layers[b] >= layers[a])
                .map(|e| format!("  {}", describe(e, &sites)))
                .collect();
            format!("cycle among {cycle:?}, closed by:\n{}", inside.join("\n"))
        })
        .collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// The groups of more than one module that all reach each other (strongly connected
/// components, found by intersecting what each module reaches forwards and backwards).
fn cycles(modules: &BTreeSet<String>, edges: &BTreeSet<(String, String)>) -> Vec<BTreeSet<String>> {
    let reach = |from: &String, forward: bool| -> BTreeSet<String> {
        let mut seen = BTreeSet::from([from.clone()]);
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for (a, b) in edges {
                let (src, dst) = if forward { (a, b) } else { (b, a) };
                if *src == m && seen.insert(dst.clone()) {
                    todo.push(dst.clone());
                }
            }
        }
        seen
    };
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for m in modules {
        let both: BTreeSet<String> = reach(m, true)
            .intersection(&reach(m, false))
            .cloned()
            .collect();
        if both.len() > 1 && !found.contains(&both) {
            found.push(both);
        }
    }
    found
}
