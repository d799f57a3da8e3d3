//! Node affinity and pod (anti-)affinity terms.

use k8s_openapi::api::core::v1 as core;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::{LabelSet, NodeSelector, NodeSelectorTerm, Operator};
use tessera_plugins::model::{AffinityTerm, NamespaceScope, PodAffinity, WeightedAffinityTerm};

use crate::ingest::error::{FieldError, FieldProblem};
use crate::ingest::selectors::{fold_label_keys, label_selector, node_selector_term};

const REQUIRED: &str = "requiredDuringSchedulingIgnoredDuringExecution";
const PREFERRED: &str = "preferredDuringSchedulingIgnoredDuringExecution";

/// Required node affinity and the weighted preferred terms.
pub type NodeAffinity = (Option<NodeSelector>, Vec<(i32, NodeSelectorTerm)>);

/// `spec.affinity.nodeAffinity`.
pub fn node_affinity(affinity: Option<&core::NodeAffinity>) -> Result<NodeAffinity, FieldError> {
    let Some(affinity) = affinity else { return Ok((None, Vec::new())) };
    let base = "spec.affinity.nodeAffinity";
    let required = match &affinity.required_during_scheduling_ignored_during_execution {
        None => None,
        Some(selector) => {
            let path = format!("{base}.{REQUIRED}.nodeSelectorTerms");
            let terms = selector
                .node_selector_terms
                .iter()
                .enumerate()
                .map(|(i, t)| node_selector_term(t, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?;
            Some(NodeSelector { terms })
        }
    };
    let preferred = affinity
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, p)| {
            let path = format!("{base}.{PREFERRED}[{i}]");
            let weight = weight(p.weight, &path)?;
            Ok((weight, node_selector_term(&p.preference, &format!("{path}.preference"))?))
        })
        .collect::<Result<_, _>>()?;
    Ok((required, preferred))
}

/// What folding a term needs from the pod it belongs to.
#[derive(Debug)]
pub struct OwnPod<'a> {
    /// The pod's namespace: the scope of a term that names none.
    pub namespace: Sym,
    /// The pod's labels, for `matchLabelKeys` / `mismatchLabelKeys`.
    pub labels: &'a LabelSet,
}

/// `spec.affinity.podAffinity`.
pub fn pod_affinity(a: Option<&core::PodAffinity>, pod: &OwnPod<'_>) -> Result<PodAffinity, FieldError> {
    let Some(a) = a else { return Ok(PodAffinity::default()) };
    let (required, preferred) = (
        &a.required_during_scheduling_ignored_during_execution,
        &a.preferred_during_scheduling_ignored_during_execution,
    );
    terms(required.as_deref(), preferred.as_deref(), "spec.affinity.podAffinity", pod)
}

/// `spec.affinity.podAntiAffinity`.
pub fn pod_anti_affinity(a: Option<&core::PodAntiAffinity>, pod: &OwnPod<'_>) -> Result<PodAffinity, FieldError> {
    let Some(a) = a else { return Ok(PodAffinity::default()) };
    let (required, preferred) = (
        &a.required_during_scheduling_ignored_during_execution,
        &a.preferred_during_scheduling_ignored_during_execution,
    );
    terms(required.as_deref(), preferred.as_deref(), "spec.affinity.podAntiAffinity", pod)
}

fn terms(
    required: Option<&[core::PodAffinityTerm]>,
    preferred: Option<&[core::WeightedPodAffinityTerm]>,
    base: &str,
    pod: &OwnPod<'_>,
) -> Result<PodAffinity, FieldError> {
    let required = required
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, t)| affinity_term(t, &format!("{base}.{REQUIRED}[{i}]"), pod))
        .collect::<Result<_, _>>()?;
    let preferred = preferred
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let path = format!("{base}.{PREFERRED}[{i}]");
            let weight = weight(w.weight, &path)?;
            let term = affinity_term(&w.pod_affinity_term, &format!("{path}.podAffinityTerm"), pod)?;
            Ok(WeightedAffinityTerm { weight, term })
        })
        .collect::<Result<_, _>>()?;
    Ok(PodAffinity { required, preferred })
}

/// One term, with `matchLabelKeys` (`In`) and `mismatchLabelKeys` (`NotIn`) folded into its
/// selector, and the pod's own namespace as its scope when it names none (upstream
/// `GetNamespacesFromPodAffinityTerm`).
fn affinity_term(t: &core::PodAffinityTerm, path: &str, pod: &OwnPod<'_>) -> Result<AffinityTerm, FieldError> {
    if t.topology_key.is_empty() {
        return Err(FieldError::new(format!("{path}.topologyKey"), FieldProblem::Missing));
    }
    let mut selector = label_selector(t.label_selector.as_ref(), &format!("{path}.labelSelector"))?;
    fold_label_keys(&mut selector, t.match_label_keys.as_ref(), Operator::In, pod.labels);
    fold_label_keys(&mut selector, t.mismatch_label_keys.as_ref(), Operator::NotIn, pod.labels);
    let ns_selector = label_selector(t.namespace_selector.as_ref(), &format!("{path}.namespaceSelector"))?;
    let mut names: Vec<Sym> = t.namespaces.iter().flatten().map(|n| Sym::new(n)).collect();
    if names.is_empty() && ns_selector.is_none() {
        names.push(pod.namespace);
    }
    Ok(AffinityTerm {
        selector,
        namespaces: NamespaceScope { names, selector: ns_selector },
        topology_key: Sym::new(&t.topology_key),
    })
}

/// A preferred term's weight, which upstream validation holds to 1–100.
fn weight(weight: i32, path: &str) -> Result<i32, FieldError> {
    if (1..=100).contains(&weight) {
        Ok(weight)
    } else {
        Err(FieldError::invalid(format!("{path}.weight"), weight, "must be in the range 1-100"))
    }
}
