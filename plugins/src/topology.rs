//! Per-topology-domain pod counts, maintained incrementally as pods come and go.
//!
//! PodTopologySpread and InterPodAffinity ask "how many pods matching this selector are in the
//! zone of node X?". Scanning every pod to answer costs O(pods) per scheduled pod; instead, for
//! every topology key some constraint uses (a *tracked* key), the index keeps, per domain value,
//! how many pods of each distinct (namespace, labels) set it holds. Pods of one workload share a
//! label set, so a query costs O(label sets in the domain), and usually that is a handful.

use std::collections::HashMap;
use std::sync::Arc;

use crate::intern::Sym;
use crate::labels::{LabelSelector, LabelSet};
use crate::model::{AffinityTerm, Node, Pod};
use crate::nodeinfo::NodeInfo;

/// A distinct (namespace, labels) pair that pods share.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodLabels {
    /// The namespace.
    pub namespace: Sym,
    /// The labels.
    pub labels: LabelSet,
}

/// An existing pod's affinity term, keyed by the pod's namespace (which an empty namespace
/// list refers to).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnedTerm {
    /// The namespace of the pod that carries the term.
    pub owner_namespace: Sym,
    /// The term.
    pub term: AffinityTerm,
}

/// Which of an existing pod's terms an [`OwnedTerm`] entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TermKind {
    /// A required anti-affinity term: forbids matching pods in the domain.
    RequiredAntiAffinity,
    /// A required affinity term: scored with the hard pod affinity weight.
    RequiredAffinity,
    /// A preferred affinity term: scored with its weight.
    PreferredAffinity,
    /// A preferred anti-affinity term: scored with minus its weight.
    PreferredAntiAffinity,
}

/// Counts for one domain of one tracked key.
#[derive(Clone, Debug, Default)]
pub struct DomainCounts {
    /// Pods per label set.
    pub pods: HashMap<Arc<PodLabels>, i64>,
    /// Existing pods' terms per (kind, term): how many pods carry it (for required terms) or
    /// the sum of their weights (for preferred terms).
    pub terms: HashMap<(TermKind, Arc<OwnedTerm>), i64>,
}

impl DomainCounts {
    /// Pods in this domain whose namespace passes `ns` and whose labels match `selector`.
    pub fn count_matching(&self, ns: impl Fn(Sym) -> bool, selector: &LabelSelector) -> i64 {
        self.pods
            .iter()
            .filter(|(k, _)| ns(k.namespace) && selector.matches(&k.labels))
            .map(|(_, n)| *n)
            .sum()
    }

    fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.terms.is_empty()
    }
}

/// Domain counts for every tracked topology key.
#[derive(Clone, Debug, Default)]
pub struct TopologyIndex {
    keys: HashMap<Sym, HashMap<Sym, DomainCounts>>,
    interned: HashMap<PodLabels, Arc<PodLabels>>,
}

impl TopologyIndex {
    /// Whether `key` is tracked.
    pub fn is_tracked(&self, key: Sym) -> bool {
        self.keys.contains_key(&key)
    }

    /// The tracked keys.
    pub fn tracked_keys(&self) -> impl Iterator<Item = Sym> + '_ {
        self.keys.keys().copied()
    }

    /// Starts tracking `key`, counting the pods already on `nodes`.
    pub fn track<'a>(&mut self, key: Sym, nodes: impl Iterator<Item = &'a NodeInfo>) {
        self.keys.entry(key).or_default();
        for n in nodes {
            if let Some(domain) = n.node.labels.get(key) {
                for pod in &n.pods {
                    self.add_pod_to(key, domain, pod, 1);
                }
            }
        }
    }

    /// The counts of domain `value` of `key`, if the key is tracked and the domain holds pods.
    pub fn domain(&self, key: Sym, value: Sym) -> Option<&DomainCounts> {
        self.keys.get(&key)?.get(&value)
    }

    /// Every non-empty domain of `key`.
    pub fn domains(&self, key: Sym) -> impl Iterator<Item = (Sym, &DomainCounts)> + '_ {
        self.keys.get(&key).into_iter().flat_map(|m| m.iter().map(|(k, v)| (*k, v)))
    }

    /// Counts `pod` on `node`.
    pub fn add_pod(&mut self, node: &Node, pod: &Pod) {
        self.apply(node, pod, 1);
    }

    /// Uncounts `pod` on `node`.
    pub fn remove_pod(&mut self, node: &Node, pod: &Pod) {
        self.apply(node, pod, -1);
    }

    /// Counts every pod of `info`.
    pub fn add_node(&mut self, info: &NodeInfo) {
        for pod in &info.pods {
            self.apply(&info.node, pod, 1);
        }
    }

    /// Uncounts every pod of `info`.
    pub fn remove_node(&mut self, info: &NodeInfo) {
        for pod in &info.pods {
            self.apply(&info.node, pod, -1);
        }
    }

    fn apply(&mut self, node: &Node, pod: &Pod, sign: i64) {
        if self.keys.is_empty() {
            return;
        }
        let keys: Vec<(Sym, Sym)> = self
            .keys
            .keys()
            .filter_map(|k| node.labels.get(*k).map(|v| (*k, v)))
            .collect();
        for (key, domain) in keys {
            self.add_pod_to(key, domain, pod, sign);
        }
    }

    fn add_pod_to(&mut self, key: Sym, domain: Sym, pod: &Pod, sign: i64) {
        let labels = PodLabels { namespace: pod.namespace, labels: pod.labels.clone() };
        let labels = self.interned.entry(labels.clone()).or_insert_with(|| Arc::new(labels)).clone();
        let Some(domains) = self.keys.get_mut(&key) else { return };
        let counts = domains.entry(domain).or_default();
        bump(&mut counts.pods, labels, sign);
        for (kind, term, weight) in owned_terms(pod) {
            if term.topology_key == key {
                let owned = Arc::new(OwnedTerm { owner_namespace: pod.namespace, term: term.clone() });
                bump(&mut counts.terms, (kind, owned), sign * weight);
            }
        }
        if counts.is_empty() {
            domains.remove(&domain);
        }
    }
}

fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, i64>, key: K, delta: i64) {
    use std::collections::hash_map::Entry;
    match map.entry(key) {
        Entry::Occupied(mut o) => {
            *o.get_mut() += delta;
            if *o.get() == 0 {
                o.remove();
            }
        }
        Entry::Vacant(v) if delta != 0 => {
            v.insert(delta);
        }
        Entry::Vacant(_) => {}
    }
}

/// Upstream's default weight for an existing pod's *required* affinity term when scoring.
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

fn owned_terms(pod: &Pod) -> impl Iterator<Item = (TermKind, &AffinityTerm, i64)> {
    let req_anti = pod.pod_anti_affinity.required.iter().map(|t| (TermKind::RequiredAntiAffinity, t, 1));
    let req_aff = pod.pod_affinity.required.iter().map(|t| (TermKind::RequiredAffinity, t, 1));
    let pref_aff = pod
        .pod_affinity
        .preferred
        .iter()
        .map(|w| (TermKind::PreferredAffinity, &w.term, i64::from(w.weight)));
    let pref_anti = pod
        .pod_anti_affinity
        .preferred
        .iter()
        .map(|w| (TermKind::PreferredAntiAffinity, &w.term, i64::from(w.weight)));
    req_anti.chain(req_aff).chain(pref_aff).chain(pref_anti)
}
