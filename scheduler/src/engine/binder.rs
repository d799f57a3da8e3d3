//! The binder: the single committer. It accepts a placement on a node that did not change
//! since the worker looked without re-running Filter, re-checks a moved node (or a pod whose
//! constraints reach across nodes) against the live state, and commits a unit whole or not
//! at all.

use std::sync::Arc;

use tessera_plugins::framework::{CycleState, Profile};
use tessera_plugins::model::Pod;
use tessera_plugins::nodeinfo::{DeviceChoice, NodeId, NodeInfo};
use tessera_plugins::snapshot::Snapshot;

use super::algorithm::Placement;
use super::state::{ClusterState, StateError};
use super::worker::Proposal;

/// The binder's answer to a proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every pod is placed (assumed) in the live state.
    Accepted,
    /// Nothing changed; the unit goes back to the queue.
    Rejected {
        /// The node whose live state refused its pod.
        node: NodeId,
        /// Why.
        reason: String,
    },
    /// Nothing changed, and retrying cannot help: a pod of the unit is placed already (the
    /// same pod given twice).
    Invalid {
        /// Why.
        reason: String,
    },
}

/// Counters for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinderStats {
    /// Proposals accepted.
    pub accepted: u64,
    /// Proposals rejected (conflicts).
    pub rejected: u64,
    /// Placements accepted without re-filtering.
    pub fast_path: u64,
    /// Placements re-filtered on live state.
    pub rechecked: u64,
    /// Preemptions committed: victims evicted, preemptor nominated.
    pub preemptions: u64,
    /// Preemptions dropped because their node changed after the victims were chosen.
    pub preemption_conflicts: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Binder {
    /// Counters.
    pub stats: BinderStats,
}

impl Binder {
    /// A binder.
    pub fn new() -> Binder {
        Binder::default()
    }

    /// Commits `proposal` to `state` whole, or changes nothing.
    pub fn commit(&mut self, state: &mut ClusterState, profile: &Profile, proposal: &Proposal) -> Verdict {
        let mut placed: Vec<&Arc<Pod>> = Vec::with_capacity(proposal.placements.len());
        for (pod, p) in proposal.unit.pods.iter().zip(&proposal.placements) {
            if let Err(reason) = self.check(state, profile, pod, p, proposal.snapshot_generation) {
                for done in placed {
                    state.unplace(&done.key());
                }
                self.stats.rejected += 1;
                return Verdict::Rejected { node: p.node, reason };
            }
            if let Err(e) = state.place_with(pod.clone(), p.node, &p.devices) {
                for done in placed {
                    state.unplace(&done.key());
                }
                self.stats.rejected += 1;
                return match e {
                    StateError::AlreadyPlaced { .. } => Verdict::Invalid { reason: e.to_string() },
                    _ => Verdict::Rejected { node: p.node, reason: e.to_string() },
                };
            }
            placed.push(pod);
        }
        self.stats.accepted += 1;
        Verdict::Accepted
    }

    /// Whether `pod` may go where `placement` puts it in the live state.
    fn check(
        &mut self,
        state: &ClusterState,
        profile: &Profile,
        pod: &Pod,
        placement: &Placement,
        snapshot_gen: u64,
    ) -> Result<(), String> {
        let (id, seen) = (placement.node, placement.seen_generation);
        let live = state.snapshot();
        let Some(node) = live.node(id) else {
            return Err(format!("node #{id} no longer exists"));
        };
        if let Some(s) = node.reservation_status(pod) {
            return Err(format!("node {}: {s}", node.name()));
        }
        if !pod.claims.is_empty() {
            claims_still_hold(live, node, pod, &placement.devices)?;
        }
        let cross_node = pod.has_cross_node_constraints() || state.has_anti_affinity_pods();
        if node.generation == seen && !(cross_node && state.generation() != snapshot_gen) {
            self.stats.fast_path += 1;
            return Ok(());
        }
        self.stats.rechecked += 1;
        let mut cycle = CycleState::new();
        match profile.run_pre_filter(&mut cycle, pod, live) {
            Ok(Some(nodes)) if !nodes.contains(&id) => {
                return Err(format!("node {} is no longer a candidate", node.name()));
            }
            Ok(_) => {}
            Err(s) => return Err(s.to_string()),
        }
        let s = profile.run_filter_with_nominated(&cycle, pod, node);
        if !s.is_success() {
            return Err(format!("node {}: {s}", node.name()));
        }
        // Filter says *some* devices fit; a placement that names its devices needs those very
        // ones.
        match (placement.devices.gpus, &pod.gpu) {
            (Some(mask), Some(req)) if !node.gpus_available(req, mask) => {
                Err(format!("node {}: the GPUs chosen for the pod are no longer free", node.name()))
            }
            _ if !node.claim_devices_free(&placement.devices) => {
                Err(format!("node {}: the devices allocated for the pod's claims are no longer free", node.name()))
            }
            _ => Ok(()),
        }
    }
}

/// Whether every claim of `pod` is still provided for on `node`: allocated by this placement
/// (and, if shared, not allocated meanwhile by another worker's commit), held there, or
/// allocated already where the node can use it (its own devices, or devices it reaches that
/// are not local to one node), as the live state or the claim's status records.
fn claims_still_hold(live: &Snapshot, node: &NodeInfo, pod: &Pod, choice: &DeviceChoice) -> Result<(), String> {
    for pc in &pod.claims {
        let provided = if choice.claims.iter().any(|a| a.claim == pc.key) {
            !(pc.shared && live.held_claim(&pc.key).is_some())
        } else if node.held_claim(&pc.key).is_some() {
            true
        } else {
            let held = live.held_claim(&pc.key).map(|h| &h.allocation).or(pc.allocation.as_ref());
            held.is_some_and(|a| match a.node {
                Some(at) => at == node.name(),
                None => node.reaches(a),
            })
        };
        if !provided {
            return Err(format!("node {}: resourceclaim {} changed since the pod was placed", node.name(), pc.key));
        }
    }
    Ok(())
}
