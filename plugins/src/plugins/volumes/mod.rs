//! The volume plugins of kube-scheduler's default profile, in its order: VolumeRestrictions,
//! NodeVolumeLimits, VolumeBinding, VolumeZone.
//!
//! They read a pod's claims and inline disks ([`model::PodVolume`], on the pod) and the
//! cluster's storage objects, which the snapshot keeps in one [`index::VolumeIndex`] beside
//! the nodes (as it keeps DRA's shared claims). Filter gets only the node, so each PreFilter
//! resolves what its Filter needs from the snapshot once per pod and keeps it in the cycle
//! state; a pod with no volume skips all four at PreFilter and costs nothing more.
//!
//! None is node-local ([`crate::framework::Plugin::node_local`]): a volume another pod's
//! placement takes, or a ReadWriteOncePod claim another pod uses, changes a verdict without
//! the node changing. For the same reason a pod with claims counts as having cross-node
//! constraints ([`crate::model::Pod::has_cross_node_constraints`]), so the binder re-checks
//! its placement whenever the cluster moved since the worker looked.
//!
//! Not modelled: CSIStorageCapacity (provisioning is assumed to have room), CSI migration of
//! in-tree volume plugins (in-tree PVs and inline disks are not counted against CSINode
//! limits), and the beta `volume.kubernetes.io/bind-completed` handshake (a claim with
//! `spec.volumeName` counts as bound).

pub mod binding;
pub mod index;
pub mod limits;
pub mod model;
pub mod restrictions;
#[cfg(test)]
mod testing;
pub mod zone;

use std::sync::Arc;

use crate::model::Pod;
use crate::status::Status;
use index::VolumeIndex;
use model::{PersistentVolumeClaim, PvcKey};

/// Upstream's message for a claim the pod names that does not exist.
pub fn claim_not_found(name: impl std::fmt::Display) -> String {
    format!("persistentvolumeclaim \"{name}\" not found")
}

/// The claim `name` of `pod`, or the UnschedulableAndUnresolvable status upstream's PreFilters
/// give when it does not exist (for a generic ephemeral volume, upstream's "waiting for the
/// ephemeral volume controller" message). An ephemeral volume's claim must be the pod's own.
pub fn pod_claim<'a>(
    index: &'a VolumeIndex,
    pod: &Pod,
    name: crate::intern::Sym,
    ephemeral: bool,
) -> Result<&'a Arc<PersistentVolumeClaim>, Status> {
    let key = PvcKey { namespace: pod.namespace, name };
    match index.pvc(&key) {
        Some(pvc) => {
            if ephemeral && !pod.uid.is_empty() && pvc.owner_uid.as_deref() != Some(&*pod.uid) {
                let why = format!("PVC {key} was not created for pod {} (pod is not owner)", pod.key());
                return Err(Status::unresolvable(why));
            }
            Ok(pvc)
        }
        None if ephemeral => Err(Status::unresolvable(format!(
            "waiting for ephemeral volume controller to create the persistentvolumeclaim \"{name}\""
        ))),
        None => Err(Status::unresolvable(claim_not_found(name))),
    }
}
