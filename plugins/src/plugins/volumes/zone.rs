//! VolumeZone: a pod whose bound volumes carry zone or region labels runs only on nodes in
//! those zones and regions.
//!
//! PreFilter resolves each claim to its volume (upstream's errors, all
//! UnschedulableAndUnresolvable: a missing claim, class or volume; an unbound claim of no
//! class, or of an `Immediate` class), skipping unbound `WaitForFirstConsumer` claims, whose
//! volume VolumeBinding finds on the node; and collects the volumes' zone labels, a value
//! `a__b` standing for the set {a, b}. With none, Filter is skipped. Filter passes a node with
//! no zone or region label at all (upstream leaves such nodes alone), and otherwise needs
//! each label's node value in the volume's set, a legacy `failure-domain.beta` key of the
//! volume matching the node's GA key too ("node(s) had no available volume zone").

use std::sync::Arc;

use super::model::{PodVolume, ZONE_LABELS};
use super::pod_claim;
use crate::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin};
use crate::intern::Sym;
use crate::model::Pod;
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "VolumeZone";

/// Upstream's reason for a node outside a volume's zone or region.
pub const ZONE_CONFLICT: &str = "node(s) had no available volume zone";

/// Where the cycle state keeps the pod's volume topologies.
const STATE: &str = "VolumeZone/topologies";

/// The pod's volume topologies, with the zone label keys interned once for Filter.
#[derive(Clone)]
struct Topologies {
    keys: [Sym; 4],
    list: Vec<Topology>,
}

/// One zone or region label of a volume: the key, and the values it allows.
#[derive(Clone)]
struct Topology {
    key: Sym,
    /// The GA key a legacy beta key also matches on the node.
    ga_key: Option<Sym>,
    values: Vec<Sym>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct VolumeZone;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(VolumeZone))
}

impl Plugin for VolumeZone {
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

impl PreFilterPlugin for VolumeZone {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<Option<Vec<NodeId>>, Status> {
        if !pod.has_claims() {
            return Err(Status::skip());
        }
        let index = snapshot.volumes();
        let mut topologies = Vec::new();
        for v in &pod.volumes {
            // Upstream reads `persistentVolumeClaim` volumes only.
            let PodVolume::Claim { claim, ephemeral: false } = v else { continue };
            let pvc = pod_claim(index, pod, *claim, false)?;
            let Some(pv_name) = index.bound_volume(pvc) else {
                if pvc.storage_class.as_str().is_empty() {
                    return Err(Status::unresolvable("PersistentVolumeClaim had no pv name and storageClass name"));
                }
                let Some(class) = index.class(pvc.storage_class) else {
                    return Err(Status::unresolvable(format!(
                        "storageclass.storage.k8s.io \"{}\" not found",
                        pvc.storage_class
                    )));
                };
                if class.wait_for_first_consumer {
                    continue;
                }
                return Err(Status::unresolvable("PersistentVolume had no name"));
            };
            let Some(pv) = index.pv(pv_name) else {
                return Err(Status::unresolvable(format!("persistentvolume \"{pv_name}\" not found")));
            };
            for key in ZONE_LABELS {
                let key = Sym::new(key);
                let Some(value) = pv.labels.get(key) else { continue };
                let values = value.as_str().split("__").map(Sym::new).collect();
                topologies.push(Topology { key, ga_key: ga_key(key), values });
            }
        }
        if topologies.is_empty() {
            return Err(Status::skip());
        }
        state.write(STATE, Topologies { keys: ZONE_LABELS.map(Sym::new), list: topologies });
        Ok(None)
    }
}

/// The GA key of a legacy beta zone or region key.
fn ga_key(key: Sym) -> Option<Sym> {
    match key.as_str() {
        "failure-domain.beta.kubernetes.io/zone" => Some(Sym::new("topology.kubernetes.io/zone")),
        "failure-domain.beta.kubernetes.io/region" => Some(Sym::new("topology.kubernetes.io/region")),
        _ => None,
    }
}

impl FilterPlugin for VolumeZone {
    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(topologies) = state.read::<Topologies>(STATE) else { return Status::success() };
        let labels = &node.node.labels;
        if !topologies.keys.iter().any(|k| labels.has(*k)) {
            return Status::success();
        }
        for t in &topologies.list {
            let value = labels.get(t.key).or_else(|| t.ga_key.and_then(|k| labels.get(k)));
            if !value.is_some_and(|v| t.values.contains(&v)) {
                return Status::unresolvable(ZONE_CONFLICT);
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::volumes::testing::*;

    fn zoned(key: &str, value: &str) -> crate::plugins::volumes::model::PersistentVolume {
        let mut v = bound_pv(pv("pv", "", 10, None), "data");
        v.labels.insert(Sym::new(key), Sym::new(value));
        v
    }

    #[test]
    fn a_zoned_volume_keeps_the_pod_in_its_zones() {
        let nodes = [("a", Some("z1")), ("b", Some("z2")), ("c", Some("z3")), ("bare", None)];
        for (key, value, want) in [
            ("topology.kubernetes.io/zone", "z1", ["ok", ZONE_CONFLICT, ZONE_CONFLICT, "ok"]),
            ("topology.kubernetes.io/zone", "z1__z2", ["ok", "ok", ZONE_CONFLICT, "ok"]),
            // A legacy key matches the node's GA label.
            ("failure-domain.beta.kubernetes.io/zone", "z2", [ZONE_CONFLICT, "ok", ZONE_CONFLICT, "ok"]),
        ] {
            let objects = objects(vec![zoned(key, value)], vec![bound_pvc(pvc("data", "", 1), "pv")], vec![]);
            let snap = cluster(&nodes, vec![], objects);
            assert_eq!(verdicts(&VolumeZone, &claim_pod("p", &["data"]), &snap).unwrap(), want, "{key}={value}");
        }
    }

    #[test]
    fn unbound_claims_are_skipped_or_rejected_by_their_binding_mode() {
        let objects = objects(
            vec![],
            vec![pvc("late", "wffc", 1), pvc("now", "imm", 1), pvc("none", "", 1), bound_pvc(pvc("gone", "", 1), "x")],
            vec![class("wffc", true, ""), class("imm", false, "p")],
        );
        let snap = cluster(&[("a", Some("z1"))], vec![], objects);
        assert_eq!(verdicts(&VolumeZone, &claim_pod("p", &["late"]), &snap).unwrap(), ["ok"]);
        let e = |c: &str| verdicts(&VolumeZone, &claim_pod("p", &[c]), &snap).unwrap_err().to_string();
        assert_eq!(e("now"), "PersistentVolume had no name");
        assert_eq!(e("none"), "PersistentVolumeClaim had no pv name and storageClass name");
        assert_eq!(e("gone"), "persistentvolume \"x\" not found");
    }
}
