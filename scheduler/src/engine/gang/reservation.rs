//! Reservations: nodes held for a gang that does not fit yet, so that a stream of small pods
//! cannot starve it.
//!
//! Without one, every pod that leaves frees a little room that the next small pod takes, and
//! a 64-pod gang never sees 64 free slots at once. With one, the gang at the head of the line
//! holds the nodes it would need once empty; no other pod lands there, so they drain as their
//! pods finish and the gang fits within the longest run time among them. Small pods keep
//! running everywhere else (backfill away from the held capacity).
//!
//! One reservation at a time, bounded in time ([`super::gang::GangOptions::reservation_s`]):
//! a gang that still does not fit when it lapses lets go, and the next gang that fails may
//! take its turn. The nodes are chosen as if empty (the room the gang will have once they
//! drain), preferring those with the most room free now, which drain soonest.

use std::sync::Arc;

use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GroupKey, Pod};
use tessera_plugins::nodeinfo::{NodeId, NodeInfo};
use tessera_plugins::resources::{ResourceId, ResourceVec};
use tessera_plugins::snapshot::Snapshot;

use super::placement::gpu_free;

/// Nodes held for a gang until a deadline.
#[derive(Clone, Debug, PartialEq)]
pub struct Reservation {
    /// The gang.
    pub gang: GroupKey,
    /// The nodes held.
    pub nodes: Vec<NodeId>,
    /// When the hold lapses.
    pub until: f64,
}

/// Each GPU's model and free milli-GPU.
type GpusLeft = Vec<(Sym, u32)>;

/// A node as the plan fills it: what is left of its allocatable capacity.
struct Room {
    id: NodeId,
    labels_value: Option<Sym>,
    left: ResourceVec,
    gpus_left: GpusLeft,
    used: bool,
}

/// The nodes to hold for gang `gang` of `pods`, in one domain of `topology_key` when given:
/// the fewest nodes, taken in order of most room free now, that hold every pod once empty.
/// Empty when no such set exists (the gang can never fit; holding nodes would only hurt).
pub fn choose(snapshot: &Snapshot, pods: &[Arc<Pod>], gang: GroupKey, topology_key: Option<Sym>) -> Vec<NodeId> {
    let mut rooms: Vec<(u64, i64, Room)> = snapshot
        .nodes()
        .filter(|n| n.reserved_for.is_none_or(|g| g == gang) && !n.node.unschedulable)
        .map(|n| (gpu_free(n), n.free().get(ResourceId::CPU), room(n, topology_key)))
        .collect();
    // Most free now first: those drain soonest. Ties by id, for determinism.
    rooms.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.id.cmp(&b.2.id)));
    let mut rooms: Vec<Room> = rooms.into_iter().map(|(_, _, r)| r).collect();
    let domains: Vec<Option<Sym>> = match topology_key {
        None => vec![None],
        Some(_) => {
            let mut seen: Vec<Option<Sym>> = Vec::new();
            for r in &rooms {
                if r.labels_value.is_some() && !seen.contains(&r.labels_value) {
                    seen.push(r.labels_value);
                }
            }
            seen
        }
    };
    // Largest pods first, as first-fit-decreasing packs.
    let mut order: Vec<&Arc<Pod>> = pods.iter().collect();
    order.sort_by_key(|p| {
        std::cmp::Reverse((p.gpu.as_ref().map_or(0, |g| g.total_milli()), p.requests.get(ResourceId::CPU)))
    });
    for domain in domains {
        for r in &mut rooms {
            r.used = false;
        }
        if let Some(ids) = pack(&mut rooms, &order, domain) {
            return ids;
        }
    }
    Vec::new()
}

fn room(n: &NodeInfo, key: Option<Sym>) -> Room {
    Room {
        id: n.id,
        labels_value: key.and_then(|k| n.node.labels.get(k)),
        left: n.node.allocatable.clone(),
        gpus_left: n.node.gpus.iter().map(|g| (g.model, 1000)).collect(),
        used: false,
    }
}

/// First-fit of `pods` into `rooms` (restricted to `domain` when given); the ids used, or
/// `None` when some pod fits in no room. Restores nothing: callers reset `used`, and a failed
/// domain's consumed room is not looked at again.
fn pack(rooms: &mut [Room], pods: &[&Arc<Pod>], domain: Option<Sym>) -> Option<Vec<NodeId>> {
    // Each room touched, as it was before: (index, capacity left, GPUs left).
    let mut taken: Vec<(usize, ResourceVec, GpusLeft)> = Vec::new();
    let mut ok = true;
    for pod in pods {
        let hit =
            rooms.iter_mut().enumerate().find(|(_, r)| (domain.is_none() || r.labels_value == domain) && fits(r, pod));
        let Some((i, r)) = hit else {
            ok = false;
            break;
        };
        taken.push((i, r.left.clone(), r.gpus_left.clone()));
        take(r, pod);
        r.used = true;
    }
    let mut ids: Vec<NodeId> = rooms.iter().filter(|r| r.used).map(|r| r.id).collect();
    ids.sort_unstable();
    // Undo in reverse so the next domain starts from the nodes as they were.
    for (i, left, gpus) in taken.into_iter().rev() {
        rooms[i].left = left;
        rooms[i].gpus_left = gpus;
    }
    ok.then_some(ids)
}

fn fits(r: &Room, pod: &Pod) -> bool {
    let resources = r.left.covers(&pod.requests);
    let gpus = pod.gpu.as_ref().is_none_or(|g| {
        r.gpus_left.iter().filter(|(m, free)| g.accepts(*m) && *free >= g.milli).count() >= g.count as usize
    });
    resources && gpus
}

fn take(r: &mut Room, pod: &Pod) {
    r.left.sub(&pod.requests);
    if let Some(g) = &pod.gpu {
        let mut need = g.count;
        for (m, free) in &mut r.gpus_left {
            if need > 0 && g.accepts(*m) && *free >= g.milli {
                *free -= g.milli;
                need -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::{RACK, gpu_node, shared_gpu_pod as gpu_pod};

    fn cluster(racks: &[&str], busy: &[NodeId]) -> Snapshot {
        let mut s = Snapshot::new();
        for (i, rack) in racks.iter().enumerate() {
            let id = i as NodeId;
            s.set_node(Arc::new(NodeInfo::new(id, Arc::new(gpu_node(&format!("n{i}"), rack, 8)))));
            if busy.contains(&id) {
                s.add_pod(id, gpu_pod(&format!("busy{i}"), 6));
            }
        }
        s
    }

    #[test]
    fn holds_the_fewest_nodes_preferring_those_that_drain_soonest() {
        let s = cluster(&["a", "a", "a", "a"], &[0, 1]);
        let gang: Vec<Arc<Pod>> = (0..4).map(|i| gpu_pod(&format!("g{i}"), 4)).collect();
        assert_eq!(choose(&s, &gang, GroupKey::new("ml", "g"), None), vec![2, 3], "the idle nodes");
    }

    #[test]
    fn keeps_to_one_domain_and_gives_up_when_none_can_ever_hold_the_gang() {
        let s = cluster(&["a", "b", "b"], &[]);
        let gang: Vec<Arc<Pod>> = (0..2).map(|i| gpu_pod(&format!("g{i}"), 8)).collect();
        assert_eq!(choose(&s, &gang, GroupKey::new("ml", "g"), Some(Sym::new(RACK))), vec![1, 2]);
        let too_big: Vec<Arc<Pod>> = (0..3).map(|i| gpu_pod(&format!("g{i}"), 8)).collect();
        assert!(choose(&s, &too_big, GroupKey::new("ml", "g"), Some(Sym::new(RACK))).is_empty());
    }
}
