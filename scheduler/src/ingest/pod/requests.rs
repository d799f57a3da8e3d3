//! A pod's effective requests, computed as upstream's `resourcehelper.PodRequests`
//! (k8s 1.37) with the scheduler's options: sidecar-aware init containers, pod-level
//! resources, pod overhead, and (for scoring) default requests for containers that ask none.

use k8s_openapi::api::core::v1 as core;
use tessera_plugins::model::{DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST};
use tessera_plugins::resources::{ResourceId, ResourceSet, ResourceVec};

use super::context::PodContext;
use crate::ingest::error::{FieldError, FieldProblem};
use crate::ingest::quantities::{Amounts, ResourceList, resource_amount, resource_list};

/// A pod's requests, as scheduling reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRequests {
    /// What the pod occupies on its node (NodeResourcesFit's filter).
    pub requests: ResourceVec,
    /// As `requests`, with upstream's defaults (100m CPU, 200Mi memory) for containers that
    /// request none (what scoring plugins compare).
    pub non_zero: ResourceVec,
}

/// One container's requests.
struct ContainerRequests {
    amounts: Amounts,
    /// An init container with `restartPolicy: Always`: a sidecar, running beside the app.
    restartable: bool,
}

/// Computes the pod's requests; `cx` supplies the overhead of its RuntimeClass when the pod
/// carries no `spec.overhead` of its own.
pub fn pod_requests(spec: &core::PodSpec, cx: &PodContext) -> Result<PodRequests, FieldError> {
    let containers = container_list(&spec.containers, "spec.containers")?;
    let inits = container_list(spec.init_containers.as_deref().unwrap_or_default(), "spec.initContainers")?;
    let mut listed = ResourceSet::default();
    for c in containers.iter().chain(&inits) {
        listed.union_with(&c.amounts.present);
    }
    let summed = aggregate(&containers, &inits, &ResourceVec::ZERO);
    let pod_level = pod_level_requests(spec.resources.as_ref(), &listed, &summed)?;
    let overhead = overhead(spec, cx)?;
    let requests = finish(summed, &pod_level, &overhead);
    listed.union_with(&pod_level.present);
    listed.union_with(&overhead.present);
    let defaults = missing_defaults(&pod_level, &listed);
    let non_zero = if defaults.is_zero() {
        requests.clone()
    } else {
        finish(aggregate(&containers, &inits, &defaults), &pod_level, &overhead)
    };
    Ok(PodRequests { requests, non_zero })
}

fn container_list(containers: &[core::Container], path: &str) -> Result<Vec<ContainerRequests>, FieldError> {
    containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(ContainerRequests {
                amounts: container_requests(c, &format!("{path}[{i}].resources"))?,
                restartable: c.restart_policy.as_deref() == Some("Always"),
            })
        })
        .collect()
}

/// A container's requests after upstream defaulting (`SetDefaults_Pod`): a resource with a
/// limit and no request requests its limit.
fn container_requests(c: &core::Container, path: &str) -> Result<Amounts, FieldError> {
    let resources = c.resources.as_ref();
    let mut out = resource_list(resources.and_then(|r| r.requests.as_ref()), &format!("{path}.requests"))?;
    let limits = resource_list(resources.and_then(|r| r.limits.as_ref()), &format!("{path}.limits"))?;
    for id in limits.listed() {
        if !out.has(id) {
            out.set(id, limits.values.get(id));
        }
    }
    Ok(out)
}

/// Upstream's `AggregateContainerRequests`: the containers and sidecars all run together; each
/// regular init container runs alone beside the sidecars started before it; the pod needs
/// the larger of the two. `defaults` are added to each container for every resource it does
/// not list (upstream `NonMissingContainerRequests`).
fn aggregate(containers: &[ContainerRequests], inits: &[ContainerRequests], defaults: &ResourceVec) -> ResourceVec {
    let mut running = ResourceVec::ZERO;
    for c in containers {
        running.add(&with_defaults(&c.amounts, defaults));
    }
    let mut sidecars = ResourceVec::ZERO;
    let mut init_peak = ResourceVec::ZERO;
    for c in inits {
        let own = with_defaults(&c.amounts, defaults);
        let mut during = own.clone();
        if c.restartable {
            running.add(&own);
            sidecars.add(&own);
            during = sidecars.clone();
        } else {
            during.add(&sidecars);
        }
        init_peak.max_with(&during);
    }
    running.max_with(&init_peak);
    running
}

fn with_defaults(amounts: &Amounts, defaults: &ResourceVec) -> ResourceVec {
    let mut out = amounts.values.clone();
    for (id, default) in defaults.iter_nonzero() {
        if !amounts.has(id) {
            out.set(id, out.get(id) + default);
        }
    }
    out
}

/// Whether pod-level resources (`spec.resources`) cover `name`: CPU, memory and hugepages.
fn pod_level_resource(name: &str) -> bool {
    name == "cpu" || name == "memory" || name.starts_with("hugepages-")
}

fn pod_level_list(list: Option<&ResourceList>, path: &str) -> Result<Amounts, FieldError> {
    let mut out = Amounts::default();
    for (name, quantity) in list.into_iter().flatten().filter(|(name, _)| pod_level_resource(name)) {
        let (id, amount) = resource_amount(name, quantity, path)?;
        out.set(id, amount);
    }
    Ok(out)
}

/// Pod-level requests after upstream defaulting (`defaultPodRequests`): when pod-level limits
/// are set, a covered resource with no pod-level request takes the containers' aggregate if
/// any container lists it, else the pod-level limit.
fn pod_level_requests(
    resources: Option<&core::ResourceRequirements>,
    listed: &ResourceSet,
    aggregate: &ResourceVec,
) -> Result<Amounts, FieldError> {
    let Some(resources) = resources else { return Ok(Amounts::default()) };
    let mut out = pod_level_list(resources.requests.as_ref(), "spec.resources.requests")?;
    if resources.limits.as_ref().is_none_or(|l| l.is_empty()) {
        return Ok(out);
    }
    for id in listed.iter().filter(|id| pod_level_resource(&id.name())) {
        if !out.has(id) {
            out.set(id, aggregate.get(id));
        }
    }
    let limits = pod_level_list(resources.limits.as_ref(), "spec.resources.limits")?;
    for id in limits.listed() {
        if !out.has(id) {
            out.set(id, limits.values.get(id));
        }
    }
    Ok(out)
}

/// `spec.overhead`, else the overhead of the pod's RuntimeClass (what upstream's RuntimeClass
/// admission would have copied into `spec.overhead`).
fn overhead(spec: &core::PodSpec, cx: &PodContext) -> Result<Amounts, FieldError> {
    if let Some(overhead) = spec.overhead.as_ref() {
        return resource_list(Some(overhead), "spec.overhead");
    }
    let Some(name) = spec.runtime_class_name.as_deref().filter(|n| !n.is_empty()) else {
        return Ok(Amounts::default());
    };
    // Upstream admission rejects a pod naming an unknown RuntimeClass.
    cx.runtime_overhead_amounts(name).cloned().ok_or_else(|| {
        FieldError::new(
            "spec.runtimeClassName",
            FieldProblem::NotFound { kind: "RuntimeClass", name: name.to_string() },
        )
    })
}

/// Pod-level values replace the containers' for what they cover; overhead comes on top.
fn finish(mut aggregate: ResourceVec, pod_level: &Amounts, overhead: &Amounts) -> ResourceVec {
    for id in pod_level.listed() {
        aggregate.set(id, pod_level.values.get(id));
    }
    aggregate.add(&overhead.values);
    aggregate
}

/// The per-container defaults for scoring (upstream `getNonMissingContainerRequests`): both,
/// without pod-level requests; with them, only for a resource that neither the containers,
/// the pod level nor the overhead lists.
fn missing_defaults(pod_level: &Amounts, listed: &ResourceSet) -> ResourceVec {
    let pod_level_set = !pod_level.present.is_empty();
    let mut out = ResourceVec::ZERO;
    if !pod_level_set || !listed.contains(ResourceId::CPU) {
        out.set(ResourceId::CPU, DEFAULT_MILLI_CPU_REQUEST);
    }
    if !pod_level_set || !listed.contains(ResourceId::MEMORY) {
        out.set(ResourceId::MEMORY, DEFAULT_MEMORY_REQUEST);
    }
    out
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
