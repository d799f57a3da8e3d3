//! Kubernetes `Pod` into the compact [`Pod`], with upstream's defaulting and the parts of
//! admission the scheduler depends on (priority from PriorityClasses; overhead, node selector
//! and tolerations from RuntimeClasses) applied, DRA claims resolved, and invalid specs rejected with the field
//! named.

mod affinity;
mod context;
mod ports;
mod requests;
mod runtime;
mod spread;
mod tolerations;

pub(crate) use affinity::node_affinity;
pub(crate) use tolerations::{TolerationFields, toleration_of, tolerations};

use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tessera_plugins::default_selector::{ControllerKind, ControllerRef};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{Pod, PreemptionPolicy};

pub use context::{PodContext, RuntimeScheduling};
pub use requests::{PodRequests, pod_requests};

use super::error::{FieldError, FieldProblem, IngestError, ObjectRef};
use super::selectors::label_set;
use affinity::{OwnPod, pod_affinity, pod_anti_affinity};

/// The scheduler a pod gets when it names none.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// The label with which scheduler-plugins' coscheduling puts a pod in a PodGroup.
pub const POD_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";
/// The annotation with which Volcano puts a pod in a PodGroup (its `KubeGroupNameAnnotationKey`).
pub const VOLCANO_GROUP_ANNOTATION: &str = "scheduling.k8s.io/group-name";

/// Converts a pod, resolving its priority, overhead and DRA claims through `cx`.
pub fn pod(p: &core::Pod, cx: &PodContext) -> Result<Pod, IngestError> {
    let namespace = p.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
    convert(p, namespace, cx).map_err(|e| e.on(ObjectRef::namespaced("Pod", namespace, p.metadata.name.as_deref())))
}

fn convert(p: &core::Pod, namespace: &str, cx: &PodContext) -> Result<Pod, FieldError> {
    let meta = &p.metadata;
    let name =
        non_empty(meta.name.as_deref()).ok_or_else(|| FieldError::new("metadata.name", FieldProblem::Missing))?;
    let spec = p.spec.as_ref().ok_or_else(|| FieldError::new("spec", FieldProblem::Missing))?;
    let namespace = Sym::new(namespace);
    let labels = label_set(meta.labels.as_ref());
    let PodRequests { requests, non_zero } = pod_requests(spec, cx)?;
    let affinity = spec.affinity.as_ref();
    let (required_node_affinity, preferred_node_affinity) =
        node_affinity(affinity.and_then(|a| a.node_affinity.as_ref()))?;
    let own = OwnPod { namespace, labels: &labels };
    let pod_affinity = pod_affinity(affinity.and_then(|a| a.pod_affinity.as_ref()), &own)?;
    let pod_anti_affinity = pod_anti_affinity(affinity.and_then(|a| a.pod_anti_affinity.as_ref()), &own)?;
    let spread_constraints = spread::spread_constraints(spec.topology_spread_constraints.as_deref(), &labels)?;
    let gpu = super::gpu::pod_gpu(&requests, meta.annotations.as_ref())?;
    let mut node_selector = label_set(spec.node_selector.as_ref());
    let mut tolerations = tolerations::tolerations(spec.tolerations.as_deref())?;
    runtime::merge_scheduling(spec, cx, &mut node_selector, &mut tolerations)?;
    Ok(Pod {
        namespace,
        name: Arc::from(name),
        uid: Arc::from(meta.uid.as_deref().unwrap_or("")),
        requests,
        non_zero_requests: non_zero,
        node_name: non_empty(spec.node_name.as_deref()).map(Sym::new),
        node_selector,
        required_node_affinity,
        preferred_node_affinity,
        tolerations,
        host_ports: ports::host_ports(spec)?,
        priority: priority(spec, cx)?,
        priority_class: Sym::new(priority_class(spec, cx).unwrap_or("")),
        preemption_policy: preemption_policy(spec, cx)?,
        scheduler_name: Sym::new(non_empty(spec.scheduler_name.as_deref()).unwrap_or(DEFAULT_SCHEDULER_NAME)),
        spread_constraints,
        pod_affinity,
        pod_anti_affinity,
        images: images(spec),
        gpu_ids: super::gpu::gpu_ids(meta.annotations.as_ref(), gpu.as_ref())?,
        gpu,
        pod_group: pod_group(spec, meta, cx.volcano_groups()),
        claims: cx.dra().pod_claims(p, namespace.as_str(), name)?,
        scheduling_gates: spec.scheduling_gates.iter().flatten().map(|g| Arc::from(g.name.as_str())).collect(),
        volumes: super::volumes::pod_volumes(spec, name)?,
        controller: controller(meta),
        creation_s: creation_seconds(meta),
        labels,
    })
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// `spec.priority` when set (an API server's Priority admission always sets it), else the
/// value of `spec.priorityClassName`, else the global default class, else 0 — what
/// admission would have written.
fn priority(spec: &core::PodSpec, cx: &PodContext) -> Result<i32, FieldError> {
    if let Some(p) = spec.priority {
        return Ok(p);
    }
    match non_empty(spec.priority_class_name.as_deref()) {
        Some(name) => cx.priority_class(name).ok_or_else(|| {
            FieldError::new(
                "spec.priorityClassName",
                FieldProblem::NotFound { kind: "PriorityClass", name: name.to_string() },
            )
        }),
        None => Ok(cx.global_default_priority().unwrap_or(0)),
    }
}

/// `spec.priorityClassName`, else the global default class admission would have named.
fn priority_class<'a>(spec: &'a core::PodSpec, cx: &'a PodContext) -> Option<&'a str> {
    non_empty(spec.priority_class_name.as_deref()).or_else(|| cx.global_default_class())
}

/// `spec.preemptionPolicy` when set, else that of the pod's priority class (admission copies
/// it), else `PreemptLowerPriority`.
fn preemption_policy(spec: &core::PodSpec, cx: &PodContext) -> Result<PreemptionPolicy, FieldError> {
    match spec.preemption_policy.as_deref() {
        Some("Never") => Ok(PreemptionPolicy::Never),
        Some("PreemptLowerPriority") => Ok(PreemptionPolicy::PreemptLowerPriority),
        Some(other) => Err(FieldError::new(
            "spec.preemptionPolicy",
            FieldProblem::Unsupported { value: other.to_string(), supported: "\"Never\", \"PreemptLowerPriority\"" },
        )),
        None if priority_class(spec, cx).is_some_and(|c| cx.class_never_preempts(c)) => Ok(PreemptionPolicy::Never),
        None => Ok(PreemptionPolicy::PreemptLowerPriority),
    }
}

/// Images of the containers, then of the init containers.
fn images(spec: &core::PodSpec) -> Vec<Arc<str>> {
    let inits = spec.init_containers.iter().flatten();
    spec.containers.iter().chain(inits).filter_map(|c| non_empty(c.image.as_deref())).map(Arc::from).collect()
}

/// The gang: Kubernetes' `spec.schedulingGroup.podGroupName`, else the scheduler-plugins
/// PodGroup label, else (when `volcano`: see [`PodContext::volcano_groups`]) Volcano's
/// annotation, so that every kind of PodGroup read finds its pods.
fn pod_group(spec: &core::PodSpec, meta: &ObjectMeta, volcano: bool) -> Option<Sym> {
    let native = spec.scheduling_group.as_ref().and_then(|g| non_empty(g.pod_group_name.as_deref()));
    let labelled = || non_empty(meta.labels.as_ref().and_then(|l| l.get(POD_GROUP_LABEL)).map(String::as_str));
    let annotations = meta.annotations.as_ref().filter(|_| volcano);
    let annotated = || non_empty(annotations.and_then(|a| a.get(VOLCANO_GROUP_ANNOTATION)).map(String::as_str));
    native.or_else(labelled).or_else(annotated).map(Sym::new)
}

/// Whether the pod ran to completion (`Succeeded` or `Failed`), so it holds nothing on its node.
pub fn is_finished(pod: &core::Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// The controller owner reference, when it names a kind whose selector default spreading
/// reads.
fn controller(meta: &ObjectMeta) -> Option<ControllerRef> {
    let owner = meta.owner_references.iter().flatten().find(|o| o.controller == Some(true))?;
    let kind = ControllerKind::of_owner(&owner.api_version, &owner.kind)?;
    Some(ControllerRef { kind, name: Sym::new(&owner.name) })
}

/// `metadata.creationTimestamp` in seconds since the Unix epoch; 0 when absent, as in
/// hand-written simulator input.
fn creation_seconds(meta: &ObjectMeta) -> f64 {
    meta.creation_timestamp.as_ref().map_or(0.0, |t| t.0.as_duration().as_secs_f64())
}

#[cfg(test)]
mod tests;
