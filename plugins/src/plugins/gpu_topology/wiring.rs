//! Best wired first: a pod asking several whole GPUs goes to a node where its GPUs would be
//! wired as well as anywhere, before the strategy weighs fragmentation or packing.
//!
//! The strategies see GPUs as interchangeable: FGD gladly puts a 4-GPU pod on the node whose
//! last four free GPUs sit in two NVLink islands, since that empties the node, while another
//! node has a whole island free. So for a pod asking k ≥ 2 whole GPUs, Score also weighs the
//! GPUs the pod would get on each node ([`NodeInfo::choose_gpus`]): their *fit*, the pairs
//! among them weighed NVLink 4, one PCIe root 2, one NUMA node 1 ([`PairCounts::weight`]),
//! against every pair having all three, as DynamicResources weighs DRA devices. A node without
//! a wiring promises no pair. NormalizeScore then ranks the nodes of the best fit above all
//! others (51–100 against 0–50), each group in the strategy's order. Where every node offers the
//! same fit (a cluster without wiring, such as the openb traces) the strategy's scores are left
//! as they are.
//!
//! The raw score carries both numbers, `fit × 256 + strategy score + 128` (the strategy's
//! score clamped to −128..=127), so it stays within the reuse cache's 16 signed bits.
//!
//! [`PairCounts::weight`]: crate::gpu_wiring::PairCounts::weight

use crate::framework::MAX_NODE_SCORE;
use crate::gpu_wiring::BEST_PAIR_WEIGHT;
use crate::model::{GPU_MILLI, GpuRequest, Pod};
use crate::nodeinfo::NodeInfo;

/// A fit of GPUs wired as well as pairs can be.
const BEST_FIT: i64 = 100;
/// Raw points per point of fit: more than any strategy score spans.
const FIT_STEP: i64 = 256;
/// Added to the strategy's score so that a negative one still encodes below [`FIT_STEP`].
const OFFSET: i64 = 128;
/// The lowest normalized score of a node of the best fit.
const BEST_FLOOR: i64 = 51;

/// The request the gate weighs: several whole GPUs, for `pod`'s scores to carry a fit.
pub(super) fn gated(pod: &Pod) -> Option<&GpuRequest> {
    pod.gpu.as_ref().filter(|r| r.count >= 2 && r.milli >= GPU_MILLI)
}

/// The raw score of a node whose GPUs for `req` fit as [`fit`] says, scored `strategy`.
pub(super) fn encode(req: &GpuRequest, node: &NodeInfo, strategy: i64) -> i64 {
    pack(fit(req, node), strategy)
}

/// The raw score of a fit and a strategy score (see the module docs).
fn pack(fit: i64, strategy: i64) -> i64 {
    fit * FIT_STEP + strategy.clamp(-OFFSET, FIT_STEP - OFFSET - 1) + OFFSET
}

/// How well the GPUs `node` would give `req` are wired together, 0..=[`BEST_FIT`].
fn fit(req: &GpuRequest, node: &NodeInfo) -> i64 {
    let (Some(wiring), Some(gpus)) = (node.wiring(), node.choose_gpus(req)) else { return 0 };
    let k = i64::from(gpus.count_ones());
    let pairs = k * (k - 1) / 2;
    if pairs == 0 {
        return BEST_FIT;
    }
    BEST_FIT * wiring.pair_counts(gpus).weight() / (BEST_PAIR_WEIGHT * pairs)
}

/// Turns raw scores ([`encode`]) into final ones: the strategy's own normalization
/// (`strategy`) on its part, then the nodes of the best fit above the others when fits differ.
pub(super) fn normalize(scores: &mut [i64], strategy: impl FnOnce(&mut [i64])) {
    let fits: Vec<i64> = scores.iter().map(|r| r.div_euclid(FIT_STEP)).collect();
    for r in scores.iter_mut() {
        *r = r.rem_euclid(FIT_STEP) - OFFSET;
    }
    strategy(scores);
    let (Some(&worst), Some(&best)) = (fits.iter().min(), fits.iter().max()) else { return };
    if worst == best {
        return;
    }
    for (s, fit) in scores.iter_mut().zip(fits) {
        let s0 = (*s).clamp(0, MAX_NODE_SCORE);
        *s = match fit == best {
            true => BEST_FLOOR + s0 * (MAX_NODE_SCORE - BEST_FLOOR) / MAX_NODE_SCORE,
            false => s0 * (BEST_FLOOR - 1) / MAX_NODE_SCORE,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_fit_ranks_first_and_each_group_keeps_the_strategys_order() {
        let mut raw = [pack(80, 100), pack(34, 100), pack(80, 0), pack(34, 60)];
        normalize(&mut raw, |_| {});
        assert_eq!(raw, [100, 50, BEST_FLOOR, 30]);
    }

    #[test]
    fn equal_fits_leave_the_strategy_alone() {
        let mut raw = [pack(0, 37), pack(0, -5), pack(0, 100)];
        normalize(&mut raw, |s| s.iter_mut().for_each(|x| *x += 1));
        assert_eq!(raw, [38, -4, 101], "the strategy's normalization sees its own raw scores");
    }

    #[test]
    fn raw_scores_fit_the_reuse_caches_16_bits() {
        assert!(pack(BEST_FIT, 10_000) <= i64::from(i16::MAX));
        assert!(pack(0, -10_000) >= 0);
    }
}
