//! NodeVolumeLimits (upstream's CSILimits): a node attaches at most its CSINode's
//! `allocatable.count` volumes of each CSI driver.
//!
//! A claim counts as its bound volume's CSI driver and volume handle; an unbound claim as its
//! class's provisioner and a handle of its own (upstream's random-prefixed `namespace/name`),
//! so that a claim not yet provisioned still takes a slot; a claim of no class, or bound to a
//! volume that is not CSI, does not count. PreFilter resolves the pod's own volumes once and
//! skips Filter when none counts. Filter passes a node without a limit for any of those
//! drivers without allocating; otherwise it counts the distinct volumes the node's pods
//! attach per driver, a volume the pod shares with them counting once, and fails the node
//! when one more would pass a limit ("node(s) exceed max volume count", Unschedulable).

use std::sync::Arc;

use super::index::VolumeIndex;
use super::model::{PersistentVolumeClaim, PodVolume, PvcKey};
use crate::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin};
use crate::intern::Sym;
use crate::model::Pod;
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "NodeVolumeLimits";

/// Upstream's reason for a node at its attach limit.
pub const MAX_VOLUME_COUNT_EXCEEDED: &str = "node(s) exceed max volume count";

/// Where the cycle state keeps the pod's attachable volumes.
const STATE: &str = "NodeVolumeLimits/volumes";

/// Which volume a claim attaches: a CSI handle, or a claim not yet bound (its own volume).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VolumeId {
    Handle(Sym),
    Claim(PvcKey),
}

/// A volume counted against a driver's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Attachable {
    driver: Sym,
    id: VolumeId,
}

/// What PreFilter found: the index (for the node's pods' claims) and the pod's volumes.
#[derive(Clone)]
struct PreFilterState {
    index: VolumeIndex,
    volumes: Vec<Attachable>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct NodeVolumeLimits;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(NodeVolumeLimits))
}

impl Plugin for NodeVolumeLimits {
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

impl PreFilterPlugin for NodeVolumeLimits {
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
        let mut volumes: Vec<Attachable> = Vec::new();
        // A missing claim is VolumeRestrictions' and VolumeBinding's to report.
        for a in attachables(index, pod) {
            if !volumes.contains(&a) {
                volumes.push(a);
            }
        }
        if volumes.is_empty() {
            return Err(Status::skip());
        }
        state.write(STATE, PreFilterState { index: index.clone(), volumes });
        Ok(None)
    }
}

/// The volumes `pod`'s claims attach, counted or not (repeats included).
fn attachables<'a>(index: &'a VolumeIndex, pod: &'a Pod) -> impl Iterator<Item = Attachable> + 'a {
    pod.volumes.iter().filter_map(move |v| {
        let PodVolume::Claim { claim, .. } = v else { return None };
        let pvc = index.pvc(&PvcKey { namespace: pod.namespace, name: *claim })?;
        attachable(index, pvc)
    })
}

/// The driver and volume `pvc` counts as, if any (upstream `getCSIDriverInfo`, falling back
/// to `getCSIDriverInfoFromSC` for a claim with no volume, or whose volume is gone).
fn attachable(index: &VolumeIndex, pvc: &PersistentVolumeClaim) -> Option<Attachable> {
    if let Some(pv) = index.bound_volume(pvc).and_then(|name| index.pv(name)) {
        let csi = pv.csi?;
        return Some(Attachable { driver: csi.driver, id: VolumeId::Handle(csi.handle) });
    }
    let class = index.class(pvc.storage_class)?;
    Some(Attachable { driver: class.provisioner, id: VolumeId::Claim(pvc.key) })
}

impl FilterPlugin for NodeVolumeLimits {
    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(STATE) else { return Status::success() };
        let Some(csi) = s.index.csi_node(node.name()) else { return Status::success() };
        if !s.volumes.iter().any(|a| csi.limit(a.driver).is_some()) {
            return Status::success();
        }
        for (i, new) in s.volumes.iter().enumerate() {
            let Some(limit) = csi.limit(new.driver) else { continue };
            if s.volumes[..i].iter().any(|o| o.driver == new.driver) {
                continue;
            }
            let mut attached: Vec<VolumeId> = Vec::new();
            for other in node.pods.iter().filter(|p| p.has_claims()) {
                for a in attachables(&s.index, other).filter(|a| a.driver == new.driver) {
                    if !attached.contains(&a.id) {
                        attached.push(a.id);
                    }
                }
            }
            let adding = s.volumes.iter().filter(|a| a.driver == new.driver && !attached.contains(&a.id)).count();
            if attached.len() + adding > limit as usize {
                return Status::unschedulable(MAX_VOLUME_COUNT_EXCEEDED);
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::volumes::model::{CsiNode, CsiVolume};
    use crate::plugins::volumes::testing::*;

    /// Claim `name` bound to a CSI volume of driver `d` with handle `handle`.
    fn csi_claim(o: &mut crate::plugins::volumes::index::VolumeObjects, name: &str, handle: &str) {
        let mut v = bound_pv(pv(&format!("pv-{name}"), "", 1, None), name);
        v.csi = Some(CsiVolume { driver: Sym::new("d"), handle: Sym::new(handle) });
        o.set_pv(v.name, Some(v));
        let c = bound_pvc(pvc(name, "", 1), &format!("pv-{name}"));
        o.set_pvc(c.key, Some(c));
    }

    #[test]
    fn a_csinode_limit_caps_distinct_volumes_per_driver() {
        let mut o = objects(vec![], vec![pvc("fresh", "dyn", 1)], vec![class("dyn", true, "d")]);
        for (claim, handle) in [("c1", "h1"), ("c2", "h2"), ("c3", "h3"), ("c1-again", "h1")] {
            csi_claim(&mut o, claim, handle);
        }
        o.set_csi_node(Sym::new("a"), Some(CsiNode { node: Sym::new("a"), limits: vec![(Sym::new("d"), 2)] }));
        let held = vec![claim_pod("h", &["c1", "c2"])];
        let snap = cluster(&[("a", None), ("b", None)], vec![held.clone(), held], o);
        let v = |claims: &[&str]| verdicts(&NodeVolumeLimits, &claim_pod("p", claims), &snap).unwrap();
        assert_eq!(v(&["c3"]), [MAX_VOLUME_COUNT_EXCEEDED, "ok"], "b has no CSINode: no limit");
        assert_eq!(v(&["c1-again"]), ["ok", "ok"], "a handle attached already counts once");
        assert_eq!(v(&["fresh"]), [MAX_VOLUME_COUNT_EXCEEDED, "ok"], "an unbound claim counts as its provisioner's");
    }
}
