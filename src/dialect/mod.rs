//! Error dialects: the canonical `Reason` and its rendering as Tencent, Huawei or JD Cloud
//! would answer, and everything else that differs between the vendors.
//!
//! Each vendor is one file (`tencent.rs`, `huawei.rs`, `jdcloud.rs`) exporting one
//! [`Profile`]: its request-id header, body writer, limit headers, placeholders, rows and
//! the semantics that differ between vendors. [`profile`] registers them; the rest of the crate
//! asks `dialect.profile()` rather than matching on the dialect.
//!
//! [`catalogue`] holds the vendors' rows and says which row a reason maps to in each dialect;
//! [`render`] fills the row's placeholders and writes the body and headers byte for byte.
//! Both are pure, so `serve`, `explain`, `test` and `rulegate errors` share them.

pub mod catalogue;
pub mod gateway_response;
pub mod huawei;
pub mod jdcloud;
pub mod limit_headers;
pub mod profile;
pub mod reason;
pub mod render;
pub mod tencent;
pub mod unemitted;

pub use catalogue::{catalogue, row, stand_ins, undocumented, CatalogueEntry, Row, StandIn};
pub use limit_headers::{limit_headers, LimitKind, Standing};
pub use profile::{Profile, Semantics};
pub use reason::{AuthFailure, OAuth2Failure, Reason};
pub use render::{message, reason_phrase, render, request_id_header, status_line, ErrorResponse};

use crate::vocab::Dialect;

impl Dialect {
    /// The dialect's profile: the registration of each `dialect/<vendor>.rs`.
    pub fn profile(self) -> &'static Profile {
        match self {
            Dialect::Tencent => &tencent::PROFILE,
            Dialect::Huawei => &huawei::PROFILE,
            Dialect::Jdcloud => &jdcloud::PROFILE,
        }
    }

    /// Where the dialect's gateway behaves differently (usage plans, CORS, OAuth2).
    pub fn semantics(self) -> &'static Semantics {
        &self.profile().semantics
    }
}

/// Every dialect's name passed through `each`, listed as `a, b or c`: for help texts that say
/// what may be written.
pub fn listed(each: impl Fn(&str) -> String) -> String {
    let names: Vec<String> = Dialect::ALL.iter().map(|d| each(d.name())).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// The names of the dialects other than `but`, as `a, b`.
pub fn names_except(but: Dialect) -> String {
    let names: Vec<&str> = Dialect::ALL
        .iter()
        .filter(|d| **d != but)
        .map(|d| d.name())
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn listed_names_every_dialect_once_in_order() {
        assert_eq!(
            super::listed(|n| format!("`{n}`")),
            "`tencent`, `huawei` or `jdcloud`"
        );
        assert_eq!(
            super::names_except(crate::vocab::Dialect::Huawei),
            "tencent, jdcloud"
        );
    }
}
