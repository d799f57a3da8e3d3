//! The Packing strategy: best fit, as the FGD paper's BestFit baseline (`BestFitScore`).
//!
//! A node scores higher the less CPU and GPU it has left once the pod is placed, the two
//! weighed equally after scaling by the largest node the paper considers (128 cores, 8 GPUs):
//! `100 × (1 − ½·cpuLeft/128 cores − ½·gpuLeft/8 GPUs)`, truncated, then rescaled so that the
//! best node of the cycle gets 100 and the worst 0. Pods without GPUs are scored too: they go
//! where the least GPU is idle, which keeps the CPU of GPU-rich nodes for GPU pods. A shared
//! GPU goes to the fullest GPU that fits ([`NodeInfo::choose_gpus`]), as the paper's `best` GPU
//! selection does.

use crate::framework::MAX_NODE_SCORE;
use crate::model::Pod;
use crate::nodeinfo::NodeInfo;
use crate::resources::ResourceId;

/// The paper's CPU scale, millicores (`MaxSpecCpu`).
const MAX_SPEC_CPU: f64 = 128_000.0;
/// The paper's GPU scale, milli-GPU (`MaxSpecGpu`).
const MAX_SPEC_GPU: f64 = 8_000.0;

/// The raw best-fit score of `pod` on `node`.
pub fn score(pod: &Pod, node: &NodeInfo) -> i64 {
    let cpu_left = node.free().get(ResourceId::CPU) - pod.requests.get(ResourceId::CPU);
    let idle: u32 = (0..node.node.gpus.len()).map(|i| node.gpu_free(i)).sum();
    let gpu_left = i64::from(idle) - pod.gpu.as_ref().map_or(0, |g| g.total_milli() as i64);
    let left = 0.5 * cpu_left as f64 / MAX_SPEC_CPU + 0.5 * gpu_left as f64 / MAX_SPEC_GPU;
    ((1.0 - left) * MAX_NODE_SCORE as f64) as i64
}

/// Rescales `scores` to `0..=MAX_NODE_SCORE`, lowest to highest (the paper's
/// `NormalizeScore`); all equal gives all 0.
pub fn normalize(scores: &mut [i64]) {
    let (Some(&lo), Some(&hi)) = (scores.iter().min(), scores.iter().max()) else { return };
    for s in scores.iter_mut() {
        *s = if hi == lo { 0 } else { (*s - lo) * MAX_NODE_SCORE / (hi - lo) };
    }
}
