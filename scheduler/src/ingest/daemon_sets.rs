//! Where a DaemonSet's pods go, as upstream's DaemonSet controller decides: one pod per node
//! whose labels its template selects (`nodeSelector` and required node affinity, upstream's
//! `NodeShouldRunDaemonPod`) and whose `NoSchedule` and `NoExecute` taints it tolerates,
//! counting the tolerations the controller adds to every pod. Each pod is pinned to its node
//! by node affinity (`matchFields metadata.name In [node]`), not by `spec.nodeName`, so that
//! the scheduler still runs Filter on it (upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`).

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Toleration,
};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::{self, LabelSet};
use tessera_plugins::model::{self, Taint, TaintEffect};

use super::error::FieldError;
use super::pod::{node_affinity, tolerations};
use super::selectors::label_set;

/// The field a pod's node affinity names its node by.
const NODE_NAME_FIELD: &str = "metadata.name";

/// Taints the DaemonSet controller tolerates on every pod it makes (upstream's
/// `AddOrUpdateDaemonPodTolerations`): a daemon keeps running, and starts, on a node that is
/// not ready, under pressure or cordoned.
const DAEMON_TOLERATIONS: [(&str, &str); 6] = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

/// Tolerated as well by pods on the host network, which need no pod network to start.
const NETWORK_UNAVAILABLE: (&str, &str) = ("node.kubernetes.io/network-unavailable", "NoSchedule");

/// Adds the controller's tolerations to a DaemonSet's pod spec, skipping those it already has.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network.unwrap_or(false);
    let extra = host_network.then_some(NETWORK_UNAVAILABLE);
    let tolerations = spec.tolerations.get_or_insert_default();
    for (key, effect) in DAEMON_TOLERATIONS.into_iter().chain(extra) {
        let t = Toleration {
            key: Some(key.to_string()),
            operator: Some("Exists".to_string()),
            effect: Some(effect.to_string()),
            ..Toleration::default()
        };
        if !tolerations.contains(&t) {
            tolerations.push(t);
        }
    }
}

/// Pins a pod spec to `node`: its required node affinity becomes the one term
/// `metadata.name In [node]`, whatever it was (the controller already checked it).
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: NODE_NAME_FIELD.to_string(),
            operator: "In".to_string(),
            values: Some(vec![node.to_string()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution =
        Some(NodeSelector { node_selector_terms: vec![term] });
}

/// The node a listed daemon pod is for: its `spec.nodeName` once bound, else the node its
/// affinity pins it to (upstream's `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(node);
    }
    let required =
        spec.affinity.as_ref()?.node_affinity.as_ref()?.required_during_scheduling_ignored_during_execution.as_ref()?;
    let mut pinned = required.node_selector_terms.iter().flat_map(|t| t.match_fields.iter().flatten());
    let field = pinned.find(|r| r.key == NODE_NAME_FIELD && r.operator == "In")?;
    match field.values.as_deref() {
        Some([node]) => Some(node.as_str()),
        _ => None,
    }
}

/// Which nodes a DaemonSet runs a pod on, read once from its template (with the
/// controller's tolerations added).
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The template's `spec.nodeName`: only that node, when set.
    node_name: Option<String>,
    /// `spec.nodeSelector`.
    node_selector: LabelSet,
    /// The required node affinity.
    required: Option<labels::NodeSelector>,
    /// Every toleration, the controller's included.
    tolerations: Vec<model::Toleration>,
}

impl Placement {
    /// Reads the template's pod spec; errors name the field from `spec.template`.
    pub fn read(spec: &PodSpec) -> Result<Placement, FieldError> {
        let in_template = |mut e: FieldError| {
            e.field = format!("spec.template.{}", e.field);
            e
        };
        let (required, _) =
            node_affinity(spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref())).map_err(in_template)?;
        Ok(Placement {
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            node_selector: label_set(spec.node_selector.as_ref()),
            required,
            tolerations: tolerations(spec.tolerations.as_deref()).map_err(in_template)?,
        })
    }

    /// Whether the DaemonSet runs a pod on `node`, named `name`. A taint that does not read
    /// is left out here: converting the node reports it.
    pub fn admits(&self, name: &str, node: &Node) -> bool {
        if self.node_name.as_deref().is_some_and(|n| n != name) {
            return false;
        }
        let labels = label_set(node.metadata.labels.as_ref());
        if !labels.contains_all(&self.node_selector) {
            return false;
        }
        if self.required.as_ref().is_some_and(|r| !r.matches(&labels, Sym::new(name))) {
            return false;
        }
        let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
        taints.iter().filter_map(repelling).all(|t| self.tolerations.iter().any(|tol| tol.tolerates(&t)))
    }
}

/// A taint that keeps pods off the node (`NoSchedule`, `NoExecute`); `PreferNoSchedule`
/// only steers the scheduler.
fn repelling(t: &k8s_openapi::api::core::v1::Taint) -> Option<Taint> {
    let effect =
        TaintEffect::parse(&t.effect).filter(|e| matches!(e, TaintEffect::NoSchedule | TaintEffect::NoExecute))?;
    Some(Taint { key: Sym::new(&t.key), value: Sym::new(t.value.as_deref().unwrap_or("")), effect })
}

#[cfg(test)]
#[path = "daemon_sets_tests.rs"]
mod tests;
