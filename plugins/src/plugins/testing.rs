//! Small builders for plugin unit tests.
#![allow(dead_code, reason = "a builder kit: not every test uses every builder")]

use std::sync::Arc;

use crate::intern::Sym;
use crate::labels::LabelSet;
use crate::model::{Node, Pod, Taint};
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::resources::{ResourceId, ResourceVec};
use crate::snapshot::Snapshot;

pub const GI: i64 = 1 << 30;

/// A node with CPU (millicores) and memory (bytes) and room for 110 pods.
pub fn node(name: &str, milli_cpu: i64, memory: i64) -> Node {
    Node {
        name: Sym::new(name),
        labels: LabelSet::from_pairs([("kubernetes.io/hostname", name)]),
        taints: vec![],
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(milli_cpu, memory),
        allowed_pods: 110,
        images: vec![],
        gpus: Vec::new(),
        devices: Default::default(),
    }
}

/// Adds labels to a node.
pub fn with_labels(mut node: Node, labels: &[(&str, &str)]) -> Node {
    for (k, v) in labels {
        node.labels.insert(Sym::new(k), Sym::new(v));
    }
    node
}

/// Adds a taint to a node.
pub fn with_taint(mut node: Node, taint: Taint) -> Node {
    node.taints.push(taint);
    node
}

/// A pod requesting CPU (millicores) and memory (bytes).
pub fn pod(name: &str, milli_cpu: i64, memory: i64) -> Pod {
    Pod::new("default", name, ResourceVec::cpu_mem(milli_cpu, memory))
}

/// A pod with labels.
pub fn labelled(mut pod: Pod, labels: &[(&str, &str)]) -> Pod {
    for (k, v) in labels {
        pod.labels.insert(Sym::new(k), Sym::new(v));
    }
    pod
}

/// Sets an extended resource on a resource vector.
pub fn with_resource(mut r: ResourceVec, name: &str, amount: i64) -> ResourceVec {
    if let Ok(id) = ResourceId::of(name) {
        r.set(id, amount);
    }
    r
}

/// A `NodeInfo` for `node` holding `pods`.
pub fn node_info(id: NodeId, node: Node, pods: Vec<Pod>) -> NodeInfo {
    let mut ni = NodeInfo::new(id, Arc::new(node));
    for p in pods {
        ni.add_pod(Arc::new(p));
    }
    ni
}

/// A snapshot of `nodes` (with their pods), numbering them in order, and tracking `keys`.
pub fn snapshot(nodes: Vec<(Node, Vec<Pod>)>, keys: &[&str]) -> Snapshot {
    let mut s = Snapshot::new();
    for k in keys {
        s.track_topology_key(Sym::new(k));
    }
    for (i, (n, pods)) in nodes.into_iter().enumerate() {
        s.set_node(Arc::new(node_info(i as NodeId, n, pods)));
    }
    s
}

/// A selector requiring each `key=value` (upstream `matchLabels`).
pub fn match_labels(pairs: &[(&str, &str)]) -> crate::labels::LabelSelector {
    crate::labels::LabelSelector::from_match_labels(&LabelSet::from_pairs(pairs.iter().copied()))
}

/// A spread constraint with upstream's defaults: no minDomains, nodeAffinityPolicy Honor,
/// nodeTaintsPolicy Ignore.
pub fn spread_constraint(
    max_skew: i32,
    key: &str,
    when: crate::model::WhenUnsatisfiable,
    selector: Option<crate::labels::LabelSelector>,
) -> crate::model::SpreadConstraint {
    use crate::model::{InclusionPolicy, SpreadConstraint};
    SpreadConstraint {
        max_skew,
        topology_key: Sym::new(key),
        when_unsatisfiable: when,
        selector,
        min_domains: None,
        node_affinity_policy: InclusionPolicy::Honor,
        node_taints_policy: InclusionPolicy::Ignore,
    }
}

/// A pod affinity term over `key` looking in the pod's own namespace.
pub fn affinity_term(key: &str, selector: Option<crate::labels::LabelSelector>) -> crate::model::AffinityTerm {
    use crate::model::{AffinityTerm, NamespaceScope};
    AffinityTerm { selector, namespaces: NamespaceScope { names: vec![], selector: None }, topology_key: Sym::new(key) }
}

/// Moves a pod to namespace `ns`.
pub fn in_namespace(mut pod: Pod, ns: &str) -> Pod {
    pod.namespace = Sym::new(ns);
    pod
}
