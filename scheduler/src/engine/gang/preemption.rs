//! Gang-aware preemption: a gang that fits nowhere preempts as one unit.
//!
//! The worker places the gang's members one after another on a scratch copy of its snapshot,
//! as the gang would be placed: a member that fits takes its room; a member that does not runs
//! PostFilter there, and its victims leave the scratch copy before it takes their room. Either
//! every member finds a place, and the whole set of victims is proposed at once, or none is
//! evicted: a gang never evicts for a placement it cannot complete. A gang that must keep to
//! one domain tries each domain in turn.
//!
//! The engine commits the set only if none of the nodes involved changed since (the same
//! optimistic check as for a placement), nominates each member to its node, and parks the gang
//! until the victims are gone; members of one gang do not hold room against each other
//! ([`tessera_plugins::nodeinfo::NodeInfo::with_nominated_for`]).

use std::sync::Arc;

use tessera_plugins::framework::{Nomination, PostFilterResult, Profile};
use tessera_plugins::model::{Pod, PreemptionPolicy};
use tessera_plugins::nodeinfo::NodeId;
use tessera_plugins::snapshot::Snapshot;

use super::GangSpec;
use super::placement;
use crate::engine::algorithm::{self, CycleOptions, schedule_pod};
use crate::engine::rng::Rng;

/// Where each member goes, and whom the members that had to preempt evict.
#[derive(Clone, Debug)]
pub struct GangPreemption {
    /// Every member and its nomination: those that fit as things stood evict nobody, but are
    /// nominated too, so that the room the gang counted on is held until it is tried again.
    pub members: Vec<(Arc<Pod>, Nomination)>,
}

/// The victims that let every pod of the gang fit, or `None`. `snapshot` is the worker's view
/// (left as it was); `start` and `rng` are the worker's.
pub fn plan(
    profile: &Profile,
    snapshot: &Snapshot,
    pods: &[Arc<Pod>],
    spec: &GangSpec,
    start: &mut usize,
    rng: &mut Rng,
) -> Option<GangPreemption> {
    if profile.post_filter.is_empty() || pods.iter().any(|p| p.preemption_policy == PreemptionPolicy::Never) {
        return None;
    }
    // Nothing ranks below the gang anywhere: no copy of the view is worth making.
    let top = pods.iter().map(|p| p.priority).max()?;
    if !snapshot.nodes().any(|n| n.lowest_priority < top) {
        return None;
    }
    let tries: Vec<Option<Vec<NodeId>>> = match spec.topology_key {
        None => vec![None],
        Some(key) => placement::domain_nodes(snapshot, key, spec.key).into_iter().map(Some).collect(),
    };
    tries.iter().find_map(|within| plan_within(profile, snapshot, pods, within.as_deref(), start, rng))
}

fn plan_within(
    profile: &Profile,
    snapshot: &Snapshot,
    pods: &[Arc<Pod>],
    within: Option<&[NodeId]>,
    start: &mut usize,
    rng: &mut Rng,
) -> Option<GangPreemption> {
    let mut scratch = snapshot.clone();
    let mut members = Vec::new();
    for pod in pods {
        let opts = CycleOptions { next_start: &mut *start, rng: &mut *rng, parallel: false, reuse: None, within };
        let (placement, victims, pdb_violations) = match schedule_pod(profile, &scratch, pod, opts) {
            Ok(p) => (p, Vec::new(), 0),
            Err(diagnosis) => {
                let Some(PostFilterResult::Nominate(n)) =
                    algorithm::post_filter(profile, &scratch, pod, &diagnosis, None)
                else {
                    return None;
                };
                if within.is_some_and(|w| w.binary_search(&n.node).is_err()) {
                    return None;
                }
                for v in &n.victims {
                    scratch.remove_pod(v.node, &v.pod.key());
                }
                // Placed again on the node its victims freed, so that it takes the devices
                // (GPUs, claims) its Reserve plugins pick there, not others' later.
                let opts = CycleOptions {
                    next_start: &mut *start,
                    rng: &mut *rng,
                    parallel: false,
                    reuse: None,
                    within: Some(&[n.node]),
                };
                (schedule_pod(profile, &scratch, pod, opts).ok()?, n.victims, n.pdb_violations)
            }
        };
        scratch.add_pod_with(placement.node, pod.clone(), &placement.devices);
        // The engine checks each node against its live state as the worker saw it.
        let seen_generation = snapshot.node(placement.node)?.generation;
        let nomination = Nomination { node: placement.node, seen_generation, victims, pdb_violations };
        members.push((pod.clone(), nomination));
    }
    members.iter().any(|(_, n)| !n.victims.is_empty()).then_some(GangPreemption { members })
}
