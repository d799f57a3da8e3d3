//! DynamicResources: a pod with DRA claims fits a node only where its claims can be
//! allocated (structured parameters, [`crate::dra::allocator`]), and Reserve records the
//! allocation for the engine to place and the binder to re-check.
//!
//! PreFilter rejects a pod whose claim could never be allocated (a missing claim, template or
//! class, a selector that does not compile: UnschedulableAndUnresolvable, naming the object)
//! and narrows the candidates to the node already holding a claim the pod shares. Filter reads
//! only the node (its devices and the claims it holds) and the pod's claims, which the pod's
//! node-local signature covers, so its verdicts are reused across pods of one template.

use std::sync::Arc;

use crate::dra::allocator::{self, ClaimToAllocate, NodeView, STEP_BUDGET, Unsatisfiable};
use crate::dra::model::ClaimAllocation;
use crate::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin, ReservePlugin};
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
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for DynamicResources {
    fn pre_filter(&self, _: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> Result<Option<Vec<NodeId>>, Status> {
        if pod.claims.is_empty() {
            return Err(Status::skip());
        }
        let mut only: Option<NodeId> = None;
        for pc in &pod.claims {
            if let Err(problem) = &pc.spec {
                return Err(Status::unresolvable(problem.to_string()));
            }
            let Some(at) = held_at(pc, snapshot)? else { continue };
            if only.is_some_and(|o| o != at) {
                let why = format!("resourceclaims of the pod are allocated on different nodes ({})", pc.key);
                return Err(Status::unresolvable(why));
            }
            only = Some(at);
        }
        Ok(only.map(|id| vec![id]))
    }
}

/// The node a claim of the pod is already held on, if any: where the snapshot holds it (a
/// shared claim another pod uses), else where its status says it is allocated.
fn held_at(pc: &crate::dra::model::PodClaim, snapshot: &Snapshot) -> Result<Option<NodeId>, Status> {
    if pc.shared
        && let Some(id) = snapshot.shared_claim_node(&pc.key)
    {
        return Ok(Some(id));
    }
    let Some(node) = pc.allocation.as_ref().and_then(|a| a.node) else { return Ok(None) };
    match snapshot.node_id(node) {
        Some(id) => Ok(Some(id)),
        None => Err(Status::unresolvable(format!(
            "resourceclaim {} is allocated on node {node}, which does not exist",
            pc.key
        ))),
    }
}

impl FilterPlugin for DynamicResources {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        match allocate_on(pod, node) {
            Ok(_) => Status::success(),
            Err(s) => s,
        }
    }
}

impl ReservePlugin for DynamicResources {
    fn reserve(&self, state: &mut CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        match allocate_on(pod, node) {
            Ok(claims) => {
                state.set_claim_allocations(claims.into_iter().map(Arc::new).collect());
                Status::success()
            }
            Err(s) => s,
        }
    }
    /// The allocation lives only in the cycle state, which is dropped with the attempt.
    fn unreserve(&self, _: &mut CycleState, _: &Pod, _: &NodeInfo) {}
}

/// Allocates the pod's claims that `node` does not hold yet; deterministic, so Filter,
/// Reserve and the binder's re-check agree.
fn allocate_on(pod: &Pod, node: &NodeInfo) -> Result<Vec<ClaimAllocation>, Status> {
    let mut wanted: Vec<ClaimToAllocate<'_>> = Vec::with_capacity(pod.claims.len());
    for pc in &pod.claims {
        if node.held_claim(&pc.key).is_some() || wanted.iter().any(|w| w.key == pc.key) {
            continue;
        }
        if let Some(a) = &pc.allocation {
            // Its status holds the devices already: on its node the pod uses them as they are
            // (PreFilter keeps the pod off every other node).
            if a.node == Some(node.name()) {
                continue;
            }
            return Err(Status::unresolvable(format!("resourceclaim {} is allocated on another node", pc.key)));
        }
        match &pc.spec {
            Ok(spec) => wanted.push(ClaimToAllocate { key: pc.key, spec }),
            Err(problem) => return Err(Status::unresolvable(problem.to_string())),
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let view = NodeView { name: node.name(), devices: &node.node.devices, used: &node.devices_used };
    allocator::allocate(view, &wanted).map_err(|u| Status::unschedulable(reason(pod, &u)))
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
