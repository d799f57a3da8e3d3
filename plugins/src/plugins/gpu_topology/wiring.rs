//! Best wired first: a pod asking whole GPUs goes to a node where the GPUs it would get are wired
//! as well as anywhere, and break up as few whole NVLink islands, before the strategy weighs
//! fragmentation or packing.
//!
//! The strategies see GPUs as interchangeable: FGD gladly puts a 4-GPU pod on the node whose
//! last four free GPUs sit in two NVLink islands, since that fills the node, while another node
//! has a whole island free; and a 1-GPU pod may take its GPU from a whole free island when
//! another node has a half-used one. So for a pod asking whole GPUs, Score also weighs, on each
//! node, the GPUs it would get there ([`NodeInfo::choose_gpus`]) by their *rank*, in this order:
//! 1. their *fit*, for a pod asking two GPUs or more: the pairs among them weighed NVLink 4,
//!    one PCIe root 2, one NUMA node 1 ([`PairCounts::weight`]), against every pair having all
//!    three, as DynamicResources weighs DRA devices, in [`FIT_LEVELS`] levels;
//! 2. the whole free NVLink islands they break up ([`GpuWiring::islands_broken`]): none, one,
//!    two, three or more, so that whole islands stay free for the pods that need one.
//!
//! A node without a wiring promises no pair and breaks no island. NormalizeScore then puts the
//! nodes of the best rank at 51–100, the strategy's best of them at 100, and the others at
//! 0–50, the strategy's worst at 0; each group keeps the strategy's differences, squeezed only
//! when they span more than the group's range. With
//! GpuTopology the only score (`gpu.yaml`) the best rank always wins among the nodes scored;
//! beside other plugins it is one strong score among them. Where every node has the same rank
//! (a cluster without wiring, such as the openb traces) the strategy's scores are left as they
//! are.
//!
//! On a wired node the raw score carries both numbers, `(rank + 1) × 512 + strategy score + 256`
//! (the strategy's score clamped to −256..=255, which only Packing can leave, on nodes of
//! several hundred free cores), within the reuse cache's 16 signed bits; on a node without a
//! wiring it is the strategy's score alone, at most 100.
//!
//! The rank is that of [`NodeInfo::choose_gpus`]'s GPUs, the ones every strategy gives a pod
//! asking whole GPUs of one model; on a node of several GPU models the FGD strategies choose
//! GPU by GPU instead, and may take others.
//!
//! [`PairCounts::weight`]: crate::gpu_wiring::PairCounts::weight
//! [`GpuWiring::islands_broken`]: crate::gpu_wiring::GpuWiring::islands_broken

use crate::framework::MAX_NODE_SCORE;
use crate::gpu_wiring::BEST_PAIR_WEIGHT;
use crate::model::{GPU_MILLI, GpuRequest, Pod};
use crate::nodeinfo::NodeInfo;

/// Levels of fit, from no wired pair (0) to every pair wired as well as can be.
const FIT_LEVELS: i64 = 15;
/// Broken islands counted apart; more count as this many.
const MOST_BROKEN: i64 = 3;
/// Raw points per step of rank: more than any strategy score spans.
const RANK_STEP: i64 = 512;
/// Added to the strategy's score so that a negative one still encodes below [`RANK_STEP`].
const OFFSET: i64 = 256;
/// The lowest normalized score of a node of the best rank.
const BEST_FLOOR: i64 = 51;

// The best rank's raw score fits the reuse cache's 16 signed bits.
const _: () = assert!((rank(FIT_LEVELS - 1, 0) + 2) * RANK_STEP <= i16::MAX as i64 + 1);

/// The request the rank weighs: whole GPUs.
pub(super) fn gated(pod: &Pod) -> Option<&GpuRequest> {
    pod.gpu.as_ref().filter(|r| r.count >= 1 && r.milli >= GPU_MILLI)
}

/// The raw score of `node` for `req`, scored `strategy`: that score alone on a node without a
/// wiring, else with the rank of the GPUs the node would give (see the module docs).
pub(super) fn encode(req: &GpuRequest, node: &NodeInfo, strategy: i64) -> i64 {
    match wired_rank(req, node) {
        Some(rank) => pack(rank, strategy),
        None => {
            debug_assert!(strategy < RANK_STEP, "a strategy score alone stays below any packed one");
            strategy
        }
    }
}

/// The raw score of a wired node's rank and strategy score: past any strategy score alone.
fn pack(rank: i64, strategy: i64) -> i64 {
    (rank + 1) * RANK_STEP + strategy.clamp(-OFFSET, RANK_STEP - OFFSET - 1) + OFFSET
}

/// The rank of a fit and a count of broken islands: fit first, then islands kept whole.
const fn rank(fit: i64, broken: i64) -> i64 {
    let broken = if broken < MOST_BROKEN { broken } else { MOST_BROKEN };
    fit * (MOST_BROKEN + 1) + MOST_BROKEN - broken
}

/// The rank on a node without a wiring: no pair promised, no island broken.
fn unwired_rank(req: &GpuRequest) -> i64 {
    rank(if req.count >= 2 { 0 } else { FIT_LEVELS - 1 }, 0)
}

/// The rank of the GPUs a wired `node` would give `req`.
fn wired_rank(req: &GpuRequest, node: &NodeInfo) -> Option<i64> {
    let wiring = node.wiring()?;
    // What `choose_gpus` gives a pod asking whole GPUs on a wired node, with the free set kept.
    let free = node.fitting_gpus(req);
    let gpus = wiring.best_subset(free, req.count)?;
    let k = i64::from(gpus.count_ones());
    let pairs = k * (k - 1) / 2;
    let best_fit = FIT_LEVELS - 1;
    let fit = match pairs {
        0 => best_fit,
        _ => best_fit * wiring.pair_counts(gpus).weight() / (BEST_PAIR_WEIGHT * pairs),
    };
    Some(rank(fit, i64::from(wiring.islands_broken(free, gpus))))
}

/// Turns `req`'s raw scores ([`encode`]) into final ones: the strategy's own normalization
/// (`strategy`) on its part, then the nodes of the best rank above the others when ranks differ.
pub(super) fn normalize(req: &GpuRequest, scores: &mut [i64], strategy: impl FnOnce(&mut [i64])) {
    let mut ranks = Vec::with_capacity(scores.len());
    for r in scores.iter_mut() {
        if *r >= RANK_STEP {
            ranks.push(r.div_euclid(RANK_STEP) - 1);
            *r = r.rem_euclid(RANK_STEP) - OFFSET;
        } else {
            ranks.push(unwired_rank(req));
        }
    }
    strategy(scores);
    let (Some(&worst), Some(&best)) = (ranks.iter().min(), ranks.iter().max()) else { return };
    if worst == best {
        return;
    }
    let in_group = |top: bool| scores.iter().zip(&ranks).filter(move |(_, r)| (**r == best) == top).map(|(s, _)| *s);
    let spans = [true, false].map(|top| (in_group(top).min().unwrap_or(0), in_group(top).max().unwrap_or(0)));
    for (s, rank) in scores.iter_mut().zip(ranks) {
        *s = if rank == best {
            // The best node gets the most, the others as far below it as the strategy says.
            MAX_NODE_SCORE - squeeze(spans[0].1 - *s, spans[0], MAX_NODE_SCORE - BEST_FLOOR)
        } else {
            squeeze(*s - spans[1].0, spans[1], BEST_FLOOR - 1)
        };
    }
}

/// A distance `d` between scores spanning `(min, max)`, kept when they span at most `room`,
/// else scaled down to fit it.
fn squeeze(d: i64, (min, max): (i64, i64), room: i64) -> i64 {
    if max - min <= room { d } else { d * room / (max - min) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(count: u32) -> GpuRequest {
        GpuRequest { count, milli: GPU_MILLI, models: vec![] }
    }

    #[test]
    fn the_best_rank_comes_first_and_each_group_keeps_the_strategys_differences() {
        let mut raw = [pack(40, 52), pack(34, 100), pack(40, 50), pack(34, 60), pack(34, 0)];
        normalize(&req(4), &mut raw, |_| {});
        assert_eq!(raw, [100, 50, 98, 30, 0], "52 and 50 stay 2 apart; 0..100 squeezed into 0..50");
    }

    #[test]
    fn equal_ranks_leave_the_strategy_alone() {
        let mut raw = [pack(9, 37), pack(9, -5), pack(9, 100)];
        normalize(&req(4), &mut raw, |s| s.iter_mut().for_each(|x| *x += 1));
        assert_eq!(raw, [38, -4, 101], "the strategy's normalization sees its own raw scores");
        let mut unwired = [37, -500, 100];
        normalize(&req(4), &mut unwired, |_| {});
        assert_eq!(unwired, [37, -500, 100], "nodes without a wiring score as the strategy says");
    }

    #[test]
    fn a_node_without_a_wiring_promises_no_pair_and_breaks_no_island() {
        let (no_pair, whole_island) = (rank(0, 0), rank(FIT_LEVELS - 1, 0));
        let mut four = [pack(no_pair + 1, 0), 100];
        normalize(&req(4), &mut four, |_| {});
        assert_eq!(four, [MAX_NODE_SCORE, 0], "any wired pair beats the unknown");
        let mut one = [pack(whole_island - 1, 100), 0];
        normalize(&req(1), &mut one, |_| {});
        assert_eq!(one, [0, MAX_NODE_SCORE], "one GPU anywhere fits; breaking an island loses");
    }
}
