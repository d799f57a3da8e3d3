//! Soft constraints: PreScore precomputes matching pods per domain and each constraint's
//! topology weight; Score looks up the node's domains; NormalizeScore turns fewer matches into
//! a higher score.

use crate::framework::{CycleState, MAX_NODE_SCORE, PreScorePlugin, ScoreBatch, ScorePlugin};
use crate::intern::Sym;
use crate::model::{Pod, WhenUnsatisfiable};
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::snapshot::Snapshot;
use crate::status::Status;
use crate::topology::{DomainColumn, FxMap, FxSet};

use super::{Constraint, PodTopologySpread, counting};

pub(super) const PRE_SCORE_KEY: &str = "PreScorePodTopologySpread";

/// Score of a node missing one of the keys; upstream's `invalidScore`, which NormalizeScore
/// turns into 0. Real raw scores are never negative.
pub(super) const IGNORED: i64 = -1;

/// What Score needs of one soft constraint.
#[derive(Clone, Debug)]
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
        let matching = if self.per_node {
            // Most nodes hold no matching pod; skip hashing while no node does.
            if self.node_counts.is_empty() { 0 } else { self.node_counts.get(&id).copied().unwrap_or(0) }
        } else {
            self.counts.get(&domain).copied().unwrap_or(0)
        };
        matching as f64 * self.weight + (self.max_skew - 1) as f64
    }
}

/// One soft constraint's addend per domain number, for a batch of nodes.
struct Addends<'a> {
    constraint: &'a SoftConstraint,
    /// Per domain number (not per node): the addend of the domain's count.
    by_domain: Vec<f64>,
    /// The addend of a node holding no matching pod (per-node constraints).
    empty: f64,
    /// Bit `id % 4096` set when node `id` may hold matching pods (per-node constraints): most
    /// nodes hold none, and a bit test is cheaper than a hash lookup.
    maybe: Vec<u64>,
}

const MAYBE_BITS: usize = 4096;

/// Final scores of the nodes that hold no matching pod, per domain number of the one
/// constraint that is not per node (or a single score if every constraint is per node): most
/// nodes are such nodes, and the sum and its rounding then need not be done per node.
struct Memo {
    /// Index of the constraint that is not per node, if any.
    by: Option<usize>,
    scores: Vec<i64>,
    /// Per constraint: every node has its key, so a node's column need not be read to know.
    everywhere: Vec<bool>,
}

impl Memo {
    /// `None` when more than one constraint is not per node. `everywhere(key)`: no node
    /// lacks `key`.
    fn new(addends: &[Addends<'_>], columns: &[DomainColumn<'_>], everywhere: impl Fn(Sym) -> bool) -> Option<Memo> {
        let mut domain_wise = addends.iter().enumerate().filter(|(_, a)| !a.constraint.per_node);
        let by = domain_wise.next().map(|(i, _)| i);
        if domain_wise.next().is_some() {
            return None;
        }
        let domains = by.and_then(|i| columns.get(i)).map_or(1, |c| c.values.len());
        // The same sum, in the same order, as the per-node path: the same bits.
        let scores = (0..domains)
            .map(|d| {
                let total = addends.iter().enumerate().fold(0.0, |t, (i, a)| {
                    t + if Some(i) == by { a.by_domain.get(d).copied().unwrap_or(a.empty) } else { a.empty }
                });
                round(total)
            })
            .collect();
        let everywhere = addends.iter().map(|a| everywhere(a.constraint.key)).collect();
        Some(Memo { by, scores, everywhere })
    }

    /// Node `id`'s score if it has every key and holds no matching pod.
    fn get(&self, addends: &[Addends<'_>], columns: &[DomainColumn<'_>], id: NodeId) -> Option<i64> {
        let mut domain = 0;
        for (i, (a, col)) in addends.iter().zip(columns).enumerate() {
            if Some(i) == self.by {
                domain = col.number(id)?;
            } else if a.may_hold(id) || !(self.everywhere.get(i) == Some(&true) || col.number(id).is_some()) {
                return None;
            }
        }
        self.scores.get(domain as usize).copied()
    }
}

impl<'a> Addends<'a> {
    fn new(c: &'a SoftConstraint, col: &DomainColumn<'_>) -> Addends<'a> {
        let addend = |count: i64| count as f64 * c.weight + (c.max_skew - 1) as f64;
        let mut maybe = Vec::new();
        let by_domain = if c.per_node {
            maybe = vec![0u64; MAYBE_BITS / 64];
            for id in c.node_counts.keys() {
                let bit = *id as usize % MAYBE_BITS;
                maybe[bit / 64] |= 1 << (bit % 64);
            }
            Vec::new()
        } else {
            col.values.iter().map(|d| addend(c.counts.get(d).copied().unwrap_or(0))).collect()
        };
        Addends { constraint: c, by_domain, empty: addend(0), maybe }
    }

    /// Whether node `id` may hold matching pods (per-node constraints).
    fn may_hold(&self, id: NodeId) -> bool {
        let bit = id as usize % MAYBE_BITS;
        self.maybe.get(bit / 64).is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    /// The addend of node `id` in domain number `d`: what [`SoftConstraint::add`] gives.
    fn at(&self, id: NodeId, d: u32) -> f64 {
        if self.constraint.per_node {
            if !self.may_hold(id) {
                return self.empty;
            }
            let c = self.constraint;
            return c.node_counts.get(&id).copied().unwrap_or(0) as f64 * c.weight + (c.max_skew - 1) as f64;
        }
        self.by_domain.get(d as usize).copied().unwrap_or(self.empty)
    }
}

/// `x.round() as i64` (half away from zero, as Go's `math.Round`), without the libm call
/// `f64::round` costs on baseline x86-64: for 0 <= x < 2^52 the fraction `x - trunc(x)` is
/// exact, so comparing it with one half rounds exactly as `round` does.
fn round(x: f64) -> i64 {
    if (0.0..4_503_599_627_370_496.0).contains(&x) {
        let t = x as i64;
        t + i64::from(x - t as f64 >= 0.5)
    } else {
        x.round() as i64
    }
}

/// PreScore's result for one pod.
#[derive(Clone, Debug)]
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
        let constraints = self.constraints(pod, WhenUnsatisfiable::ScheduleAnyway, snapshot);
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
        round(total)
    }

    /// As `score`, reading the state once, each node's domains from the topology index's
    /// columns and each domain's addend from a table built per call, so that a node is never
    /// touched (nor a map consulted) when every key is tracked. Sums in the same order as
    /// `score`, so the results are bit for bit the same.
    fn score_batch(&self, state: &CycleState, pod: &Pod, batch: ScoreBatch<'_>, out: &mut [i64]) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            out.fill(0);
            return;
        };
        let index = batch.snapshot.topology();
        let columns: Option<Vec<DomainColumn<'_>>> = s.constraints.iter().map(|c| index.domain_column(c.key)).collect();
        let Some(columns) = columns else {
            for (o, n) in out.iter_mut().zip(batch.nodes) {
                *o = self.score(state, pod, n);
            }
            return;
        };
        let addends: Vec<Addends> = s.constraints.iter().zip(&columns).map(|(c, col)| Addends::new(c, col)).collect();
        let memo = Memo::new(&addends, &columns, |key| index.nodes_missing(key).is_some_and(|m| m.is_empty()));
        for (o, &id) in out.iter_mut().zip(batch.ids) {
            if let Some(score) = memo.as_ref().and_then(|m| m.get(&addends, &columns, id)) {
                *o = score;
                continue;
            }
            let mut total = 0.0;
            let mut missing = false;
            for (a, col) in addends.iter().zip(&columns) {
                match col.number(id) {
                    Some(d) => total += a.at(id, d),
                    None => missing = true,
                }
            }
            *o = if missing && s.require_all_keys { IGNORED } else { round(total) };
        }
    }

    fn normalize_score(&self, state: &CycleState, _: &Pod, scores: &mut [i64]) {
        if state.read::<PreScoreState>(PRE_SCORE_KEY).is_none() {
            return;
        }
        let valid = scores.iter().copied().filter(|s| *s != IGNORED);
        let (min, max) = valid.fold((i64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
        let normalize = |raw: i64| match raw {
            IGNORED => 0,
            _ if max == 0 => MAX_NODE_SCORE,
            raw => MAX_NODE_SCORE * (max + min - raw) / max,
        };
        // Raw scores are few distinct small numbers: divide once per value, not per node.
        let span = max.checked_sub(min).and_then(|s| usize::try_from(s).ok()).filter(|s| *s < scores.len().min(4096));
        match span {
            Some(span) => {
                let table: Vec<i64> = (0..=span as i64).map(|k| normalize(min + k)).collect();
                for s in scores.iter_mut() {
                    *s = match usize::try_from(*s - min).ok().and_then(|k| table.get(k)) {
                        Some(v) if *s != IGNORED => *v,
                        _ => normalize(*s),
                    };
                }
            }
            None => scores.iter_mut().for_each(|s| *s = normalize(*s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn round_is_f64_round(whole in 0i64..1 << 40, frac in 0u32..16, jitter in -2i64..=2) {
            // Halves and their neighbours are the cases that matter.
            let x = whole as f64 + f64::from(frac) / 16.0;
            let x = f64::from_bits((x.to_bits() as i64 + jitter).max(0) as u64);
            prop_assert_eq!(round(x), x.round() as i64);
        }

        #[test]
        fn normalize_by_table_equals_dividing(raw in proptest::collection::vec(-1i64..300, 1..200)) {
            let pl = PodTopologySpread::from_args(super::super::PodTopologySpreadArgs::default())
                .unwrap_or_else(|e| panic!("{e}"));
            let mut cs = CycleState::new();
            cs.write(PRE_SCORE_KEY, PreScoreState { constraints: Vec::new(), require_all_keys: false });
            let valid = raw.iter().copied().filter(|s| *s != IGNORED);
            let (min, max) = valid.fold((i64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
            let want: Vec<i64> = raw
                .iter()
                .map(|&s| match s {
                    IGNORED => 0,
                    _ if max == 0 => MAX_NODE_SCORE,
                    s => MAX_NODE_SCORE * (max + min - s) / max,
                })
                .collect();
            let mut got = raw.clone();
            pl.normalize_score(&cs, &Pod::new("default", "p", crate::resources::ResourceVec::ZERO), &mut got);
            prop_assert_eq!(got, want);
        }
    }
}
