//! The path radix tree: one per (service, stage).
//!
//! A node per path segment; each node has literal children (sorted, found by binary search:
//! no hashing of the request's segments), at most one `{var}`
//! child and at most one `{rest+}` leaf. Lookup walks one segment at a time, trying literal,
//! then `{var}`, then `{rest+}`, and backtracks when a branch dead-ends — so the most specific
//! route wins (static > `{var}` > `{rest+}`) and the cost depends on the path's depth, never on
//! the number of routes. Written by hand rather than with a router crate because the tree must
//! be printable (compiled-tree snapshots, `explain`) and its conflicts must map to our
//! diagnostics.

use crate::vocab::Method;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Route index per method; `Method::Any` sits last. An empty slot is [`MethodTable::NONE`]
/// rather than an `Option` (half the size: a table per path of every route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodTable {
    slots: [u32; Method::ALL.len()],
}

impl Default for MethodTable {
    fn default() -> Self {
        MethodTable {
            slots: [MethodTable::NONE; Method::ALL.len()],
        }
    }
}

impl MethodTable {
    /// No route: not an index a snapshot can hold (route indices are below the route count).
    const NONE: u32 = u32::MAX;

    pub fn get(&self, m: Method) -> Option<u32> {
        Some(self.slots[m.index()]).filter(|&r| r != MethodTable::NONE)
    }

    /// The route for a request method: the route naming it, else for HEAD the GET route,
    /// else the `ANY` route. `None` for a method this path does not take.
    pub fn resolve(&self, method: Option<Method>) -> Option<u32> {
        let any = self.get(Method::Any);
        match method {
            Some(Method::Head) => self.get(Method::Head).or(self.get(Method::Get)).or(any),
            Some(m) => self.get(m).or(any),
            None => any,
        }
    }

    /// Methods this path answers, for `Allow`-style listings and explain output.
    pub fn methods(&self) -> impl Iterator<Item = (Method, u32)> + '_ {
        Method::ALL
            .iter()
            .filter_map(|m| self.get(*m).map(|r| (*m, r)))
    }
}

/// A node of the built tree. Its method tables are boxed: most nodes have neither (an inner
/// segment) or one of the two, so inline they made every node 192 bytes instead of 48 (1.3 MiB
/// of 10k routes' trees, when a table was 64 bytes; it is 32 now).
#[derive(Debug, Default, Clone)]
struct Node {
    /// Sorted by name.
    literals: Vec<(Box<str>, Node)>,
    var: Option<Box<Node>>,
    rest: Option<Box<MethodTable>>,
    here: Option<Box<MethodTable>>,
}

impl Node {
    fn literal(&self, name: &str) -> Option<&Node> {
        let i = self
            .literals
            .binary_search_by(|(k, _)| k.as_ref().cmp(name))
            .ok()?;
        Some(&self.literals[i].1)
    }
}

/// One shape of segment on the way to a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape<'a> {
    Literal(&'a str),
    Var,
    Rest,
}

#[derive(Debug, Default, Clone)]
pub struct PathTree {
    root: Node,
}

/// A match: the methods at the leaf and, in order, the values of the route's variables.
#[derive(Debug)]
pub struct Match<'t, 'p> {
    pub methods: &'t MethodTable,
    /// On the stack: a route has a few variables, and every routed request is matched (a
    /// `Vec` cost an allocation and its free, about 100 instructions, on each).
    pub captures: Captures<'p>,
}

/// The captures of one match.
pub type Captures<'p> = smallvec::SmallVec<[Capture<'p>; 4]>;

/// A variable's value: one segment, or for `{rest+}` the remaining segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture<'p> {
    One(&'p str),
    Rest(&'p [Cow<'p, str>]),
}

/// A tree being built. Literal children are kept in a `BTreeMap` while routes are added, so
/// each insertion costs the path's depth times a logarithm — never a shift of a sorted vector
/// (inserting into the middle of a node's vector made a node with N literal children cost N²
/// to build); [`TreeBuilder::build`] turns every map into the sorted vector lookups search.
#[derive(Debug, Default, Clone)]
pub struct TreeBuilder {
    root: BuildNode,
}

#[derive(Debug, Default, Clone)]
struct BuildNode {
    literals: BTreeMap<Box<str>, BuildNode>,
    var: Option<Box<BuildNode>>,
    rest: Option<MethodTable>,
    here: Option<MethodTable>,
}

impl TreeBuilder {
    /// Insert a route for a method. On a clash returns the route already there.
    pub fn insert(&mut self, shape: &[Shape<'_>], method: Method, route: u32) -> Result<(), u32> {
        let mut node = &mut self.root;
        for (i, s) in shape.iter().enumerate() {
            match s {
                Shape::Literal(l) => {
                    // the name is copied only for a new child, not at every insertion
                    if !node.literals.contains_key(*l) {
                        node.literals.insert((*l).into(), BuildNode::default());
                    }
                    node = node.literals.get_mut(*l).expect("inserted above");
                }
                Shape::Var => node = node.var.get_or_insert_with(Default::default),
                Shape::Rest => {
                    debug_assert_eq!(i + 1, shape.len());
                    return put(
                        node.rest.get_or_insert_with(Default::default),
                        method,
                        route,
                    );
                }
            }
        }
        put(
            node.here.get_or_insert_with(Default::default),
            method,
            route,
        )
    }

    /// The finished tree: each node's literal children as a vector sorted by name.
    pub fn build(self) -> PathTree {
        PathTree {
            root: self.root.build(),
        }
    }
}

impl BuildNode {
    fn build(self) -> Node {
        Node {
            // a BTreeMap iterates in key order: the vector comes out sorted
            literals: self
                .literals
                .into_iter()
                .map(|(name, child)| (name, child.build()))
                .collect(),
            var: self.var.map(|v| Box::new(v.build())),
            rest: self.rest.map(Box::new),
            here: self.here.map(Box::new),
        }
    }
}

impl PathTree {
    /// Find the most specific route for a path, given as its percent-decoded segments
    /// (borrowed from the request where decoding changed nothing).
    pub fn lookup<'t, 'p>(&'t self, segments: &'p [Cow<'p, str>]) -> Option<Match<'t, 'p>> {
        let mut captures = Captures::new();
        let methods = walk(&self.root, segments, &mut captures)?;
        Some(Match { methods, captures })
    }

    /// A stable, readable rendering of the tree, for snapshots and `explain`.
    pub fn render(&self, route_label: &dyn Fn(u32) -> String) -> String {
        let mut out = String::new();
        render(&self.root, "/", 0, route_label, &mut out);
        out
    }
}

fn put(table: &mut MethodTable, method: Method, route: u32) -> Result<(), u32> {
    assert!(
        route != MethodTable::NONE,
        "more routes than a tree can index"
    );
    match table.get(method) {
        Some(existing) => Err(existing),
        None => {
            table.slots[method.index()] = route;
            Ok(())
        }
    }
}

fn walk<'t, 'p>(
    node: &'t Node,
    segs: &'p [Cow<'p, str>],
    caps: &mut Captures<'p>,
) -> Option<&'t MethodTable> {
    let Some((first, rest)) = segs.split_first() else {
        return node.here.as_deref();
    };
    if let Some(child) = node.literal(first) {
        if let Some(found) = walk(child, rest, caps) {
            return Some(found);
        }
    }
    if let Some(child) = &node.var {
        if !first.is_empty() {
            caps.push(Capture::One(first));
            if let Some(found) = walk(child, rest, caps) {
                return Some(found);
            }
            caps.pop();
        }
    }
    if let Some(table) = &node.rest {
        if segs.iter().any(|s| !s.is_empty()) {
            caps.push(Capture::Rest(segs));
            return Some(table);
        }
    }
    None
}

fn render(node: &Node, label: &str, depth: usize, route: &dyn Fn(u32) -> String, out: &mut String) {
    let pad = "  ".repeat(depth);
    let _ = write!(out, "{pad}{label}");
    if let Some(t) = &node.here {
        write_methods(t, route, out);
    }
    out.push('\n');
    for (name, child) in &node.literals {
        render(child, name, depth + 1, route, out);
    }
    if let Some(child) = &node.var {
        render(child, "{var}", depth + 1, route, out);
    }
    if let Some(t) = &node.rest {
        let _ = write!(out, "{pad}  {{rest+}}");
        write_methods(t, route, out);
        out.push('\n');
    }
}

fn write_methods(t: &MethodTable, route: &dyn Fn(u32) -> String, out: &mut String) {
    for (m, r) in t.methods() {
        let _ = write!(out, "  {m} → {}", route(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<Cow<'_, str>> {
        p.split('/').skip(1).map(Cow::from).collect()
    }

    #[test]
    fn static_beats_var_beats_rest_with_backtracking() {
        let mut b = TreeBuilder::default();
        b.insert(
            &[
                Shape::Literal("a"),
                Shape::Literal("b"),
                Shape::Literal("c"),
            ],
            Method::Get,
            0,
        )
        .unwrap();
        b.insert(
            &[Shape::Literal("a"), Shape::Var, Shape::Literal("d")],
            Method::Get,
            1,
        )
        .unwrap();
        b.insert(&[Shape::Literal("a"), Shape::Rest], Method::Get, 2)
            .unwrap();
        let t = b.build();
        let r = |p: &str| {
            t.lookup(&segs(p))
                .map(|m| m.methods.resolve(Some(Method::Get)).unwrap())
        };
        assert_eq!(r("/a/b/c"), Some(0));
        // literal `b` dead-ends at `d`; backtrack to {var}
        assert_eq!(r("/a/b/d"), Some(1));
        assert_eq!(r("/a/b/e"), Some(2));
        assert_eq!(r("/a"), None);
        assert_eq!(r("/b"), None);
    }

    /// Names arrive in any order (`r10` between `r1` and `r2`, reversed, repeated under
    /// other methods); the built node holds them sorted, each found by binary search, and a
    /// clash is still caught while building.
    #[test]
    fn literals_inserted_in_any_order_are_found_after_building() {
        let mut b = TreeBuilder::default();
        let names: Vec<String> = (0..500).rev().map(|i| format!("r{i}")).collect();
        for (i, n) in names.iter().enumerate() {
            b.insert(&[Shape::Literal(n), Shape::Var], Method::Get, i as u32)
                .unwrap();
        }
        for (i, n) in names.iter().enumerate().step_by(7) {
            let clash = b.insert(&[Shape::Literal(n), Shape::Var], Method::Get, 9999);
            assert_eq!(clash, Err(i as u32));
            b.insert(
                &[Shape::Literal(n), Shape::Var],
                Method::Post,
                1000 + i as u32,
            )
            .unwrap();
        }
        let t = b.build();
        assert!(t.root.literals.windows(2).all(|w| w[0].0 < w[1].0));
        for (i, n) in names.iter().enumerate() {
            let path = format!("/{n}/x");
            let path = segs(&path);
            let m = t.lookup(&path).expect(n);
            assert_eq!(m.methods.resolve(Some(Method::Get)), Some(i as u32));
            let post = (i % 7 == 0).then_some(1000 + i as u32);
            assert_eq!(m.methods.resolve(Some(Method::Post)), post);
        }
        let missing = segs("/r500/x");
        assert!(t.lookup(&missing).is_none());
    }

    #[test]
    fn clash_reports_existing_route() {
        let mut b = TreeBuilder::default();
        b.insert(&[Shape::Var], Method::Get, 0).unwrap();
        assert_eq!(b.insert(&[Shape::Var], Method::Get, 1), Err(0));
        assert!(b.insert(&[Shape::Var], Method::Post, 1).is_ok());
    }

    #[test]
    fn head_falls_back_to_get_then_any() {
        let mut t = MethodTable::default();
        put(&mut t, Method::Get, 3).unwrap();
        assert_eq!(t.resolve(Some(Method::Head)), Some(3));
        assert_eq!(t.resolve(Some(Method::Post)), None);
        put(&mut t, Method::Any, 4).unwrap();
        assert_eq!(t.resolve(Some(Method::Post)), Some(4));
        assert_eq!(t.resolve(None), Some(4));
    }
}
