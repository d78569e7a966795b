//! Error dialects: the canonical `Reason` and its rendering as Tencent, Huawei or JD Cloud
//! would answer.

pub mod reason;

pub use reason::{AuthFailure, Reason};
