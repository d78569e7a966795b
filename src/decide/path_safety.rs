//! Which captured path variables may be written into an upstream path.
//!
//! A route matched the request by its segments; the backend sees the forwarded path, and many
//! backends decode it again (once, or twice when a framework decodes what its server already
//! decoded), treat `\` as `/`, strip `;params` from a segment (Tomcat's `..;`), or stop at a
//! NUL. A variable whose value turns into a dot segment or a separator under any of those
//! readings would let the request climb out of the rewrite's literal prefix
//! (`/static/docs/..%2F..%2Finternal`) or reach a backend path the route never matched.
//!
//! The rule, checked on every variable a forwarded path contains (the rewrite's variables,
//! or every capture when the path is forwarded as sent):
//! * no reading of a segment may be a dot segment (`.`, `..`, or only dots, before any `;`);
//! * a `{var}` must stay one segment under every reading: no `/`, `\` or NUL;
//! * a `{rest+}` variable keeps its literal `/` separators, and an encoded separator inside
//!   one of its segments is allowed, but no piece between separators may be a dot segment.
//!
//! A "reading" is the captured value (already decoded once by routing) and each further
//! percent-decoding of it, until it stops changing; a value still changing after
//! [`MAX_READINGS`] decodings, or one that decodes to invalid UTF-8, is refused: no legitimate
//! client encodes a path variable that deep.
//!
//! Together with the routing step, which refuses a request segment that is a dot segment
//! itself, this keeps the invariant: the upstream path, decoded and dot-normalised, stays
//! under the rewrite's literal prefix.

/// Decodings after the first beyond which a value is refused outright.
const MAX_READINGS: usize = 8;

/// What a variable's value is refused for; the text is the parameter's expected form as the
/// dialects' parameter rows show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A `{var}`: exactly one segment.
    Segment,
    /// A `{rest+}` variable: segments joined by `/`.
    Path,
}

impl Shape {
    pub fn expected(self) -> &'static str {
        match self {
            Shape::Segment => "a single path segment",
            Shape::Path => "a path without dot segments",
        }
    }
}

/// Whether a decoded `{var}` value may be forwarded.
pub fn segment_is_safe(value: &str) -> bool {
    readings(value, |r| {
        !r.contains(['/', '\\', '\0']) && !is_dot_segment(r)
    })
}

/// Whether one decoded segment of a `{rest+}` value may be forwarded.
pub fn rest_segment_is_safe(value: &str) -> bool {
    readings(value, |r| {
        !r.contains('\0') && !r.split(['/', '\\']).any(is_dot_segment)
    })
}

/// `.`, `..` or only dots (Windows servers drop trailing dots), ignoring `;params`.
fn is_dot_segment(s: &str) -> bool {
    let name = s.split(';').next().unwrap_or(s);
    !name.is_empty() && name.bytes().all(|b| b == b'.')
}

/// `ok` holds for the value and for every further percent-decoding of it.
fn readings(value: &str, ok: impl Fn(&str) -> bool) -> bool {
    // the common case: nothing left to decode, nothing to copy
    if !value.contains('%') {
        return ok(value);
    }
    let mut current = value.to_string();
    for _ in 0..=MAX_READINGS {
        if !ok(&current) {
            return false;
        }
        match decode_lenient(&current) {
            None => return true,
            Some(Ok(next)) => current = next,
            Some(Err(())) => return false,
        }
    }
    false
}

/// One more percent-decoding, as a lenient backend does it (a `%` not followed by two hex
/// digits stays as it is). `None` when nothing would change; `Some(Err)` when the result is
/// not UTF-8.
fn decode_lenient(s: &str) -> Option<Result<String, ()>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(crate::vocab::hex::pair);
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                changed = true;
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then(|| String::from_utf8(out).map_err(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_pass() {
        for v in [
            "a", "42", "site.css", ".hidden", "a..b", "100%", "a b", "~x", "%zz",
        ] {
            assert!(segment_is_safe(v), "{v:?}");
            assert!(rest_segment_is_safe(v), "{v:?}");
        }
    }

    #[test]
    fn dot_segments_in_any_encoding_are_refused() {
        for v in [
            ".",
            "..",
            "...",
            "..;",
            "..;x=1",
            "%2e%2e",
            "%2E.",
            "%252e%252e",
            "%25252e.",
        ] {
            assert!(!segment_is_safe(v), "{v:?}");
            assert!(!rest_segment_is_safe(v), "{v:?}");
        }
    }

    #[test]
    fn separators_split_a_segment_but_not_a_rest_segment() {
        for v in ["a/b", "a\\b", "a%2Fb", "a%5cb", "a%252Fb"] {
            assert!(!segment_is_safe(v), "{v:?}");
            assert!(rest_segment_is_safe(v), "{v:?}");
        }
        for v in [
            "../../x",
            "..\\x",
            "a/..",
            "x%2F..%2Fy",
            "a%5C%2e%2e",
            "a%00b",
            "a\0",
        ] {
            assert!(!segment_is_safe(v), "{v:?}");
            assert!(!rest_segment_is_safe(v), "{v:?}");
        }
    }

    #[test]
    fn deep_or_invalid_encodings_are_refused() {
        let mut deep = "%61".to_string();
        for _ in 0..MAX_READINGS + 2 {
            deep = deep.replace('%', "%25");
        }
        assert!(!segment_is_safe(&deep));
        assert!(!segment_is_safe("%c0%ae%c0%ae"));
        assert!(!rest_segment_is_safe("%25c0%25ae"));
    }

    mod property {
        use super::super::*;
        use crate::decide::rewrite;
        use crate::vocab::{PathTemplate, Segment};
        use proptest::prelude::*;

        /// Decoded text a client can get into a variable, chosen to build escapes.
        const PIECES: [&str; 20] = [
            "a", ".", "..", "/", "\\", ";", "\0", "%", "%2e", "%2E", "%252e", "%2f", "%2F", "%5c",
            "%5C", "%25", "%3b", "%00", "2e", "x.y",
        ];

        fn value() -> impl Strategy<Value = String> {
            proptest::collection::vec(proptest::sample::select(&PIECES[..]), 1..6)
                .prop_map(|p| p.concat())
        }

        /// Decode once (leniently), read `\` as `/`, remove dot segments (a segment of dots
        /// before any `;`), as a permissive backend would.
        fn backend_view(path: &str) -> Option<Vec<String>> {
            let decoded = match decode_lenient(path) {
                None => path.to_string(),
                Some(Ok(d)) => d,
                Some(Err(())) => return None,
            };
            let mut out: Vec<String> = Vec::new();
            for seg in decoded.replace('\\', "/").split('/').skip(1) {
                match seg.split(';').next().unwrap_or(seg) {
                    "." => {}
                    n if !n.is_empty() && n.bytes().all(|b| b == b'.') => {
                        out.pop();
                    }
                    _ => out.push(seg.to_string()),
                }
            }
            Some(out)
        }

        /// The path as the backend sees it after `depth` decodings starts with `prefix` and,
        /// when `segments` is given, has exactly that many segments.
        fn holds(path: &str, prefix: &[&str], segments: Option<usize>) -> bool {
            let mut path = path.to_string();
            for _ in 0..=MAX_READINGS {
                let Some(view) = backend_view(&path) else {
                    return true;
                };
                if view.len() < prefix.len()
                    || view.iter().zip(prefix).any(|(a, b)| a != b)
                    || segments.is_some_and(|n| view.len() != n)
                {
                    return false;
                }
                match decode_lenient(&path) {
                    Some(Ok(next)) => path = next,
                    _ => return true,
                }
            }
            true
        }

        fn template(parts: &[&str]) -> PathTemplate {
            PathTemplate::new(parts.iter().map(|p| match p.strip_prefix('{') {
                Some(v) if v.ends_with("+}") => Segment::Rest(&v[..v.len() - 2]),
                Some(v) => Segment::Var(&v[..v.len() - 1]),
                None => Segment::Literal(p),
            }))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            /// A `{var}` value that passes keeps `/static/docs/{page}` under its prefix and
            /// `/v1/{id}/detail` three segments long, under any number of decodings.
            #[test]
            fn a_safe_variable_stays_one_segment_under_the_prefix(v in value()) {
                let vars = [("page", v.clone())];
                let docs = rewrite(&template(&["static", "docs", "{page}"]), &vars, None);
                let vars = [("id", v.clone())];
                let item = rewrite(&template(&["v1", "{id}", "detail"]), &vars, None);
                if segment_is_safe(&v) {
                    prop_assert!(holds(&docs, &["static", "docs"], Some(3)), "{docs}");
                    prop_assert!(holds(&item, &["v1"], Some(3)), "{item}");
                }
            }

            /// A rest value whose segments pass stays under `/static/`.
            #[test]
            fn safe_rest_segments_stay_under_the_prefix(
                segs in proptest::collection::vec(value(), 1..4)
            ) {
                let joined = segs.join("/");
                let rest = ("p", segs.clone());
                let path = rewrite(
                    &template(&["static", "{p+}"]),
                    &[("p", joined)],
                    Some(&rest),
                );
                if segs.iter().all(|s| rest_segment_is_safe(s)) {
                    prop_assert!(holds(&path, &["static"], None), "{path}");
                }
            }
        }
    }
}
