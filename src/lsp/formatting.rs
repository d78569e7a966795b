//! Formatting through `rulegate fmt`'s formatter ([`crate::policy::fmt::format_file`]): the
//! editor's "format document" and `fmt` can never disagree. The answer is one edit replacing
//! the whole text (the formatter is canonical, so a minimal diff would buy nothing but code),
//! or none when the text is already formatted. A file that does not parse is not formatted,
//! as `fmt` refuses it: the error names the first problem, which diagnostics show in full.

use super::text::LineIndex;
use crate::policy::fmt::format_file;
use lsp_types::TextEdit;

/// The edits that format `text`, or why it cannot be formatted.
pub fn format(text: &str) -> Result<Vec<TextEdit>, String> {
    match format_file(text) {
        Ok(formatted) if formatted == text => Ok(Vec::new()),
        Ok(formatted) => Ok(vec![TextEdit {
            range: LineIndex::new(text).whole(),
            new_text: formatted,
        }]),
        Err(diags) => Err(match diags.first() {
            Some(d) => {
                let (line, col) = {
                    let p = LineIndex::new(text).position(d.span.start as usize);
                    (p.line + 1, p.character + 1)
                };
                format!(
                    "rulegate fmt: the file does not parse ({} at {line}:{col}: {})",
                    d.code.id, d.message
                )
            }
            None => "rulegate fmt: the file does not parse".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_fmt_does_or_refuses() {
        let text = "default   dialect huawei\n";
        let edits = format(text).unwrap();
        assert_eq!(edits[0].new_text, format_file(text).unwrap());
        assert!(format(&edits[0].new_text).unwrap().is_empty());
        assert!(format("service {").unwrap_err().contains("does not parse"));
    }
}
