//! `rulegate export`: descriptions of a policy for other tools, derived from the compiled
//! snapshot. Today one: OpenAPI ([`openapi`]), the counterpart of `rulegate import openapi`.

pub mod openapi;

use crate::compile::Snapshot;

/// The service `rulegate export openapi` describes: the one named, or the only one. `Err`
/// says which names there are.
pub fn pick_service(snap: &Snapshot, name: Option<&str>) -> Result<usize, String> {
    let mut names: Vec<&str> = snap.services.iter().map(|s| &*s.name).collect();
    let index = |n: &str| snap.services.iter().position(|s| &*s.name == n);
    names.sort();
    match name {
        Some(n) => index(n).ok_or_else(|| {
            format!(
                "no service {n:?}; the policy's services: {}",
                names.join(", ")
            )
        }),
        None if names.len() == 1 => Ok(0),
        None => Err(format!(
            "the policy has {} services; choose one with --service ({})",
            names.len(),
            names.join(", ")
        )),
    }
}
