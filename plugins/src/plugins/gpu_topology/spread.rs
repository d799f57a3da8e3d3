//! The Spread and DotProduct strategies: the opposite of packing, and the FGD paper's DotProd
//! baseline (Tetris's alignment heuristic), so that the paper's comparison runs from the repo.
//!
//! - Spread: the node whose usable GPUs stay emptiest once the pod is placed (kube-scheduler's
//!   LeastAllocated, on GPUs). It strands the most GPUs of all strategies on a full cluster and
//!   is there as a baseline, or for clusters that want load spread over GPUs (thermals, blast
//!   radius) more than they want room for large pods.
//! - DotProduct: `100 × (1 − ½·(cpuFree·cpuReq/128² cores + gpuFree·gpuReq/8² GPUs))`, the
//!   paper's `-dimext merge -norm max` setting: free CPU and the free milli-GPU of the GPUs the
//!   pod may use, each scaled by the largest node the paper considers, against the pod's
//!   request on the same scale. The node whose free resources align *least* with the request
//!   scores highest, which packs. Pods without GPUs are scored too, on CPU.

use crate::framework::MAX_NODE_SCORE;
use crate::model::{GPU_MILLI, Pod};
use crate::nodeinfo::NodeInfo;
use crate::resources::ResourceId;

/// The paper's CPU scale, millicores (`MaxSpecCpu`).
const MAX_SPEC_CPU: f64 = 128_000.0;
/// The paper's GPU scale, milli-GPU (`MaxSpecGpu`).
const MAX_SPEC_GPU: f64 = 8_000.0;

/// The Spread score: how empty the GPUs the pod may use stay once it is placed.
pub fn spread(pod: &Pod, node: &NodeInfo) -> i64 {
    let Some(req) = &pod.gpu else { return 0 };
    let (mut used, mut total) = (0u64, 0u64);
    for (i, g) in node.node.gpus.iter().enumerate() {
        if req.accepts(g.model) {
            used += u64::from(node.gpu_used[i]);
            total += u64::from(GPU_MILLI);
        }
    }
    if total == 0 {
        return 0;
    }
    let after = (used + req.total_milli()).min(total);
    ((total - after) * MAX_NODE_SCORE as u64 / total) as i64
}

/// The DotProduct score (see the module docs).
pub fn dot_product(pod: &Pod, node: &NodeInfo) -> i64 {
    let cpu_free = node.free().get(ResourceId::CPU).max(0) as f64 / MAX_SPEC_CPU;
    let cpu_req = pod.requests.get(ResourceId::CPU).max(0) as f64 / MAX_SPEC_CPU;
    let (gpu_free, gpu_req) = match &pod.gpu {
        Some(req) => {
            let usable = node.node.gpus.iter().enumerate().filter(|(_, g)| req.accepts(g.model));
            let free: u32 = usable.map(|(i, _)| node.gpu_free(i)).sum();
            (f64::from(free) / MAX_SPEC_GPU, req.total_milli() as f64 / MAX_SPEC_GPU)
        }
        None => (0.0, 0.0),
    };
    let dot = (cpu_free * cpu_req + gpu_free * gpu_req) / 2.0;
    ((1.0 - dot).clamp(0.0, 1.0) * MAX_NODE_SCORE as f64) as i64
}
