//! DynamicResources: a pod with DRA claims fits a node only where its claims can be
//! allocated (structured parameters, [`crate::dra::allocator`]), and Reserve records the
//! allocation for the engine to place and the binder to re-check.
//!
//! PreFilter rejects a pod whose claim could never be allocated (a missing claim, template or
//! class, a selector that does not compile: UnschedulableAndUnresolvable, naming the object)
//! and narrows the candidates to where the claims it shares are allocated already: the node
//! holding one on its local devices, or the nodes reaching every device of one allocated on
//! devices not local to one node (a PodGroup's claim, shared by pods on many nodes). Filter
//! reads only the node (its devices and the claims it holds), the pod's claims, which the
//! pod's node-local signature covers, and those claims already allocated elsewhere, whose
//! devices' use marks every node reaching them; so its verdicts are reused across pods of one
//! template.
//!
//! Score (module `score`) weighs the allocation Reserve would make on each node: the
//! `firstAvailable` sub-requests it passes over, then how well the devices are wired.

mod score;

use std::sync::Arc;

use crate::dra::allocator::{self, Allocated, ClaimToAllocate, NodeView, Preference, STEP_BUDGET, Unsatisfiable};
use crate::dra::inventory::DeviceSet;
use crate::dra::model::{ClaimAllocation, PodClaim, RequestKind};
use crate::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin, PreScorePlugin, ReservePlugin, ScorePlugin};
use crate::intern::Sym;
use crate::model::Pod;
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::{Reason, Status};

/// The plugin's name.
pub const NAME: &str = "DynamicResources";

/// See the module docs.
#[derive(Debug, Default)]
pub struct DynamicResources;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(DynamicResources))
}

impl Plugin for DynamicResources {
    fn name(&self) -> &'static str {
        NAME
    }
    /// Filter reads only the node and the pod's claims, which the signature covers.
    fn node_local(&self) -> bool {
        true
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for DynamicResources {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<Option<Vec<NodeId>>, Status> {
        if pod.claims.is_empty() {
            return Err(Status::skip());
        }
        let mut only: Option<Vec<NodeId>> = None;
        let mut elsewhere = Vec::new();
        for pc in &pod.claims {
            if let Err(problem) = &pc.spec {
                return Err(Status::unresolvable(problem.to_string()));
            }
            let Some((allocation, held)) = allocated(pc, snapshot) else { continue };
            let Some(nodes) = nodes_for(pc, &allocation, snapshot)? else { continue };
            if allocation.node.is_none() {
                elsewhere.push((allocation, held));
            }
            let nodes = match only {
                Some(before) => before.into_iter().filter(|id| nodes.contains(id)).collect(),
                None => nodes,
            };
            if nodes.is_empty() {
                let why =
                    format!("resourceclaims of the pod are allocated where no one node reaches them all ({})", pc.key);
                return Err(Status::unresolvable(why));
            }
            only = Some(nodes);
        }
        if !elsewhere.is_empty() {
            state.write(HELD_ELSEWHERE, HeldElsewhere(elsewhere));
        }
        Ok(only)
    }
}

/// Where [`CycleState`] keeps the pod's claims allocated on devices not local to one node.
const HELD_ELSEWHERE: &str = "DynamicResources/heldElsewhere";

/// The pod's claims allocated already on devices not local to one node: every node that
/// reaches their devices may use them as they are. With each, whether the snapshot holds it
/// (else only the claim's status says so).
#[derive(Clone)]
struct HeldElsewhere(Vec<(Arc<ClaimAllocation>, bool)>);

/// The allocation claim `pc` has already, and whether the snapshot holds it: where the
/// snapshot holds it (a shared claim another pod uses, or one the API's pins hold), else what
/// its status records.
fn allocated(pc: &PodClaim, snapshot: &Snapshot) -> Option<(Arc<ClaimAllocation>, bool)> {
    match snapshot.held_claim(&pc.key) {
        Some(h) => Some((h.allocation.clone(), true)),
        None => pc.allocation.clone().map(|a| (a, false)),
    }
}

/// The nodes that may use `allocation` of claim `pc`: its node, or those reaching all its
/// devices (`None`: any node, for an allocation of no device).
fn nodes_for(pc: &PodClaim, allocation: &ClaimAllocation, snapshot: &Snapshot) -> Result<Option<Vec<NodeId>>, Status> {
    if let Some(node) = allocation.node {
        return match snapshot.node_id(node) {
            Some(id) => Ok(Some(vec![id])),
            None => Err(Status::unresolvable(format!(
                "resourceclaim {} is allocated on node {node}, which does not exist",
                pc.key
            ))),
        };
    }
    let mut devices = allocation.devices.iter();
    let Some(first) = devices.next() else { return Ok(None) };
    let mut nodes = snapshot.nodes_reaching(&first.device).to_vec();
    for d in devices {
        let reaching = snapshot.nodes_reaching(&d.device);
        nodes.retain(|id| reaching.contains(id));
    }
    Ok(Some(nodes))
}

impl FilterPlugin for DynamicResources {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        match allocate_on(state, pod, node, Preference::FirstFit) {
            Ok(_) => Status::success(),
            Err(s) => s,
        }
    }
}

impl PreScorePlugin for DynamicResources {
    /// Scores only where nodes can differ: a claim to allocate offers alternatives
    /// (`firstAvailable`), or a candidate node publishes how its devices are wired.
    fn pre_score(&self, _: &mut CycleState, pod: &Pod, _: &Snapshot, nodes: &[&NodeInfo]) -> Status {
        let alternatives = pod.claims.iter().filter(|pc| pc.allocation.is_none()).any(|pc| {
            pc.spec.as_ref().is_ok_and(|spec| {
                spec.requests.iter().any(|r| matches!(&r.kind, RequestKind::FirstAvailable(subs) if subs.len() > 1))
            })
        });
        let wired = || nodes.iter().any(|n| n.node.devices.wiring.is_some());
        if pod.claims.is_empty() || !(alternatives || wired()) { Status::skip() } else { Status::success() }
    }
}

impl ScorePlugin for DynamicResources {
    /// The allocation Reserve would make here, weighed (module `score`). Filter passed on
    /// every node scored, so the allocation exists; should it not, the node scores lowest.
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        match allocate_on(state, pod, node, Preference::Wiring) {
            Ok(allocated) => score::raw(&allocated, node.node.devices.wiring.as_ref(), &node.devices_used),
            Err(_) => 0,
        }
    }

    fn normalize_score(&self, _: &CycleState, _: &Pod, scores: &mut [i64]) {
        score::normalize(scores);
    }
}

impl ReservePlugin for DynamicResources {
    fn reserve(&self, state: &mut CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        match allocate_on(state, pod, node, Preference::Wiring) {
            Ok(allocated) => {
                state.set_claim_allocations(allocated.claims.into_iter().map(Arc::new).collect());
                Status::success()
            }
            Err(s) => s,
        }
    }
    /// The allocation lives only in the cycle state, which is dropped with the attempt.
    fn unreserve(&self, _: &mut CycleState, _: &Pod, _: &NodeInfo) {}
}

/// Allocates the pod's claims that `node` does not hold yet and that are not allocated
/// elsewhere already. Both preferences find an allocation on the same nodes within the step
/// budget, so Filter asks the cheaper, and Score and Reserve the best wired (first fit again
/// should the reordered search run out of steps).
fn allocate_on(state: &CycleState, pod: &Pod, node: &NodeInfo, preference: Preference) -> Result<Allocated, Status> {
    let elsewhere = state.read::<HeldElsewhere>(HELD_ELSEWHERE).map_or(&[][..], |h| h.0.as_slice());
    let mut wanted: Vec<ClaimToAllocate<'_>> = Vec::with_capacity(pod.claims.len());
    for pc in &pod.claims {
        if node.held_claim(&pc.key).is_some() || wanted.iter().any(|w| w.key == pc.key) {
            continue;
        }
        if let Some((a, held)) = elsewhere.iter().find(|(a, _)| a.claim == pc.key) {
            if !node.reaches(a) {
                let why =
                    format!("resourceclaim {} is allocated on devices node {} does not reach", pc.key, node.name());
                return Err(Status::unresolvable(why));
            }
            if !held && !node.allocation_free(a) {
                return Err(Status::unschedulable(taken_meanwhile(pc)));
            }
            continue;
        }
        if let Some(a) = &pc.allocation {
            // Its status holds the devices already: on its node the pod uses them as they are
            // (PreFilter keeps the pod off every other node), unless that allocation was given
            // back and its devices taken since (the status and the pins arrive apart).
            if a.node != Some(node.name()) {
                return Err(Status::unresolvable(format!("resourceclaim {} is allocated on another node", pc.key)));
            }
            if !node.allocation_free(a) {
                return Err(Status::unschedulable(taken_meanwhile(pc)));
            }
            continue;
        }
        match &pc.spec {
            Ok(spec) => wanted.push(ClaimToAllocate { key: pc.key, spec }),
            Err(problem) => return Err(Status::unresolvable(problem.to_string())),
        }
    }
    if wanted.is_empty() {
        return Ok(Allocated { claims: Vec::new(), taken: DeviceSet::new(), passed_over: 0 });
    }
    let view =
        NodeView { name: node.name(), devices: &node.node.devices, used: &node.devices_used, drawn: &node.drawn };
    let found = match allocator::allocate(view, &wanted, preference) {
        Err(u) if u.gave_up && preference != Preference::FirstFit => {
            allocator::allocate(view, &wanted, Preference::FirstFit)
        }
        found => found,
    };
    found.map_err(|u| Status::unschedulable(reason(pod, &u)))
}

/// Why a claim whose status records an allocation the node does not hold cannot use it now.
fn taken_meanwhile(pc: &PodClaim) -> String {
    format!("resourceclaim {} records devices another claim holds now", pc.key)
}

/// Upstream's "cannot allocate all claims", naming the claim as the pod does (its entry in
/// `spec.resourceClaims`) and the request. It is the same text on every node and for every pod
/// of one template, so it is interned: a node that fails costs no allocation, however many
/// nodes fail.
fn reason(pod: &Pod, u: &Unsatisfiable) -> Reason {
    let claim = pod.claims.iter().find(|pc| pc.key == u.claim).map_or(u.claim.name, |pc| pc.name);
    let mut text = format!("cannot allocate all claims (claim {claim}, request {})", u.request);
    if u.gave_up {
        text.push_str(&format!(": search gave up after {STEP_BUDGET} steps"));
    }
    match &u.selector_error {
        // Selector errors name devices: too many distinct texts to intern.
        Some(e) => Reason::Owned(format!("{text}: {e}")),
        None => Reason::Borrowed(Sym::new(&text).as_str()),
    }
}
