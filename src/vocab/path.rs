//! A route path as written (`/orders/{id}/items/{rest+}`): the parser reads it, the compiler
//! builds the decision tree from it, and `decide` rewrites a forwarded path with it — so it
//! belongs to none of them.
//!
//! Kept as its text and read a segment at a time. A snapshot holds two templates a route (the
//! route's own and its forward's path), and as a vector of segments each owning a string one
//! took four or five allocations and about 110 bytes; as text it takes one of its length
//! (templates were 15 % of the live heap of 100k routes, bench/README.md). Reading a segment is
//! a search for `/` and a look at its braces: a few instructions a segment when `decide`
//! rewrites a forwarded path.

use std::fmt;

/// A route path as written: `/orders/{id}/items/{rest+}`.
///
/// Built by [`PathTemplate::new`] from segments the parser checked: a literal holds no `/`,
/// `{` or `}` and is not empty, a variable's name is not empty, and only the last segment is
/// a `{rest+}`.
#[derive(Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// `/a/{b}/{c+}`; empty for the root (`/`, no segments).
    text: Box<str>,
}

/// One segment of a template, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment<'a> {
    Literal(&'a str),
    /// `{name}`: exactly one non-empty segment.
    Var(&'a str),
    /// `{name+}`: one or more segments, only last.
    Rest(&'a str),
}

impl<'a> Segment<'a> {
    /// A segment of a template's text (see [`PathTemplate`] for what the text can hold).
    fn read(s: &'a str) -> Segment<'a> {
        match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => match name.strip_suffix('+') {
                Some(name) => Segment::Rest(name),
                None => Segment::Var(name),
            },
            None => Segment::Literal(s),
        }
    }
}

impl PathTemplate {
    /// The template of these segments, in order (none: the root, `/`).
    pub fn new<'a>(segments: impl IntoIterator<Item = Segment<'a>>) -> PathTemplate {
        let mut text = String::new();
        for s in segments {
            debug_assert!(match s {
                Segment::Literal(l) => !l.is_empty() && !l.contains(['/', '{', '}']),
                Segment::Var(v) | Segment::Rest(v) =>
                    !v.is_empty() && !v.contains(['/', '{', '}', '+']),
            });
            text.push('/');
            match s {
                Segment::Literal(l) => text.push_str(l),
                Segment::Var(v) => {
                    text.push('{');
                    text.push_str(v);
                    text.push('}');
                }
                Segment::Rest(v) => {
                    text.push('{');
                    text.push_str(v);
                    text.push_str("+}");
                }
            }
        }
        PathTemplate { text: text.into() }
    }

    /// The segments in path order.
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            rest: self.text.strip_prefix('/'),
        }
    }

    /// Whether this is the root, `/`: no segments.
    pub fn is_root(&self) -> bool {
        self.text.is_empty()
    }

    /// The variables' names, in path order.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.segments().filter_map(|s| match s {
            Segment::Var(v) | Segment::Rest(v) => Some(v),
            Segment::Literal(_) => None,
        })
    }
}

/// The segments of a template, read one at a time. A byte loop rather than `str::split`:
/// `decide` reads a forward's template a few times a request, and a `char` split's searcher
/// (memchr set up for each piece) cost about a hundred instructions on a two-segment path.
pub struct Segments<'a> {
    /// The text after the next segment's `/`; `None` once read to the end.
    rest: Option<&'a str>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let rest = self.rest?;
        let (segment, after) = match rest.bytes().position(|b| b == b'/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        self.rest = after;
        Some(Segment::read(segment))
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_root() { "/" } else { &self.text })
    }
}

/// As the segments it holds (the form the AST's and trees' snapshots were written in).
impl fmt::Debug for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathTemplate")
            .field("segments", &self.segments().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_reads_back_the_segments_it_was_built_from() {
        let written = [
            Segment::Literal("orders"),
            Segment::Var("id"),
            Segment::Literal("items"),
            Segment::Rest("rest"),
        ];
        let t = PathTemplate::new(written);
        assert_eq!(t.segments().collect::<Vec<_>>(), written);
        assert_eq!(t.to_string(), "/orders/{id}/items/{rest+}");
        assert_eq!(t.vars().collect::<Vec<_>>(), ["id", "rest"]);
        assert!(!t.is_root());
    }

    #[test]
    fn the_root_has_no_segments_and_prints_as_a_slash() {
        let root = PathTemplate::new([]);
        assert!(root.is_root());
        assert_eq!(root.segments().count(), 0);
        assert_eq!(root.to_string(), "/");
        assert_ne!(root, PathTemplate::new([Segment::Literal("a")]));
    }

    #[test]
    fn debug_lists_the_segments() {
        let t = PathTemplate::new([Segment::Literal("a"), Segment::Var("b")]);
        assert_eq!(
            format!("{t:?}"),
            r#"PathTemplate { segments: [Literal("a"), Var("b")] }"#
        );
    }
}
