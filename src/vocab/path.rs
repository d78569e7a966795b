//! A route path as written (`/orders/{id}/items/{rest+}`): the parser reads it, the compiler
//! builds the decision tree from it, and `decide` rewrites a forwarded path with it — so it
//! belongs to none of them.

use std::fmt;

/// A route path as written: `/orders/{id}/items/{rest+}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Var(String),
    /// `{name+}`: one or more segments, only last.
    Rest(String),
}

impl PathTemplate {
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var(v) | Segment::Rest(v) => Some(v.as_str()),
            Segment::Literal(_) => None,
        })
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("/");
        }
        for s in &self.segments {
            match s {
                Segment::Literal(l) => write!(f, "/{l}")?,
                Segment::Var(v) => write!(f, "/{{{v}}}")?,
                Segment::Rest(v) => write!(f, "/{{{v}+}}")?,
            }
        }
        Ok(())
    }
}
