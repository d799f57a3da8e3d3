//! Required terms: PreFilter sums, per topology key and domain, the pods the incoming pod's
//! terms match and the existing pods whose anti-affinity matches it; Filter looks up the node's
//! domains.

use crate::framework::{CycleState, FilterPlugin, PreFilterPlugin};
use crate::intern::Sym;
use crate::labels::LabelSet;
use crate::model::{AffinityTerm, Pod};
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::snapshot::Snapshot;
use crate::status::Status;
use crate::topology::TermKind;

use super::{
    ERR_REASON_AFFINITY_RULES_NOT_MATCH, ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH,
    ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH, InterPodAffinity, TopologyCounts, count_matching_pods,
    for_each_existing_term, incoming_term_matches,
};

pub(super) const PRE_FILTER_KEY: &str = "PreFilterInterPodAffinity";

/// PreFilter's result for one pod.
#[derive(Clone, Debug, Default)]
pub(super) struct PreFilterState {
    /// The topology key of each required affinity term, in order.
    affinity_keys: Vec<Sym>,
    /// Pods matching all required affinity terms, per domain of each term's key.
    affinity: TopologyCounts,
    /// Whether the pod matches all its own required affinity terms.
    self_match: bool,
    /// Pods matching a required anti-affinity term, per domain of its key.
    anti_affinity: TopologyCounts,
    /// Existing pods whose required anti-affinity matches the pod, per domain of the term's key.
    existing_anti_affinity: TopologyCounts,
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<Option<Vec<NodeId>>, Status> {
        let mut s = PreFilterState::default();
        for_each_existing_term(
            snapshot,
            pod,
            |kind| kind == TermKind::RequiredAntiAffinity,
            |_, key, domain, n| s.existing_anti_affinity.add(key, domain, n),
        );
        let affinity = &pod.pod_affinity.required;
        let anti_affinity = &pod.pod_anti_affinity.required;
        if s.existing_anti_affinity.is_empty() && affinity.is_empty() && anti_affinity.is_empty() {
            return Err(Status::skip());
        }
        if !affinity.is_empty() {
            let terms: Vec<&AffinityTerm> = affinity.iter().collect();
            let mut keys: Vec<Sym> = affinity.iter().map(|t| t.topology_key).collect();
            s.affinity_keys = keys.clone();
            keys.sort_unstable();
            keys.dedup();
            count_matching_pods(snapshot, pod, &terms, &keys, 1, &mut s.affinity);
            s.self_match =
                terms.iter().all(|t| incoming_term_matches(t, pod.namespace, pod.namespace, &pod.labels, snapshot));
        }
        for t in anti_affinity {
            count_matching_pods(snapshot, pod, &[t], &[t.topology_key], 1, &mut s.anti_affinity);
        }
        state.write(PRE_FILTER_KEY, s);
        Ok(None)
    }

    fn add_pod(&self, state: &mut CycleState, pod: &Pod, other: &Pod, node: &NodeInfo, snapshot: &Snapshot) {
        update(state, pod, other, node, snapshot, 1);
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &Pod, other: &Pod, node: &NodeInfo, snapshot: &Snapshot) {
        update(state, pod, other, node, snapshot, -1);
    }
}

/// Counts `other` on `node` in (`delta` 1) or out of (-1) what PreFilter summed for `pod`, as
/// upstream's `updateWithPod`: its anti-affinity terms that match `pod`, and `pod`'s own terms
/// that match it.
fn update(state: &mut CycleState, pod: &Pod, other: &Pod, node: &NodeInfo, snapshot: &Snapshot, delta: i64) {
    let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) else { return };
    let labels = &node.node.labels;
    for t in &other.pod_anti_affinity.required {
        if let Some(domain) = labels.get(t.topology_key)
            && incoming_term_matches(t, other.namespace, pod.namespace, &pod.labels, snapshot)
        {
            s.existing_anti_affinity.add(t.topology_key, domain, delta);
        }
    }
    let affinity = &pod.pod_affinity.required;
    if !affinity.is_empty()
        && affinity.iter().all(|t| incoming_term_matches(t, pod.namespace, other.namespace, &other.labels, snapshot))
    {
        let mut keys = s.affinity_keys.clone();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            if let Some(domain) = labels.get(key) {
                s.affinity.add(key, domain, delta);
            }
        }
    }
    for t in &pod.pod_anti_affinity.required {
        if let Some(domain) = labels.get(t.topology_key)
            && incoming_term_matches(t, pod.namespace, other.namespace, &other.labels, snapshot)
        {
            s.anti_affinity.add(t.topology_key, domain, delta);
        }
    }
}

impl PreFilterState {
    fn satisfies_affinity(&self, labels: &LabelSet) -> bool {
        let mut pods_exist = true;
        for key in &self.affinity_keys {
            let Some(domain) = labels.get(*key) else { return false };
            if self.affinity.get(*key, domain) <= 0 {
                pods_exist = false;
            }
        }
        // The first pod of a group with affinity to itself: nothing to be near yet.
        pods_exist || (self.affinity.is_empty() && self.self_match)
    }
}

fn any_in_domain(counts: &TopologyCounts, labels: &LabelSet) -> bool {
    counts.0.iter().any(|(key, m)| labels.get(*key).is_some_and(|d| m.get(&d).is_some_and(|n| *n > 0)))
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, _: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_KEY) else {
            return Status::error("InterPodAffinity: Filter ran without PreFilter state");
        };
        let labels = &node.node.labels;
        if !s.satisfies_affinity(labels) {
            return Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH);
        }
        if any_in_domain(&s.anti_affinity, labels) {
            return Status::unschedulable(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        if any_in_domain(&s.existing_anti_affinity, labels) {
            return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        Status::success()
    }
}
