//! InterPodAffinity: place a pod near, or away from, pods with given labels, by topology domain.
//!
//! Filter (required terms):
//! - every required affinity term's domain on the node must hold a pod that matches *all* the
//!   pod's required affinity terms; when no such pod exists anywhere and the pod matches all its
//!   own terms, any node carrying the terms' keys will do (the first pod of a group that
//!   attracts itself) — "node(s) didn't match pod affinity rules", unresolvable;
//! - no required anti-affinity term's domain on the node may hold a pod the term matches —
//!   "node(s) didn't match pod anti-affinity rules";
//! - no existing pod's required anti-affinity term that matches this pod may have the node in
//!   its domain — "node(s) didn't satisfy existing pods anti-affinity rules".
//!
//! Score sums, per domain of the node: the weights of the pod's preferred affinity terms (minus
//! those of its preferred anti-affinity terms) times the matching pods there, and for every
//! existing pod there whose terms match this pod, `hardPodAffinityWeight` per required affinity
//! term and the weight of each preferred (anti-)affinity term. NormalizeScore maps the scored
//! nodes' min..max onto 0..100. With `ignorePreferredTermsOfExistingPods`, a pod without
//! preferred terms of its own is not scored at all.
//!
//! Namespaces: a term looks at its `namespaces`, plus those its `namespaceSelector` selects
//! (an empty selector selects all), or only at its owner's namespace when it has neither. The
//! incoming pod's selectors are evaluated against the snapshot's namespace labels (an unknown
//! namespace matches no non-empty selector); an existing pod's against the incoming pod's
//! namespace labels (an unknown namespace has none).
//!
//! Cost: the pod's terms find their matching label sets, and the existing pods' terms that match
//! the pod are found from the pod's labels, both through the snapshot's
//! [`TopologyIndex`](crate::topology::TopologyIndex); their per-domain counts are summed into
//! CycleState, so PreFilter and PreScore cost O(domains holding matching pods). A term whose
//! topology key is not tracked is placed from the index's per-node counts instead, which costs
//! O(nodes holding matching pods).

use std::sync::Arc;

use serde::Deserialize;

use crate::framework::{FilterPlugin, Plugin, PreFilterPlugin, PreScorePlugin, ScorePlugin};
use crate::intern::Sym;
use crate::model::{AffinityTerm, Pod};
use crate::registry::{PluginArgs, PluginError, decode_args};
use crate::snapshot::Snapshot;
use crate::topology::{FxMap, PodLabels, TermKind, scope_selects, single_namespace};

mod filter;
mod score;
#[cfg(test)]
mod tests;

/// The plugin's name.
pub const NAME: &str = "InterPodAffinity";
/// Upstream's reason when the pod's required affinity is not met.
pub const ERR_REASON_AFFINITY_RULES_NOT_MATCH: &str = "node(s) didn't match pod affinity rules";
/// Upstream's reason when the pod's required anti-affinity is not met.
pub const ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH: &str = "node(s) didn't match pod anti-affinity rules";
/// Upstream's reason when an existing pod's required anti-affinity forbids the node.
pub const ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// `InterPodAffinityArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InterPodAffinityArgs {
    /// Score weight of an existing pod's required affinity term that matches the pod, 0–100.
    #[serde(default = "one")]
    pub hard_pod_affinity_weight: i32,
    /// Skip scoring pods that have no preferred terms of their own.
    #[serde(default)]
    pub ignore_preferred_terms_of_existing_pods: bool,
}

fn one() -> i32 {
    1
}

impl Default for InterPodAffinityArgs {
    fn default() -> Self {
        InterPodAffinityArgs { hard_pod_affinity_weight: 1, ignore_preferred_terms_of_existing_pods: false }
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct InterPodAffinity {
    hard_pod_affinity_weight: i64,
    ignore_preferred_terms_of_existing_pods: bool,
}

/// Makes the plugin from `InterPodAffinityArgs`.
pub fn new(args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(InterPodAffinity::from_args(decode_args(NAME, args)?)?))
}

impl InterPodAffinity {
    /// Builds the plugin from decoded args.
    pub fn from_args(args: InterPodAffinityArgs) -> Result<InterPodAffinity, PluginError> {
        if !(0..=100).contains(&args.hard_pod_affinity_weight) {
            let msg = format!("hardPodAffinityWeight must be in 0..=100, got {}", args.hard_pod_affinity_weight);
            return Err(PluginError::bad_args(NAME, msg));
        }
        Ok(InterPodAffinity {
            hard_pod_affinity_weight: i64::from(args.hard_pod_affinity_weight),
            ignore_preferred_terms_of_existing_pods: args.ignore_preferred_terms_of_existing_pods,
        })
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// Per topology key, a number per domain (upstream's `topologyToMatchedTermCount` and
/// `scoreMap`), with few keys so a list beats a map.
#[derive(Clone, Debug, Default)]
struct TopologyCounts(Vec<(Sym, FxMap<Sym, i64>)>);

impl TopologyCounts {
    fn add(&mut self, key: Sym, domain: Sym, n: i64) {
        let i = match self.0.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.0.push((key, FxMap::default()));
                self.0.len() - 1
            }
        };
        if let Some((_, m)) = self.0.get_mut(i) {
            *m.entry(domain).or_insert(0) += n;
        }
    }

    fn get(&self, key: Sym, domain: Sym) -> i64 {
        self.0.iter().find(|(k, _)| *k == key).and_then(|(_, m)| m.get(&domain)).copied().unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|(_, m)| m.is_empty())
    }
}

/// Whether the incoming pod's `term` (the pod being in `owner`) matches a pod in `ns` with
/// `labels`.
fn incoming_term_matches(
    term: &AffinityTerm,
    owner: Sym,
    ns: Sym,
    labels: &crate::labels::LabelSet,
    snapshot: &Snapshot,
) -> bool {
    let Some(selector) = &term.selector else { return false };
    let scope = &term.namespaces;
    let ns_ok = if scope.names.is_empty() && scope.selector.is_none() {
        ns == owner
    } else {
        scope_selects(scope, owner, ns, snapshot.namespace_labels(ns))
    };
    ns_ok && selector.matches(labels)
}

/// Adds `weight` per existing pod matching *every* term of `terms` (all from `pod`), per domain
/// of each key of `keys`, into `out`.
fn count_matching_pods(
    snapshot: &Snapshot,
    pod: &Pod,
    terms: &[&AffinityTerm],
    keys: &[Sym],
    weight: i64,
    out: &mut TopologyCounts,
) {
    let Some((first, Some(first_selector))) = terms.first().map(|t| (t, &t.selector)) else { return };
    let index = snapshot.topology();
    let mut sets = Vec::new();
    let ns_hint = single_namespace(&first.namespaces, pod.namespace);
    let matches_all =
        |s: &PodLabels| terms.iter().all(|t| incoming_term_matches(t, pod.namespace, s.namespace, &s.labels, snapshot));
    index.for_each_matching_set(ns_hint, first_selector, matches_all, |id| sets.push(id));
    let (tracked, untracked): (Vec<Sym>, Vec<Sym>) = keys.iter().partition(|k| index.is_tracked(**k));
    for key in &tracked {
        for id in &sets {
            for (domain, n) in index.set_domains(*key, *id) {
                out.add(*key, domain, n * weight);
            }
        }
    }
    if untracked.is_empty() || sets.is_empty() {
        return;
    }
    // Untracked keys: the nodes holding matching pods, from the index's per-node counts.
    for id in &sets {
        for (name, n) in index.set_nodes(*id) {
            let Some(node) = snapshot.node_by_name(name) else { continue };
            for key in &untracked {
                if let Some(domain) = node.node.labels.get(*key) {
                    out.add(*key, domain, n * weight);
                }
            }
        }
    }
}

/// Calls `f(kind, key, domain, amount)` for every existing pod's term of a kind `wanted` accepts
/// that matches `pod`, with the pods carrying it (or their summed weights) in the domain.
fn for_each_existing_term(
    snapshot: &Snapshot,
    pod: &Pod,
    wanted: impl Fn(TermKind) -> bool,
    mut f: impl FnMut(TermKind, Sym, Sym, i64),
) {
    let no_labels = crate::labels::LabelSet::default();
    let ns_labels = snapshot.namespace_labels(pod.namespace).unwrap_or(&no_labels);
    let index = snapshot.topology();
    index.for_each_term_matching(&pod.labels, |t| {
        if !wanted(t.kind) || !t.term.selects_namespace(pod.namespace, Some(ns_labels)) {
            return;
        }
        let key = t.term.term.topology_key;
        if index.is_tracked(key) {
            t.domains.iter().for_each(|(domain, n)| f(t.kind, key, *domain, *n));
            return;
        }
        // Untracked key: the term's carriers per node, placed by their nodes' labels.
        for (name, n) in &t.nodes {
            if let Some(domain) = snapshot.node_by_name(*name).and_then(|node| node.node.labels.get(key)) {
                f(t.kind, key, domain, *n);
            }
        }
    });
}
