//! Typical pods arranged for evaluating fragmentation many times over.

use super::TypicalPod;

/// The typical pods of a workload, as [`super::GpuLayout::fragmentation`] reads them: the
/// pods that need GPUs, by GPU share largest first, and the total count. Pods without GPUs are
/// only counted: every idle GPU is a fragment for them, whatever the node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypicalSet {
    /// Typical pods needing GPUs, by share largest first; equal shares in the order given.
    gpu: Vec<TypicalPod>,
    /// All typical pods, in the order given.
    all: Vec<TypicalPod>,
    /// Sum of every typical pod's count.
    total: u64,
    /// The distinct CPU requests of `gpu`, ascending: free CPU matters to fragmentation only
    /// through which of these it covers.
    cpu_steps: Vec<i64>,
}

impl TypicalSet {
    /// The set of `pods` (for instance [`super::ShapeHistogram::typical`]).
    pub fn new(pods: Vec<TypicalPod>) -> TypicalSet {
        let total = pods.iter().map(|p| p.count).fold(0u64, u64::saturating_add);
        let mut gpu: Vec<TypicalPod> = pods.iter().filter(|p| p.shape.gpus > 0).cloned().collect();
        // Stable, so that the sweep's order, and every sum, is reproducible.
        gpu.sort_by_key(|p| std::cmp::Reverse(p.shape.milli));
        let mut cpu_steps: Vec<i64> = gpu.iter().map(|p| p.shape.cpu).collect();
        cpu_steps.sort_unstable();
        cpu_steps.dedup();
        TypicalSet { gpu, all: pods, total, cpu_steps }
    }

    /// How many of the typical GPU pods' distinct CPU requests `cpu` covers: two amounts of
    /// free CPU in the same class leave every node state exactly as fragmented.
    pub fn cpu_class(&self, cpu: i64) -> usize {
        self.cpu_steps.partition_point(|&c| c <= cpu)
    }

    /// Every typical pod, in the order given.
    pub fn pods(&self) -> &[TypicalPod] {
        &self.all
    }

    /// The typical pods that need GPUs, by share largest first.
    pub fn gpu_pods(&self) -> &[TypicalPod] {
        &self.gpu
    }

    /// Sum of the typical pods' counts: the denominator of every frequency.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether there are no typical pods.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// A fragmentation amount as [`super::GpuLayout::fragmentation`] returns it (scaled by
    /// [`TypicalSet::total`]) in milli-GPU.
    pub fn milli(&self, scaled: u128) -> f64 {
        if self.total == 0 { 0.0 } else { scaled as f64 / self.total as f64 }
    }
}
