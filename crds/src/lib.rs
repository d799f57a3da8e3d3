//! # tessera-crds
//!
//! Custom resources Tessera reads, as Rust types with `kube::CustomResource`, and their
//! CustomResourceDefinitions generated from those types into `crds/yaml/` (checked in; a test
//! fails when the types and the YAML drift apart — regenerate with
//! `TESSERA_WRITE_CRDS=1 cargo test -p tessera-crds`).
//!
//! Kubernetes' own gang API (`scheduling.k8s.io` PodGroup and Workload) comes typed from
//! k8s-openapi and needs no CRD here; [`PodGroup`] is the scheduler-plugins coscheduling API
//! (`scheduling.x-k8s.io/v1alpha1`), so that existing users' objects work unchanged.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The label pods join a scheduler-plugins PodGroup with.
pub const POD_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";

/// A gang: `minMember` pods that must be scheduled together.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "scheduling.x-k8s.io",
    version = "v1alpha1",
    kind = "PodGroup",
    plural = "podgroups",
    shortname = "pg",
    namespaced,
    status = "PodGroupStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct PodGroupSpec {
    /// The minimum number of pods that must run together for any of them to start.
    #[serde(default)]
    pub min_member: i32,
    /// The minimum resources the gang needs; the scheduler checks them before trying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_resources: Option<BTreeMap<String, Quantity>>,
    /// How long the gang may wait at Permit before it is rejected and backs off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_timeout_seconds: Option<i32>,
}

/// What the scheduler reports of a PodGroup.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodGroupStatus {
    /// `Pending`, `PreScheduling`, `Scheduling`, `Scheduled`, `Running`, `Finished` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The owner the group belongs to, when one owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupied_by: Option<String>,
    /// Pods scheduled.
    #[serde(default)]
    pub scheduled: i32,
    /// Pods running.
    #[serde(default)]
    pub running: i32,
    /// Pods succeeded.
    #[serde(default)]
    pub succeeded: i32,
    /// Pods failed.
    #[serde(default)]
    pub failed: i32,
    /// When scheduling of the group started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_start_time: Option<Time>,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    fn generated() -> String {
        serde_yaml_ng::to_string(&PodGroup::crd()).unwrap()
    }

    #[test]
    fn checked_in_crd_matches_the_types() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/yaml/podgroups.scheduling.x-k8s.io.yaml");
        if std::env::var_os("TESSERA_WRITE_CRDS").is_some() {
            std::fs::write(path, generated()).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(on_disk, generated(), "crds/yaml is stale: run TESSERA_WRITE_CRDS=1 cargo test -p tessera-crds");
    }

    #[test]
    fn existing_objects_deserialize() {
        let pg: PodGroup = serde_yaml_ng::from_str(
            "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: train, namespace: ml}\n\
             spec: {minMember: 64, scheduleTimeoutSeconds: 600, minResources: {cpu: '128', nvidia.com/gpu: '64'}}\n\
             status: {phase: Scheduling, scheduled: 41}\n",
        )
        .unwrap();
        assert_eq!(pg.spec.min_member, 64);
        assert_eq!(pg.spec.schedule_timeout_seconds, Some(600));
        assert_eq!(pg.status.map(|s| s.scheduled), Some(41));
    }
}
