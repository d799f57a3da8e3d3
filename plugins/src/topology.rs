//! Per-topology-domain pod counts, maintained incrementally as nodes and pods come and go.
//!
//! PodTopologySpread and InterPodAffinity ask "how many pods matching this selector are in the
//! zone of node X?" and "which domains hold a pod whose anti-affinity term matches this pod?".
//! Scanning every pod to answer costs O(pods) per scheduled pod. Instead the index keeps:
//!
//! - every distinct (namespace, labels) set of the cluster's pods, interned to a [`SetId`],
//!   with an inverted index from each label pair and each namespace to the sets that have it,
//!   so that a selector finds its handful of matching sets without looking at the others;
//! - every distinct affinity term carried by an existing pod ([`TermKind`], owner namespace,
//!   term), interned to a [`TermId`], indexed by one `In` requirement of its selector so that
//!   the terms that could match an incoming pod are found from the pod's own labels, with its
//!   carriers per node;
//! - per label set, its pods on each node (by node name), whatever keys are tracked: callers
//!   that must look at nodes one by one (eligibility, untracked keys) read counts, not pods;
//! - for every *tracked* topology key: how many nodes each domain has, which nodes lack the
//!   key, and per label set the pod count of each domain; per term, the pods (or weights) per
//!   domain of its key.
//!
//! So a query costs O(matching sets × domains they occupy), which for the workloads we target
//! is a few dozen hash operations whatever the cluster size. Updates cost O(tracked keys +
//! terms of the pod). A key that is not tracked has no domain counts: callers fall back to
//! counting from the nodes.

use crate::intern::Sym;
use crate::labels::{LabelSelector, LabelSet, Operator};
use crate::model::{AffinityTerm, NamespaceScope, Node, Pod, TaintEffect};
use crate::nodeinfo::NodeId;

mod fx;
mod table;
#[cfg(test)]
mod tests;
mod update;

use fx::fx_hash;
pub use fx::{FxHasher, FxMap, FxSet};
use table::Table;

/// A distinct (namespace, labels) pair that pods share.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodLabels {
    /// The namespace.
    pub namespace: Sym,
    /// The labels.
    pub labels: LabelSet,
}

/// An existing pod's affinity term, with the pod's namespace (which an empty namespace list
/// refers to).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnedTerm {
    /// The namespace of the pod that carries the term.
    pub owner_namespace: Sym,
    /// The term.
    pub term: AffinityTerm,
}

impl OwnedTerm {
    /// Whether the term looks at namespace `ns`, whose labels are `ns_labels` (`None` when the
    /// namespace is unknown).
    pub fn selects_namespace(&self, ns: Sym, ns_labels: Option<&LabelSet>) -> bool {
        scope_selects(&self.term.namespaces, self.owner_namespace, ns, ns_labels)
    }
}

/// Whether a term of a pod in `owner` with namespaces `scope` looks at namespace `ns`, whose
/// labels are `ns_labels` (`None` when unknown): upstream `AffinityTerm.Matches` on namespaces.
/// An empty namespace selector selects every namespace, known or not.
pub fn scope_selects(scope: &NamespaceScope, owner: Sym, ns: Sym, ns_labels: Option<&LabelSet>) -> bool {
    if scope.names.is_empty() && scope.selector.is_none() {
        return ns == owner;
    }
    scope.names.contains(&ns)
        || scope.selector.as_ref().is_some_and(|s| s.is_empty() || ns_labels.is_some_and(|l| s.matches(l)))
}

/// The only namespace a scope can select, when it is one named namespace: lets a set query use
/// the per-namespace list.
pub fn single_namespace(scope: &NamespaceScope, owner: Sym) -> Option<Sym> {
    match (scope.names.as_slice(), &scope.selector) {
        ([], None) => Some(owner),
        ([one], None) => Some(*one),
        _ => None,
    }
}

/// Which of an existing pod's terms an [`IndexedTerm`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// Id of an interned label set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SetId(u32);

/// Id of an interned term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TermId(u32);

#[derive(Clone, Debug)]
struct SetEntry {
    labels: PodLabels,
    pods: u32,
}

/// An interned term with its per-domain totals.
#[derive(Clone, Debug)]
pub struct IndexedTerm {
    /// Where the term came from.
    pub kind: TermKind,
    /// The term.
    pub term: OwnedTerm,
    /// How many times pods carry it.
    pub pods: u32,
    /// Per domain of the term's topology key (empty while the key is untracked): how many pods
    /// carry the term there, or for preferred terms the sum of their weights.
    pub domains: FxMap<Sym, i64>,
    /// The same per node name, whatever keys are tracked.
    pub nodes: FxMap<Sym, i64>,
}

/// Per-key counts.
#[derive(Clone, Debug, Default)]
struct KeyIndex {
    /// Nodes per domain.
    domains: FxMap<Sym, u32>,
    /// Nodes without the key.
    missing: FxSet<NodeId>,
    /// Pods per domain, per label set.
    by_set: FxMap<SetId, FxMap<Sym, i64>>,
    /// Each node's domain as a dense domain number, indexed by [`NodeId`] ([`NO_DOMAIN`] where
    /// the node lacks the key or the slot is empty): lets per-node scoring find a node's domain
    /// without touching the node, and index a per-domain table rather than hash.
    column: Vec<u32>,
    /// Dense domain number → domain value; numbers are never reused, so a table indexed by
    /// them stays valid for the index's life.
    values: Vec<Sym>,
    value_numbers: FxMap<Sym, u32>,
}

/// A column entry for a node without the key.
pub const NO_DOMAIN: u32 = u32::MAX;

impl KeyIndex {
    fn set_column(&mut self, id: NodeId, domain: Option<Sym>) {
        let number = match domain {
            Some(d) => match self.value_numbers.get(&d) {
                Some(n) => *n,
                None => {
                    let n = self.values.len() as u32;
                    self.values.push(d);
                    self.value_numbers.insert(d, n);
                    n
                }
            },
            None => NO_DOMAIN,
        };
        let i = id as usize;
        if self.column.len() <= i {
            if number == NO_DOMAIN {
                return;
            }
            self.column.resize(i + 1, NO_DOMAIN);
        }
        self.column[i] = number;
    }
}

/// One tracked key's domains of every node, by dense domain number (see
/// [`TopologyIndex::domain_column`]).
#[derive(Clone, Copy, Debug)]
pub struct DomainColumn<'a> {
    /// Per [`NodeId`], the node's domain number, or [`NO_DOMAIN`]; ids past the end have none.
    pub numbers: &'a [u32],
    /// Per domain number, the domain value.
    pub values: &'a [Sym],
}

impl DomainColumn<'_> {
    /// The domain number of node `id`, if it has the key.
    pub fn number(&self, id: NodeId) -> Option<u32> {
        self.numbers.get(id as usize).copied().filter(|n| *n != NO_DOMAIN)
    }
}

/// Domain counts for every tracked topology key, and the interned sets and terms they use.
#[derive(Clone, Debug, Default)]
pub struct TopologyIndex {
    num_nodes: usize,
    hard_tainted: FxSet<NodeId>,
    keys: FxMap<Sym, KeyIndex>,
    sets: Table<SetEntry>,
    sets_by_label: FxMap<(Sym, Sym), Vec<SetId>>,
    sets_by_namespace: FxMap<Sym, Vec<SetId>>,
    /// Pods per node name, per label set.
    node_pods: FxMap<SetId, FxMap<Sym, i64>>,
    terms: Table<IndexedTerm>,
    terms_by_label: FxMap<(Sym, Sym), Vec<TermId>>,
    terms_unindexed: Vec<TermId>,
}

/// How a term is found from a pod's labels.
enum TermIndexing<'a> {
    /// Under each `(key, value)` of one `In` requirement.
    Pairs(Sym, &'a [Sym]),
    /// The selector has no `In` requirement: always a candidate.
    Unindexed,
    /// The term matches no pod (no selector, or `In` with no values): never a candidate.
    Never,
}

fn term_indexing(term: &AffinityTerm) -> TermIndexing<'_> {
    let Some(selector) = &term.selector else { return TermIndexing::Never };
    match selector.requirements.iter().find(|r| r.op == Operator::In) {
        Some(r) if r.values.is_empty() => TermIndexing::Never,
        Some(r) => TermIndexing::Pairs(r.key, &r.values),
        None => TermIndexing::Unindexed,
    }
}

/// `values` without repeats, in first-seen order; repeats would count a set or term twice.
fn distinct(values: &[Sym]) -> impl Iterator<Item = Sym> + '_ {
    values.iter().enumerate().filter(|(i, v)| !values[..*i].contains(v)).map(|(_, v)| *v)
}

fn has_hard_taint(node: &Node) -> bool {
    node.taints.iter().any(|t| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute))
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

    /// Number of nodes counted.
    pub fn num_nodes(&self) -> usize {
        self.num_nodes
    }

    /// Number of domains (distinct values among nodes) of `key`, if tracked.
    pub fn num_domains(&self, key: Sym) -> Option<usize> {
        self.keys.get(&key).map(|k| k.domains.len())
    }

    /// Number of nodes in domain `value` of `key` (0 if untracked).
    pub fn domain_nodes(&self, key: Sym, value: Sym) -> u32 {
        self.keys.get(&key).and_then(|k| k.domains.get(&value)).copied().unwrap_or(0)
    }

    /// Each node's domain of `key` as a dense number, if `key` is tracked.
    pub fn domain_column(&self, key: Sym) -> Option<DomainColumn<'_>> {
        self.keys.get(&key).map(|k| DomainColumn { numbers: &k.column, values: &k.values })
    }

    /// The nodes without label `key`, if tracked.
    pub fn nodes_missing(&self, key: Sym) -> Option<&FxSet<NodeId>> {
        self.keys.get(&key).map(|k| &k.missing)
    }

    /// The nodes with a `NoSchedule` or `NoExecute` taint.
    pub fn hard_tainted_nodes(&self) -> &FxSet<NodeId> {
        &self.hard_tainted
    }

    /// The label set `id`.
    pub fn label_set(&self, id: SetId) -> Option<&PodLabels> {
        self.sets.get(id.0).map(|e| &e.labels)
    }

    /// Per domain of `key`, how many pods with label set `id` it holds (nothing if untracked).
    pub fn set_domains(&self, key: Sym, id: SetId) -> impl Iterator<Item = (Sym, i64)> + '_ {
        self.keys.get(&key).and_then(|k| k.by_set.get(&id)).into_iter().flat_map(|m| m.iter().map(|(d, n)| (*d, *n)))
    }

    /// Per node name, how many pods with label set `id` it holds.
    pub fn set_nodes(&self, id: SetId) -> impl Iterator<Item = (Sym, i64)> + '_ {
        self.node_pods.get(&id).into_iter().flat_map(|m| m.iter().map(|(n, c)| (*n, *c)))
    }

    /// Calls `f` with every label set that `selector` matches, that is in `namespace` when one
    /// is given, and for which `keep` holds. Candidates come from the shortest inverted list
    /// among the namespace's and those of the selector's `In` requirements.
    pub fn for_each_matching_set(
        &self,
        namespace: Option<Sym>,
        selector: &LabelSelector,
        mut keep: impl FnMut(&PodLabels) -> bool,
        mut f: impl FnMut(SetId),
    ) {
        let mut visit = |id: SetId| {
            let Some(e) = self.sets.get(id.0) else { return };
            if namespace.is_none_or(|ns| ns == e.labels.namespace)
                && selector.matches(&e.labels.labels)
                && keep(&e.labels)
            {
                f(id);
            }
        };
        enum Source<'a> {
            Namespace(&'a [SetId]),
            Label(Sym, &'a [Sym]),
            All,
        }
        let mut best = match namespace {
            Some(ns) => {
                let list = self.sets_by_namespace.get(&ns).map_or(&[][..], Vec::as_slice);
                (list.len(), Source::Namespace(list))
            }
            None => (usize::MAX, Source::All),
        };
        for r in selector.requirements.iter().filter(|r| r.op == Operator::In) {
            let len: usize = distinct(&r.values).map(|v| self.sets_by_label.get(&(r.key, v)).map_or(0, Vec::len)).sum();
            if len < best.0 {
                best = (len, Source::Label(r.key, &r.values));
            }
        }
        match best.1 {
            Source::Label(key, values) => {
                for v in distinct(values) {
                    self.sets_by_label.get(&(key, v)).into_iter().flatten().for_each(|id| visit(*id));
                }
            }
            Source::Namespace(list) => list.iter().for_each(|id| visit(*id)),
            Source::All => self.sets.iter().for_each(|(id, _)| visit(SetId(id))),
        }
    }

    /// Calls `f` with every interned term whose selector matches `labels` (the namespace is
    /// left to the caller: its meaning differs by who is asking).
    pub fn for_each_term_matching(&self, labels: &LabelSet, mut f: impl FnMut(&IndexedTerm)) {
        let mut visit = |id: &TermId| {
            if let Some(t) = self.terms.get(id.0)
                && t.term.term.selector.as_ref().is_some_and(|s| s.matches(labels))
            {
                f(t);
            }
        };
        for pair in labels.iter() {
            self.terms_by_label.get(&pair).into_iter().flatten().for_each(&mut visit);
        }
        self.terms_unindexed.iter().for_each(visit);
    }
}

/// Every affinity term of `pod` with its kind and the weight it adds per pod: 1 for required
/// terms (a pod count), the term's weight for preferred ones.
pub fn owned_terms(pod: &Pod) -> impl Iterator<Item = (TermKind, &AffinityTerm, i64)> {
    let req_anti = pod.pod_anti_affinity.required.iter().map(|t| (TermKind::RequiredAntiAffinity, t, 1));
    let req_aff = pod.pod_affinity.required.iter().map(|t| (TermKind::RequiredAffinity, t, 1));
    let pref_aff =
        pod.pod_affinity.preferred.iter().map(|w| (TermKind::PreferredAffinity, &w.term, i64::from(w.weight)));
    let pref_anti =
        pod.pod_anti_affinity.preferred.iter().map(|w| (TermKind::PreferredAntiAffinity, &w.term, i64::from(w.weight)));
    req_anti.chain(req_aff).chain(pref_aff).chain(pref_anti)
}
