//! One pod's scheduling cycle over a snapshot: PreFilter, Filter (stopping once enough
//! feasible nodes are found), PreScore, Score, and host selection — upstream's
//! `schedulePod`, `findNodesThatFitPod`, `prioritizeNodes` and `selectHost`.
//!
//! Filter may run in parallel over chunks of nodes; results are merged in node order, so the
//! outcome is identical to the sequential walk whatever the thread count.

use rayon::prelude::*;
use tessera_plugins::framework::{CycleState, Profile};
use tessera_plugins::model::Pod;
use tessera_plugins::nodeinfo::{NodeId, NodeInfo};
use tessera_plugins::snapshot::Snapshot;
use tessera_plugins::status::{Diagnosis, Status};

use super::rng::Rng;

/// Nodes evaluated per parallel Filter round: large enough to amortise the fork, small enough
/// to waste little work past the stopping point.
const PARALLEL_CHUNK: usize = 256;

/// Where a pod should go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The chosen node.
    pub node: NodeId,
    /// The node's generation in the snapshot the choice was made on.
    pub seen_generation: u64,
}

/// Options of one scheduling cycle.
#[derive(Debug)]
pub struct CycleOptions<'a> {
    /// Where the round-robin walk over nodes starts; advanced by the nodes processed.
    pub next_start: &'a mut usize,
    /// Tie-breaking among equal best scores.
    pub rng: &'a mut Rng,
    /// Evaluate Filter over chunks of nodes in parallel (rayon).
    pub parallel: bool,
}

/// Runs one scheduling cycle for `pod`.
pub fn schedule_pod(
    profile: &Profile,
    snapshot: &Snapshot,
    pod: &Pod,
    opts: CycleOptions<'_>,
) -> Result<Placement, Diagnosis> {
    let mut state = CycleState::new();
    let mut diagnosis = Diagnosis { num_all_nodes: snapshot.num_nodes(), ..Default::default() };
    if snapshot.num_nodes() == 0 {
        return Err(diagnosis);
    }
    let restriction = match profile.run_pre_filter(&mut state, pod, snapshot) {
        Ok(r) => r,
        Err(s) => {
            diagnosis.pre_filter_message = Some(s.to_string());
            diagnosis.unschedulable_plugins.push(s.plugin);
            return Err(diagnosis);
        }
    };
    let feasible = find_feasible(profile, &state, pod, snapshot, restriction, &mut diagnosis, &opts);
    *opts.next_start = feasible.next_start;
    let nodes = feasible.nodes;
    if nodes.is_empty() {
        return Err(diagnosis);
    }
    let best = if nodes.len() == 1 {
        nodes[0]
    } else {
        if let Err(s) = profile.run_pre_score(&mut state, pod, snapshot, &nodes) {
            diagnosis.pre_filter_message = Some(s.to_string());
            return Err(diagnosis);
        }
        let scores = profile.run_score(&state, pod, &nodes);
        nodes[select_host(&scores, opts.rng)]
    };
    Ok(Placement { node: best.id, seen_generation: best.generation })
}

struct Feasible<'s> {
    nodes: Vec<&'s NodeInfo>,
    next_start: usize,
}

/// Walks nodes round-robin from `next_start`, collecting up to the profile's number of
/// feasible nodes to find; failed nodes go into `diagnosis`.
fn find_feasible<'s>(
    profile: &Profile,
    state: &CycleState,
    pod: &Pod,
    snapshot: &'s Snapshot,
    restriction: Option<Vec<NodeId>>,
    diagnosis: &mut Diagnosis,
    opts: &CycleOptions<'_>,
) -> Feasible<'s> {
    let (restricted, candidates): (bool, Vec<&'s NodeInfo>) = match restriction {
        Some(ids) => (true, ids.iter().filter_map(|id| snapshot.node(*id).map(|n| n.as_ref())).collect()),
        None => (false, Vec::new()),
    };
    let slots = snapshot.slots();
    let total = if restricted { candidates.len() } else { slots.len() };
    let want = profile.num_feasible_nodes_to_find(snapshot.num_nodes());
    let start = if restricted || total == 0 { 0 } else { *opts.next_start % total };
    let node_at = |i: usize| -> Option<&'s NodeInfo> {
        let idx = (start + i) % total;
        if restricted { Some(candidates[idx]) } else { slots[idx].as_deref() }
    };
    let mut found = Vec::with_capacity(want.min(total));
    let mut processed = 0;
    let mut consider = |node: &'s NodeInfo, status: Option<Status>, found: &mut Vec<&'s NodeInfo>| {
        processed += 1;
        match status {
            None => found.push(node),
            Some(s) => diagnosis.add_node_status(&s),
        }
    };
    if opts.parallel {
        let mut offset = 0;
        while offset < total && found.len() < want {
            let end = (offset + PARALLEL_CHUNK).min(total);
            for (node, status) in evaluate_parallel(profile, state, pod, offset..end, &node_at) {
                consider(node, status, &mut found);
                if found.len() >= want {
                    break;
                }
            }
            offset = end;
        }
    } else {
        for node in (0..total).filter_map(node_at) {
            let s = profile.run_filter(state, pod, node);
            consider(node, if s.is_success() { None } else { Some(s) }, &mut found);
            if found.len() >= want {
                break;
            }
        }
    }
    let next_start = if restricted || total == 0 { *opts.next_start } else { (start + processed) % total };
    Feasible { nodes: found, next_start }
}

/// Filter verdicts for positions `range` of the walk, computed in parallel, in walk order
/// (`None` = feasible).
fn evaluate_parallel<'s>(
    profile: &Profile,
    state: &CycleState,
    pod: &Pod,
    range: std::ops::Range<usize>,
    node_at: &(dyn Fn(usize) -> Option<&'s NodeInfo> + Sync),
) -> Vec<(&'s NodeInfo, Option<Status>)> {
    range
        .into_par_iter()
        .filter_map(|i| {
            node_at(i).map(|n| {
                let s = profile.run_filter(state, pod, n);
                (n, if s.is_success() { None } else { Some(s) })
            })
        })
        .collect()
}

/// Index of the best score; ties broken uniformly at random (reservoir sampling, as upstream).
pub fn select_host(scores: &[i64], rng: &mut Rng) -> usize {
    let mut best = 0;
    let mut ties = 1;
    for (i, &s) in scores.iter().enumerate().skip(1) {
        if s > scores[best] {
            best = i;
            ties = 1;
        } else if s == scores[best] {
            ties += 1;
            if rng.below(ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_host_picks_the_maximum_and_spreads_ties() {
        let mut rng = Rng::new(1);
        assert_eq!(select_host(&[1, 9, 3], &mut rng), 1);
        let mut seen = [0; 3];
        for _ in 0..3000 {
            seen[select_host(&[5, 5, 5], &mut rng)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "ties are broken uniformly: {seen:?}");
    }
}
