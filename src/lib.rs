//! rulegate: an API gateway whose behaviour is a declarative policy language.
//!
//! The flow of data (see DESIGN.md):
//! `.policy` text → [`policy`] (parse, AST, diagnostics) → [`compile`] (names, conflicts,
//! decision tree) → `Snapshot` → [`decide`] (the pure per-request pipeline) → `Decision`,
//! whose rejections the [`dialect`] module renders byte for byte as a vendor would.
//!
//! ## Layers
//!
//! Each top-level module sits in one layer and imports only modules of its own layer or below,
//! with no cycle inside a layer. `tests/layering.rs` reads this table and checks the code
//! against it (`docs/extending.md` explains where a new piece goes).
//!
//! | layer | modules | what lives there |
//! |---|---|---|
//! | 0 | `vocab`, `request` | the words every stage shares (dialect, method, path template, …) and the request as every stage sees it (head, client); they import nothing |
//! | 1 | `policy` | the language: text → AST, diagnostics, formatting |
//! | 2 | `dialect`, `limits`, `auth` | per-vendor, per-limit and per-scheme pieces |
//! | 3 | `check`, `upstream` | the route checks, one module each (compiled form, phase, trace text, whether it can refuse), and the pipeline's order as one table; the backend request: what a forward sends and how its answer comes back |
//! | 4 | `compile` | AST → `Snapshot`: assembles the pieces into a decision tree |
//! | 5 | `decide`, `contract` | the pure per-request pipeline over a `Snapshot`; each route's error contract, read off the same `Snapshot` |
//! | 6 | `server`, `testing`, `import`, `export`, `diff`, `explain`, `lsp`, `main` | what runs the pipeline: the server, policy tests, the behaviour diff, the CLI, the language server |

// pest_derive without `std` writes `alloc::` paths (see Cargo.toml).
extern crate alloc;
pub mod auth;
pub mod check;
pub mod compile;
pub mod contract;
pub mod decide;
pub mod dialect;
pub mod diff;
pub mod explain;
pub mod export;
pub mod import;
pub mod limits;
pub mod lsp;
pub mod policy;
pub mod request;
pub mod server;
pub mod testing;
pub mod upstream;
pub mod vocab;
