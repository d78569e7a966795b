//! rulegate: an API gateway whose behaviour is a declarative policy language.
//!
//! The flow of data (see DESIGN.md):
//! `.policy` text → [`policy`] (parse, AST, diagnostics) → [`compile`] (names, conflicts,
//! decision tree) → `Snapshot` → [`decide`] (the pure per-request pipeline) → `Decision`,
//! whose rejections the [`dialect`] module renders byte for byte as a vendor would.

pub mod auth;
pub mod compile;
pub mod decide;
pub mod dialect;
pub mod explain;
pub mod import;
pub mod limits;
pub mod policy;
pub mod server;
pub mod testing;
pub mod vocab;
