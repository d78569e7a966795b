//! Key names in Redis, and the one rule Redis Cluster adds: every key of one script call (and
//! a nonce) must hash to one slot.
//!
//! Single-node keys are named as they always were (`rulegate:<count key>`,
//! `rulegate:nonce|<key>`), so an upgrade keeps every running count. Cluster keys put the
//! counter group ([`Count::group`]) in a hash tag: `rulegate:{<group>}:<count key>`. Redis
//! hashes only the text between the first `{` and the next `}`, so all of a group's keys — one
//! request's whole batch, its nonce — share a slot, and the script stays one atomic call.

use super::super::{Count, Limit, StoreError};

/// How keys are named: the single-node names, or the cluster names with a hash tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    Plain,
    Tagged,
}

impl Keys {
    /// The counter's key. A quota's key carries its window's start, so a new window starts
    /// from zero without anyone resetting it.
    pub fn count(self, c: &Count) -> String {
        let prefix = self.prefix(&c.group);
        match c.limit {
            Limit::Rate { .. } => format!("{prefix}{}", c.key),
            Limit::Quota { start_ms, .. } => format!("{prefix}{}|{start_ms}", c.key),
        }
    }

    /// A signer's nonce, in the slot of the request's counter group.
    pub fn nonce(self, group: &str, key: &str) -> String {
        format!("{}nonce|{key}", self.prefix(group))
    }

    /// Which clock a call's deadline is translated with: each cluster group's slot lives on
    /// one master, whose clock may differ from its peers'; a single node has one clock.
    pub fn clock(self, group: &str) -> &str {
        match self {
            Keys::Plain => "",
            Keys::Tagged => group,
        }
    }

    /// The key that routes a clock probe to the node that counts `group`'s keys.
    pub fn probe(self, group: &str) -> String {
        format!("{}clock", self.prefix(group))
    }

    fn prefix(self, group: &str) -> String {
        match self {
            Keys::Plain => "rulegate:".to_string(),
            Keys::Tagged => format!("rulegate:{{{}}}:", tag(group)),
        }
    }

    /// In a cluster, a batch whose counts name two groups would span slots (Redis refuses such
    /// a script with CROSSSLOT). The compiler never builds one; should it happen, the batch is
    /// refused here as a store error — each limit then applies its `on store error` — rather
    /// than split, which would break all-or-nothing.
    pub fn one_group(self, counts: &[Count]) -> Result<(), StoreError> {
        let Some(first) = counts.first() else {
            return Ok(());
        };
        match counts.iter().find(|c| c.group != first.group) {
            Some(other) if self == Keys::Tagged => Err(StoreError(format!(
                "redis cluster: one batch counts in groups `{}` and `{}`; refused rather than \
                 counted across slots",
                first.group, other.group
            ))),
            _ => Ok(()),
        }
    }
}

/// A group as a hash tag: `{`, `}` and `%` percent-encoded, so a group holding `}` cannot
/// end the tag early, and two groups never share an encoding. An empty tag would make Redis
/// hash the whole key, so the empty group is `%` (no encoding is `%` alone).
fn tag(group: &str) -> String {
    if group.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(group.len());
    for ch in group.chars() {
        match ch {
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(group: &str, limit: Limit) -> Count {
        Count {
            key: "rate|svc/route:0/0|".into(),
            limit,
            fail_open: false,
            group: group.into(),
        }
    }

    const RATE: Limit = Limit::Rate {
        limit: 1,
        period_ms: 1000,
        burst: 0,
    };
    const QUOTA: Limit = Limit::Quota {
        limit: 1,
        start_ms: 7,
        end_ms: 9,
    };

    /// Single-node names are today's, byte for byte: an upgrade keeps every count.
    #[test]
    fn single_node_keys_are_unchanged() {
        assert_eq!(
            Keys::Plain.count(&count("weather", RATE)),
            "rulegate:rate|svc/route:0/0|"
        );
        assert_eq!(
            Keys::Plain.count(&count("weather", QUOTA)),
            "rulegate:rate|svc/route:0/0||7"
        );
        assert_eq!(
            Keys::Plain.nonce("weather", "ak|n1"),
            "rulegate:nonce|ak|n1"
        );
    }

    #[test]
    fn cluster_keys_carry_the_group_as_their_hash_tag() {
        assert_eq!(
            Keys::Tagged.count(&count("weather", RATE)),
            "rulegate:{weather}:rate|svc/route:0/0|"
        );
        assert_eq!(
            Keys::Tagged.nonce("weather", "ak|n1"),
            "rulegate:{weather}:nonce|ak|n1"
        );
        assert_eq!(Keys::Tagged.probe("weather"), "rulegate:{weather}:clock");
    }

    /// Redis hashes the text between the first `{` and the next `}`: a `}` in a group must
    /// not end the tag, and distinct groups keep distinct tags.
    #[test]
    fn braces_in_a_group_cannot_break_the_tag() {
        assert_eq!(tag("a}b{c%"), "a%7Db%7Bc%25");
        assert_ne!(tag("a}"), tag("a%7D"));
        assert_eq!(tag(""), "%");
        let key = Keys::Tagged.nonce("x}y", "k");
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        assert_eq!(&key[open + 1..close], "x%7Dy");
    }

    #[test]
    fn a_cluster_batch_spanning_groups_is_a_store_error() {
        let mixed = [count("a", RATE), count("b", QUOTA)];
        assert!(Keys::Tagged.one_group(&mixed).is_err());
        assert!(Keys::Plain.one_group(&mixed).is_ok());
        assert!(Keys::Tagged
            .one_group(&[count("a", RATE), count("a", QUOTA)])
            .is_ok());
    }
}
