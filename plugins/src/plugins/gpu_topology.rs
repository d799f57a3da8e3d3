//! GpuTopology: places pods on individual GPUs — whole GPUs kept inside one NVLink island,
//! shared GPUs (a share of one GPU, as in Alibaba's GPU-sharing clusters) packed best-fit —
//! and scores nodes so that GPUs fill up instead of fragmenting.
//!
//! Filter asks the node's [`NodeInfo::choose_gpus`] whether the request fits on its devices
//! (count, share and model). Score prefers the node whose GPUs end up fullest, counting only
//! GPUs the pod may use: packing leaves whole GPUs and whole nodes free for the multi-GPU
//! jobs that need them. Pods without GPUs skip both.

use std::sync::Arc;

use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PreFilterPlugin, PreScorePlugin, ScorePlugin,
};
use crate::model::{GPU_MILLI, Pod};
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "GpuTopology";
/// Reason when the node has no GPU of an acceptable model.
pub const ERR_REASON_MODEL: &str = "node(s) didn't have the requested GPU model";
/// Reason when the node's GPUs are too busy.
pub const ERR_REASON_INSUFFICIENT: &str = "Insufficient GPU";

/// See the module docs.
#[derive(Debug, Default)]
pub struct GpuTopology;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(GpuTopology))
}

impl Plugin for GpuTopology {
    fn name(&self) -> &'static str {
        NAME
    }
    /// Reads only the node and the pod's signature fields.
    fn node_local(&self) -> bool {
        true
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for GpuTopology {
    fn pre_filter(&self, _: &mut CycleState, pod: &Pod, _: &Snapshot) -> Result<Option<Vec<NodeId>>, Status> {
        match pod.gpu {
            Some(_) => Ok(None),
            None => Err(Status::skip()),
        }
    }
}

impl FilterPlugin for GpuTopology {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(req) = &pod.gpu else { return Status::success() };
        if node.choose_gpus(req).is_some() {
            return Status::success();
        }
        let capable = node.node.gpus.iter().filter(|g| req.accepts(g.model)).count();
        if capable < req.count as usize {
            Status::unresolvable(ERR_REASON_MODEL)
        } else {
            Status::unschedulable(ERR_REASON_INSUFFICIENT)
        }
    }
}

impl PreScorePlugin for GpuTopology {
    fn pre_score(&self, _: &mut CycleState, pod: &Pod, _: &Snapshot, _: &[&NodeInfo]) -> Status {
        if pod.gpu.is_some() { Status::success() } else { Status::skip() }
    }
}

impl ScorePlugin for GpuTopology {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        let Some(req) = &pod.gpu else { return 0 };
        let usable = node.node.gpus.iter().enumerate().filter(|(_, g)| req.accepts(g.model)).map(|(i, _)| i);
        let (mut used, mut total) = (0u64, 0u64);
        for i in usable {
            used += u64::from(node.gpu_used[i]);
            total += u64::from(GPU_MILLI);
        }
        if total == 0 {
            return 0;
        }
        let after = (used + req.total_milli()).min(total);
        (after * MAX_NODE_SCORE as u64 / total) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Sym;
    use crate::model::{Gpu, GpuRequest};
    use crate::plugins::testing::*;

    fn gpu_node(name: &str, n: usize, model: &str) -> crate::model::Node {
        let mut node = node(name, 64_000, 256 * GI);
        node.gpus = (0..n).map(|_| Gpu { model: Sym::new(model), island: 0 }).collect();
        node
    }

    fn gpu_pod(name: &str, count: u32, milli: u32, models: &[&str]) -> Pod {
        let mut p = pod(name, 1000, GI);
        p.gpu = Some(GpuRequest { count, milli, models: models.iter().map(|m| Sym::new(m)).collect() });
        p
    }

    #[test]
    fn filter_checks_devices_and_models() {
        let s = CycleState::new();
        let busy = node_info(0, gpu_node("a", 2, "T4"), vec![gpu_pod("x", 2, 1000, &[])]);
        assert_eq!(
            GpuTopology.filter(&s, &gpu_pod("p", 1, 500, &[]), &busy),
            Status::unschedulable(ERR_REASON_INSUFFICIENT)
        );
        let free = node_info(1, gpu_node("b", 2, "T4"), vec![]);
        assert!(GpuTopology.filter(&s, &gpu_pod("p", 2, 1000, &["T4"]), &free).is_success());
        assert_eq!(
            GpuTopology.filter(&s, &gpu_pod("p", 1, 1000, &["A100"]), &free),
            Status::unresolvable(ERR_REASON_MODEL)
        );
        assert!(GpuTopology.filter(&s, &pod("cpu", 1, 1), &free).is_success());
    }

    #[test]
    fn score_prefers_the_node_that_ends_fuller() {
        let s = CycleState::new();
        let half = node_info(0, gpu_node("a", 2, "T4"), vec![gpu_pod("x", 1, 1000, &[])]);
        let empty = node_info(1, gpu_node("b", 2, "T4"), vec![]);
        let p = gpu_pod("p", 1, 500, &[]);
        assert_eq!(GpuTopology.score(&s, &p, &half), 75);
        assert_eq!(GpuTopology.score(&s, &p, &empty), 25);
    }
}
