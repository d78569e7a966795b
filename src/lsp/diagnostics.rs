//! Diagnostics as you type: `check`'s findings for every policy file and the `.tests`
//! parser's for every test file, published per file.
//!
//! Nothing is re-derived: each [`Diagnostic`] keeps its stable code (the LSP `code`), its span
//! (the range), its label and help (in the message, as `check` prints them under the source
//! line), and its related spans (`relatedInformation`, which may point into other files). A file
//! that had diagnostics and has none now is sent an empty list, so the editor clears it.

use super::text::LineIndex;
use super::workspace::Analysis;
use crate::policy::diag::{Diagnostic, Severity};
use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString,
    PublishDiagnosticsParams, Url,
};
use std::collections::{BTreeMap, BTreeSet};

/// `source` of every diagnostic this server publishes.
pub const SOURCE: &str = "rulegate";

/// What to publish now: every file of the analysis with its diagnostics (an empty list for a
/// file with none, which clears it), and an empty list for each file in `published` that is
/// no longer in the workspace. `published` becomes the files that have some.
pub fn publish(a: &Analysis, published: &mut BTreeSet<Url>) -> Vec<PublishDiagnosticsParams> {
    let mut out: BTreeMap<Url, Vec<lsp_types::Diagnostic>> = BTreeMap::new();
    for id in 0..a.paths.len() as u32 {
        let Some(uri) = a.uri(id) else { continue };
        out.entry(uri).or_default();
    }
    let locate = |file: u32| Some((a.uri(file)?, a.text(file)));
    for d in &a.compiled.diagnostics {
        if let Some(converted) = convert(d, &locate) {
            out.entry(converted.0).or_default().push(converted.1);
        }
    }
    for (path, why) in &a.unreadable {
        if let Ok(uri) = Url::from_file_path(path) {
            out.entry(uri).or_default().push(lsp_types::Diagnostic {
                severity: Some(DiagnosticSeverity::WARNING),
                source: Some(SOURCE.into()),
                message: format!("not analysed: {why}"),
                ..Default::default()
            });
        }
    }
    for (doc, diags) in &a.tests {
        let Ok(uri) = Url::from_file_path(&doc.path) else {
            continue;
        };
        let text = match &doc.text {
            Ok(text) => text.as_str(),
            Err(why) => {
                out.entry(uri.clone())
                    .or_default()
                    .push(lsp_types::Diagnostic {
                        severity: Some(DiagnosticSeverity::WARNING),
                        source: Some(SOURCE.into()),
                        message: format!("not analysed: {why}"),
                        ..Default::default()
                    });
                continue;
            }
        };
        let locate = |_: u32| Some((uri.clone(), text));
        let list = out.entry(uri.clone()).or_default();
        list.extend(
            diags
                .iter()
                .filter_map(|d| convert(d, &locate))
                .map(|c| c.1),
        );
    }
    // Files gone from the workspace (deleted, or closed outside it) are cleared too.
    let gone: Vec<Url> = published
        .iter()
        .filter(|u| !out.contains_key(*u))
        .cloned()
        .collect();
    for uri in gone {
        out.insert(uri, Vec::new());
    }
    let mut result = Vec::new();
    for (uri, diagnostics) in out {
        if diagnostics.is_empty() {
            published.remove(&uri);
        } else {
            published.insert(uri.clone());
        }
        result.push(PublishDiagnosticsParams {
            uri,
            diagnostics,
            version: None,
        });
    }
    result
}

/// One diagnostic in LSP terms, with the file it belongs to. `locate` gives a file id's URI
/// and text.
pub fn convert<'t>(
    d: &Diagnostic,
    locate: &dyn Fn(u32) -> Option<(Url, &'t str)>,
) -> Option<(Url, lsp_types::Diagnostic)> {
    let (uri, text) = locate(d.span.file)?;
    let range = LineIndex::new(text).range(d.span.start as usize, d.span.end as usize);
    let mut message = d.message.clone();
    if !d.label.is_empty() {
        message.push_str(&format!(" ({})", d.label));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .related
        .iter()
        .filter_map(|(span, label)| {
            let (uri, text) = locate(span.file)?;
            Some(DiagnosticRelatedInformation {
                location: Location::new(
                    uri,
                    LineIndex::new(text).range(span.start as usize, span.end as usize),
                ),
                message: label.clone(),
            })
        })
        .collect();
    Some((
        uri,
        lsp_types::Diagnostic {
            range,
            severity: Some(match d.severity {
                Severity::Error => DiagnosticSeverity::ERROR,
                Severity::Warning => DiagnosticSeverity::WARNING,
            }),
            code: Some(NumberOrString::String(d.code.id.to_string())),
            source: Some(SOURCE.into()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            ..Default::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ast::Span, diag};

    #[test]
    fn code_span_label_help_and_related_are_kept() {
        let text = "# é\nbackend x\nbackend x\n";
        let uri = Url::parse("file:///w/a.policy").unwrap();
        let d = Diagnostic::error(diag::DUPLICATE_NAME, Span::new(0, 23, 24), "dup")
            .label("again")
            .help("rename one")
            .related(Span::new(0, 13, 14), "first here");
        let locate = |_: u32| Some((uri.clone(), text));
        let (got_uri, l) = convert(&d, &locate).unwrap();
        assert_eq!(got_uri, uri);
        assert_eq!(l.code, Some(NumberOrString::String("E0202".into())));
        assert_eq!(l.range.start, lsp_types::Position::new(2, 8));
        assert_eq!(l.message, "dup (again)\nhelp: rename one");
        let related = l.related_information.unwrap();
        assert_eq!(
            related[0].location.range.start,
            lsp_types::Position::new(1, 8)
        );
        assert_eq!(related[0].message, "first here");
    }
}
