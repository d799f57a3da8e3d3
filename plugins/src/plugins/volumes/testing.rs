//! Builders for the volume plugins' unit tests.
#![allow(dead_code, reason = "a builder kit: not every test uses every builder")]

use std::sync::Arc;

use super::index::VolumeObjects;
use super::model::{AccessModes, PersistentVolume, PersistentVolumeClaim, PodVolume, PvcKey, StorageClass, VolumeMode};
use crate::framework::{CycleState, Plugin};
use crate::intern::Sym;
use crate::labels::{LabelSet, NodeSelector, NodeSelectorTerm, Operator, Requirement};
use crate::model::Pod;
use crate::plugins::testing::{node, snapshot, with_labels};
use crate::snapshot::Snapshot;
use crate::status::Status;

pub const GI: i64 = 1 << 30;

/// An available ReadWriteOnce volume of `gi` GiB in `class`, reachable from `node` only (or
/// from everywhere).
pub fn pv(name: &str, class: &str, gi: i64, node: Option<&str>) -> PersistentVolume {
    let node_affinity = node.map(|n| NodeSelector {
        terms: vec![NodeSelectorTerm {
            match_expressions: vec![Requirement {
                key: Sym::new("kubernetes.io/hostname"),
                op: Operator::In,
                values: vec![Sym::new(n)],
                bound: 0,
            }],
            match_fields: vec![],
        }],
    });
    PersistentVolume {
        name: Sym::new(name),
        labels: LabelSet::default(),
        capacity: gi * GI,
        access_modes: AccessModes::READ_WRITE_ONCE,
        volume_mode: VolumeMode::Filesystem,
        storage_class: Sym::new(class),
        node_affinity,
        claim_ref: None,
        csi: None,
        available: true,
        deleting: false,
    }
}

/// `pv` bound to claim `default/claim`.
pub fn bound_pv(mut pv: PersistentVolume, claim: &str) -> PersistentVolume {
    pv.claim_ref = Some(PvcKey::new("default", claim));
    pv.available = false;
    pv
}

/// An unbound ReadWriteOnce claim `default/name` of `gi` GiB in `class`.
pub fn pvc(name: &str, class: &str, gi: i64) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        key: PvcKey::new("default", name),
        uid: Arc::from(""),
        owner_uid: None,
        storage_class: Sym::new(class),
        request: gi * GI,
        access_modes: AccessModes::READ_WRITE_ONCE,
        volume_mode: VolumeMode::Filesystem,
        selector: None,
        volume_name: None,
        lost: false,
        deleting: false,
        selected_node: None,
    }
}

/// `pvc` bound to volume `pv`.
pub fn bound_pvc(mut pvc: PersistentVolumeClaim, pv: &str) -> PersistentVolumeClaim {
    pvc.volume_name = Some(Sym::new(pv));
    pvc
}

/// A class; `provisioner` empty means `kubernetes.io/no-provisioner`.
pub fn class(name: &str, wait_for_first_consumer: bool, provisioner: &str) -> StorageClass {
    let provisioner = if provisioner.is_empty() { super::model::NO_PROVISIONER } else { provisioner };
    StorageClass {
        name: Sym::new(name),
        provisioner: Sym::new(provisioner),
        wait_for_first_consumer,
        allowed_topologies: vec![],
    }
}

/// A pod in `default` using claims `claims`.
pub fn claim_pod(name: &str, claims: &[&str]) -> Pod {
    let mut p = Pod::new("default", name, Default::default());
    p.volumes = claims.iter().map(|c| PodVolume::Claim { claim: Sym::new(c), ephemeral: false }).collect();
    p
}

/// Nodes `names` (each labelled with its hostname and `zone=<zone>` when given), holding
/// `pods` on the node of the same index, and `objects`.
pub fn cluster(nodes: &[(&str, Option<&str>)], pods: Vec<Vec<Pod>>, objects: VolumeObjects) -> Snapshot {
    let mut pods = pods.into_iter();
    let nodes = nodes
        .iter()
        .map(|(n, zone)| {
            let mut nd = node(n, 4000, 8 * GI);
            if let Some(z) = zone {
                nd = with_labels(nd, &[("topology.kubernetes.io/zone", z)]);
            }
            (nd, pods.next().unwrap_or_default())
        })
        .collect();
    let mut s = snapshot(nodes, &[]);
    s.set_volume_objects(Arc::new(objects));
    s
}

/// Objects from lists.
pub fn objects(
    pvs: Vec<PersistentVolume>,
    pvcs: Vec<PersistentVolumeClaim>,
    classes: Vec<StorageClass>,
) -> VolumeObjects {
    let mut o = VolumeObjects::default();
    for v in pvs {
        o.set_pv(v.name, Some(v));
    }
    for c in pvcs {
        o.set_pvc(c.key, Some(c));
    }
    for c in classes {
        o.set_class(c.name, Some(c));
    }
    o
}

/// What `plugin` says of `pod` on each node: PreFilter's rejection (`Err`), or per node the
/// Filter status (a node PreFilter ruled out reads "excluded").
pub fn verdicts(plugin: &dyn Plugin, pod: &Pod, snap: &Snapshot) -> Result<Vec<String>, Status> {
    let mut state = CycleState::new();
    let only = match plugin.as_pre_filter().map(|p| p.pre_filter(&mut state, pod, snap)) {
        Some(Err(s)) if s.code == crate::status::Code::Skip => return Ok(snap.nodes().map(|_| "ok".into()).collect()),
        Some(Err(s)) => return Err(s),
        Some(Ok(only)) => only,
        None => None,
    };
    Ok(snap
        .nodes()
        .map(|n| {
            if only.as_ref().is_some_and(|o| !o.contains(&n.id)) {
                return "excluded".to_string();
            }
            let s = plugin.as_filter().map_or_else(Status::success, |f| f.filter(&state, pod, n));
            if s.is_success() { "ok".to_string() } else { s.to_string() }
        })
        .collect())
}
