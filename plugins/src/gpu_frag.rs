//! GPU fragmentation as the FGD paper defines it (Weng et al., "Beware of Fragmentation:
//! Scheduling GPU-Sharing Workloads with Fragmentation Gradient Descent", USENIX ATC '23;
//! `NodeGpuShareFragAmount` in its simulator). One implementation, used both to *report*
//! fragmentation (the simulator) and to *schedule* by it (GpuTopology's FGD strategy).
//!
//! The workload is summarised by its *typical pods*: its distinct (CPU, GPU count, GPU share,
//! GPU models) shapes, most frequent first, until they cover 95% of pods, with frequencies
//! renormalised to sum to 1 ([`histogram`]). For a node and a typical pod p:
//! - p cannot run there (too little free CPU, too few GPUs of its model with room for its
//!   share), or p needs no GPU: *every* idle milli-GPU on the node is a fragment for p;
//! - p fits: only the idle milli on GPUs p cannot use (less free than p's share, or a model
//!   p does not accept) is.
//!
//! A node's fragmentation is the frequency-weighted sum over typical pods, in milli-GPU: the
//! idle GPU that a pod drawn from the workload would, on average, find unusable. FGD places
//! each pod where this grows least ([`choice`]).

pub mod choice;
pub mod histogram;
pub mod measure;
pub mod typical;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;

use crate::intern::Sym;
use crate::model::Pod;
use crate::nodeinfo::NodeInfo;
use crate::resources::ResourceId;

pub use choice::{FgdChoice, fgd_choice, fgd_increase};
pub use histogram::{DEFAULT_POPULARITY_THRESHOLD, ShapeHistogram, typical_pods};
pub use measure::GpuLayout;
pub use typical::TypicalSet;

/// The most GPUs of a node fragmentation looks at: GPU sets are 64-bit masks.
pub const MAX_GPUS: usize = 64;

/// A pod's resource shape as fragmentation sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodShape {
    /// Millicores requested.
    pub cpu: i64,
    /// GPUs requested (0 for a CPU-only pod).
    pub gpus: u32,
    /// Milli-GPU of each GPU (0 for a CPU-only pod).
    pub milli: u32,
    /// Acceptable GPU models, sorted by name; empty accepts any.
    pub models: Vec<Sym>,
}

impl PodShape {
    /// The shape of `pod`.
    pub fn of(pod: &Pod) -> PodShape {
        let cpu = pod.requests.get(ResourceId::CPU);
        match &pod.gpu {
            Some(g) if g.count > 0 => PodShape::new(cpu, g.count, g.milli, g.models.clone()),
            _ => PodShape::new(cpu, 0, 0, Vec::new()),
        }
    }

    /// A shape, with `models` put in canonical order (sorted by name, deduplicated) so that
    /// equal constraints make equal shapes.
    pub fn new(cpu: i64, gpus: u32, milli: u32, mut models: Vec<Sym>) -> PodShape {
        models.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        models.dedup();
        PodShape { cpu, gpus, milli, models }
    }

    /// Whether GPUs of `model` are acceptable.
    pub fn accepts(&self, model: Sym) -> bool {
        self.models.is_empty() || self.models.contains(&model)
    }
}

// By value, models compared by name: symbol numbers are arbitrary and must never order
// anything a user sees (here, which shapes are typical when counts tie).
impl Ord for PodShape {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.cpu, self.gpus, self.milli)
            .cmp(&(other.cpu, other.gpus, other.milli))
            .then_with(|| self.models.iter().map(|m| m.as_str()).cmp(other.models.iter().map(|m| m.as_str())))
    }
}

impl PartialOrd for PodShape {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A typical pod: a shape and how often it was seen.
#[derive(Clone, Debug, PartialEq)]
pub struct TypicalPod {
    /// The shape.
    pub shape: PodShape,
    /// Pods of this shape counted. Fragmentation is computed on counts, in integers, so that
    /// equal placements compare exactly equal.
    pub count: u64,
    /// Frequency among the typical pods (count over their total); they sum to 1.
    pub weight: f64,
}

/// Each GPU's free milli-GPU on `node`, into `out`; returns the filled prefix (at most
/// [`MAX_GPUS`] GPUs).
pub fn free_milli<'a>(node: &NodeInfo, out: &'a mut [u32; MAX_GPUS]) -> &'a [u32] {
    let n = node.node.gpus.len().min(MAX_GPUS);
    for (i, slot) in out.iter_mut().enumerate().take(n) {
        *slot = node.gpu_free(i);
    }
    &out[..n]
}

/// Fragmented and idle milli-GPU of `node` under `typical`.
pub fn node_fragmentation(node: &NodeInfo, typical: &TypicalSet) -> (f64, f64) {
    let mut buf = [0u32; MAX_GPUS];
    let free = free_milli(node, &mut buf);
    let idle: u32 = free.iter().sum();
    if idle == 0 {
        return (0.0, 0.0);
    }
    let layout = GpuLayout::of(&node.node.gpus[..free.len()]);
    let cpu = node.free().get(ResourceId::CPU);
    (typical.milli(layout.fragmentation(cpu, free, typical)), f64::from(idle))
}
