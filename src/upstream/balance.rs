//! Which target of a backend takes a request: smooth weighted round robin, least requests, or
//! a consistent-hash ring.
//!
//! **Smooth weighted round robin** (the scheme nginx uses for `weight=`): every target keeps a
//! running score. At each pick, every eligible target's score grows by its weight; the target
//! with the highest score (the first listed on a tie) is picked and its score drops by the sum
//! of the eligible weights. Over any window of `W = Σ weights` consecutive picks with the same
//! eligible set, target `i` is picked exactly `wᵢ` times, and the picks are spread rather than
//! bunched: weights 5, 1, 1 give `a a b a c a a`. Tests can therefore assert a distribution
//! exactly, which random choice would not allow. A target that becomes ineligible (unhealthy,
//! drained) stops accumulating, so its return does not start with a burst.
//!
//! **Least requests**: the eligible target with the fewest requests in flight relative to its
//! weight (`inflightᵢ / wᵢ`, compared by cross-multiplying); ties go to the smooth round robin
//! among the tied targets, so an idle backend is balanced by weight.
//!
//! **Consistent hashing** (Karger et al.; the ring of ketama, HAProxy's `hash-type consistent`):
//! each target owns points on a 64-bit ring, in proportion to its weight; a key goes to the
//! owner of the first point at or after the key's hash, skipping ineligible targets. Adding a
//! target takes over only the arcs its points land on, about `1/n` of the keys. A request
//! without the key (no such header or query parameter) is balanced by the round robin.
//!
//! The hash is FNV-1a (64 bits) followed by the splitmix64 finaliser, written here: it must be
//! the same on every gateway and every release (two gateways behind one load balancer must
//! send a key to the same target), which `std`'s hasher does not promise, and a cryptographic
//! hash would cost a request more than it buys.
//!
//! Everything here is pure: the caller holds the state ([`Smooth`]) under its lock and passes
//! the in-flight counts and eligibility in.

/// How a backend spreads requests over its targets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Strategy {
    RoundRobin,
    LeastRequests,
    /// Consistent hashing on a key read from the request.
    Hash(HashOn),
}

/// Where `balance hash` finds its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashOn {
    /// The client's address, as the checks saw it.
    ClientIp,
    /// A header, lower-cased.
    Header(String),
    Query(String),
}

impl std::fmt::Display for HashOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashOn::ClientIp => f.write_str("ip"),
            HashOn::Header(h) => write!(f, "header {h:?}"),
            HashOn::Query(q) => write!(f, "query {q:?}"),
        }
    }
}

/// The running scores of smooth weighted round robin, one per target.
#[derive(Debug, Clone, Default)]
pub struct Smooth {
    scores: Vec<i64>,
}

impl Smooth {
    /// The next target among those `eligible` with a weight above zero, or `None` when there
    /// is none.
    pub fn pick(&mut self, weights: &[u32], eligible: impl Fn(usize) -> bool) -> Option<usize> {
        if self.scores.len() != weights.len() {
            self.scores = vec![0; weights.len()];
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, &w) in weights.iter().enumerate() {
            if w == 0 || !eligible(i) {
                continue;
            }
            total += i64::from(w);
            self.scores[i] += i64::from(w);
            if best.is_none_or(|b| self.scores[i] > self.scores[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        self.scores[best] -= total;
        Some(best)
    }
}

/// The least-loaded eligible target, relative to weight; ties by the round robin.
pub fn least_requests(
    smooth: &mut Smooth,
    weights: &[u32],
    inflight: &[u64],
    eligible: impl Fn(usize) -> bool,
) -> Option<usize> {
    let usable = |i: usize| weights[i] > 0 && eligible(i);
    // inflight[i] / w[i] < inflight[j] / w[j], without division
    let lighter = |i: usize, j: usize| {
        u128::from(inflight[i]) * u128::from(weights[j])
            < u128::from(inflight[j]) * u128::from(weights[i])
    };
    let lightest =
        (0..weights.len())
            .filter(|&i| usable(i))
            .reduce(|a, b| if lighter(b, a) { b } else { a })?;
    let tied = |i: usize| usable(i) && !lighter(lightest, i);
    smooth.pick(weights, tied)
}

/// Points each unit of weight owns on the ring: enough that 2–10 equal targets split the keys
/// within a few percent of evenly.
const POINTS_PER_WEIGHT: u64 = 160;
/// At most this many points in all, whatever the weights (a weight of 10,000 would otherwise
/// cost a megabyte per target).
const MAX_POINTS: u64 = 16_384;

/// The consistent-hash ring of a backend's targets, built once when the policy compiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ring {
    /// (point, target), sorted by point.
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// The ring for targets named by `urls`, each owning points in proportion to its weight
    /// (a weight of zero owns none). A target's points depend on its URL alone, so adding one
    /// leaves the others' where they were.
    pub fn new(urls: &[&str], weights: &[u32]) -> Ring {
        let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let per_weight = match sum * POINTS_PER_WEIGHT > MAX_POINTS {
            true => MAX_POINTS as f64 / sum as f64,
            false => POINTS_PER_WEIGHT as f64,
        };
        let mut points = Vec::new();
        for (t, (url, &w)) in urls.iter().zip(weights).enumerate() {
            let n = match w {
                0 => 0,
                w => ((f64::from(w) * per_weight).round() as u64).max(1),
            };
            for k in 0..n {
                let mut h = Fnv::new();
                h.write(url.as_bytes());
                h.write(b"#");
                h.write(k.to_string().as_bytes());
                points.push((h.finish(), t as u32));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The target that owns `key`: the first eligible one at or after the key's point,
    /// clockwise.
    pub fn owner(&self, key: &[u8], eligible: impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let h = hash(key);
        let start = self.points.partition_point(|&(p, _)| p < h);
        let n = self.points.len();
        (0..n)
            .map(|k| self.points[(start + k) % n].1 as usize)
            .find(|&t| eligible(t))
    }
}

/// The stable 64-bit hash of a balancing key.
pub fn hash(key: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.write(key);
    h.finish()
}

/// FNV-1a, finished with splitmix64 so that keys differing in their last bytes spread over
/// the whole ring.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(weights: &[u32], n: usize, eligible: impl Fn(usize) -> bool + Copy) -> String {
        let mut s = Smooth::default();
        (0..n)
            .map(|_| match s.pick(weights, eligible) {
                Some(i) => (b'a' + i as u8) as char,
                None => '-',
            })
            .collect()
    }

    #[test]
    fn weights_five_one_one_are_spread_as_nginx_spreads_them() {
        assert_eq!(picks(&[5, 1, 1], 7, |_| true), "aabacaa");
        assert_eq!(picks(&[5, 1, 1], 14, |_| true), "aabacaaaabacaa");
    }

    #[test]
    fn every_window_of_the_weight_sum_holds_each_target_exactly_its_weight() {
        let weights = [90, 10];
        let mut s = Smooth::default();
        let seq: Vec<usize> = (0..1000)
            .map(|_| s.pick(&weights, |_| true).unwrap())
            .collect();
        for window in seq.chunks(100) {
            assert_eq!(window.iter().filter(|&&i| i == 1).count(), 10);
        }
    }

    #[test]
    fn equal_weights_are_plain_round_robin() {
        assert_eq!(picks(&[1, 1, 1], 6, |_| true), "abcabc");
    }

    #[test]
    fn a_weight_of_zero_or_an_ineligible_target_gets_nothing() {
        assert_eq!(picks(&[1, 0, 1], 4, |_| true), "acac");
        assert_eq!(picks(&[1, 1, 1], 4, |i| i != 0), "bcbc");
        assert_eq!(picks(&[0, 0], 2, |_| true), "--");
        assert_eq!(picks(&[3, 1], 2, |_| false), "--");
    }

    #[test]
    fn least_requests_goes_to_the_lightest_relative_to_weight() {
        let mut s = Smooth::default();
        assert_eq!(
            least_requests(&mut s, &[1, 1, 1], &[3, 1, 2], |_| true),
            Some(1)
        );
        // 4/2 < 3/1
        assert_eq!(least_requests(&mut s, &[1, 2], &[3, 4], |_| true), Some(1));
        assert_eq!(
            least_requests(&mut s, &[1, 1], &[0, 5], |i| i == 1),
            Some(1)
        );
        assert_eq!(least_requests(&mut s, &[0, 1], &[0, 5], |_| true), Some(1));
    }

    #[test]
    fn an_idle_backend_under_least_requests_is_balanced_by_weight() {
        let mut s = Smooth::default();
        let seq: String = (0..7)
            .map(|_| {
                let i = least_requests(&mut s, &[5, 1, 1], &[0, 0, 0], |_| true).unwrap();
                (b'a' + i as u8) as char
            })
            .collect();
        assert_eq!(seq, "aabacaa");
    }

    fn urls(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://10.0.0.{i}:8080")).collect()
    }

    fn owners(ring: &Ring, keys: usize) -> Vec<usize> {
        (0..keys)
            .map(|k| {
                ring.owner(format!("user-{k}").as_bytes(), |_| true)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_ring_spreads_keys_over_equal_targets_nearly_evenly() {
        let u = urls(4);
        let refs: Vec<&str> = u.iter().map(String::as_str).collect();
        let ring = Ring::new(&refs, &[1; 4]);
        let o = owners(&ring, 40_000);
        for t in 0..4 {
            let share = o.iter().filter(|&&x| x == t).count() as f64 / 40_000.0;
            assert!((0.20..0.30).contains(&share), "target {t}: {share}");
        }
    }

    #[test]
    fn adding_a_target_moves_about_one_key_in_n_and_only_to_the_new_target() {
        let u = urls(5);
        let refs: Vec<&str> = u.iter().map(String::as_str).collect();
        let before = owners(&Ring::new(&refs[..4], &[1; 4]), 20_000);
        let after = owners(&Ring::new(&refs, &[1; 5]), 20_000);
        let moved: Vec<_> = before.iter().zip(&after).filter(|(b, a)| b != a).collect();
        assert!(
            moved.iter().all(|(_, &a)| a == 4),
            "a key moved between old targets"
        );
        let share = moved.len() as f64 / 20_000.0;
        assert!((0.14..0.26).contains(&share), "moved {share}");
    }

    #[test]
    fn a_key_whose_target_is_down_goes_to_the_next_owner_and_comes_back() {
        let u = urls(3);
        let refs: Vec<&str> = u.iter().map(String::as_str).collect();
        let ring = Ring::new(&refs, &[1; 3]);
        let key = b"customer-42";
        let home = ring.owner(key, |_| true).unwrap();
        let away = ring.owner(key, |t| t != home).unwrap();
        assert_ne!(home, away);
        assert_eq!(ring.owner(key, |_| true), Some(home));
        assert_eq!(ring.owner(key, |_| false), None);
    }

    #[test]
    fn weights_give_a_target_its_share_of_the_ring_and_zero_none() {
        let u = urls(3);
        let refs: Vec<&str> = u.iter().map(String::as_str).collect();
        let ring = Ring::new(&refs, &[3, 1, 0]);
        let o = owners(&ring, 40_000);
        let share = o.iter().filter(|&&x| x == 0).count() as f64 / 40_000.0;
        assert!((0.68..0.82).contains(&share), "{share}");
        assert!(!o.contains(&2));
    }

    #[test]
    fn huge_weights_keep_the_ring_bounded() {
        let u = urls(2);
        let refs: Vec<&str> = u.iter().map(String::as_str).collect();
        let ring = Ring::new(&refs, &[1_000_000, 1]);
        assert!(ring.points.len() as u64 <= MAX_POINTS + 2);
        assert!(ring.points.iter().any(|&(_, t)| t == 1));
    }

    #[test]
    fn the_hash_is_the_same_on_every_build() {
        // pinned: a change here moves every key on every ring
        assert_eq!(hash(b""), 0xc381_7c01_6ba4_ff30);
        assert_eq!(hash(b"customer-42"), 0x61e8_1e1c_42dd_7ad7);
    }
}
