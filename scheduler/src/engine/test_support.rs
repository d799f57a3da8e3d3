//! Builders the engine's tests share: GPU nodes in racks, GPU pods.

use std::sync::Arc;

use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{Gpu, GpuRequest, Node, Pod};
use tessera_plugins::resources::ResourceVec;

/// The rack label the tests use.
pub const RACK: &str = "topology.kubernetes.io/rack";

/// A 64-core node with `gpus` A100s, labelled with its hostname and `rack`.
pub fn gpu_node(name: &str, rack: &str, gpus: usize) -> Node {
    Node {
        name: Sym::new(name),
        labels: LabelSet::from_pairs([("kubernetes.io/hostname", name), (RACK, rack)]),
        taints: vec![],
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(64_000, 512 << 30),
        allowed_pods: 110,
        images: vec![],
        gpus: (0..gpus).map(|_| Gpu::new(Sym::new("A100"), 0)).collect(),
        devices: Default::default(),
    }
}

/// A pod in namespace `ml` asking 1 CPU and `gpus` whole GPUs (none when 0).
pub fn gpu_pod(name: &str, gpus: u32) -> Pod {
    let mut p = Pod::new("ml", name, ResourceVec::cpu_mem(1000, 1 << 30));
    p.scheduler_name = Sym::new("default-scheduler");
    p.gpu = (gpus > 0).then(|| GpuRequest { count: gpus, milli: 1000, models: vec![] });
    p
}

/// [`gpu_pod`], shared.
pub fn shared_gpu_pod(name: &str, gpus: u32) -> Arc<Pod> {
    Arc::new(gpu_pod(name, gpus))
}

/// A GPU count for a stream of training pods: 1, 2, 4 or 8 GPUs, weighted 45/25/20/10.
pub fn stream_gpu_count(rng: &mut super::rng::Rng) -> u32 {
    match rng.below(100) {
        0..45 => 1,
        45..70 => 2,
        70..90 => 4,
        _ => 8,
    }
}
