//! DynamicResources' Score: where the pod's claims would be allocated best.
//!
//! Each node is scored on the allocation Reserve would make there ([`Preference::Wiring`]):
//! - first, as upstream (KEP-4816), how many `firstAvailable` sub-requests it passes over:
//!   a node that grants each request its first choice beats one that grants a fallback;
//! - then, on a node whose drivers publish how devices are wired ([`crate::dra::wiring`]), how
//!   well the devices taken are wired together (their *fit*: a 4-GPU claim inside one free
//!   NVLink clique beats one split across two), and how much wiring they break among the
//!   devices left free (their *damage*: one GPU taken from a half-used clique beats one taken
//!   from a whole free clique, which stays whole for the next 4-GPU pod).
//!
//! Pairs weigh as the wiring ranks them: NVLink 4, one PCIe root 2, one NUMA node 1. A node
//! whose wiring is unknown promises no pair (fit 0 for two devices or more) and breaks none.
//! NormalizeScore spreads the raw scores over 0–100 between the pod's worst and best node,
//! as upstream's prioritized-list scoring does, so that any difference counts fully against
//! the other plugins' scores.
//!
//! [`Preference::Wiring`]: crate::dra::allocator::Preference::Wiring

use crate::dra::allocator::Allocated;
use crate::dra::inventory::DeviceSet;
use crate::dra::wiring::DeviceWiring;
use crate::framework::MAX_NODE_SCORE;
use crate::gpu_wiring::BEST_PAIR_WEIGHT;

/// Sub-requests passed over beyond this many, over all the pod's claims, score alike (the API
/// allows 8 per request); it keeps raw scores within the reuse cache's 16 signed bits.
const MAX_PASSED: u32 = 32;
/// Raw points per sub-request not passed over: more than any wiring difference, so the
/// pod's stated preference comes first.
const PRIORITY_STEP: i64 = 1000;
/// Raw points for the devices taken being as well wired as pairs can be.
const FIT_POINTS: i64 = 500;
/// Raw points for breaking no wired pair among the free devices.
const KEEP_POINTS: i64 = 100;

/// The raw score of an allocation on a node whose devices in use (before it) are `used`.
/// Fits 16 signed bits, so the engine reuses it across pods of one template.
pub(super) fn raw(allocated: &Allocated, wiring: Option<&DeviceWiring>, used: &DeviceSet) -> i64 {
    let kept = MAX_PASSED - allocated.passed_over.min(MAX_PASSED);
    i64::from(kept) * PRIORITY_STEP + wiring_points(wiring, used, &allocated.taken)
}

/// Fit and keep points (see the module docs) of taking `taken` beside `used`.
fn wiring_points(wiring: Option<&DeviceWiring>, used: &DeviceSet, taken: &DeviceSet) -> i64 {
    let k = i64::try_from(taken.len()).unwrap_or(i64::MAX);
    let pairs = k.saturating_mul(k - 1) / 2;
    let Some(w) = wiring else {
        return KEEP_POINTS + if pairs == 0 { FIT_POINTS } else { 0 };
    };
    let taken = w.mask(taken.iter());
    let free = w.all() & !w.mask(used.iter());
    let fit = if pairs == 0 { FIT_POINTS } else { FIT_POINTS * weight(w, taken) / (BEST_PAIR_WEIGHT * pairs) };
    let whole = weight(w, w.all());
    let damage = weight(w, free) - weight(w, free & !taken);
    let keep = if whole == 0 { KEEP_POINTS } else { KEEP_POINTS - KEEP_POINTS * damage / whole };
    fit + keep
}

/// The pairs of the wired devices in `mask`, weighed (see the module docs).
fn weight(w: &DeviceWiring, mask: u64) -> i64 {
    w.graph.pair_counts(mask).weight()
}

/// Spreads `scores` over `0..=MAX_NODE_SCORE` from the lowest to the highest; all equal, all
/// the most.
pub(super) fn normalize(scores: &mut [i64]) {
    let (Some(&lo), Some(&hi)) = (scores.iter().min(), scores.iter().max()) else { return };
    for s in scores.iter_mut() {
        *s = if hi == lo { MAX_NODE_SCORE } else { (*s - lo) * MAX_NODE_SCORE / (hi - lo) };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::gpu_wiring::GpuWiring;

    /// 8 GPUs: NVLink cliques 0–3 and 4–7, PCIe roots {2i, 2i+1}, NUMA nodes 0–3 and 4–7.
    fn two_cliques() -> DeviceWiring {
        let links: Vec<Vec<u8>> = (0..8).map(|i| (0..8).map(|j| u8::from(i / 4 == j / 4)).collect()).collect();
        let pcie: Vec<Option<u16>> = (0..8).map(|i| Some(i / 2)).collect();
        let numa: Vec<Option<u16>> = (0..8).map(|i| Some(i / 4)).collect();
        DeviceWiring { graph: Arc::new(GpuWiring::new(&links, &pcie, &numa)), devices: (0..8).collect() }
    }

    fn set(indices: &[usize]) -> DeviceSet {
        let mut s = DeviceSet::new();
        s.extend(indices.iter().copied());
        s
    }

    fn points(wiring: Option<&DeviceWiring>, used: &[usize], taken: &[usize]) -> i64 {
        wiring_points(wiring, &set(used), &set(taken))
    }

    #[test]
    fn four_gpus_inside_one_clique_outscore_four_split_across_two() {
        let w = two_cliques();
        let whole = points(Some(&w), &[0], &[4, 5, 6, 7]);
        let split = points(Some(&w), &[0, 4], &[1, 2, 3, 5]);
        assert!(whole > split, "whole clique {whole}, split {split}");
        // 6 NVLink pairs, 2 PCIe pairs, 6 NUMA pairs of 6 perfect ones: 34/42 of the fit.
        assert_eq!(whole - (KEEP_POINTS - KEEP_POINTS * 34 / 68), FIT_POINTS * 34 / 42);
    }

    #[test]
    fn one_gpu_goes_where_it_breaks_the_least_wiring() {
        let w = two_cliques();
        let lone = points(Some(&w), &[4, 5, 6], &[7]);
        let half_used = points(Some(&w), &[4, 5], &[7]);
        let empty = points(Some(&w), &[], &[7]);
        assert!(lone > half_used && half_used > empty, "lone {lone}, half-used {half_used}, empty {empty}");
        assert_eq!(lone, FIT_POINTS + KEEP_POINTS, "the last free GPU of a clique breaks nothing");
    }

    #[test]
    fn an_unwired_node_promises_no_pair_and_breaks_none() {
        assert_eq!(points(None, &[], &[3]), FIT_POINTS + KEEP_POINTS);
        assert_eq!(points(None, &[], &[0, 1]), KEEP_POINTS);
        let w = two_cliques();
        assert!(points(Some(&w), &[], &[0, 1]) > points(None, &[], &[0, 1]), "a wired pair beats an unknown one");
    }

    #[test]
    fn a_first_choice_outscores_any_wiring() {
        let w = two_cliques();
        let alloc = |taken: &[usize], passed_over| Allocated { claims: Vec::new(), taken: set(taken), passed_over };
        let first_choice_split = raw(&alloc(&[1, 2, 3, 5], 0), Some(&w), &set(&[0, 4]));
        let fallback_whole = raw(&alloc(&[4, 5, 6, 7], 1), Some(&w), &set(&[0]));
        assert!(first_choice_split > fallback_whole);
        let best = raw(&alloc(&[7], 0), None, &DeviceSet::new());
        assert!(first_choice_split <= best && best <= i64::from(i16::MAX), "fits the reuse cache's 16 bits");
    }

    #[test]
    fn normalize_spreads_the_pods_nodes_from_worst_to_best() {
        let mut scores = [60_100, 60_600, 60_350];
        normalize(&mut scores);
        assert_eq!(scores, [0, 100, 50]);
        let mut equal = [7, 7];
        normalize(&mut equal);
        assert_eq!(equal, [100, 100]);
    }
}
