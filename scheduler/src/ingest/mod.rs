//! Kubernetes objects into Tessera's compact model, once per object.
//!
//! [`node()`] and [`pod()`] convert the k8s-openapi types into
//! [`tessera_plugins::model`]'s `Node` and `Pod`, applying upstream's defaulting (limits as
//! requests, sidecar-aware requests, overhead, priority from PriorityClasses) and validation,
//! so that Filter and Score never parse a quantity or walk a container list. [`yaml`] reads
//! Kubernetes YAML files into those types. Every error names the object (or the file and
//! document) and the field path. [`workloads`] expands controllers (Deployments, Jobs, ...;
//! DaemonSets on the nodes [`daemon_sets`] picks) into the pods they would create, for the
//! simulator, once [`owners`] has found what the input already has of each (a cluster dump
//! lists a Deployment's ReplicaSets and pods too), so that only the rest is created.
//! [`pod_group`] reads gangs from the three PodGroup APIs (Kubernetes', scheduler-plugins
//! coscheduling and Volcano) and from Workloads. [`dra`] reads DRA's ResourceSlices,
//! DeviceClasses and claims, and resolves each pod's `spec.resourceClaims`. [`volumes`] reads
//! PersistentVolumes, claims, StorageClasses and CSINodes, and each pod's volumes.

pub mod daemon_sets;
pub(crate) mod depth;
pub mod disruption;
pub mod dra;
pub mod duration;
pub mod error;
pub mod gpu;
pub mod node;
pub mod owners;
pub mod pod;
pub mod pod_group;
pub mod quantities;
pub mod selector_sources;
pub mod selectors;
pub mod volumes;
pub mod workloads;
pub mod yaml;

pub use duration::go_duration;
pub use error::IngestError;
pub use node::node;
pub use pod::{PodContext, pod};
pub use pod_group::{PodGroupObject, pod_groups};
pub use yaml::{Objects, read_objects};

#[cfg(test)]
mod sample_tests;
