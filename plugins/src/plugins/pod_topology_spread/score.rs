//! Soft constraints: PreScore precomputes matching pods per domain and each constraint's
//! topology weight; Score looks up the node's domains; NormalizeScore turns fewer matches into
//! a higher score.

use crate::framework::{CycleState, MAX_NODE_SCORE, PreScorePlugin, ScorePlugin};
use crate::intern::Sym;
use crate::model::{Pod, WhenUnsatisfiable};
use crate::nodeinfo::NodeInfo;
use crate::snapshot::Snapshot;
use crate::status::Status;
use crate::topology::{FxMap, FxSet};

use super::{Constraint, PodTopologySpread, counting};

pub(super) const PRE_SCORE_KEY: &str = "PreScorePodTopologySpread";

/// Score of a node missing one of the keys; upstream's `invalidScore`, which NormalizeScore
/// turns into 0. Real raw scores are never negative.
pub(super) const IGNORED: i64 = -1;

/// What Score needs of one soft constraint.
#[derive(Debug)]
pub(super) struct SoftConstraint {
    pub(super) key: Sym,
    pub(super) max_skew: i64,
    /// `ln(domains + 2)`: a match in a topology with many domains weighs more, so that a
    /// hostname constraint is not drowned by a zone constraint.
    pub(super) weight: f64,
    /// Matching pods per domain, or per node name when `per_node`; absent means 0.
    pub(super) counts: FxMap<Sym, i64>,
    /// Whether `counts` is per node (the hostname key: upstream counts the node's own pods,
    /// with no inclusion policy).
    pub(super) per_node: bool,
}

/// PreScore's result for one pod.
#[derive(Debug)]
pub(super) struct PreScoreState {
    pub(super) constraints: Vec<SoftConstraint>,
    /// Whether a node missing any key is left unscored.
    pub(super) require_all_keys: bool,
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot, nodes: &[&NodeInfo]) -> Status {
        if snapshot.num_nodes() == 0 {
            return Status::skip();
        }
        let constraints = self.constraints(pod, WhenUnsatisfiable::ScheduleAnyway);
        if constraints.is_empty() {
            return Status::skip();
        }
        // Only system defaults spare nodes that lack a key, so that nodes without a zone label
        // are still spread by hostname.
        let require_all_keys = !pod.spread_constraints.is_empty() || !self.system_defaulted;
        let keys: Vec<Sym> = constraints.iter().map(|c| c.key).collect();
        let required: &[Sym] = if require_all_keys { &keys } else { &[] };
        let sizes = self.domain_sizes(&constraints, nodes, required);
        let soft = constraints
            .iter()
            .zip(sizes)
            .map(|(c, size)| {
                let per_node = c.key == self.hostname;
                SoftConstraint {
                    key: c.key,
                    max_skew: i64::from(c.max_skew),
                    weight: ((size + 2) as f64).ln(),
                    counts: if per_node {
                        counting::count_per_node(snapshot, pod, c.selector.as_deref())
                    } else {
                        counting::count(snapshot, pod, c, required).counts
                    },
                    per_node,
                }
            })
            .collect();
        state.write(PRE_SCORE_KEY, PreScoreState { constraints: soft, require_all_keys });
        Status::success()
    }
}

impl PodTopologySpread {
    /// Per constraint, the number of domains among the scored nodes that have every `required`
    /// key: distinct values, a node without the key counting as the value "" (as upstream), and
    /// for hostname the number of such nodes.
    fn domain_sizes(&self, constraints: &[Constraint<'_>], nodes: &[&NodeInfo], required: &[Sym]) -> Vec<usize> {
        let missing = Sym::new("");
        let mut values: Vec<FxSet<Sym>> = vec![FxSet::default(); constraints.len()];
        let mut scored = 0;
        for n in nodes {
            let labels = &n.node.labels;
            if !required.iter().all(|k| labels.has(*k)) {
                continue;
            }
            scored += 1;
            for (c, seen) in constraints.iter().zip(values.iter_mut()) {
                if c.key != self.hostname {
                    seen.insert(labels.get(c.key).unwrap_or(missing));
                }
            }
        }
        constraints
            .iter()
            .zip(values)
            .map(|(c, seen)| if c.key == self.hostname { scored } else { seen.len() })
            .collect()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, _: &Pod, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else { return 0 };
        let labels = &node.node.labels;
        if s.require_all_keys && !s.constraints.iter().all(|c| labels.has(c.key)) {
            return IGNORED;
        }
        let mut total = 0.0;
        for c in &s.constraints {
            if let Some(domain) = labels.get(c.key) {
                let at = if c.per_node { node.node.name } else { domain };
                let matching = c.counts.get(&at).copied().unwrap_or(0);
                total += matching as f64 * c.weight + (c.max_skew - 1) as f64;
            }
        }
        total.round() as i64
    }

    fn normalize_score(&self, state: &CycleState, _: &Pod, scores: &mut [i64]) {
        if state.read::<PreScoreState>(PRE_SCORE_KEY).is_none() {
            return;
        }
        let valid = scores.iter().copied().filter(|s| *s != IGNORED);
        let (min, max) = valid.fold((i64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
        for s in scores.iter_mut() {
            *s = match *s {
                IGNORED => 0,
                _ if max == 0 => MAX_NODE_SCORE,
                raw => MAX_NODE_SCORE * (max + min - raw) / max,
            };
        }
    }
}
