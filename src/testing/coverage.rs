//! Coverage of the decision tree: for every route, whether a test reached it, which of its
//! check program's rejection branches a test took, whether a test got through to its action
//! (mock, forward, token endpoint) and which of its policy backends a test chose (each a
//! branch of its own). The branches are the program's steps as `check --print-tree` numbers
//! them, so a gap reads as "route #3, step 2 never refused".
//!
//! A check that cannot refuse (an optional parameter of any value, a protocol list that takes
//! both http and https) has no rejection branch to cover, and neither has the service-wide
//! body limit that every route's program repeats.

use crate::compile::Snapshot;
use crate::decide::{Decision, Outcome};

/// Hit counts of every branch of a snapshot.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    pub routes: Vec<RouteCoverage>,
    /// Where each service's routes start in `routes`: a decision finds its route by index,
    /// not by a search through every route (a test file per route would cost routes²).
    first_of_service: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct RouteCoverage {
    pub service: String,
    pub route: usize,
    pub label: String,
    pub location: String,
    pub reached: bool,
    /// (step number in the program, 1-based; the check as printed; taken)
    pub rejections: Vec<(usize, String, bool)>,
    pub action: String,
    /// The route's own action was reached.
    pub acted: bool,
    /// Its policy backends: (the policy and its action as printed, chosen by a test).
    pub policies: Vec<(String, bool)>,
}

/// One branch no test took.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Missed {
    pub service: String,
    pub route: String,
    pub location: String,
    pub branch: String,
}

impl Coverage {
    pub fn of(snap: &Snapshot) -> Coverage {
        let mut routes = Vec::new();
        let mut first_of_service = Vec::with_capacity(snap.services.len());
        for s in &snap.services {
            first_of_service.push(routes.len());
            for (i, r) in s.routes.iter().enumerate() {
                routes.push(RouteCoverage {
                    service: s.name.to_string(),
                    route: i,
                    label: r.label.to_string(),
                    location: r.location.to_string(),
                    reached: false,
                    rejections: r
                        .program
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.can_refuse(s.limits.body))
                        .map(|(n, c)| (n + 1, c.to_string(), false))
                        .collect(),
                    action: s.describe_action(&r.action),
                    acted: false,
                    policies: r
                        .policies
                        .iter()
                        .map(|p| (format!("{p} → {}", s.describe_action(&p.action)), false))
                        .collect(),
                });
            }
        }
        Coverage {
            routes,
            first_of_service,
        }
    }

    pub fn record(&mut self, snap: &Snapshot, d: &Decision) {
        let (Some(s), Some(r)) = (d.service, d.route) else {
            return;
        };
        let Some(service) = snap.services.get(s) else {
            return;
        };
        let Some(rc) = self
            .first_of_service
            .get(s)
            .and_then(|first| self.routes.get_mut(first + r))
            .filter(|rc| rc.route == r && *rc.service == *service.name)
        else {
            return;
        };
        rc.reached = true;
        // a scripted backend's attempts follow the action that forwarded
        let by_action = d
            .trace
            .iter()
            .rev()
            .find(|step| step.name != "backend")
            .is_some_and(|step| step.name == "action");
        match (&d.outcome, d.check) {
            (Outcome::Reject(_), Some(i)) => {
                if let Some(b) = rc.rejections.iter_mut().find(|b| b.0 == i + 1) {
                    b.2 = true;
                }
            }
            _ if by_action => match d.policy.and_then(|p| rc.policies.get_mut(p)) {
                Some(policy) => policy.1 = true,
                None => rc.acted = true,
            },
            _ => {}
        }
    }

    /// (branches taken, all branches)
    pub fn counts(&self) -> (usize, usize) {
        let mut hit = 0;
        let mut all = 0;
        for r in &self.routes {
            all += 2 + r.rejections.len() + r.policies.len();
            hit += usize::from(r.reached)
                + usize::from(r.acted)
                + r.rejections.iter().filter(|b| b.2).count()
                + r.policies.iter().filter(|p| p.1).count();
        }
        (hit, all)
    }

    pub fn percent(&self) -> f64 {
        let (hit, all) = self.counts();
        if all == 0 {
            100.0
        } else {
            hit as f64 * 100.0 / all as f64
        }
    }

    pub fn missed(&self) -> Vec<Missed> {
        let mut out = Vec::new();
        for r in &self.routes {
            let mut miss = |branch: String| {
                out.push(Missed {
                    service: r.service.clone(),
                    route: r.label.clone(),
                    location: r.location.clone(),
                    branch,
                })
            };
            if !r.reached {
                miss("the route is never reached".to_string());
                continue;
            }
            for (n, check, taken) in &r.rejections {
                if !taken {
                    miss(format!("step {n} never refuses: {check}"));
                }
            }
            for (policy, chosen) in &r.policies {
                if !chosen {
                    miss(format!("never chosen: {policy}"));
                }
            }
            if !r.acted {
                miss(format!("the action is never reached: {}", r.action));
            }
        }
        out
    }
}
