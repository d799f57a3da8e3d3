//! Which parked units a pod leaving a node could help: upstream's queueing hints, sharpened.
//!
//! A parked unit failed on every node. When a pod leaves node N, only N changed for the
//! constraints that look at one node at a time (resources, ports, affinity to the node, taints),
//! so such a unit can fit now only on N, and N's freed room can take only so many: the units
//! are offered N's room in queue order and woken while it lasts, each after passing the
//! profile's PreFilter and Filter on N. A departure that frees one CPU wakes one one-CPU pod,
//! not the thousands waiting behind it — waking them all made every departure cost a scheduling
//! attempt per waiting pod, quadratic over a replay.
//!
//! A unit given N's room that does not take it (it went to another node, or failed after all)
//! hands it on: the room is offered again to the units still parked. That is what keeps a
//! parked unit from waiting for ever beside room nobody took, which upstream covers by retrying
//! every pod parked for five minutes — in a long, sparse replay, a retry of every waiting pod at
//! nearly every event.
//!
//! Units whose fit depends on other nodes' pods are woken as before: gangs (placed across
//! nodes), pods with spread or inter-pod affinity constraints, and every unit when the pod that
//! left had required anti-affinity (it may have kept others off nodes beyond N).

use std::sync::Arc;

use tessera_plugins::framework::{CycleState, Profile};
use tessera_plugins::model::Pod;
use tessera_plugins::nodeinfo::NodeInfo;
use tessera_plugins::resources::ResourceVec;
use tessera_plugins::snapshot::Snapshot;

use super::queue::{Unit, Wake};

/// The room a departure left on its node, handed out to parked units in queue order.
pub(super) struct Departure<'a> {
    snapshot: &'a Snapshot,
    /// The node the pod left; `None` if it is gone too (then nothing node-local can fit there).
    node: Option<&'a NodeInfo>,
    /// Resources still free on the node after the units woken so far.
    room: ResourceVec,
    /// Pods the node can still take after the units woken so far.
    pod_slots: i64,
    /// Free milli-GPU on the node, all GPUs together, after the units woken so far: GPUs are
    /// not among the resources of `room`.
    gpu_room: i64,
    /// Wake every unit: the pod that left constrained pods on other nodes.
    wake_all: bool,
    /// The room is offered again (its first taker went elsewhere): nobody left.
    reoffer: bool,
}

impl<'a> Departure<'a> {
    /// `gone` left `node` (as the snapshot now shows it, without `gone`); `None` when the room
    /// is offered again, with nobody gone.
    pub(super) fn new(snapshot: &'a Snapshot, node: Option<&'a NodeInfo>, gone: Option<&Pod>) -> Departure<'a> {
        let room = node.map(NodeInfo::free).unwrap_or_default();
        let pod_slots = node.map_or(0, |n| i64::from(n.node.allowed_pods) - n.pods.len() as i64);
        let gpu_room = node.map_or(0, |n| (0..n.node.gpus.len()).map(|i| i64::from(n.gpu_free(i))).sum());
        let wake_all = gone.is_some_and(|p| !p.pod_anti_affinity.required.is_empty());
        Departure { snapshot, node, room, pod_slots, gpu_room, wake_all, reoffer: gone.is_none() }
    }

    /// For a unit whose fit hangs on other nodes: woken by a departure, but not by a re-offer,
    /// which changes nothing for it.
    fn unless_reoffer(&self) -> Wake {
        if self.reoffer { Wake::No } else { Wake::Yes }
    }

    /// Whether `unit` may fit now; if it may only on this node, its share of the room is taken.
    /// A re-offer (nobody gone) wakes only units the room can take.
    pub(super) fn could_help(&mut self, unit: &Unit, profile: &Profile) -> Wake {
        let [pod] = unit.pods.as_slice() else { return self.unless_reoffer() };
        if self.wake_all || pod.has_cross_node_constraints() {
            return self.unless_reoffer();
        }
        let Some(node) = self.node else { return Wake::No };
        let gpu_milli = pod.gpu.as_ref().map_or(0, |g| i64::from(g.count) * i64::from(g.milli));
        if self.pod_slots <= 0
            || gpu_milli > self.gpu_room
            || !fits(&self.room, &pod.requests)
            || !self.passes(pod, node, profile)
        {
            return Wake::No;
        }
        self.room.sub(&pod.requests);
        self.pod_slots -= 1;
        self.gpu_room -= gpu_milli;
        Wake::ForRoomOn(node.id)
    }

    /// The profile's PreFilter and Filter on the node, as the binder re-checks a placement.
    fn passes(&self, pod: &Arc<Pod>, node: &NodeInfo, profile: &Profile) -> bool {
        if node.reservation_status(pod).is_some() {
            return false;
        }
        let mut cycle = CycleState::new();
        match profile.run_pre_filter(&mut cycle, pod, self.snapshot) {
            Ok(Some(nodes)) if !nodes.contains(&node.id) => false,
            Ok(_) => profile.run_filter_with_nominated(&cycle, pod, node).is_success(),
            Err(_) => false,
        }
    }
}

/// Whether `requests` fit in `room`, resource by resource.
fn fits(room: &ResourceVec, requests: &ResourceVec) -> bool {
    requests.iter_nonzero().all(|(id, amount)| room.get(id) >= amount)
}
