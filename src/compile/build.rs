//! Pass 3, build: validated services become the [`Snapshot`]. Nothing here can fail or report:
//! every name is an index into vectors that hold exactly what it names ([`super::validate`]
//! guarantees it), so this pass only assembles and derives (the host table, the decision
//! trees, which apps are outside every plan, the digests of the inputs).

use super::tree::TreeBuilder;
use super::validate::Valid;
use crate::compile::*;
use crate::policy::Loaded;
use crate::vocab::Dialect;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Everything the build needs, all of it valid.
pub(crate) struct Input<'l> {
    pub(crate) loaded: &'l Loaded,
    pub(crate) default_dialect: Dialect,
    pub(crate) services: Vec<Valid>,
    /// Each host claimed, by the index of its service in `services`, in the order claimed.
    pub(crate) hosts: Vec<(String, usize)>,
    /// Every secret file read, with a digest of its content.
    pub(crate) inputs: std::collections::BTreeMap<PathBuf, [u8; 32]>,
}

pub(crate) fn snapshot(input: Input<'_>) -> Snapshot {
    let loaded = input.loaded;
    Snapshot {
        default_dialect: input.default_dialect,
        default_limits: Limits::default(),
        hosts: host_table(input.hosts),
        services: input.services.into_iter().map(service).collect(),
        source_hash: source_hash(loaded),
        policy_files: (0..loaded.sources.len() as u32)
            .map(|i| InputFile {
                path: loaded.sources.name(i).into(),
                sha256: Sha256::digest(loaded.sources.text(i)).into(),
            })
            .collect(),
        inputs: input
            .inputs
            .into_iter()
            .map(|(path, sha256)| InputFile { path, sha256 })
            .collect(),
    }
}

/// Exact hosts in a map, `*.suffix` hosts longest suffix first, `*` apart.
fn host_table(claims: Vec<(String, usize)>) -> HostTable {
    let mut hosts = HostTable::default();
    for (host, index) in claims {
        if host == "*" {
            hosts.any = Some(index);
        } else if let Some(suffix) = host.strip_prefix('*') {
            hosts.suffixes.push((suffix.to_string(), index));
        } else {
            hosts.exact.insert(host, index);
        }
    }
    hosts
        .suffixes
        .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    hosts
}

fn service(v: Valid) -> Service {
    let mut apps = v.apps;
    // Tencent reaches APIs through usage plans: once a service has plans, a key that is in
    // none of them reaches nothing. Known here, so no request has to search the plans.
    if v.dialect.semantics().apps_outside_plans_refused && !v.plans.is_empty() {
        let mut in_a_plan = vec![false; apps.len()];
        for &i in v.plans.iter().flat_map(|p| &p.apps) {
            if let Some(member) = in_a_plan.get_mut(i) {
                *member = true;
            }
        }
        for (app, in_plan) in apps.iter_mut().zip(in_a_plan) {
            app.outside_plans = !in_plan;
        }
    }
    Service {
        name: v.name.as_str().into(),
        counter_group: v.counter_group.unwrap_or_else(|| v.name.as_str().into()),
        dialect: v.dialect,
        limits: v.limits,
        stages: v.stages,
        trees: v.trees.into_iter().map(TreeBuilder::build).collect(),
        routes: v.routes,
        app_by_key: apps
            .iter()
            .enumerate()
            .map(|(i, a)| (a.key.clone(), i))
            .collect(),
        app_by_api_key: apps
            .iter()
            .enumerate()
            .flat_map(|(i, a)| a.api_keys.iter().map(move |k| (*k, i)))
            .collect(),
        backends: v.backends,
        apps,
        providers: v.providers,
        plans: v.plans,
        trusted_proxies: v.trusted_proxies,
        request_id_header: v.request_id_header,
        client_cert_required: v.client_cert_required,
        gateway_responses: v.gateway_responses.into(),
    }
}

fn source_hash(loaded: &Loaded) -> String {
    let mut h = Sha256::new();
    for i in 0..loaded.sources.len() as u32 {
        h.update(loaded.sources.name(i).as_bytes());
        h.update([0]);
        h.update(loaded.sources.text(i).as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
