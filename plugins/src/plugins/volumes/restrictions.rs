//! VolumeRestrictions: inline disks that cannot be mounted twice, and ReadWriteOncePod
//! claims that one pod in the whole cluster may use.
//!
//! PreFilter rejects a pod naming a claim that does not exist, counts the pod's
//! ReadWriteOncePod claims that some placed pod already uses (upstream's
//! `conflictingPVCRefCount`), and skips Filter when the pod has neither inline disks nor such
//! a conflict. Filter fails a node where a pod mounts one of the pod's inline GCE PD, EBS,
//! RBD or iSCSI disks in a conflicting way ("node(s) had no available disk"), then every node
//! while the ReadWriteOncePod conflict stands: both Unschedulable, as upstream (preemption of
//! the user may help).

use std::sync::Arc;

use super::model::{AccessModes, PodVolume, PvcKey};
use super::pod_claim;
use crate::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin};
use crate::model::Pod;
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "VolumeRestrictions";

/// Upstream's reason for an inline disk another pod on the node mounts.
pub const DISK_CONFLICT: &str = "node(s) had no available disk";
/// Upstream's reason for a ReadWriteOncePod claim another pod uses.
pub const READ_WRITE_ONCE_POD_CONFLICT: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

/// Where the cycle state keeps what PreFilter found.
const STATE: &str = "VolumeRestrictions/preFilter";

/// What PreFilter found.
#[derive(Clone)]
struct PreFilterState {
    /// The pod has inline disks to check against the node's pods.
    check_disks: bool,
    /// The pod's ReadWriteOncePod claims that placed pods use.
    conflicting_claims: u32,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct VolumeRestrictions;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(VolumeRestrictions))
}

impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeRestrictions {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<Option<Vec<NodeId>>, Status> {
        if pod.volumes.is_empty() {
            return Err(Status::skip());
        }
        let check_disks = pod.volumes.iter().any(PodVolume::is_inline_disk);
        let mut conflicting_claims = 0;
        for (i, v) in pod.volumes.iter().enumerate() {
            // Upstream looks only at `persistentVolumeClaim` volumes here, not ephemeral ones.
            let PodVolume::Claim { claim, ephemeral: false } = v else { continue };
            let pvc = pod_claim(snapshot.volumes(), pod, *claim, false)?;
            if !pvc.access_modes.contains(AccessModes::READ_WRITE_ONCE_POD)
                || pod.volumes[..i].iter().any(|o| o.claim() == Some(*claim))
            {
                continue;
            }
            if snapshot.claim_users(&PvcKey { namespace: pod.namespace, name: *claim }) > 0 {
                conflicting_claims += 1;
            }
        }
        if !check_disks && conflicting_claims == 0 {
            return Err(Status::skip());
        }
        state.write(STATE, PreFilterState { check_disks, conflicting_claims });
        Ok(None)
    }
}

impl FilterPlugin for VolumeRestrictions {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(STATE) else { return Status::success() };
        if s.check_disks {
            for v in pod.volumes.iter().filter(|v| v.is_inline_disk()) {
                if node.pods.iter().any(|other| other.volumes.iter().any(|o| v.conflicts(o))) {
                    return Status::unschedulable(DISK_CONFLICT);
                }
            }
        }
        if s.conflicting_claims > 0 {
            return Status::unschedulable(READ_WRITE_ONCE_POD_CONFLICT);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Sym;
    use crate::plugins::volumes::testing::*;

    #[test]
    fn a_read_write_once_pod_claim_in_use_anywhere_blocks_every_node() {
        let mut only = pvc("solo", "", 1);
        only.access_modes = AccessModes::READ_WRITE_ONCE_POD;
        let objects = objects(vec![], vec![bound_pvc(only, "pv"), bound_pvc(pvc("shared", "", 1), "pv2")], vec![]);
        let holder = claim_pod("holder", &["solo", "shared"]);
        let snap = cluster(&[("a", None), ("b", None)], vec![vec![holder]], objects);
        let v = verdicts(&VolumeRestrictions, &claim_pod("p", &["solo"]), &snap).unwrap();
        assert_eq!(v, [READ_WRITE_ONCE_POD_CONFLICT, READ_WRITE_ONCE_POD_CONFLICT]);
        let v = verdicts(&VolumeRestrictions, &claim_pod("q", &["shared"]), &snap).unwrap();
        assert_eq!(v, ["ok", "ok"], "ReadWriteOnce is not restricted here");
        let e = verdicts(&VolumeRestrictions, &claim_pod("r", &["missing"]), &snap).unwrap_err();
        assert_eq!(e.to_string(), "persistentvolumeclaim \"missing\" not found");
    }

    #[test]
    fn an_inline_disk_mounted_on_a_node_keeps_a_conflicting_pod_off_it() {
        let disk = |ro: bool| PodVolume::GcePersistentDisk { pd_name: Sym::new("pd-1"), read_only: ro };
        let mut holder = claim_pod("holder", &[]);
        holder.volumes = vec![disk(true)];
        let snap = cluster(&[("a", None), ("b", None)], vec![vec![holder]], objects(vec![], vec![], vec![]));
        let mut writer = claim_pod("w", &[]);
        writer.volumes = vec![disk(false)];
        assert_eq!(verdicts(&VolumeRestrictions, &writer, &snap).unwrap(), [DISK_CONFLICT, "ok"]);
        let mut reader = claim_pod("r", &[]);
        reader.volumes = vec![disk(true)];
        assert_eq!(verdicts(&VolumeRestrictions, &reader, &snap).unwrap(), ["ok", "ok"], "read-only twice is fine");
    }
}
