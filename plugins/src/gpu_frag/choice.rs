//! FGD on one node: the GPUs that make the node's fragmentation grow least, and by how much.
//!
//! For a pod on one GPU (a shared GPU, or one whole GPU) every GPU with room is tried, as the
//! paper's `calculateGpuShareFragExtendScore` does. For several GPUs, GPUs are taken one at a
//! time, each the one that adds least fragmentation given those already taken (greedy: the
//! exact minimum over all subsets is exponential). Whole GPUs of a single model are all alike
//! to fragmentation — each goes from fully free to fully used — so they are taken as
//! [`NodeInfo::choose_gpus`] takes them, keeping an NVLink island together. GPUs alike to
//! fragmentation (same model, same free share) are tried once; equal increases (exactly
//! equal: fragmentation is computed in integers) go to the fuller GPU, then the lower index,
//! as best fit would.

use super::{GpuLayout, MAX_GPUS, TypicalSet, free_milli};
use crate::model::{GPU_MILLI, Gpu, GpuRequest, Pod};
use crate::nodeinfo::NodeInfo;
use crate::resources::ResourceId;

/// Where FGD puts a pod on one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FgdChoice {
    /// The GPUs the pod gets, as a bit set of device indices (0 for a pod without GPUs).
    pub gpus: u64,
    /// How much the node's fragmentation grows, in milli-GPU (negative when it shrinks).
    pub increase: f64,
}

/// FGD's placement of `pod` on `node` under `typical`, or `None` when the pod's GPUs do not
/// fit there. Deterministic: the same node and typical pods give the same choice.
pub fn fgd_choice(node: &NodeInfo, pod: &Pod, typical: &TypicalSet) -> Option<FgdChoice> {
    evaluate(node, pod, typical, true)
}

/// The fragmentation increase of [`fgd_choice`] alone, cheaper: whole GPUs of one model are
/// alike to fragmentation, so which of them the pod would get is not worked out.
pub fn fgd_increase(node: &NodeInfo, pod: &Pod, typical: &TypicalSet) -> Option<f64> {
    evaluate(node, pod, typical, false).map(|c| c.increase)
}

/// [`fgd_choice`]; with `exact_gpus` false, the GPU set may be any one alike to fragmentation.
fn evaluate(node: &NodeInfo, pod: &Pod, typical: &TypicalSet, exact_gpus: bool) -> Option<FgdChoice> {
    let mut buf = [0u32; MAX_GPUS];
    let n = free_milli(node, &mut buf).len();
    let free = &mut buf[..n];
    let layout = GpuLayout::of(&node.node.gpus[..n]);
    let cpu = node.free().get(ResourceId::CPU);
    let before = layout.fragmentation(cpu, free, typical);
    let cpu_after = cpu.saturating_sub(pod.requests.get(ResourceId::CPU));
    let (mask, after) = match &pod.gpu {
        Some(req) if req.count > 0 => {
            let view = NodeView { node, layout, gpus: &node.node.gpus[..n], cpu: cpu_after, typical, exact_gpus };
            view.take(req, free)?
        }
        _ => (0, layout.fragmentation(cpu_after, free, typical)),
    };
    // Exact in integers, then scaled: equal increases stay exactly equal.
    let scaled = after as i128 - before as i128;
    let increase = if typical.total() == 0 { 0.0 } else { scaled as f64 / typical.total() as f64 };
    Some(FgdChoice { gpus: mask, increase })
}

/// What the choice on one node reads.
struct NodeView<'a> {
    node: &'a NodeInfo,
    layout: GpuLayout<'a>,
    gpus: &'a [Gpu],
    /// Free CPU once the pod is placed.
    cpu: i64,
    typical: &'a TypicalSet,
    /// Whether the GPU set returned must be the one the pod gets.
    exact_gpus: bool,
}

impl NodeView<'_> {
    /// Takes `req`'s GPUs out of `free`; returns them and the fragmentation after (scaled).
    fn take(&self, req: &GpuRequest, free: &mut [u32]) -> Option<(u64, u128)> {
        let candidates = (0..free.len())
            .filter(|&i| free[i] >= req.milli && req.accepts(self.gpus[i].model))
            .fold(0u64, |m, i| m | 1 << i);
        if candidates.count_ones() < req.count {
            return None;
        }
        let first = self.gpus[candidates.trailing_zeros() as usize].model;
        let one_model = bits(candidates).all(|i| self.gpus[i].model == first);
        if req.milli >= GPU_MILLI && one_model {
            let mask = if self.exact_gpus {
                self.node.choose_gpus(req)?
            } else {
                // Any `count` of the candidates leave the same free shares behind.
                bits(candidates).take(req.count as usize).fold(0u64, |m, i| m | 1 << i)
            };
            for (i, f) in free.iter_mut().enumerate() {
                if mask & (1 << i) != 0 {
                    *f = f.saturating_sub(req.milli);
                }
            }
            return Some((mask, self.layout.fragmentation(self.cpu, free, self.typical)));
        }
        let mut mask = 0u64;
        let mut after = 0u128;
        for _ in 0..req.count {
            let (i, frag) = self.best_gpu(req, free, mask, candidates)?;
            free[i] -= req.milli;
            mask |= 1 << i;
            after = frag;
        }
        Some((mask, after))
    }

    /// The GPU among `candidates` not in `taken` whose share adds least fragmentation, and the
    /// fragmentation with it taken.
    fn best_gpu(&self, req: &GpuRequest, free: &mut [u32], taken: u64, candidates: u64) -> Option<(usize, u128)> {
        let open = |free: &[u32], i: usize| taken & (1 << i) == 0 && free[i] >= req.milli;
        let mut best: Option<(u128, u32, usize)> = None;
        for i in bits(candidates) {
            if !open(free, i) {
                continue;
            }
            // A GPU alike to an earlier open one (same model, same free share) gives the same
            // fragmentation and loses the tie on index: skip it.
            let (model, share) = (self.gpus[i].model, free[i]);
            let earlier = candidates & ((1u64 << i) - 1);
            if bits(earlier).any(|j| open(free, j) && free[j] == share && self.gpus[j].model == model) {
                continue;
            }
            free[i] -= req.milli;
            let frag = self.layout.fragmentation(self.cpu, free, self.typical);
            free[i] += req.milli;
            let better = best.is_none_or(|b| (frag, share, i) < b);
            if better {
                best = Some((frag, share, i));
            }
        }
        best.map(|(frag, _, i)| (i, frag))
    }
}

/// The indices of the bits set in `mask`, lowest first.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let i = mask.trailing_zeros() as usize;
        mask &= mask.wrapping_sub(1);
        (i < MAX_GPUS).then_some(i)
    })
}
