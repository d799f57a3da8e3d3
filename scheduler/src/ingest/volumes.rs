//! Storage objects into the volume plugins' model
//! ([`tessera_plugins::plugins::volumes::model`]): a pod's volumes, PersistentVolumes,
//! PersistentVolumeClaims, StorageClasses and CSINodes, with the API's defaulting applied
//! (binding mode `Immediate`, volume mode `Filesystem`, RBD pool `rbd`, the default
//! StorageClass for a claim that names none, as the DefaultStorageClass admission does), and
//! every error naming the object and the field.
//!
//! A pod naming a claim that does not exist is not an error here: a real cluster accepts
//! such a pod, and scheduling reports it (upstream's PreFilters, UnschedulableAndUnresolvable).

use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::storage::v1 as storage;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::{NodeSelector, NodeSelectorTerm, Operator, Requirement};
use tessera_plugins::plugins::volumes::model::{
    AccessModes, CsiNode, CsiVolume, PersistentVolume, PersistentVolumeClaim, PodVolume, PvcKey, StorageClass,
    VolumeMode,
};
use tessera_plugins::quantity::parse_value;

use super::error::{FieldError, FieldProblem, IngestError, ObjectRef};
use super::selectors::{label_selector, label_set, node_selector_term};

/// The beta annotation that names a claim's class, which wins over `spec.storageClassName`
/// (upstream `GetPersistentVolumeClaimClass`).
pub const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";
/// The annotation that records the node provisioning was asked on.
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";
/// The annotation that makes a StorageClass the default for claims that name none.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// Its beta spelling, which admission still honours.
pub const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";

const ACCESS_MODES: &str = "ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod";
const VOLUME_MODES: &str = "Filesystem, Block";
const BINDING_MODES: &str = "Immediate, WaitForFirstConsumer";

/// The volumes of `spec` that a volume plugin reads, in order; the claim of a generic
/// ephemeral volume is named `<pod>-<volume>`, as its controller names it.
pub fn pod_volumes(spec: &core::PodSpec, pod_name: &str) -> Result<Vec<PodVolume>, FieldError> {
    let mut out = Vec::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let path = |field: &str| format!("spec.volumes[{i}].{field}");
        if let Some(c) = &v.persistent_volume_claim {
            if c.claim_name.is_empty() {
                return Err(FieldError::new(path("persistentVolumeClaim.claimName"), FieldProblem::Missing));
            }
            out.push(PodVolume::Claim { claim: Sym::new(&c.claim_name), ephemeral: false });
        } else if v.ephemeral.is_some() {
            out.push(PodVolume::Claim { claim: Sym::new(&format!("{pod_name}-{}", v.name)), ephemeral: true });
        } else if let Some(d) = &v.gce_persistent_disk {
            out.push(PodVolume::GcePersistentDisk {
                pd_name: Sym::new(&d.pd_name),
                read_only: d.read_only.unwrap_or(false),
            });
        } else if let Some(d) = &v.aws_elastic_block_store {
            out.push(PodVolume::AwsElasticBlockStore { volume_id: Sym::new(&d.volume_id) });
        } else if let Some(d) = &v.rbd {
            out.push(PodVolume::Rbd {
                monitors: d.monitors.iter().map(|m| Sym::new(m)).collect(),
                pool: Sym::new(d.pool.as_deref().filter(|p| !p.is_empty()).unwrap_or("rbd")),
                image: Sym::new(&d.image),
                read_only: d.read_only.unwrap_or(false),
            });
        } else if let Some(d) = &v.iscsi {
            out.push(PodVolume::Iscsi { iqn: Sym::new(&d.iqn), read_only: d.read_only.unwrap_or(false) });
        }
    }
    Ok(out)
}

/// The claims the ephemeral volume controller makes for `pod`'s generic ephemeral volumes:
/// `<pod>-<volume>` in the pod's namespace, from the volume's claim template, owned by the pod.
pub fn ephemeral_claims(pod: &core::Pod) -> impl Iterator<Item = core::PersistentVolumeClaim> + '_ {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    volumes.filter_map(move |v| {
        let template = v.ephemeral.as_ref()?.volume_claim_template.as_ref()?;
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod_name.to_string(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            ..OwnerReference::default()
        };
        let metadata = ObjectMeta {
            name: Some(format!("{pod_name}-{}", v.name)),
            namespace: pod.metadata.namespace.clone(),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            annotations: template.metadata.as_ref().and_then(|m| m.annotations.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        };
        Some(core::PersistentVolumeClaim { metadata, spec: Some(template.spec.clone()), status: None })
    })
}

/// The class admission gives claims that name none: the one annotated as default (of
/// several, the last listed; upstream takes the newest).
pub fn default_class(classes: &[storage::StorageClass]) -> Option<&str> {
    let is_default = |c: &&storage::StorageClass| {
        let a = c.metadata.annotations.as_ref();
        [DEFAULT_CLASS_ANNOTATION, BETA_DEFAULT_CLASS_ANNOTATION]
            .iter()
            .any(|k| a.and_then(|a| a.get(*k)).is_some_and(|v| v == "true"))
    };
    classes.iter().rev().find(is_default).and_then(|c| c.metadata.name.as_deref())
}

/// The object's name, or the missing-name error.
fn name_of(meta: &ObjectMeta) -> Result<&str, FieldError> {
    meta.name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| FieldError::new("metadata.name", FieldProblem::Missing))
}

/// A list of access modes at `path`.
fn access_modes(modes: Option<&[String]>, path: &str) -> Result<AccessModes, FieldError> {
    let mut out = AccessModes::default();
    for (i, m) in modes.unwrap_or_default().iter().enumerate() {
        let mode =
            AccessModes::parse(m).ok_or_else(|| FieldError::unsupported(format!("{path}[{i}]"), m, ACCESS_MODES))?;
        out = out.with(mode);
    }
    Ok(out)
}

fn volume_mode(mode: Option<&str>, path: &str) -> Result<VolumeMode, FieldError> {
    match mode {
        None | Some("Filesystem") => Ok(VolumeMode::Filesystem),
        Some("Block") => Ok(VolumeMode::Block),
        Some(other) => Err(FieldError::unsupported(path, other, VOLUME_MODES)),
    }
}

/// `storage` of a resource list at `path`, in bytes (0 when absent).
fn storage_amount(
    list: Option<&std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    path: &str,
) -> Result<i64, FieldError> {
    let Some(q) = list.and_then(|l| l.get("storage")) else { return Ok(0) };
    let field = format!("{path}.storage");
    let bytes = parse_value(&q.0).map_err(|e| FieldError::new(&field, e))?;
    if bytes < 0 {
        return Err(FieldError::invalid(field, &q.0, "must be greater than or equal to 0"));
    }
    Ok(bytes)
}

/// Converts a PersistentVolume.
pub fn persistent_volume(v: &core::PersistentVolume) -> Result<PersistentVolume, IngestError> {
    let object = || ObjectRef::cluster("PersistentVolume", v.metadata.name.as_deref());
    convert_pv(v).map_err(|e| e.on(object()))
}

fn convert_pv(v: &core::PersistentVolume) -> Result<PersistentVolume, FieldError> {
    let name = name_of(&v.metadata)?;
    let spec = v.spec.as_ref().ok_or_else(|| FieldError::new("spec", FieldProblem::Missing))?;
    let node_affinity = match spec.node_affinity.as_ref().and_then(|a| a.required.as_ref()) {
        Some(required) => {
            let mut terms = Vec::new();
            for (i, t) in required.node_selector_terms.iter().enumerate() {
                terms.push(node_selector_term(t, &format!("spec.nodeAffinity.required.nodeSelectorTerms[{i}]"))?);
            }
            Some(NodeSelector { terms })
        }
        None => None,
    };
    let claim_ref = match &spec.claim_ref {
        Some(r) => {
            let claim = r.name.as_deref().filter(|n| !n.is_empty());
            let claim = claim.ok_or_else(|| FieldError::new("spec.claimRef.name", FieldProblem::Missing))?;
            let namespace = r.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
            Some(PvcKey::new(namespace, claim))
        }
        None => None,
    };
    let csi = match &spec.csi {
        Some(c) if c.driver.is_empty() => return Err(FieldError::new("spec.csi.driver", FieldProblem::Missing)),
        Some(c) if c.volume_handle.is_empty() => {
            return Err(FieldError::new("spec.csi.volumeHandle", FieldProblem::Missing));
        }
        Some(c) => Some(CsiVolume { driver: Sym::new(&c.driver), handle: Sym::new(&c.volume_handle) }),
        None => None,
    };
    // A volume listed without a status (hand-written input) is as the PV controller leaves it.
    let phase = v.status.as_ref().and_then(|s| s.phase.as_deref());
    let available = match phase {
        Some(p) => p == "Available",
        None => claim_ref.is_none(),
    };
    Ok(PersistentVolume {
        name: Sym::new(name),
        labels: label_set(v.metadata.labels.as_ref()),
        capacity: storage_amount(spec.capacity.as_ref(), "spec.capacity")?,
        access_modes: access_modes(spec.access_modes.as_deref(), "spec.accessModes")?,
        volume_mode: volume_mode(spec.volume_mode.as_deref(), "spec.volumeMode")?,
        storage_class: Sym::new(spec.storage_class_name.as_deref().unwrap_or("")),
        node_affinity,
        claim_ref,
        csi,
        available,
        deleting: v.metadata.deletion_timestamp.is_some(),
    })
}

/// Converts a PersistentVolumeClaim; `default_class` is the class of one naming none.
pub fn persistent_volume_claim(
    c: &core::PersistentVolumeClaim,
    default_class: Option<&str>,
) -> Result<PersistentVolumeClaim, IngestError> {
    let namespace = c.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
    let object = || ObjectRef::namespaced("PersistentVolumeClaim", namespace, c.metadata.name.as_deref());
    convert_pvc(c, namespace, default_class).map_err(|e| e.on(object()))
}

fn convert_pvc(
    c: &core::PersistentVolumeClaim,
    namespace: &str,
    default_class: Option<&str>,
) -> Result<PersistentVolumeClaim, FieldError> {
    let meta = &c.metadata;
    let name = name_of(meta)?;
    let spec = c.spec.as_ref().ok_or_else(|| FieldError::new("spec", FieldProblem::Missing))?;
    let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).map(String::as_str);
    let class =
        annotation(BETA_CLASS_ANNOTATION).or(spec.storage_class_name.as_deref()).or(default_class).unwrap_or("");
    let owner = meta.owner_references.iter().flatten().find(|o| o.controller == Some(true));
    Ok(PersistentVolumeClaim {
        key: PvcKey::new(namespace, name),
        uid: Arc::from(meta.uid.as_deref().unwrap_or("")),
        owner_uid: owner.map(|o| Arc::from(o.uid.as_str())),
        storage_class: Sym::new(class),
        request: storage_amount(spec.resources.as_ref().and_then(|r| r.requests.as_ref()), "spec.resources.requests")?,
        access_modes: access_modes(spec.access_modes.as_deref(), "spec.accessModes")?,
        volume_mode: volume_mode(spec.volume_mode.as_deref(), "spec.volumeMode")?,
        selector: label_selector(spec.selector.as_ref(), "spec.selector")?,
        volume_name: spec.volume_name.as_deref().filter(|n| !n.is_empty()).map(Sym::new),
        lost: c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Lost"),
        deleting: meta.deletion_timestamp.is_some(),
        selected_node: annotation(SELECTED_NODE_ANNOTATION).filter(|n| !n.is_empty()).map(Sym::new),
    })
}

/// Converts a StorageClass.
pub fn storage_class(c: &storage::StorageClass) -> Result<StorageClass, IngestError> {
    let object = || ObjectRef::cluster("StorageClass", c.metadata.name.as_deref());
    convert_class(c).map_err(|e| e.on(object()))
}

fn convert_class(c: &storage::StorageClass) -> Result<StorageClass, FieldError> {
    let name = name_of(&c.metadata)?;
    if c.provisioner.is_empty() {
        return Err(FieldError::new("provisioner", FieldProblem::Missing));
    }
    let wait_for_first_consumer = match c.volume_binding_mode.as_deref() {
        None | Some("Immediate") => false,
        Some("WaitForFirstConsumer") => true,
        Some(other) => return Err(FieldError::unsupported("volumeBindingMode", other, BINDING_MODES)),
    };
    let mut allowed_topologies = Vec::new();
    for (i, t) in c.allowed_topologies.iter().flatten().enumerate() {
        let mut term = NodeSelectorTerm::default();
        for (j, e) in t.match_label_expressions.iter().flatten().enumerate() {
            let path = format!("allowedTopologies[{i}].matchLabelExpressions[{j}]");
            if e.key.is_empty() {
                return Err(FieldError::new(format!("{path}.key"), FieldProblem::Missing));
            }
            if e.values.is_empty() {
                return Err(FieldError::new(format!("{path}.values"), FieldProblem::Missing));
            }
            let values = e.values.iter().map(|v| Sym::new(v)).collect();
            term.match_expressions.push(Requirement { key: Sym::new(&e.key), op: Operator::In, values, bound: 0 });
        }
        allowed_topologies.push(term);
    }
    Ok(StorageClass {
        name: Sym::new(name),
        provisioner: Sym::new(&c.provisioner),
        wait_for_first_consumer,
        allowed_topologies,
    })
}

/// Converts a CSINode.
pub fn csi_node(c: &storage::CSINode) -> Result<CsiNode, IngestError> {
    let object = || ObjectRef::cluster("CSINode", c.metadata.name.as_deref());
    convert_csi_node(c).map_err(|e| e.on(object()))
}

fn convert_csi_node(c: &storage::CSINode) -> Result<CsiNode, FieldError> {
    let name = name_of(&c.metadata)?;
    let mut limits = Vec::new();
    for (i, d) in c.spec.drivers.iter().enumerate() {
        if d.name.is_empty() {
            return Err(FieldError::new(format!("spec.drivers[{i}].name"), FieldProblem::Missing));
        }
        let Some(count) = d.allocatable.as_ref().and_then(|a| a.count) else { continue };
        let count = u32::try_from(count).map_err(|_| {
            FieldError::new(
                format!("spec.drivers[{i}].allocatable.count"),
                FieldProblem::TooSmall { min: 0, got: i64::from(count) },
            )
        })?;
        limits.push((Sym::new(&d.name), count));
    }
    Ok(CsiNode { node: Sym::new(name), limits })
}

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
