//! Services and pod controllers into the selectors default spreading reads
//! ([`tessera_plugins::default_selector`]). Only the selector of each is kept: a Service's
//! `spec.selector` map, a ReplicationController's map, a ReplicaSet's or StatefulSet's label
//! selector.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use tessera_plugins::default_selector::{ControllerKind, ControllerRef, SourceChange};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels;

use super::error::{FieldError, FieldProblem, IngestError, ObjectRef};
use super::selectors::{label_selector, label_set};

/// A Service's selector. One without a selector (`nil`, as for Services with manual
/// Endpoints) selects no pod, so it is recorded as having none.
pub fn service(svc: &core::Service) -> Result<SourceChange, IngestError> {
    let (namespace, name) = identity(&svc.metadata, "Service")?;
    let selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref()).map(|m| label_set(Some(m)));
    Ok(SourceChange::Service { namespace, name: Arc::from(name.as_str()), selector })
}

/// A ReplicationController's selector (a map; with none, the API server defaults it to the
/// template's labels, so an object read without one selects by those).
pub fn replication_controller(rc: &core::ReplicationController) -> Result<SourceChange, IngestError> {
    let (namespace, name) = identity(&rc.metadata, "ReplicationController")?;
    let spec = rc.spec.as_ref();
    let map = spec.and_then(|s| s.selector.as_ref()).or_else(|| {
        spec.and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.as_ref())
    });
    let selector = map.map(|m| labels::LabelSelector::from_match_labels(&label_set(Some(m))));
    let controller = ControllerRef { kind: ControllerKind::ReplicationController, name: Sym::new(&name) };
    Ok(SourceChange::Controller { namespace, controller, selector })
}

/// A ReplicaSet's selector.
pub fn replica_set(rs: &ReplicaSet) -> Result<SourceChange, IngestError> {
    controller(&rs.metadata, ControllerKind::ReplicaSet, "ReplicaSet", Some(&rs.spec.selector))
}

/// A StatefulSet's selector.
pub fn stateful_set(ss: &StatefulSet) -> Result<SourceChange, IngestError> {
    controller(&ss.metadata, ControllerKind::StatefulSet, "StatefulSet", Some(&ss.spec.selector))
}

/// The selector of controller `kind` described by `meta`: an invalid selector is an error
/// naming the object and `spec.selector`.
pub fn controller(
    meta: &ObjectMeta,
    kind: ControllerKind,
    kind_name: &'static str,
    selector: Option<&LabelSelector>,
) -> Result<SourceChange, IngestError> {
    let (namespace, name) = identity(meta, kind_name)?;
    controller_change(namespace, kind, &name, selector)
        .map_err(|e| e.on(ObjectRef::namespaced(kind_name, namespace.as_str(), Some(&name))))
}

/// The selector of controller `kind` named `name` in `namespace`; the error names the field.
pub fn controller_change(
    namespace: Sym,
    kind: ControllerKind,
    name: &str,
    selector: Option<&LabelSelector>,
) -> Result<SourceChange, FieldError> {
    let selector = label_selector(selector, "spec.selector")?;
    Ok(SourceChange::Controller { namespace, controller: ControllerRef { kind, name: Sym::new(name) }, selector })
}

/// The change that forgets a deleted object of `kind_name` (as the API names the kind).
pub fn removed(kind_name: &str, namespace: &str, name: &str) -> Option<SourceChange> {
    let namespace = Sym::new(namespace);
    let kind = match kind_name {
        "Service" => return Some(SourceChange::Service { namespace, name: Arc::from(name), selector: None }),
        "ReplicationController" => ControllerKind::ReplicationController,
        "ReplicaSet" => ControllerKind::ReplicaSet,
        "StatefulSet" => ControllerKind::StatefulSet,
        _ => return None,
    };
    Some(SourceChange::Controller {
        namespace,
        controller: ControllerRef { kind, name: Sym::new(name) },
        selector: None,
    })
}

/// Namespace (`default` when unset, as the API server would set it) and name, which must be set.
fn identity(meta: &ObjectMeta, kind: &'static str) -> Result<(Sym, String), IngestError> {
    let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
    match meta.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => Ok((Sym::new(namespace), name.to_string())),
        None => {
            Err(FieldError::new("metadata.name", FieldProblem::Missing)
                .on(ObjectRef::namespaced(kind, namespace, None)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(yaml: &str) -> ReplicaSet {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn a_service_without_a_selector_selects_nothing() {
        let svc: core::Service = serde_yaml_ng::from_str("metadata: {name: ext}\nspec: {}").unwrap();
        let change = service(&svc).unwrap();
        assert!(matches!(change, SourceChange::Service { selector: None, .. }), "{change:?}");
        let svc: core::Service =
            serde_yaml_ng::from_str("metadata: {name: web, namespace: shop}\nspec: {selector: {app: web}}").unwrap();
        let SourceChange::Service { namespace, name, selector: Some(s) } = service(&svc).unwrap() else {
            panic!("a selector")
        };
        assert_eq!((namespace.as_str(), &*name, s.len()), ("shop", "web", 1));
    }

    #[test]
    fn a_bad_replica_set_selector_names_the_object_and_field() {
        let bad = rs("metadata: {name: web-1, namespace: shop}
spec:
  selector: {matchExpressions: [{key: app, operator: Near, values: [x]}]}");
        let msg = replica_set(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("ReplicaSet shop/web-1") && msg.contains("spec.selector.matchExpressions[0].operator"),
            "{msg}"
        );
    }

    #[test]
    fn a_replication_controller_without_a_selector_selects_its_template_labels() {
        let rc: core::ReplicationController =
            serde_yaml_ng::from_str("metadata: {name: old}\nspec: {template: {metadata: {labels: {app: old}}}}")
                .unwrap();
        let SourceChange::Controller { selector: Some(s), .. } = replication_controller(&rc).unwrap() else {
            panic!("a selector")
        };
        assert_eq!(s.requirements.len(), 1);
        assert_eq!(s.requirements[0].key.as_str(), "app");
    }

    #[test]
    fn deletions_forget_by_kind() {
        assert!(matches!(removed("ReplicaSet", "ns", "web"), Some(SourceChange::Controller { selector: None, .. })));
        assert!(matches!(removed("Service", "ns", "web"), Some(SourceChange::Service { selector: None, .. })));
        assert_eq!(removed("Job", "ns", "web"), None);
    }
}
