//! The index against an oracle computed straight from the nodes, after random update sequences.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::labels::Requirement;
use crate::model::{Taint, WeightedAffinityTerm};
use crate::nodeinfo::NodeInfo;
use crate::resources::ResourceVec;
use crate::snapshot::Snapshot;

type TermKey = (TermKind, OwnedTerm);
/// An interned term's carriers, per domain and per node.
type TermCounts = (u32, BTreeMap<Sym, i64>, BTreeMap<Sym, i64>);

/// The index with ids replaced by the values they stand for, so that two indexes built in a
/// different order compare equal; lists become multisets so that a duplicate shows.
#[derive(Debug, PartialEq)]
struct Canonical {
    num_nodes: usize,
    hard_tainted: BTreeSet<NodeId>,
    keys: BTreeMap<Sym, CanonKey>,
    sets: HashMap<PodLabels, u32>,
    sets_by_label: HashMap<(Sym, Sym), HashMap<PodLabels, usize>>,
    sets_by_namespace: HashMap<Sym, HashMap<PodLabels, usize>>,
    node_pods: HashMap<PodLabels, BTreeMap<Sym, i64>>,
    terms: HashMap<TermKey, TermCounts>,
    terms_by_label: HashMap<(Sym, Sym), HashMap<TermKey, usize>>,
    terms_unindexed: HashMap<TermKey, usize>,
}

#[derive(Debug, Default, PartialEq)]
struct CanonKey {
    domains: BTreeMap<Sym, u32>,
    missing: BTreeSet<NodeId>,
    by_set: HashMap<PodLabels, BTreeMap<Sym, i64>>,
}

fn multiset<T: Hash + Eq>(items: impl Iterator<Item = T>) -> HashMap<T, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

fn canonical(ix: &TopologyIndex) -> Canonical {
    let set = |id: &SetId| ix.sets.get(id.0).map(|e| e.labels.clone()).expect("live set id");
    let term = |id: &TermId| ix.terms.get(id.0).map(|t| (t.kind, t.term.clone())).expect("live term id");
    let keys = ix
        .keys
        .iter()
        .map(|(k, ki)| {
            let by_set = ki.by_set.iter().map(|(id, m)| (set(id), m.iter().map(|(d, n)| (*d, *n)).collect())).collect();
            let domains = ki.domains.iter().map(|(d, n)| (*d, *n)).collect();
            (*k, CanonKey { domains, missing: ki.missing.iter().copied().collect(), by_set })
        })
        .collect();
    Canonical {
        num_nodes: ix.num_nodes,
        hard_tainted: ix.hard_tainted.iter().copied().collect(),
        keys,
        sets: ix.sets.iter().map(|(_, e)| (e.labels.clone(), e.pods)).collect(),
        sets_by_label: ix.sets_by_label.iter().map(|(p, l)| (*p, multiset(l.iter().map(set)))).collect(),
        sets_by_namespace: ix.sets_by_namespace.iter().map(|(ns, l)| (*ns, multiset(l.iter().map(set)))).collect(),
        node_pods: ix.node_pods.iter().map(|(id, m)| (set(id), m.iter().map(|(n, c)| (*n, *c)).collect())).collect(),
        terms: ix
            .terms
            .iter()
            .map(|(_, t)| {
                let domains = t.domains.iter().map(|(d, n)| (*d, *n)).collect();
                ((t.kind, t.term.clone()), (t.pods, domains, t.nodes.iter().map(|(d, n)| (*d, *n)).collect()))
            })
            .collect(),
        terms_by_label: ix.terms_by_label.iter().map(|(p, l)| (*p, multiset(l.iter().map(term)))).collect(),
        terms_unindexed: multiset(ix.terms_unindexed.iter().map(term)),
    }
}

/// What the index must hold, computed from the nodes without it.
fn oracle(nodes: &[&NodeInfo], keys: &[Sym]) -> Canonical {
    let mut c = Canonical {
        num_nodes: nodes.len(),
        hard_tainted: nodes.iter().filter(|n| has_hard_taint(&n.node)).map(|n| n.id).collect(),
        keys: keys.iter().map(|k| (*k, CanonKey::default())).collect(),
        sets: HashMap::new(),
        sets_by_label: HashMap::new(),
        sets_by_namespace: HashMap::new(),
        node_pods: HashMap::new(),
        terms: HashMap::new(),
        terms_by_label: HashMap::new(),
        terms_unindexed: HashMap::new(),
    };
    for n in nodes {
        for (k, ck) in &mut c.keys {
            match n.node.labels.get(*k) {
                Some(d) => *ck.domains.entry(d).or_insert(0) += 1,
                None => {
                    ck.missing.insert(n.id);
                }
            }
        }
        for p in &n.pods {
            let labels = PodLabels { namespace: p.namespace, labels: p.labels.clone() };
            *c.sets.entry(labels.clone()).or_insert(0) += 1;
            *c.node_pods.entry(labels.clone()).or_default().entry(n.node.name).or_insert(0) += 1;
            for (k, ck) in &mut c.keys {
                if let Some(d) = n.node.labels.get(*k) {
                    *ck.by_set.entry(labels.clone()).or_default().entry(d).or_insert(0) += 1;
                }
            }
            for (kind, term, weight) in owned_terms(p) {
                let key = (kind, OwnedTerm { owner_namespace: p.namespace, term: term.clone() });
                let entry = c.terms.entry(key).or_default();
                entry.0 += 1;
                *entry.2.entry(n.node.name).or_insert(0) += weight;
                if let (true, Some(d)) = (keys.contains(&term.topology_key), n.node.labels.get(term.topology_key)) {
                    *entry.1.entry(d).or_insert(0) += weight;
                }
            }
        }
    }
    for t in c.terms.values_mut() {
        t.1.retain(|_, n| *n != 0);
        t.2.retain(|_, n| *n != 0);
    }
    for labels in c.sets.keys() {
        for pair in labels.labels.iter() {
            *c.sets_by_label.entry(pair).or_default().entry(labels.clone()).or_insert(0) += 1;
        }
        *c.sets_by_namespace.entry(labels.namespace).or_default().entry(labels.clone()).or_insert(0) += 1;
    }
    for key in c.terms.keys() {
        match term_indexing(&key.1.term) {
            TermIndexing::Pairs(k, values) => {
                for v in distinct(values) {
                    *c.terms_by_label.entry((k, v)).or_default().entry(key.clone()).or_insert(0) += 1;
                }
            }
            TermIndexing::Unindexed => *c.terms_unindexed.entry(key.clone()).or_insert(0) += 1,
            TermIndexing::Never => {}
        }
    }
    c
}

const KEYS: [&str; 3] = ["kubernetes.io/hostname", "zone", "rack"];

#[derive(Clone, Debug)]
struct NodeSpec {
    zone: Option<u8>,
    rack: Option<u8>,
    taint: u8,
}

#[derive(Clone, Debug)]
struct TermSpec {
    kind: u8,
    key: u8,
    app: u8,
    weight: i32,
    any_namespace: bool,
}

#[derive(Clone, Debug)]
struct PodSpec {
    ns: u8,
    app: u8,
    tier: Option<u8>,
    terms: Vec<TermSpec>,
}

#[derive(Clone, Debug)]
enum Op {
    SetNode(u8, NodeSpec),
    RemoveNode(u8),
    AddPod(u8, PodSpec),
    RemovePod(u8, u8),
    Track(u8),
    /// The node replaced by a copy sharing its node object, with one pod dropped (by index)
    /// and maybe one added: the pods-only path of `Snapshot::set_node`.
    Refresh(u8, u8, Option<PodSpec>),
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (proptest::option::of(0u8..3), proptest::option::of(0u8..2), 0u8..4).prop_map(|(zone, rack, taint)| NodeSpec {
        zone,
        rack,
        taint,
    })
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    let term = (0u8..4, 0u8..3, 0u8..7, 1i32..5, any::<bool>())
        .prop_map(|(kind, key, app, weight, any_namespace)| TermSpec { kind, key, app, weight, any_namespace });
    (0u8..2, 0u8..3, proptest::option::of(0u8..2), proptest::collection::vec(term, 0..3))
        .prop_map(|(ns, app, tier, terms)| PodSpec { ns, app, tier, terms })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..6, node_spec()).prop_map(|(s, n)| Op::SetNode(s, n)),
        1 => (0u8..6).prop_map(Op::RemoveNode),
        6 => (0u8..6, pod_spec()).prop_map(|(s, p)| Op::AddPod(s, p)),
        3 => (0u8..6, any::<u8>()).prop_map(|(s, i)| Op::RemovePod(s, i)),
        1 => (0u8..3).prop_map(Op::Track),
        3 => (0u8..6, any::<u8>(), proptest::option::of(pod_spec())).prop_map(|(s, i, p)| Op::Refresh(s, i, p)),
    ]
}

fn build_node(slot: u8, spec: &NodeSpec) -> Node {
    let name = format!("n{slot}");
    let mut labels = vec![(KEYS[0], name.clone())];
    if let Some(z) = spec.zone {
        labels.push((KEYS[1], format!("z{z}")));
    }
    if let Some(r) = spec.rack {
        labels.push((KEYS[2], format!("r{r}")));
    }
    let effect = match spec.taint {
        0 => None,
        1 => Some(TaintEffect::NoSchedule),
        2 => Some(TaintEffect::PreferNoSchedule),
        _ => Some(TaintEffect::NoExecute),
    };
    Node {
        name: Sym::new(&name),
        labels: LabelSet::from_pairs(labels.iter().map(|(k, v)| (*k, v.as_str()))),
        taints: effect.map(|effect| Taint { key: Sym::new("t"), value: Sym::new(""), effect }).into_iter().collect(),
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(1000, 1 << 30),
        allowed_pods: 110,
        images: vec![],
        gpus: Vec::new(),
        devices: Default::default(),
    }
}

fn build_term(spec: &TermSpec) -> AffinityTerm {
    let req = |key: &str, op: Operator, values: &[&str]| Requirement {
        key: Sym::new(key),
        op,
        values: values.iter().map(|v| Sym::new(v)).collect(),
        bound: 0,
    };
    let selector = match spec.app {
        0..=2 => Some(LabelSelector { requirements: vec![req("app", Operator::In, &[&format!("a{}", spec.app)])] }),
        3 => Some(LabelSelector { requirements: vec![req("tier", Operator::Exists, &[])] }),
        4 => None,
        5 => Some(LabelSelector { requirements: vec![req("app", Operator::In, &["a0", "a0", "a1"])] }),
        _ => Some(LabelSelector { requirements: vec![req("app", Operator::In, &[])] }),
    };
    let namespaces = NamespaceScope { names: vec![], selector: spec.any_namespace.then(LabelSelector::default) };
    AffinityTerm { selector, namespaces, topology_key: Sym::new(KEYS[spec.key as usize]) }
}

fn build_pod(n: usize, spec: &PodSpec) -> Pod {
    let mut pod = Pod::new(&format!("ns{}", spec.ns), &format!("p{n}"), ResourceVec::ZERO);
    pod.labels.insert(Sym::new("app"), Sym::new(&format!("a{}", spec.app)));
    if let Some(t) = spec.tier {
        pod.labels.insert(Sym::new("tier"), Sym::new(&format!("t{t}")));
    }
    for t in &spec.terms {
        let term = build_term(t);
        let weighted = WeightedAffinityTerm { weight: t.weight, term: term.clone() };
        match t.kind {
            0 => pod.pod_anti_affinity.required.push(term),
            1 => pod.pod_affinity.required.push(term),
            2 => pod.pod_affinity.preferred.push(weighted),
            _ => pod.pod_anti_affinity.preferred.push(weighted),
        }
    }
    pod
}

fn run(ops: &[Op]) -> Snapshot {
    let mut snap = Snapshot::new();
    apply(&mut snap, ops, 0);
    snap
}

/// Applies `ops` to `snap`; pods are numbered from `first`.
fn apply(snap: &mut Snapshot, ops: &[Op], first: usize) {
    for (n, op) in ops.iter().enumerate().map(|(i, op)| (first + i, op)) {
        match op {
            Op::SetNode(slot, spec) => {
                let id = NodeId::from(*slot);
                let mut info = NodeInfo::new(id, Arc::new(build_node(*slot, spec)));
                for p in snap.node(id).map(|n| n.pods.clone()).unwrap_or_default() {
                    info.add_pod(p);
                }
                snap.set_node(Arc::new(info));
            }
            Op::RemoveNode(slot) => {
                snap.remove_node(NodeId::from(*slot));
            }
            Op::AddPod(slot, spec) => {
                snap.add_pod(NodeId::from(*slot), Arc::new(build_pod(n, spec)));
            }
            Op::RemovePod(slot, i) => {
                let key = snap.node(NodeId::from(*slot)).and_then(|n| {
                    let len = n.pods.len();
                    (len > 0).then(|| n.pods[usize::from(*i) % len].key())
                });
                if let Some(key) = key {
                    snap.remove_pod(NodeId::from(*slot), &key);
                }
            }
            Op::Track(k) => snap.track_topology_key(Sym::new(KEYS[usize::from(*k)])),
            Op::Refresh(slot, i, spec) => {
                let Some(old) = snap.node(NodeId::from(*slot)) else { continue };
                let mut info = NodeInfo::clone(old);
                if !info.pods.is_empty() {
                    let key = info.pods[usize::from(*i) % info.pods.len()].key();
                    info.remove_pod(&key);
                }
                if let Some(spec) = spec {
                    info.add_pod(Arc::new(build_pod(n, spec)));
                }
                snap.set_node(Arc::new(info));
            }
        }
    }
}

/// A fresh snapshot of the same nodes, with half the keys tracked before the nodes arrive and
/// half after.
fn rebuild(snap: &Snapshot) -> Snapshot {
    let mut keys: Vec<Sym> = snap.topology().tracked_keys().collect();
    keys.sort_by_key(|k| k.as_str());
    let mut fresh = Snapshot::new();
    let (before, after) = keys.split_at(keys.len() / 2);
    before.iter().for_each(|k| fresh.track_topology_key(*k));
    snap.nodes().for_each(|n| fresh.set_node(n.clone()));
    after.iter().for_each(|k| fresh.track_topology_key(*k));
    fresh
}

fn probe_selectors() -> Vec<LabelSelector> {
    let req = |key: &str, op, values: &[&str]| Requirement {
        key: Sym::new(key),
        op,
        values: values.iter().map(|v| Sym::new(v)).collect(),
        bound: 0,
    };
    vec![
        LabelSelector::default(),
        LabelSelector { requirements: vec![req("app", Operator::In, &["a0"])] },
        LabelSelector { requirements: vec![req("app", Operator::In, &["a1", "a2", "a1"])] },
        LabelSelector { requirements: vec![req("tier", Operator::Exists, &[]), req("app", Operator::In, &["a2"])] },
        LabelSelector { requirements: vec![req("tier", Operator::DoesNotExist, &[])] },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn incremental_index_equals_one_rebuilt_from_scratch(ops in proptest::collection::vec(op(), 1..60)) {
        let snap = run(&ops);
        let keys: Vec<Sym> = snap.topology().tracked_keys().collect();
        let nodes: Vec<&NodeInfo> = snap.nodes().map(|n| n.as_ref()).collect();
        let got = canonical(snap.topology());
        prop_assert_eq!(&got, &oracle(&nodes, &keys));
        prop_assert_eq!(&got, &canonical(rebuild(&snap).topology()));
        for key in &keys {
            let Some(col) = snap.topology().domain_column(*key) else { panic!("tracked key without column") };
            for slot in 0..6 {
                let want = snap.node(slot).and_then(|n| n.node.labels.get(*key));
                let got = col.number(slot).and_then(|d| col.values.get(d as usize).copied());
                prop_assert_eq!(got, want, "column of {:?} at slot {}", key, slot);
            }
        }
    }

    #[test]
    fn the_journal_lists_every_changed_slot(ops in proptest::collection::vec(op(), 1..40)) {
        let (first, second) = ops.split_at(ops.len() / 2);
        let mut snap = Snapshot::new();
        apply(&mut snap, first, 0);
        let at = snap.version();
        let before: Vec<Option<Arc<NodeInfo>>> = (0..6).map(|s| snap.node(s).cloned()).collect();
        apply(&mut snap, second, first.len());
        let Some(changed) = snap.changes_since(at) else { panic!("the journal reaches back") };
        prop_assert_eq!(changed.len() as u64, snap.version() - at);
        for (slot, old) in before.iter().enumerate() {
            let now = snap.node(slot as NodeId);
            let same = match (old, now) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            prop_assert!(same || changed.contains(&(slot as NodeId)), "slot {} changed unlisted", slot);
        }
    }
    #[test]
    fn set_and_term_queries_equal_a_linear_filter(ops in proptest::collection::vec(op(), 1..40)) {
        let snap = run(&ops);
        let ix = snap.topology();
        for selector in probe_selectors() {
            for ns in [None, Some(Sym::new("ns0"))] {
                let mut got = Vec::new();
                ix.for_each_matching_set(ns, &selector, |_| true, |id| got.push(ix.label_set(id).cloned()));
                let mut want: Vec<_> = ix.sets.iter()
                    .filter(|(_, e)| ns.is_none_or(|ns| ns == e.labels.namespace) && selector.matches(&e.labels.labels))
                    .map(|(_, e)| Some(e.labels.clone()))
                    .collect();
                prop_assert_eq!(got.len(), want.len());
                want.retain(|w| !got.contains(w));
                prop_assert!(want.is_empty());
            }
        }
        for app in ["a0", "a1", "a2"] {
            for tier in [None, Some("t0")] {
                let mut labels = LabelSet::from_pairs([("app", app)]);
                if let Some(t) = tier {
                    labels.insert(Sym::new("tier"), Sym::new(t));
                }
                let mut got = Vec::new();
                ix.for_each_term_matching(&labels, |t| got.push((t.kind, t.term.clone())));
                let want: Vec<_> = ix.terms.iter()
                    .filter(|(_, t)| t.term.term.selector.as_ref().is_some_and(|s| s.matches(&labels)))
                    .map(|(_, t)| (t.kind, t.term.clone()))
                    .collect();
                prop_assert_eq!(got.len(), want.len());
                prop_assert!(want.iter().all(|w| got.contains(w)));
            }
        }
    }
}

#[test]
fn domains_count_nodes_and_pods_per_label_set() {
    let spec = |zone| NodeSpec { zone: Some(zone), rack: None, taint: 0 };
    let pod = |n, app| build_pod(n, &PodSpec { ns: 0, app, tier: None, terms: vec![] });
    let ops = vec![
        Op::Track(1),
        Op::SetNode(0, spec(0)),
        Op::SetNode(1, spec(0)),
        Op::SetNode(2, spec(1)),
        Op::SetNode(3, NodeSpec { zone: None, rack: None, taint: 1 }),
    ];
    let mut snap = run(&ops);
    for (slot, n, app) in [(0, 10, 0), (1, 11, 0), (2, 12, 0), (2, 13, 1), (3, 14, 0)] {
        snap.add_pod(slot, Arc::new(pod(n, app)));
    }
    let ix = snap.topology();
    let zone = Sym::new("zone");
    assert_eq!(ix.num_domains(zone), Some(2));
    assert_eq!(ix.domain_nodes(zone, Sym::new("z0")), 2);
    assert_eq!(ix.nodes_missing(zone).map(|m| m.iter().copied().collect::<Vec<_>>()), Some(vec![3]));
    assert_eq!(ix.hard_tainted_nodes().iter().copied().collect::<Vec<_>>(), vec![3]);
    let mut counts = BTreeMap::new();
    let sel = LabelSelector::from_match_labels(&LabelSet::from_pairs([("app", "a0")]));
    ix.for_each_matching_set(
        Some(Sym::new("ns0")),
        &sel,
        |_| true,
        |id| {
            for (d, n) in ix.set_domains(zone, id) {
                *counts.entry(d.as_str()).or_insert(0) += n;
            }
        },
    );
    assert_eq!(counts, BTreeMap::from([("z0", 2), ("z1", 1)]));
    assert!(!ix.is_tracked(Sym::new("rack")));
    assert_eq!(ix.set_domains(Sym::new("rack"), SetId(0)).count(), 0);
}

#[test]
fn namespace_scope_follows_upstream() {
    let (a, b) = (Sym::new("ns-a"), Sym::new("ns-b"));
    let prod = LabelSet::from_pairs([("env", "prod")]);
    let env_prod = LabelSelector::from_match_labels(&prod);
    let own = NamespaceScope { names: vec![], selector: None };
    assert!(scope_selects(&own, a, a, None));
    assert!(!scope_selects(&own, a, b, None));
    let named = NamespaceScope { names: vec![b], selector: None };
    assert!(scope_selects(&named, a, b, None) && !scope_selects(&named, a, a, None));
    let everything = NamespaceScope { names: vec![], selector: Some(LabelSelector::default()) };
    assert!(scope_selects(&everything, a, b, None));
    let by_label = NamespaceScope { names: vec![], selector: Some(env_prod) };
    assert!(scope_selects(&by_label, a, b, Some(&prod)));
    assert!(!scope_selects(&by_label, a, b, None), "an unknown namespace has no labels to match");
    assert!(
        !scope_selects(&by_label, a, a, Some(&LabelSet::default())),
        "a selector replaces the own-namespace default"
    );
    assert_eq!(single_namespace(&own, a), Some(a));
    assert_eq!(single_namespace(&named, a), Some(b));
    assert_eq!(single_namespace(&everything, a), None);
}
