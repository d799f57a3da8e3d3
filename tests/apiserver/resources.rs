//! The table of resources the test server knows, with the facts kube-apiserver's REST mapping
//! holds for each: group/version, URL plural, kind, scope, subresources and the field-selector
//! labels its registry accepts.
//!
//! Every resource is stored on its own (no conversion between versions of one group: an object
//! created as `scheduling.k8s.io/v1alpha3` PodGroup is not visible as `v1beta1`). Requests and
//! [`super::Store`] calls address a resource by its index in [`RESOURCES`].

/// One servable resource, as discovery would describe it.
#[derive(Debug)]
pub(crate) struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Subresources beside the object itself, e.g. `status`, `binding`.
    pub subresources: &'static [&'static str],
    /// Field-selector labels beyond `metadata.name` / `metadata.namespace` (upstream's
    /// `GetAttrs` per registry); any other label is a 400 as upstream.
    pub fields: &'static [&'static str],
}

impl ResourceInfo {
    /// `v1` for core, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// Whether writes to the main resource must leave `.status` alone (status subresource).
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    /// `pods` or `leases.coordination.k8s.io`, as upstream names a resource in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }
}

const STATUS: &[&str] = &["status"];
const NONE: &[&str] = &[];

const fn res(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    subresources: &'static [&'static str],
) -> ResourceInfo {
    ResourceInfo { group, version, plural, kind, namespaced, subresources, fields: NONE }
}

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.restartPolicy",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// Every resource served, core first. Order is the store's index order and never changes.
pub(crate) static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo { fields: &["spec.unschedulable"], ..res("", "v1", "nodes", "Node", false, STATUS) },
    ResourceInfo { fields: POD_FIELDS, ..res("", "v1", "pods", "Pod", true, &["status", "binding", "eviction"]) },
    ResourceInfo {
        fields: &["status.phase"],
        ..res("", "v1", "namespaces", "Namespace", false, &["status", "finalize"])
    },
    res("", "v1", "serviceaccounts", "ServiceAccount", true, NONE),
    ResourceInfo { fields: EVENT_FIELDS, ..res("", "v1", "events", "Event", true, NONE) },
    res("", "v1", "configmaps", "ConfigMap", true, NONE),
    ResourceInfo { fields: &["type"], ..res("", "v1", "secrets", "Secret", true, NONE) },
    res("", "v1", "services", "Service", true, STATUS),
    res("", "v1", "persistentvolumes", "PersistentVolume", false, STATUS),
    res("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, STATUS),
    res("", "v1", "replicationcontrollers", "ReplicationController", true, STATUS),
    res("apps", "v1", "replicasets", "ReplicaSet", true, STATUS),
    res("apps", "v1", "statefulsets", "StatefulSet", true, STATUS),
    res("events.k8s.io", "v1", "events", "Event", true, NONE),
    res("coordination.k8s.io", "v1", "leases", "Lease", true, NONE),
    res("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", false, NONE),
    res("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", false, NONE),
    res("scheduling.k8s.io", "v1alpha3", "podgroups", "PodGroup", true, STATUS),
    res("scheduling.k8s.io", "v1alpha3", "compositepodgroups", "CompositePodGroup", true, STATUS),
    res("scheduling.k8s.io", "v1alpha3", "workloads", "Workload", true, NONE),
    res("scheduling.k8s.io", "v1beta1", "podgroups", "PodGroup", true, STATUS),
    res("scheduling.k8s.io", "v1beta1", "workloads", "Workload", true, NONE),
    res("scheduling.x-k8s.io", "v1alpha1", "podgroups", "PodGroup", true, STATUS),
    res("resource.k8s.io", "v1", "deviceclasses", "DeviceClass", false, NONE),
    ResourceInfo {
        fields: &["spec.nodeName", "spec.driver"],
        ..res("resource.k8s.io", "v1", "resourceslices", "ResourceSlice", false, NONE)
    },
    res("resource.k8s.io", "v1", "resourceclaims", "ResourceClaim", true, STATUS),
    res("resource.k8s.io", "v1", "resourceclaimtemplates", "ResourceClaimTemplate", true, NONE),
    res("resource.k8s.io", "v1", "devicetaintrules", "DeviceTaintRule", false, STATUS),
    res("storage.k8s.io", "v1", "storageclasses", "StorageClass", false, NONE),
    res("storage.k8s.io", "v1", "csinodes", "CSINode", false, NONE),
    res("storage.k8s.io", "v1", "csidrivers", "CSIDriver", false, NONE),
    res("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity", true, NONE),
    res("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", false, STATUS),
    res("storage.k8s.io", "v1", "volumeattributesclasses", "VolumeAttributesClass", false, NONE),
    res("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, STATUS),
    res("apps", "v1", "deployments", "Deployment", true, STATUS),
    res("apps", "v1", "daemonsets", "DaemonSet", true, STATUS),
    res("batch", "v1", "jobs", "Job", true, STATUS),
];

/// Index of the resource served at `/apis/{group}/{version}/{plural}` (group "" = core).
pub(crate) fn by_path(group: &str, version: &str, plural: &str) -> Option<usize> {
    RESOURCES.iter().position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Index of the resource whose objects carry this `apiVersion` and `kind`.
pub(crate) fn by_kind(api_version: &str, kind: &str) -> Option<usize> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    RESOURCES.iter().position(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Fixed indexes of the resources whose semantics the server special-cases; `indexes_match`
/// below keeps them in step with [`RESOURCES`].
pub(crate) const PODS: usize = 1;
pub(crate) const NAMESPACES: usize = 2;
pub(crate) const PRIORITY_CLASSES: usize = 15;

/// Distinct `(group, version)` pairs, for discovery.
pub(crate) fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_match() {
        assert_eq!(by_path("", "v1", "pods"), Some(PODS));
        assert_eq!(by_path("", "v1", "namespaces"), Some(NAMESPACES));
        assert_eq!(by_path("scheduling.k8s.io", "v1", "priorityclasses"), Some(PRIORITY_CLASSES));
        assert_eq!(by_kind("coordination.k8s.io/v1", "Lease"), by_path("coordination.k8s.io", "v1", "leases"));
    }
}
