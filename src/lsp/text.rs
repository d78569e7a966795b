//! Byte offsets ↔ LSP positions, in one place.
//!
//! The compiler's spans are byte offsets into UTF-8 text; LSP positions are (line, character)
//! where `character` counts UTF-16 code units (the protocol's default encoding, and the only
//! one every client supports). A policy may hold any Unicode in strings and comments, so the
//! two differ on every line after a non-ASCII character: each conversion goes through here.
//!
//! Conversions are total: a position past the end of a line clamps to the line's end, one past
//! the last line to the end of the text, and a byte offset inside a character (or past the end)
//! to the character's start (or the end). A client that asks about a stale position gets an
//! answer about the nearest real one, never a panic.

use lsp_types::{Position, Range};

/// The start of every line of a text, for converting in both directions.
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of each line's first character; `starts[0] == 0`.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// The LSP position of byte `offset`.
    pub fn position(&self, offset: usize) -> Position {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let character: usize = self.text[start..offset].chars().map(char::len_utf16).sum();
        Position::new(line as u32, character as u32)
    }

    /// The byte offset of an LSP position (clamped, see the module doc).
    pub fn offset(&self, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.text.len();
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .map_or(self.text.len(), |&next| next - 1);
        let mut units = 0usize;
        for (i, c) in self.text[start..end].char_indices() {
            if units >= pos.character as usize || c == '\r' {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }

    /// The LSP range of bytes `start..end`.
    pub fn range(&self, start: usize, end: usize) -> Range {
        Range::new(self.position(start), self.position(end.max(start)))
    }

    /// The range of the whole text.
    pub fn whole(&self) -> Range {
        self.range(0, self.text.len())
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_round_trips() {
        let text = "service a {\n    dialect huawei\n}\n";
        let ix = LineIndex::new(text);
        for offset in 0..=text.len() {
            assert_eq!(ix.offset(ix.position(offset)), offset, "offset {offset}");
        }
        assert_eq!(ix.position(12), Position::new(1, 0));
        assert_eq!(ix.position(text.len()), Position::new(3, 0));
    }

    #[test]
    fn non_ascii_counts_utf16_units() {
        // `é` is 2 bytes and 1 unit; `𝄞` is 4 bytes and 2 units (a surrogate pair).
        let text = "# café 𝄞 x\nroute";
        let ix = LineIndex::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(ix.position(x), Position::new(0, 10));
        assert_eq!(ix.offset(Position::new(0, 10)), x);
        let clef = text.find('𝄞').unwrap();
        assert_eq!(ix.position(clef), Position::new(0, 7));
        // inside the surrogate pair: the character's start
        assert_eq!(ix.offset(Position::new(0, 8)), clef + 4);
        // a byte offset inside a character falls back to its start
        assert_eq!(ix.position(clef + 1), Position::new(0, 7));
        assert_eq!(
            ix.position(text.find("route").unwrap()),
            Position::new(1, 0)
        );
    }

    #[test]
    fn positions_past_the_end_clamp() {
        let text = "ab\r\ncd";
        let ix = LineIndex::new(text);
        assert_eq!(ix.offset(Position::new(0, 99)), 2, "before the \\r");
        assert_eq!(ix.offset(Position::new(1, 99)), text.len());
        assert_eq!(ix.offset(Position::new(7, 0)), text.len());
        assert_eq!(ix.position(999), Position::new(1, 2));
        let empty = LineIndex::new("");
        assert_eq!(empty.offset(Position::new(3, 3)), 0);
        assert_eq!(empty.whole(), Range::default());
    }
}
