//! Matching pods per *eligible* domain of one constraint's key.
//!
//! The index counts pods per domain over every node that has the key. A constraint only counts
//! nodes it deems eligible (all constraint keys present, inclusion policies met), so the nodes
//! that might not be (those missing another key, or tainted under Honor) have their pods
//! subtracted from the index's totals. When any node might not be (the pod restricts nodes
//! under Honor) or the key is untracked, every node is looked at, its matching pods read from
//! the index's per-node counts: O(nodes), never O(pods).

use crate::intern::Sym;
use crate::labels::LabelSelector;
use crate::model::{InclusionPolicy, Pod, TaintEffect};
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::snapshot::Snapshot;
use crate::topology::{FxMap, SetId, TopologyIndex};

use super::Constraint;

/// Matching pods per eligible domain.
#[derive(Clone, Debug, Default)]
pub(super) struct DomainCounts {
    /// Matching pods per domain. An eligible domain with no matching pod may be absent; an
    /// ineligible domain never has a count.
    pub(super) counts: FxMap<Sym, i64>,
    /// How many domains are eligible.
    pub(super) num_domains: usize,
}

impl DomainCounts {
    /// The global minimum the skew is measured from: the fewest matching pods of any eligible
    /// domain, or 0 when there are fewer eligible domains than `min_domains`.
    pub(super) fn min_match(&self, min_domains: i32) -> i64 {
        global_min(&self.counts, self.num_domains, min_domains)
    }
}

/// The fewest matching pods of any of `num_domains` eligible domains (`counts` may leave out
/// empty ones), or 0 when there are fewer than `min_domains` of them.
pub(super) fn global_min(counts: &FxMap<Sym, i64>, num_domains: usize, min_domains: i32) -> i64 {
    if (num_domains as i64) < i64::from(min_domains) {
        return 0;
    }
    let occupied = counts.values().filter(|n| **n > 0).count();
    if occupied < num_domains { 0 } else { counts.values().copied().min().unwrap_or(0) }
}

/// Which nodes a constraint counts.
struct Eligibility<'a> {
    pod: &'a Pod,
    all_keys: &'a [Sym],
    honor_affinity: bool,
    honor_taints: bool,
}

/// [`Eligibility`] kept in a constraint's PreFilter state, for its PreFilter extensions.
#[derive(Clone, Debug)]
pub(super) struct NodeRule {
    all_keys: Vec<Sym>,
    honor_affinity: bool,
    honor_taints: bool,
}

impl NodeRule {
    /// The rule `c` applies for `pod`.
    pub(super) fn new(pod: &Pod, c: &Constraint<'_>, all_keys: &[Sym]) -> NodeRule {
        let e = Eligibility::new(pod, c, all_keys);
        NodeRule { all_keys: all_keys.to_vec(), honor_affinity: e.honor_affinity, honor_taints: e.honor_taints }
    }

    /// Whether node `n` counts for `pod`.
    pub(super) fn admits(&self, pod: &Pod, n: &NodeInfo) -> bool {
        let e = Eligibility {
            pod,
            all_keys: &self.all_keys,
            honor_affinity: self.honor_affinity,
            honor_taints: self.honor_taints,
        };
        e.admits(n)
    }
}

impl<'a> Eligibility<'a> {
    fn new(pod: &'a Pod, c: &Constraint<'_>, all_keys: &'a [Sym]) -> Eligibility<'a> {
        let restricts_nodes = !pod.node_selector.is_empty() || pod.required_node_affinity.is_some();
        Eligibility {
            pod,
            all_keys,
            honor_affinity: c.affinity_policy == InclusionPolicy::Honor && restricts_nodes,
            honor_taints: c.taints_policy == InclusionPolicy::Honor,
        }
    }

    fn admits(&self, n: &NodeInfo) -> bool {
        let labels = &n.node.labels;
        self.all_keys.iter().all(|k| labels.has(*k))
            && (!self.honor_affinity || node_matches_pod_affinity(self.pod, n))
            && (!self.honor_taints || !has_untolerated_hard_taint(self.pod, n))
    }

    /// The nodes that may not be admitted, or `None` when any node may not be.
    fn suspects(&self, index: &TopologyIndex, key: Sym) -> Option<Vec<NodeId>> {
        if self.honor_affinity {
            return None;
        }
        let mut ids = Vec::new();
        for k in self.all_keys.iter().filter(|k| **k != key) {
            ids.extend(index.nodes_missing(*k)?.iter().copied());
        }
        if self.honor_taints {
            ids.extend(index.hard_tainted_nodes().iter().copied());
        }
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }
}

/// The pod's nodeSelector and required node affinity, as the Honor policy reads them.
fn node_matches_pod_affinity(pod: &Pod, n: &NodeInfo) -> bool {
    n.node.labels.contains_all(&pod.node_selector)
        && pod.required_node_affinity.as_ref().is_none_or(|a| a.matches(&n.node.labels, n.node.name))
}

fn has_untolerated_hard_taint(pod: &Pod, n: &NodeInfo) -> bool {
    n.node.taints.iter().any(|t| {
        matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute)
            && !pod.tolerations.iter().any(|tol| tol.tolerates(t))
    })
}

/// Matching pods per eligible domain of `c.key`, where eligible nodes carry every key of
/// `all_keys` (empty when not required) and meet `c`'s inclusion policies.
pub(super) fn count(snapshot: &Snapshot, pod: &Pod, c: &Constraint<'_>, all_keys: &[Sym]) -> DomainCounts {
    let index = snapshot.topology();
    let eligibility = Eligibility::new(pod, c, all_keys);
    let sets = matching_sets(index, pod.namespace, c.selector.as_deref());
    if index.is_tracked(c.key)
        && let Some(ids) = eligibility.suspects(index, c.key)
    {
        let ineligible: Vec<&NodeInfo> = ids
            .iter()
            .filter_map(|id| snapshot.node(*id))
            .map(|n| n.as_ref())
            .filter(|n| !eligibility.admits(n))
            .collect();
        return subtract(index, c.key, &sets, &ineligible);
    }
    // The key is untracked, or any node may be ineligible: look at every node, reading its
    // matching pods from the index rather than matching them one by one.
    let per_node = node_counts(index, &sets);
    let mut counts = FxMap::default();
    for n in snapshot.nodes() {
        if let Some(domain) = n.node.labels.get(c.key)
            && eligibility.admits(n)
        {
            *counts.entry(domain).or_insert(0) += per_node.get(&n.node.name).copied().unwrap_or(0);
        }
    }
    DomainCounts { num_domains: counts.len(), counts }
}

/// Matching pods per node name, with no eligibility: what upstream scores a hostname constraint
/// by (the node's own pods).
pub(super) fn count_per_node(snapshot: &Snapshot, pod: &Pod, selector: Option<&LabelSelector>) -> FxMap<Sym, i64> {
    let index = snapshot.topology();
    node_counts(index, &matching_sets(index, pod.namespace, selector))
}

/// The index's per-domain counts minus the pods of the `ineligible` nodes; a domain all of whose
/// nodes are ineligible is no domain.
fn subtract(index: &TopologyIndex, key: Sym, sets: &[SetId], ineligible: &[&NodeInfo]) -> DomainCounts {
    let mut counts = FxMap::default();
    for id in sets {
        for (domain, n) in index.set_domains(key, *id) {
            *counts.entry(domain).or_insert(0) += n;
        }
    }
    if ineligible.is_empty() {
        return DomainCounts { counts, num_domains: index.num_domains(key).unwrap_or(0) };
    }
    let per_node = node_counts(index, sets);
    let mut lost_nodes: FxMap<Sym, u32> = FxMap::default();
    for n in ineligible {
        let Some(domain) = n.node.labels.get(key) else { continue };
        *lost_nodes.entry(domain).or_insert(0) += 1;
        let m = per_node.get(&n.node.name).copied().unwrap_or(0);
        if m != 0
            && let Some(c) = counts.get_mut(&domain)
        {
            *c -= m;
            if *c <= 0 {
                counts.remove(&domain);
            }
        }
    }
    let dead = lost_nodes.iter().filter(|(d, lost)| index.domain_nodes(key, **d) <= **lost).count();
    DomainCounts { counts, num_domains: index.num_domains(key).unwrap_or(0).saturating_sub(dead) }
}

/// The label sets of namespace `ns` that `selector` matches (none for a missing selector).
fn matching_sets(index: &TopologyIndex, ns: Sym, selector: Option<&LabelSelector>) -> Vec<SetId> {
    let mut sets = Vec::new();
    if let Some(selector) = selector {
        index.for_each_matching_set(Some(ns), selector, |_| true, |id| sets.push(id));
    }
    sets
}

fn node_counts(index: &TopologyIndex, sets: &[SetId]) -> FxMap<Sym, i64> {
    let mut per_node = FxMap::default();
    for id in sets {
        for (node, n) in index.set_nodes(*id) {
            *per_node.entry(node).or_insert(0) += n;
        }
    }
    per_node
}
