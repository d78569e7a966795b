//! Error dialects: the canonical `Reason` and its rendering as Tencent, Huawei or JD Cloud
//! would answer.
//!
//! [`catalogue`] holds the vendors' rows and says which row a reason maps to in each dialect;
//! [`render`] fills the row's placeholders and writes the body and headers byte for byte.
//! Both are pure, so `serve`, `explain`, `test` and `rulegate errors` share them.

pub mod catalogue;
pub mod limit_headers;
pub mod reason;
pub mod render;

pub use catalogue::{catalogue, row, stand_ins, undocumented, CatalogueEntry, Row, StandIn};
pub use limit_headers::{limit_headers, LimitKind, Standing};
pub use reason::{AuthFailure, OAuth2Failure, Reason};
pub use render::{message, reason_phrase, render, request_id_header, status_line, ErrorResponse};
