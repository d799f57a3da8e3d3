//! An independent check of a final assignment, so that a fast wrong answer never passes as a
//! result: the cluster is rebuilt from scratch (no state shared with the engine or binder),
//! capacity is summed per node, every bound pod is re-run through PreFilter and its node's
//! Filter chain with every *other* pod in place, and DRA allocations are checked against
//! their claims ([`devices`]).

use std::collections::HashMap;
use std::sync::Arc;

use tessera_plugins::dra::model::ClaimAllocation;
use tessera_plugins::framework::{CycleState, Profile};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GPU_MILLI, Node, Pod, PodKey};
use tessera_plugins::nodeinfo::{DeviceChoice, NodeInfo};
use tessera_plugins::resources::ResourceVec;
use tessera_plugins::snapshot::Snapshot;

use crate::engine::state::topology_keys;

mod devices;

pub use self::devices::{BoundWithClaims, device_violations};

/// A bound pod the check finds infeasible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The pod.
    pub pod: PodKey,
    /// Its node.
    pub node: Sym,
    /// What is wrong.
    pub reason: String,
}

/// Checks `assignment` (pod → node name, with its claims' allocations) on `nodes`, each pod
/// under `profile_of(pod)`.
pub fn verify<'p>(
    nodes: &[Node],
    assignment: &[BoundWithClaims],
    profile_of: impl Fn(&Pod) -> Option<&'p Profile>,
) -> Vec<Violation> {
    let mut snap = Snapshot::new();
    let mut ids = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        snap.set_node(Arc::new(NodeInfo::new(i as u32, Arc::new(n.clone()))));
        ids.insert(n.name, i as u32);
    }
    for (pod, _, _) in assignment {
        for k in topology_keys(pod) {
            snap.track_topology_key(k);
        }
    }
    let mut violations = Vec::new();
    for (pod, node, claims) in assignment {
        match ids.get(node) {
            Some(&id) => {
                snap.add_pod_with(id, pod.clone(), &holding(claims));
            }
            None => violations.push(violation(pod, *node, "node does not exist".into())),
        }
    }
    violations.extend(capacity_violations(nodes, assignment));
    violations.extend(device_violations(nodes, assignment));
    for (pod, node, claims) in assignment {
        let Some(&id) = ids.get(node) else { continue };
        if let Some(reason) = recheck(&mut snap, id, (pod, claims), profile_of(pod)) {
            violations.push(violation(pod, *node, reason));
        }
    }
    violations.sort_by(|a, b| (a.pod.to_string(), &a.reason).cmp(&(b.pod.to_string(), &b.reason)));
    violations.dedup_by(|a, b| a.pod == b.pod);
    violations
}

fn violation(pod: &Pod, node: Sym, reason: String) -> Violation {
    Violation { pod: pod.key(), node, reason }
}

/// Pods on nodes whose summed requests or pod count exceed what the node offers.
fn capacity_violations(nodes: &[Node], assignment: &[BoundWithClaims]) -> Vec<Violation> {
    let mut sums: HashMap<Sym, (ResourceVec, u32, u64)> = HashMap::new();
    for (pod, node, _) in assignment {
        let e = sums.entry(*node).or_insert((ResourceVec::ZERO, 0, 0));
        e.0.add(&pod.requests);
        e.1 += 1;
        e.2 += pod.gpu.as_ref().map_or(0, |g| g.total_milli());
    }
    let over: HashMap<Sym, String> = nodes
        .iter()
        .filter_map(|n| {
            let (sum, count, gpu_milli) = sums.get(&n.name)?;
            let short = !n.allocatable.covers(sum);
            let gpu_short = *gpu_milli > n.gpus.len() as u64 * u64::from(GPU_MILLI);
            (short || gpu_short || *count > n.allowed_pods).then(|| (n.name, format!("node {} over-committed", n.name)))
        })
        .collect();
    assignment.iter().filter_map(|(pod, node, _)| over.get(node).map(|r| violation(pod, *node, r.clone()))).collect()
}

/// The devices a bound pod holds: its claims' allocations (a claim the node holds already is
/// skipped when the pod is added).
fn holding(claims: &[Arc<ClaimAllocation>]) -> DeviceChoice {
    DeviceChoice { gpus: None, claims: claims.to_vec() }
}

/// Takes `pod` off node `id`, re-runs PreFilter and the Filter chain for it there, and puts
/// it back holding `claims`. Returns the failure, if any.
fn recheck(
    snap: &mut Snapshot,
    id: u32,
    (pod, claims): (&Arc<Pod>, &[Arc<ClaimAllocation>]),
    profile: Option<&Profile>,
) -> Option<String> {
    let Some(profile) = profile else {
        return Some(format!("no profile schedules scheduler name {}", pod.scheduler_name));
    };
    snap.remove_pod(id, &pod.key());
    let mut cycle = CycleState::new();
    let verdict = match profile.run_pre_filter(&mut cycle, pod, snap) {
        Err(s) => Some(format!("PreFilter {}: {s}", s.plugin)),
        Ok(Some(allowed)) if !allowed.contains(&id) => Some("PreFilter excluded the node".to_string()),
        Ok(_) => snap.node(id).and_then(|n| {
            let s = profile.run_filter(&cycle, pod, n);
            (!s.is_success()).then(|| format!("Filter {}: {s}", s.plugin))
        }),
    };
    snap.add_pod_with(id, pod.clone(), &holding(claims));
    verdict
}
