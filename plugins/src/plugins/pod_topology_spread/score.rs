//! Soft constraints: PreScore precomputes matching pods per domain and each constraint's
//! topology weight; Score looks up the node's domains; NormalizeScore turns fewer matches into
//! a higher score.

use crate::framework::{CycleState, MAX_NODE_SCORE, PreScorePlugin, ScoreBatch, ScorePlugin};
use crate::intern::Sym;
use crate::model::{Pod, WhenUnsatisfiable};
use crate::nodeinfo::{NodeId, NodeInfo};
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
    /// Matching pods per domain (unless `per_node`); absent means 0.
    pub(super) counts: FxMap<Sym, i64>,
    /// Whether the constraint counts per node (the hostname key: upstream counts the node's
    /// own pods, with no inclusion policy), in `node_counts`.
    pub(super) per_node: bool,
    /// Matching pods per node when `per_node`; absent means 0.
    pub(super) node_counts: FxMap<NodeId, i64>,
}

impl SoftConstraint {
    /// What the constraint adds for a node in `domain` with id `id` (upstream
    /// `scoreForCount`).
    fn add(&self, id: NodeId, domain: Sym) -> f64 {
        let matching = if self.per_node { self.node_counts.get(&id) } else { self.counts.get(&domain) };
        matching.copied().unwrap_or(0) as f64 * self.weight + (self.max_skew - 1) as f64
    }
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
        let sizes = self.domain_sizes(snapshot, &constraints, nodes, required);
        let soft = constraints
            .iter()
            .zip(sizes)
            .map(|(c, size)| {
                let per_node = c.key == self.hostname;
                let (counts, node_counts) = if per_node {
                    let by_name = counting::count_per_node(snapshot, pod, c.selector.as_deref());
                    let by_id = by_name.into_iter().filter_map(|(name, n)| Some((snapshot.node_id(name)?, n)));
                    (FxMap::default(), by_id.collect())
                } else {
                    (counting::count(snapshot, pod, c, required).counts, FxMap::default())
                };
                SoftConstraint {
                    key: c.key,
                    max_skew: i64::from(c.max_skew),
                    weight: ((size + 2) as f64).ln(),
                    counts,
                    per_node,
                    node_counts,
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
    ///
    /// Walking every scored node costs a cache miss or two per node on a big cluster, so the
    /// walk stops as soon as the answer is known: when no node lacks a required key (the index
    /// says so) the hostname size is the node count, and a key's size cannot exceed the
    /// domains the index knows (plus "" when some node lacks the key).
    fn domain_sizes(
        &self,
        snapshot: &Snapshot,
        constraints: &[Constraint<'_>],
        nodes: &[&NodeInfo],
        required: &[Sym],
    ) -> Vec<usize> {
        let index = snapshot.topology();
        let missing = Sym::new("");
        let mut values: Vec<FxSet<Sym>> = vec![FxSet::default(); constraints.len()];
        // Per constraint, the most distinct values it can reach (None: unknown).
        let bounds: Vec<Option<usize>> = constraints
            .iter()
            .map(|c| {
                let domains = index.num_domains(c.key)?;
                let lacking = index.nodes_missing(c.key)?;
                let empty_value = !lacking.is_empty() && !required.contains(&c.key);
                Some(domains + usize::from(empty_value))
            })
            .collect();
        let all_have_required = required.iter().all(|k| index.nodes_missing(*k).is_some_and(|m| m.is_empty()));
        let mut scored = 0;
        for n in nodes {
            let done = constraints
                .iter()
                .zip(&values)
                .zip(&bounds)
                .all(|((c, seen), bound)| c.key == self.hostname || bound.is_some_and(|b| seen.len() >= b));
            if done && all_have_required {
                scored = nodes.len();
                break;
            }
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
                total += c.add(node.id, domain);
            }
        }
        total.round() as i64
    }

    /// As `score`, reading the state once and each node's domains from the topology index's
    /// columns, so that a node is never touched when every key is tracked.
    fn score_batch(&self, state: &CycleState, pod: &Pod, batch: ScoreBatch<'_>, out: &mut [i64]) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            out.fill(0);
            return;
        };
        let index = batch.snapshot.topology();
        let columns: Option<Vec<&[Option<Sym>]>> = s.constraints.iter().map(|c| index.domain_column(c.key)).collect();
        let Some(columns) = columns else {
            for (o, n) in out.iter_mut().zip(batch.nodes) {
                *o = self.score(state, pod, n);
            }
            return;
        };
        let domain = |col: &[Option<Sym>], id: NodeId| col.get(id as usize).copied().flatten();
        for (o, &id) in out.iter_mut().zip(batch.ids) {
            if s.require_all_keys && !columns.iter().all(|col| domain(col, id).is_some()) {
                *o = IGNORED;
                continue;
            }
            let mut total = 0.0;
            for (c, col) in s.constraints.iter().zip(&columns) {
                if let Some(d) = domain(col, id) {
                    total += c.add(id, d);
                }
            }
            *o = total.round() as i64;
        }
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
