//! Hard constraints: PreFilter precomputes, per constraint, the matching pods of every eligible
//! domain and the global minimum; Filter looks up the node's domain.

use crate::framework::{CycleState, FilterPlugin, PreFilterPlugin};
use crate::intern::Sym;
use crate::labels::LabelSelector;
use crate::model::{Pod, WhenUnsatisfiable};
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::snapshot::Snapshot;
use crate::status::Status;
use crate::topology::FxMap;

use super::{ERR_REASON_CONSTRAINTS_NOT_MATCH, ERR_REASON_NODE_LABEL_NOT_MATCH, PodTopologySpread, counting};

pub(super) const PRE_FILTER_KEY: &str = "PreFilterPodTopologySpread";

/// What Filter needs of one hard constraint.
#[derive(Clone, Debug)]
pub(super) struct HardConstraint {
    pub(super) key: Sym,
    pub(super) max_skew: i64,
    /// 1 if the incoming pod matches the constraint's own selector.
    pub(super) self_match: i64,
    /// The global minimum, `minDomains` applied.
    pub(super) min_match: i64,
    /// Matching pods per eligible domain; absent means 0.
    pub(super) counts: FxMap<Sym, i64>,
    /// For the PreFilter extensions: the eligible domains, `minDomains`, the selector, and
    /// which nodes count.
    num_domains: usize,
    min_domains: i32,
    selector: Option<LabelSelector>,
    rule: counting::NodeRule,
}

/// PreFilter's result for one pod.
#[derive(Clone, Debug)]
pub(super) struct PreFilterState {
    pub(super) constraints: Vec<HardConstraint>,
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<Option<Vec<NodeId>>, Status> {
        let constraints = self.constraints(pod, WhenUnsatisfiable::DoNotSchedule, snapshot);
        if constraints.is_empty() {
            return Err(Status::skip());
        }
        // A node counts toward a hard constraint only if it has every constraint's key.
        let keys: Vec<Sym> = constraints.iter().map(|c| c.key).collect();
        let hard = constraints
            .iter()
            .map(|c| {
                let domains = counting::count(snapshot, pod, c, &keys);
                HardConstraint {
                    key: c.key,
                    max_skew: i64::from(c.max_skew),
                    self_match: i64::from(c.selector.as_ref().is_some_and(|s| s.matches(&pod.labels))),
                    min_match: domains.min_match(c.min_domains),
                    num_domains: domains.num_domains,
                    counts: domains.counts,
                    min_domains: c.min_domains,
                    selector: c.selector.as_deref().cloned(),
                    rule: counting::NodeRule::new(pod, c, &keys),
                }
            })
            .collect();
        state.write(PRE_FILTER_KEY, PreFilterState { constraints: hard });
        Ok(None)
    }

    fn add_pod(&self, state: &mut CycleState, pod: &Pod, other: &Pod, node: &NodeInfo, _: &Snapshot) {
        update(state, pod, other, node, 1);
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &Pod, other: &Pod, node: &NodeInfo, _: &Snapshot) {
        update(state, pod, other, node, -1);
    }
}

/// Counts `other` on `node` in (`delta` 1) or out of (-1) each hard constraint it matches, and
/// recomputes the constraint's global minimum (upstream's `updateWithPod`).
fn update(state: &mut CycleState, pod: &Pod, other: &Pod, node: &NodeInfo, delta: i64) {
    let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) else { return };
    for c in &mut s.constraints {
        let matches =
            other.namespace == pod.namespace && c.selector.as_ref().is_some_and(|sel| sel.matches(&other.labels));
        let Some(domain) = node.node.labels.get(c.key) else { continue };
        if !matches || !c.rule.admits(pod, node) {
            continue;
        }
        *c.counts.entry(domain).or_insert(0) += delta;
        c.min_match = counting::global_min(&c.counts, c.num_domains, c.min_domains);
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, _: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_KEY) else {
            return Status::error("PodTopologySpread: Filter ran without PreFilter state");
        };
        for c in &s.constraints {
            let Some(domain) = node.node.labels.get(c.key) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let matching = c.counts.get(&domain).copied().unwrap_or(0);
            if matching + c.self_match - c.min_match > c.max_skew {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}
