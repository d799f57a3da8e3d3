//! One pod's scheduling cycle over a snapshot: PreFilter, Filter (stopping once enough
//! feasible nodes are found), PreScore, Score, and host selection — upstream's
//! `schedulePod`, `findNodesThatFitPod`, `prioritizeNodes` and `selectHost`.
//!
//! Filter may run in parallel over chunks of nodes; results are merged in node order, so the
//! outcome is identical to the sequential walk whatever the thread count.

use rayon::prelude::*;
use tessera_plugins::framework::{
    CycleState, FilterPlugin, Nomination, PostFilterInput, PostFilterResult, Profile, ScoreBatch, ScorePlugin, TieBreak,
};
use tessera_plugins::model::Pod;
use tessera_plugins::nodeinfo::{DeviceChoice, NodeId, NodeInfo};
use tessera_plugins::snapshot::Snapshot;
use tessera_plugins::status::{Diagnosis, Status};

use super::reuse::{Entry, LocalVerdict, ReuseCache, ReuseStats};
use super::rng::Rng;

/// Nodes evaluated per parallel Filter round: large enough to amortise the fork, small enough
/// to waste little work past the stopping point.
const PARALLEL_CHUNK: usize = 256;

/// Where a pod should go.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The chosen node.
    pub node: NodeId,
    /// The node's generation in the snapshot the choice was made on.
    pub seen_generation: u64,
    /// The devices Reserve plugins chose for the pod there (GPUs, DRA claims).
    pub devices: DeviceChoice,
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
    /// Node-local results to reuse across pods of one signature (see [`super::reuse`]);
    /// `None` computes everything. Not used by the parallel Filter.
    pub reuse: Option<&'a mut ReuseCache>,
    /// Only these nodes (sorted) are candidates: a gang tried within one topology domain.
    pub within: Option<&'a [NodeId]>,
}

/// Runs one scheduling cycle for `pod`.
pub fn schedule_pod(
    profile: &Profile,
    snapshot: &Snapshot,
    pod: &Pod,
    opts: CycleOptions<'_>,
) -> Result<Placement, Diagnosis> {
    let CycleOptions { next_start, rng, parallel, reuse, within } = opts;
    let mut state = CycleState::new();
    let mut diagnosis = Diagnosis { num_all_nodes: snapshot.num_nodes(), ..Default::default() };
    if snapshot.num_nodes() == 0 {
        return Err(diagnosis);
    }
    let (narrowed_to, restriction) = match profile.run_pre_filter(&mut state, pod, snapshot) {
        Ok(r) => (r.as_ref().map(Vec::len), restrict(r, within)),
        Err(s) => {
            diagnosis.pre_filter_message = Some(s.to_string());
            diagnosis.unschedulable_plugins.push(s.plugin);
            return Err(diagnosis);
        }
    };
    let plan = FilterPlan::new(profile, &state);
    let mut cache = match reuse {
        Some(c) if !parallel => Some(c.entry(profile, snapshot, pod, plan.local_mask)),
        _ => None,
    };
    let walk = Walk { plan: &plan, state: &state, pod, snapshot, start: *next_start, parallel };
    let feasible = walk.run(profile, restriction, &mut diagnosis, cache.as_mut().map(|(e, s)| (&mut **e, &mut **s)));
    *next_start = feasible.next_start;
    let (ids, nodes) = (feasible.ids, feasible.nodes);
    if nodes.is_empty() {
        // The nodes PreFilter left out count under the plugins that narrowed (upstream).
        let left_out = narrowed_to.map_or(0, |n| snapshot.num_nodes().saturating_sub(n));
        diagnosis.add_nodes_left_out(left_out, state.pre_filter_narrowed_by());
        return Err(diagnosis);
    }
    let best = if nodes.len() == 1 {
        0
    } else {
        if let Err(s) = profile.run_pre_score(&mut state, pod, snapshot, &nodes) {
            diagnosis.pre_filter_message = Some(s.to_string());
            return Err(diagnosis);
        }
        let batch = ScoreBatch::new(snapshot, &ids, &nodes);
        let scores = match cache {
            Some((entry, stats)) => score_reusing(profile, &plan, &state, pod, batch, entry, stats),
            None => profile.run_score(&state, pod, batch),
        };
        match profile.tie_break {
            TieBreak::Random => select_host(&scores, rng),
            TieBreak::Stable(salt) => select_host_stable(&scores, &ids, salt),
        }
    };
    let best = nodes[best];
    if let Err(s) = profile.run_reserve(&mut state, pod, best) {
        diagnosis.pre_filter_message = Some(s.to_string());
        diagnosis.unschedulable_plugins.push(s.plugin);
        return Err(diagnosis);
    }
    Ok(Placement { node: best.id, seen_generation: best.generation, devices: state.take_device_choice() })
}

/// Runs PostFilter (preemption) for `pod` after its cycle failed with `diagnosis`, on the
/// same snapshot; `nominated` is its standing nomination. `None` when the profile has no
/// PostFilter plugin. PreFilter runs again for the cycle state the plugins' Filters read, but
/// only when some node could yield a victim: most failed pods cost a scan of the failed nodes.
pub fn post_filter(
    profile: &Profile,
    snapshot: &Snapshot,
    pod: &Pod,
    diagnosis: &Diagnosis,
    nominated: Option<&Nomination>,
) -> Option<PostFilterResult> {
    if profile.post_filter.is_empty() {
        return None;
    }
    let mut state = CycleState::new();
    let victims_possible =
        diagnosis.resolvable.iter().any(|id| snapshot.node(*id).is_some_and(|n| n.lowest_priority < pod.priority));
    if victims_possible && profile.run_pre_filter(&mut state, pod, snapshot).is_err() {
        state = CycleState::new();
    }
    let input = PostFilterInput { profile, state: &state, pod, snapshot, diagnosis, nominated };
    profile.run_post_filter(&input)
}

/// PreFilter's candidate nodes, narrowed to `within` when given.
fn restrict(restriction: Option<Vec<NodeId>>, within: Option<&[NodeId]>) -> Option<Vec<NodeId>> {
    match (restriction, within) {
        (Some(mut ids), Some(w)) => {
            ids.retain(|id| w.binary_search(id).is_ok());
            Some(ids)
        }
        (None, Some(w)) => Some(w.to_vec()),
        (r, None) => r,
    }
}

/// One Filter plugin that runs for the pod.
struct ActiveFilter<'p> {
    /// Position in the profile's Filter list.
    pos: usize,
    plugin: &'p dyn FilterPlugin,
    name: &'static str,
    /// Node-local: its verdict may be reused.
    local: bool,
}

/// The Filter plugins that run for one pod, resolved once rather than per node, and the
/// node-local Score plugins of the profile.
struct FilterPlan<'p> {
    active: Vec<ActiveFilter<'p>>,
    /// Positions of the active node-local Filter plugins.
    local_mask: u64,
    /// Positions of the profile's node-local Score plugins.
    local_scores: Vec<usize>,
}

impl<'p> FilterPlan<'p> {
    fn new(profile: &'p Profile, state: &CycleState) -> FilterPlan<'p> {
        let mut active = Vec::with_capacity(profile.filter.len());
        let mut local_mask = 0;
        for (pos, p) in profile.filter.iter().enumerate() {
            if state.skips_filter(pos) {
                continue;
            }
            let Some(plugin) = p.as_filter() else { continue };
            // Positions past 63 have no bit in the key: evaluate them live.
            let local = pos < 64 && p.node_local();
            if local {
                local_mask |= 1 << pos;
            }
            active.push(ActiveFilter { pos, plugin, name: p.name(), local });
        }
        let local_scores = profile
            .score
            .iter()
            .enumerate()
            .filter(|(i, ws)| *i < 64 && ws.plugin.node_local() && ws.plugin.as_score().is_some());
        let local_scores = local_scores.map(|(i, _)| i).collect();
        FilterPlan { active, local_mask, local_scores }
    }

    /// The first failing active Filter plugin's status, in profile order.
    fn run_all(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Option<Status> {
        self.active.iter().find_map(|f| {
            let s = f.plugin.filter(state, pod, node);
            (!s.is_success()).then(|| s.with_plugin(f.name))
        })
    }

    /// The first failing active node-local Filter plugin: its position and status.
    fn run_local(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Option<(usize, Status)> {
        self.active.iter().filter(|f| f.local).find_map(|f| {
            let s = f.plugin.filter(state, pod, node);
            (!s.is_success()).then(|| (f.pos, s.with_plugin(f.name)))
        })
    }

    /// The first failing active non-local Filter plugin placed before position `before`.
    fn run_live(&self, state: &CycleState, pod: &Pod, node: &NodeInfo, before: usize) -> Option<Status> {
        self.active.iter().take_while(|f| f.pos < before).filter(|f| !f.local).find_map(|f| {
            let s = f.plugin.filter(state, pod, node);
            (!s.is_success()).then(|| s.with_plugin(f.name))
        })
    }
}

/// A node's Filter verdict.
enum Verdict {
    Pass,
    Fail(Status),
    /// A failure the cache holds (index of its status).
    Cached(u32),
}

struct Feasible<'s> {
    ids: Vec<NodeId>,
    nodes: Vec<&'s NodeInfo>,
    next_start: usize,
}

/// The round-robin walk over nodes of one cycle.
struct Walk<'a, 's> {
    plan: &'a FilterPlan<'a>,
    state: &'a CycleState,
    pod: &'a Pod,
    snapshot: &'s Snapshot,
    start: usize,
    parallel: bool,
}

impl<'a, 's> Walk<'a, 's> {
    /// Walks nodes round-robin from `start`, collecting up to the profile's number of
    /// feasible nodes to find; failed nodes go into `diagnosis`.
    fn run(
        &self,
        profile: &Profile,
        restriction: Option<Vec<NodeId>>,
        diagnosis: &mut Diagnosis,
        mut cache: Option<(&mut Entry, &mut ReuseStats)>,
    ) -> Feasible<'s> {
        let snapshot = self.snapshot;
        let slots = snapshot.slots();
        let candidates: Option<Vec<(NodeId, &'s NodeInfo)>> =
            restriction.map(|ids| ids.iter().filter_map(|id| snapshot.node(*id).map(|n| (*id, n.as_ref()))).collect());
        let total = candidates.as_ref().map_or(slots.len(), Vec::len);
        let want = profile.num_feasible_nodes_to_find(snapshot.num_nodes());
        let restricted = candidates.is_some();
        let start = if restricted || total == 0 { 0 } else { self.start % total };
        // Ids come from the walk itself (slot index or candidate list), so a node is only
        // touched when a plugin actually reads it.
        let node_at = |i: usize| -> Option<(NodeId, &'s NodeInfo)> {
            // start < total and i < total: a subtraction wraps, where `%` would divide per node.
            let idx = if start + i >= total { start + i - total } else { start + i };
            match &candidates {
                Some(c) => c.get(idx).copied(),
                None => slots[idx].as_deref().map(|n| (idx as NodeId, n)),
            }
        };
        let mut found = Feasible { ids: Vec::with_capacity(want.min(total)), nodes: Vec::new(), next_start: 0 };
        found.nodes.reserve(want.min(total));
        let mut processed = 0;
        if self.parallel {
            let mut offset = 0;
            while offset < total && found.nodes.len() < want {
                let end = (offset + PARALLEL_CHUNK).min(total);
                for (id, node, status) in evaluate_parallel(profile, self.state, self.pod, offset..end, &node_at) {
                    processed += 1;
                    match status {
                        None => {
                            found.ids.push(id);
                            found.nodes.push(node);
                        }
                        Some(s) => diagnosis.add_node(id, &s),
                    }
                    if found.nodes.len() >= want {
                        break;
                    }
                }
                offset = end;
            }
        } else {
            let no_live = self.plan.active.iter().all(|f| f.local);
            // Looking at a node costs a cache miss the reuse fast path otherwise avoids.
            let reservations = snapshot.has_reservations();
            for (id, node) in (0..total).filter_map(node_at) {
                processed += 1;
                if let Some(s) = reservations.then(|| node.reservation_status(self.pod)).flatten() {
                    // Not a failure evicting pods could mend: recorded without the node.
                    diagnosis.add_node_status(&s);
                    continue;
                }
                // Pods nominated here of at least this pod's priority count against it (see
                // `Profile::run_filter_with_nominated`); verdicts that depend on them are not
                // the node's own, so they bypass the reuse cache.
                if node.nominated.iter().any(|n| n.priority >= self.pod.priority) {
                    let s = profile.run_filter_with_nominated(self.state, self.pod, node);
                    if s.is_success() {
                        found.ids.push(id);
                        found.nodes.push(node);
                        if found.nodes.len() >= want {
                            break;
                        }
                    } else {
                        diagnosis.add_node(id, &s);
                    }
                    continue;
                }
                // The common case, kept small: every Filter is node-local and the node passed
                // them unchanged since.
                if no_live
                    && let Some((entry, stats)) = cache.as_mut()
                    && entry.verdict(id) == Some(LocalVerdict::Pass)
                {
                    stats.filter_hits += 1;
                    found.ids.push(id);
                    found.nodes.push(node);
                    if found.nodes.len() >= want {
                        break;
                    }
                    continue;
                }
                let verdict = match cache.as_mut() {
                    Some((entry, stats)) => self.evaluate_reusing(entry, stats, id, node),
                    None => self.plan.run_all(self.state, self.pod, node).map_or(Verdict::Pass, Verdict::Fail),
                };
                match verdict {
                    Verdict::Pass => {
                        found.ids.push(id);
                        found.nodes.push(node);
                        if found.nodes.len() >= want {
                            break;
                        }
                    }
                    Verdict::Fail(s) => diagnosis.add_node(id, &s),
                    Verdict::Cached(k) => {
                        if let Some(s) = cache.as_ref().and_then(|(e, _)| e.status(k)) {
                            diagnosis.add_node(id, s);
                        }
                    }
                }
            }
        }
        found.next_start = if restricted || total == 0 { self.start } else { (start + processed) % total };
        found
    }

    /// A node's verdict with node-local plugins answered from (or recorded into) the cache
    /// and the others run; the first failure in profile order wins, as without the cache.
    fn evaluate_reusing(&self, entry: &mut Entry, stats: &mut ReuseStats, id: NodeId, node: &NodeInfo) -> Verdict {
        let (local_at, local) = match entry.verdict(id) {
            Some(LocalVerdict::Pass) => {
                stats.filter_hits += 1;
                (usize::MAX, Verdict::Pass)
            }
            Some(LocalVerdict::Fail(pos, k)) => {
                stats.filter_hits += 1;
                (pos, Verdict::Cached(k))
            }
            None => {
                stats.filter_misses += 1;
                let failure = self.plan.run_local(self.state, self.pod, node);
                match (entry.record(id, failure.as_ref().map(|(p, s)| (*p, s))), failure) {
                    (_, None) => (usize::MAX, Verdict::Pass),
                    (Some(LocalVerdict::Fail(pos, k)), Some(_)) => (pos, Verdict::Cached(k)),
                    (_, Some((pos, s))) => (pos, Verdict::Fail(s)),
                }
            }
        };
        match self.plan.run_live(self.state, self.pod, node, local_at) {
            Some(s) => Verdict::Fail(s),
            None => local,
        }
    }
}

/// Scores `batch` with node-local raw scores from `entry` (filling in the missing ones) and
/// every other plugin computed; normalisation and weights as [`Profile::run_score`].
fn score_reusing(
    profile: &Profile,
    plan: &FilterPlan<'_>,
    state: &CycleState,
    pod: &Pod,
    batch: ScoreBatch<'_>,
    entry: &mut Entry,
    stats: &mut ReuseStats,
) -> Vec<i64> {
    // The node-local Score plugins that run for this pod, in position order; the k-th has
    // slot k in the entry's rows.
    let active: Vec<(usize, &dyn ScorePlugin)> = plan
        .local_scores
        .iter()
        .filter(|i| !state.skips_score(**i) && profile.score[**i].weight != 0)
        .filter_map(|&i| profile.score[i].plugin.as_score().map(|sp| (i, sp)))
        .collect();
    let mask = active.iter().fold(0u64, |m, (i, _)| m | 1 << i);
    entry.use_score_mask(mask);
    // Gather every node-local plugin's raw scores in one pass over the rows, filling in the
    // missing ones: raw[slot * n + j] is node j's score from the plugin at `slot`.
    let width = active.len();
    let n = batch.ids.len();
    let mut raw = vec![0i64; width * n];
    let mut row = vec![0i64; width];
    for (j, (&id, node)) in batch.ids.iter().zip(batch.nodes).enumerate() {
        if entry.scores(id, &mut row) {
            stats.score_hits += 1;
        } else {
            stats.score_misses += 1;
            for (r, (_, sp)) in row.iter_mut().zip(&active) {
                *r = sp.score(state, pod, node);
            }
            entry.fill_scores(id, &row);
        }
        for (slot, s) in row.iter().enumerate() {
            raw[slot * n + j] = *s;
        }
    }
    profile.run_score_with(state, pod, batch, |i, _, out| {
        let Some(slot) = active.iter().position(|(at, _)| *at == i) else { return false };
        out.copy_from_slice(&raw[slot * n..(slot + 1) * n]);
        true
    })
}

/// Filter verdicts for positions `range` of the walk, computed in parallel, in walk order
/// (`None` = feasible).
fn evaluate_parallel<'s>(
    profile: &Profile,
    state: &CycleState,
    pod: &Pod,
    range: std::ops::Range<usize>,
    node_at: &(dyn Fn(usize) -> Option<(NodeId, &'s NodeInfo)> + Sync),
) -> Vec<(NodeId, &'s NodeInfo, Option<Status>)> {
    range
        .into_par_iter()
        .filter_map(|i| {
            node_at(i).map(|(id, n)| {
                let s = n.reservation_status(pod).unwrap_or_else(|| profile.run_filter_with_nominated(state, pod, n));
                (id, n, if s.is_success() { None } else { Some(s) })
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

/// Index of the best score; ties go to the node first in the fixed order `salt` draws (see
/// [`TieBreak::Stable`]). `ids` are the scored nodes' ids, in the order of `scores`.
pub fn select_host_stable(scores: &[i64], ids: &[NodeId], salt: u64) -> usize {
    let rank = |i: usize| splitmix(salt ^ u64::from(ids.get(i).copied().unwrap_or(0)));
    let mut best = 0;
    for i in 1..scores.len() {
        if scores[i] > scores[best] || (scores[i] == scores[best] && rank(i) < rank(best)) {
            best = i;
        }
    }
    best
}

/// SplitMix64's finaliser: a fixed, well-mixed permutation of the 64-bit integers.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_tie_break_keeps_choosing_the_same_node() {
        let ids = [7, 3, 9, 4];
        let first = select_host_stable(&[5, 5, 5, 5], &ids, 42);
        assert_eq!(select_host_stable(&[5, 5, 5, 5], &ids, 42), first, "same salt, same choice");
        assert_eq!(select_host_stable(&[5, 5, 5, 1], &[7, 3, 9, 4], 42), select_host_stable(&[5, 5, 5], &ids[..3], 42));
        assert_eq!(select_host_stable(&[1, 2, 9, 3], &ids, 42), 2, "the best score still wins");
        let picks: std::collections::HashSet<usize> =
            (0..64).map(|salt| select_host_stable(&[5, 5, 5, 5], &ids, salt)).collect();
        assert!(picks.len() > 1, "another salt, another order");
    }

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
