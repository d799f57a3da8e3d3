//! What upstream's RuntimeClass admission merges into a pod from the class it names: the
//! class's `scheduling.nodeSelector` into `spec.nodeSelector` (a key the pod already sets to
//! another value is a conflict, which admission refuses) and its `scheduling.tolerations`
//! appended to `spec.tolerations`, each once. A pod read back from a cluster already carries
//! both; merging again changes nothing. The overhead is applied with the requests
//! ([`super::requests`]).

use k8s_openapi::api::core::v1 as core;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::Toleration;

use super::context::PodContext;
use crate::ingest::error::{Conflict, FieldError, FieldProblem};

/// Merges the pod's RuntimeClass `scheduling` into `node_selector` and `tolerations`. A class
/// the context does not know adds nothing here (the requests report it missing).
pub(super) fn merge_scheduling(
    spec: &core::PodSpec,
    cx: &PodContext,
    node_selector: &mut LabelSet,
    tolerations: &mut Vec<Toleration>,
) -> Result<(), FieldError> {
    let Some(class) = spec.runtime_class_name.as_deref().filter(|n| !n.is_empty()) else { return Ok(()) };
    let Some(scheduling) = cx.runtime_class_scheduling(class) else { return Ok(()) };
    for (key, value) in &scheduling.node_selector {
        let (k, v) = (Sym::new(key), Sym::new(value));
        match node_selector.get(k) {
            Some(own) if own != v => {
                return Err(FieldError::new(
                    format!("spec.nodeSelector.{key}"),
                    FieldProblem::Conflict(Box::new(Conflict {
                        value: own.as_str().to_string(),
                        kind: "RuntimeClass",
                        name: class.to_string(),
                        field: format!("scheduling.nodeSelector.{key}"),
                        other: value.clone(),
                    })),
                ));
            }
            Some(_) => {}
            None => node_selector.insert(k, v),
        }
    }
    for t in &scheduling.tolerations {
        if !tolerations.contains(t) {
            tolerations.push(t.clone());
        }
    }
    Ok(())
}
