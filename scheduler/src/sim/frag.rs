//! Cluster GPU fragmentation for the reports, by the FGD paper's measure. The measure itself
//! (typical pods, per-node fragmentation) is [`tessera_plugins::gpu_frag`], the one
//! implementation GpuTopology's FGD strategy schedules by; this module sums it over a cluster.

use tessera_plugins::model::GPU_MILLI;
use tessera_plugins::nodeinfo::NodeInfo;

pub use tessera_plugins::gpu_frag::{TypicalPod, TypicalSet, node_fragmentation, typical_pods};

/// Cluster fragmentation: (fragmented % of all GPUs, fragmented % of idle GPUs).
pub fn cluster_fragmentation<'a>(nodes: impl Iterator<Item = &'a NodeInfo>, typical: &[TypicalPod]) -> (f64, f64) {
    let typical = TypicalSet::new(typical.to_vec());
    let (mut frag, mut idle, mut gpus) = (0.0, 0.0, 0usize);
    for n in nodes {
        let (f, i) = node_fragmentation(n, &typical);
        frag += f;
        idle += i;
        gpus += n.node.gpus.len();
    }
    let amount = if gpus == 0 { 0.0 } else { 100.0 * frag / (gpus as f64 * f64::from(GPU_MILLI)) };
    let ratio = if idle == 0.0 { 0.0 } else { 100.0 * frag / idle };
    (amount, ratio)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use tessera_plugins::gpu_frag::PodShape;
    use tessera_plugins::intern::Sym;
    use tessera_plugins::labels::LabelSet;
    use tessera_plugins::model::{Gpu, GpuRequest, Node, Pod};
    use tessera_plugins::resources::ResourceVec;

    #[test]
    fn cluster_fragmentation_sums_nodes_in_percent() {
        let node = Node {
            name: Sym::new("n"),
            labels: LabelSet::default(),
            taints: vec![],
            unschedulable: false,
            allocatable: ResourceVec::cpu_mem(8000, 1 << 40),
            allowed_pods: 110,
            images: vec![],
            gpus: (0..2).map(|_| Gpu::new(Sym::new("T4"), 0)).collect(),
            devices: Default::default(),
        };
        let mut n = NodeInfo::new(0, Arc::new(node));
        let mut p = Pod::new("default", "x", ResourceVec::cpu_mem(1000, 0));
        p.gpu = Some(GpuRequest { count: 1, milli: 700, models: vec![] });
        n.add_pod(Arc::new(p));
        let half = vec![TypicalPod { shape: PodShape::new(1000, 1, 500, vec![]), count: 1, weight: 1.0 }];
        // 300 of 2000 milli-GPU fragmented; 300 of 1300 idle.
        let (amount, ratio) = cluster_fragmentation([&n].into_iter(), &half);
        assert!((amount - 15.0).abs() < 1e-9 && (ratio - 300.0 / 13.0).abs() < 1e-9);
    }
}
