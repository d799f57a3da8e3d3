//! VolumeBinding: a pod's claims must be bound, or bindable, on its node.
//!
//! PreFilter rejects (UnschedulableAndUnresolvable, upstream's texts) a pod whose claim is
//! missing, lost or being deleted, and one with an unbound claim of an `Immediate` class
//! ("pod has unbound immediate PersistentVolumeClaims": the PV controller binds those, not
//! the scheduler); an unknown class is an error, retried. It narrows the candidates to the
//! nodes named by the `kubernetes.io/hostname` affinity of bound local volumes (upstream's
//! `GetEligibleNodes`). Filter, per node, as upstream's `FindPodVolumes`: every bound
//! claim's volume must exist ("node(s) unavailable due to one or more pvc(s) bound to
//! non-existent pv(s)") and be reachable from the node ("node(s) had volume node affinity
//! conflict"); every unbound `WaitForFirstConsumer` claim, smallest first, needs an
//! available matching volume the node reaches, not chosen for another of the pod's claims,
//! or else dynamic provisioning by its class on a node the class's `allowedTopologies` allow,
//! or, if provisioning was asked for already, that very node ("node(s) didn't find
//! available persistent volumes to bind"). All three are UnschedulableAndUnresolvable.
//!
//! The binding itself (upstream's Reserve, `AssumePodVolumes`) is made by the snapshot as
//! the pod is placed, with the same matching ([`VolumeIndex::plan`]): see
//! [`super::index`]. Filter allocates nothing on success for a pod with at most one unbound
//! claim.

use std::sync::Arc;

use super::index::VolumeIndex;
use super::model::{PersistentVolume, PersistentVolumeClaim, PodVolume};
use super::pod_claim;
use crate::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin};
use crate::intern::Sym;
use crate::labels::Operator;
use crate::model::Pod;
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::{Code, Status};

/// The plugin's name.
pub const NAME: &str = "VolumeBinding";

/// Upstream's reason for a bound volume the node cannot reach.
pub const NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// Upstream's reason for unbound claims the node can provide for neither by a volume nor by
/// provisioning.
pub const BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// Upstream's reason for a claim bound to a volume that does not exist.
pub const PV_NOT_EXIST: &str = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// Upstream's PreFilter reason for unbound claims of an `Immediate` class.
pub const UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The node label local volumes name their node by.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Where the cycle state keeps the pod's claims.
const STATE: &str = "VolumeBinding/claims";

/// The pod's claims, resolved by PreFilter.
#[derive(Clone)]
struct PodClaims {
    index: VolumeIndex,
    /// Bound claims' volumes (`None`: the volume does not exist).
    bound: Vec<Option<Arc<PersistentVolume>>>,
    /// Unbound `WaitForFirstConsumer` claims, smallest request first.
    delayed: Vec<Arc<PersistentVolumeClaim>>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct VolumeBinding;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(VolumeBinding))
}

impl Plugin for VolumeBinding {
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

impl PreFilterPlugin for VolumeBinding {
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
        let mut claims: Vec<&Arc<PersistentVolumeClaim>> = Vec::new();
        for v in &pod.volumes {
            let PodVolume::Claim { claim, ephemeral } = v else { continue };
            let pvc = pod_claim(index, pod, *claim, *ephemeral)?;
            if pvc.lost {
                let volume = pvc.volume_name.map_or("", |v| v.as_str());
                return Err(Status::unresolvable(format!(
                    "persistentvolumeclaim \"{claim}\" bound to non-existent persistentvolume \"{volume}\""
                )));
            }
            if pvc.deleting {
                return Err(Status::unresolvable(format!("persistentvolumeclaim \"{claim}\" is being deleted")));
            }
            if !claims.iter().any(|c| c.key == pvc.key) {
                claims.push(pvc);
            }
        }
        let (mut bound, mut immediate) = (Vec::new(), false);
        for pvc in &claims {
            if let Some(pv) = index.bound_volume(pvc) {
                bound.push(index.pv(pv).cloned());
                continue;
            }
            if pvc.storage_class.as_str().is_empty() {
                immediate = true;
                continue;
            }
            match index.class(pvc.storage_class) {
                Some(class) if class.wait_for_first_consumer => {}
                Some(_) => immediate = true,
                None => {
                    let why = format!("storageclass.storage.k8s.io \"{}\" not found", pvc.storage_class);
                    return Err(Status::error(why));
                }
            }
        }
        if immediate {
            return Err(Status::unresolvable(UNBOUND_IMMEDIATE));
        }
        let eligible = eligible_nodes(&bound, snapshot);
        let delayed = index.delayed_claims(pod);
        state.write(STATE, PodClaims { index: index.clone(), bound, delayed });
        Ok(eligible)
    }
}

/// The nodes bound local volumes name (upstream `GetEligibleNodes`): per volume, the union
/// over its affinity terms of the nodes each term's `kubernetes.io/hostname In` requirements
/// all allow; intersected over volumes. `None` when no volume names nodes.
fn eligible_nodes(bound: &[Option<Arc<PersistentVolume>>], snapshot: &Snapshot) -> Option<Vec<NodeId>> {
    let hostname = Sym::new(HOSTNAME_LABEL);
    let mut eligible: Option<Vec<Sym>> = None;
    for pv in bound.iter().flatten() {
        let Some(affinity) = &pv.node_affinity else { continue };
        let mut names: Vec<Sym> = Vec::new();
        for term in &affinity.terms {
            let mut nodes: Option<Vec<Sym>> = None;
            for r in term.match_expressions.iter().filter(|r| r.key == hostname && r.op == Operator::In) {
                nodes = Some(match nodes {
                    None => r.values.clone(),
                    Some(n) => n.into_iter().filter(|v| r.values.contains(v)).collect(),
                });
            }
            for n in nodes.into_iter().flatten() {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        if names.is_empty() {
            continue;
        }
        eligible = Some(match eligible {
            None => names,
            Some(e) => e.into_iter().filter(|n| names.contains(n)).collect(),
        });
    }
    eligible.map(|names| names.into_iter().filter_map(|n| snapshot.node_id(n)).collect())
}

impl FilterPlugin for VolumeBinding {
    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PodClaims>(STATE) else { return Status::success() };
        let (labels, name) = (&node.node.labels, node.name());
        // Upstream's `checkBoundClaims` stops at the first volume that is missing or out of
        // reach.
        let (mut reachable, mut found) = (true, true);
        for pv in &s.bound {
            match pv {
                None => {
                    found = false;
                    break;
                }
                Some(pv) if !pv.reachable_from(labels, name) => {
                    reachable = false;
                    break;
                }
                Some(_) => {}
            }
        }
        let mut bindable = true;
        if !s.delayed.is_empty() {
            let mut chosen = Vec::new();
            bindable = s.index.plan(&s.delayed, labels, name, &mut chosen, |_, _| {}).is_ok();
        }
        if reachable && found && bindable {
            return Status::success();
        }
        let mut reasons = Vec::new();
        if !reachable {
            reasons.push(NODE_CONFLICT.into());
        }
        if !bindable {
            reasons.push(BIND_CONFLICT.into());
        }
        if !found {
            reasons.push(PV_NOT_EXIST.into());
        }
        Status { code: Code::UnschedulableAndUnresolvable, reasons, plugin: "" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::volumes::index::Binding;
    use crate::plugins::volumes::model::PvcKey;
    use crate::plugins::volumes::testing::*;

    fn nodes() -> [(&'static str, Option<&'static str>); 2] {
        [("a", Some("z1")), ("b", Some("z2"))]
    }

    #[test]
    fn a_bound_volume_keeps_the_pod_where_the_volume_is_reachable() {
        let objects = objects(
            vec![bound_pv(pv("pv-a", "", 10, Some("a")), "data"), pv("pv-any", "", 10, None)],
            vec![bound_pvc(pvc("data", "", 5), "pv-a"), bound_pvc(pvc("free", "", 5), "pv-any")],
            vec![],
        );
        let snap = cluster(&nodes(), vec![], objects);
        let v = verdicts(&VolumeBinding, &claim_pod("p", &["data"]), &snap).unwrap();
        assert_eq!(v, ["ok", "excluded"], "a local volume narrows the candidates at PreFilter");
        // Filter says the same of a node that slipped through.
        let mut state = CycleState::new();
        VolumeBinding.pre_filter(&mut state, &claim_pod("p", &["data"]), &snap).unwrap();
        let s = VolumeBinding.filter(&state, &claim_pod("p", &["data"]), snap.node(1).unwrap());
        assert_eq!((s.code, s.to_string()), (Code::UnschedulableAndUnresolvable, NODE_CONFLICT.to_string()));
        assert_eq!(verdicts(&VolumeBinding, &claim_pod("q", &["free"]), &snap).unwrap(), ["ok", "ok"]);
    }

    #[test]
    fn missing_claims_volumes_and_unbound_immediate_claims_are_reported_as_upstream() {
        let objects = objects(
            vec![],
            vec![bound_pvc(pvc("gone", "", 1), "pv-x"), pvc("later", "fast", 1), pvc("classless", "", 1)],
            vec![class("fast", false, "ebs.csi.aws.com")],
        );
        let snap = cluster(&nodes(), vec![], objects);
        let e = verdicts(&VolumeBinding, &claim_pod("p", &["nope"]), &snap).unwrap_err();
        assert_eq!((e.code, e.to_string()), (Code::UnschedulableAndUnresolvable, claim_not_found_text("nope")));
        for claim in ["later", "classless"] {
            let e = verdicts(&VolumeBinding, &claim_pod("p", &[claim]), &snap).unwrap_err();
            assert_eq!((e.code, e.to_string()), (Code::UnschedulableAndUnresolvable, UNBOUND_IMMEDIATE.to_string()));
        }
        let v = verdicts(&VolumeBinding, &claim_pod("p", &["gone"]), &snap).unwrap();
        assert_eq!(v, [PV_NOT_EXIST, PV_NOT_EXIST]);
    }

    fn claim_not_found_text(name: &str) -> String {
        crate::plugins::volumes::claim_not_found(name)
    }

    #[test]
    fn wait_for_first_consumer_needs_a_matching_volume_on_the_node_and_the_smallest_is_taken() {
        let local = class("local", true, "");
        let objects = objects(
            vec![
                pv("pv-tiny", "local", 1, Some("a")),
                pv("pv-big", "local", 100, Some("a")),
                pv("pv-small", "local", 10, Some("a")),
                pv("pv-other-class", "slow", 10, Some("b")),
            ],
            vec![pvc("c1", "local", 5), pvc("c2", "local", 5), pvc("c3", "local", 5)],
            vec![local],
        );
        let mut snap = cluster(&nodes(), vec![], objects);
        let p1 = claim_pod("p1", &["c1"]);
        assert_eq!(verdicts(&VolumeBinding, &p1, &snap).unwrap(), ["ok", BIND_CONFLICT]);

        snap.add_pod(0, Arc::new(p1));
        let bound = |s: &Snapshot, c: &str| s.volumes().assumed().get(&PvcKey::new("default", c)).map(|a| a.binding);
        assert_eq!(bound(&snap, "c1"), Some(Binding::Volume(Sym::new("pv-small"))), "the smallest that fits");
        let p2 = claim_pod("p2", &["c2"]);
        assert_eq!(verdicts(&VolumeBinding, &p2, &snap).unwrap(), ["ok", BIND_CONFLICT]);
        snap.add_pod(0, Arc::new(p2.clone()));
        assert_eq!(bound(&snap, "c2"), Some(Binding::Volume(Sym::new("pv-big"))), "pv-small is taken");
        let p3 = claim_pod("p3", &["c3"]);
        assert_eq!(verdicts(&VolumeBinding, &p3, &snap).unwrap(), [BIND_CONFLICT, BIND_CONFLICT]);

        // The pod leaving gives its volume back.
        snap.remove_pod(0, &p2.key());
        assert_eq!(bound(&snap, "c2"), None);
        assert_eq!(verdicts(&VolumeBinding, &p3, &snap).unwrap(), ["ok", BIND_CONFLICT]);
    }

    #[test]
    fn two_claims_of_one_pod_never_get_the_same_volume() {
        let objects = objects(
            vec![
                pv("pv-1", "local", 10, Some("a")),
                pv("pv-2", "local", 10, Some("b")),
                pv("pv-3", "local", 10, Some("b")),
            ],
            vec![pvc("x", "local", 5), pvc("y", "local", 5)],
            vec![class("local", true, "")],
        );
        let snap = cluster(&nodes(), vec![], objects);
        assert_eq!(verdicts(&VolumeBinding, &claim_pod("p", &["x", "y"]), &snap).unwrap(), [BIND_CONFLICT, "ok"]);
    }

    #[test]
    fn provisioning_follows_the_class_allowed_topologies_and_then_stays_on_the_selected_node() {
        let mut zonal = class("zonal", true, "ebs.csi.aws.com");
        zonal.allowed_topologies = vec![crate::labels::NodeSelectorTerm {
            match_expressions: vec![crate::labels::Requirement {
                key: Sym::new("topology.kubernetes.io/zone"),
                op: Operator::In,
                values: vec![Sym::new("z2")],
                bound: 0,
            }],
            match_fields: vec![],
        }];
        let objects = objects(vec![], vec![pvc("d", "zonal", 5)], vec![zonal]);
        let mut snap = cluster(&[("a", Some("z1")), ("b", Some("z2")), ("c", Some("z2"))], vec![], objects);
        let p = claim_pod("p", &["d"]);
        assert_eq!(verdicts(&VolumeBinding, &p, &snap).unwrap(), [BIND_CONFLICT, "ok", "ok"]);
        snap.add_pod(2, Arc::new(p));
        let got = snap.volumes().assumed().get(&PvcKey::new("default", "d")).map(|a| a.binding);
        assert_eq!(got, Some(Binding::Provision(Sym::new("c"))));
        let q = claim_pod("q", &["d"]);
        assert_eq!(verdicts(&VolumeBinding, &q, &snap).unwrap(), [BIND_CONFLICT, BIND_CONFLICT, "ok"]);
    }

    #[test]
    fn a_pod_without_claims_skips_the_plugin() {
        let snap = cluster(&nodes(), vec![], objects(vec![], vec![], vec![]));
        let e = VolumeBinding.pre_filter(&mut CycleState::new(), &claim_pod("p", &[]), &snap).unwrap_err();
        assert_eq!(e.code, Code::Skip);
    }
}
