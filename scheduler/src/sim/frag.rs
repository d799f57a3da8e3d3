//! GPU fragmentation as the FGD paper measures it (`NodeGpuShareFragAmount`).
//!
//! The workload's *typical pods* are its distinct (cpu, GPU count, GPU share, GPU models)
//! shapes, most frequent first, until they cover 95% of pods, with frequencies renormalised.
//! For each node and typical pod p: if p cannot run there (too little CPU, too few GPUs of its
//! model with room, or p needs no GPU at all), every idle milli-GPU on the node is a fragment;
//! if p fits, only the idle milli on GPUs with less free than p's share is. A node's
//! fragmentation is the frequency-weighted sum over typical pods; the cluster's is the sum
//! over nodes.

use std::collections::HashMap;

use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GPU_MILLI, Pod};
use tessera_plugins::nodeinfo::NodeInfo;
use tessera_plugins::resources::ResourceId;

/// Share of pods the typical shapes must cover (FGD's `podPopularityThreshold`).
pub const POPULARITY_THRESHOLD: f64 = 0.95;

/// A typical pod shape and its renormalised frequency.
#[derive(Clone, Debug, PartialEq)]
pub struct TypicalPod {
    /// Millicores.
    pub cpu: i64,
    /// GPUs (0 for CPU-only pods).
    pub gpus: u32,
    /// Milli-GPU of each GPU.
    pub milli: u32,
    /// Acceptable models; empty = any.
    pub models: Vec<Sym>,
    /// Frequency, summing to 1 over the typical pods.
    pub weight: f64,
}

/// The typical pods of `pods`.
pub fn typical_pods<'a>(pods: impl Iterator<Item = &'a Pod>) -> Vec<TypicalPod> {
    let mut counts: HashMap<(i64, u32, u32, Vec<String>), usize> = HashMap::new();
    let mut total = 0usize;
    for p in pods {
        let (gpus, milli, models) = p.gpu.as_ref().map_or((0, 0, Vec::new()), |g| {
            let mut m: Vec<String> = g.models.iter().map(|s| s.as_str().to_string()).collect();
            m.sort();
            (g.count, g.milli, m)
        });
        *counts.entry((p.requests.get(ResourceId::CPU), gpus, milli, models)).or_insert(0) += 1;
        total += 1;
    }
    // Most frequent first; ties in a fixed order so the result never depends on hashing.
    let mut shapes: Vec<_> = counts.into_iter().collect();
    shapes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut chosen = Vec::new();
    let mut covered = 0usize;
    for (shape, n) in shapes {
        if total == 0 || covered as f64 / total as f64 >= POPULARITY_THRESHOLD {
            break;
        }
        covered += n;
        chosen.push((shape, n));
    }
    chosen
        .into_iter()
        .map(|((cpu, gpus, milli, models), n)| TypicalPod {
            cpu,
            gpus,
            milli,
            models: models.iter().map(|m| Sym::new(m)).collect(),
            weight: n as f64 / covered.max(1) as f64,
        })
        .collect()
}

/// Fragmented and idle milli-GPU of one node.
pub fn node_fragmentation(node: &NodeInfo, typical: &[TypicalPod]) -> (f64, f64) {
    let idle: u32 = (0..node.node.gpus.len()).map(|i| node.gpu_free(i)).sum();
    if idle == 0 {
        return (0.0, 0.0);
    }
    let free_cpu = node.free().get(ResourceId::CPU);
    let mut frag = 0.0;
    for p in typical {
        frag += p.weight * f64::from(fragment_for(node, p, free_cpu, idle));
    }
    (frag, f64::from(idle))
}

/// Idle milli-GPU on `node` that typical pod `p` cannot use.
fn fragment_for(node: &NodeInfo, p: &TypicalPod, free_cpu: i64, idle: u32) -> u32 {
    if p.gpus == 0 || p.cpu > free_cpu {
        return idle;
    }
    let accepts = |i: usize| p.models.is_empty() || p.models.contains(&node.node.gpus[i].model);
    let usable = (0..node.node.gpus.len()).filter(|&i| accepts(i) && node.gpu_free(i) >= p.milli).count();
    if usable < p.gpus as usize {
        return idle;
    }
    (0..node.node.gpus.len()).map(|i| node.gpu_free(i)).filter(|&f| f < p.milli).sum()
}

/// Cluster fragmentation: (fragmented % of all GPUs, fragmented % of idle GPUs).
pub fn cluster_fragmentation<'a>(nodes: impl Iterator<Item = &'a NodeInfo>, typical: &[TypicalPod]) -> (f64, f64) {
    let (mut frag, mut idle, mut gpus) = (0.0, 0.0, 0usize);
    for n in nodes {
        let (f, i) = node_fragmentation(n, typical);
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
    use tessera_plugins::labels::LabelSet;
    use tessera_plugins::model::{Gpu, GpuRequest, Node};
    use tessera_plugins::resources::ResourceVec;

    fn gpu_pod(name: &str, cpu: i64, count: u32, milli: u32) -> Pod {
        let mut p = Pod::new("default", name, ResourceVec::cpu_mem(cpu, 0));
        if count > 0 {
            p.gpu = Some(GpuRequest { count, milli, models: vec![] });
        }
        p
    }

    fn node(gpus: usize, cpu: i64) -> NodeInfo {
        let n = Node {
            name: Sym::new("n"),
            labels: LabelSet::default(),
            taints: vec![],
            unschedulable: false,
            allocatable: ResourceVec::cpu_mem(cpu, 1 << 40),
            allowed_pods: 110,
            images: vec![],
            gpus: (0..gpus).map(|_| Gpu { model: Sym::new("T4"), island: 0 }).collect(),
        };
        NodeInfo::new(0, Arc::new(n))
    }

    #[test]
    fn typical_pods_cover_95_percent_most_frequent_first() {
        let mut pods: Vec<Pod> = (0..90).map(|i| gpu_pod(&format!("a{i}"), 1000, 1, 500)).collect();
        pods.extend((0..6).map(|i| gpu_pod(&format!("b{i}"), 2000, 0, 0)));
        pods.extend((0..4).map(|i| gpu_pod(&format!("c{i}"), 4000, 8, 1000)));
        let t = typical_pods(pods.iter());
        assert_eq!(t.len(), 2, "90% then 96%: the rarest shape is left out");
        assert_eq!((t[0].gpus, t[0].milli), (1, 500));
        assert!((t[0].weight - 90.0 / 96.0).abs() < 1e-9);
    }

    #[test]
    fn fragments_follow_the_fgd_definition() {
        let half = vec![TypicalPod { cpu: 1000, gpus: 1, milli: 500, models: vec![], weight: 1.0 }];
        let mut n = node(2, 8000);
        n.add_pod(Arc::new(gpu_pod("x", 1000, 1, 700)));
        // GPU0 has 300 free (< 500): fragment; GPU1 has 1000 free: usable.
        assert_eq!(node_fragmentation(&n, &half), (300.0, 1300.0));
        let whole = vec![TypicalPod { cpu: 1000, gpus: 2, milli: 1000, models: vec![], weight: 1.0 }];
        assert_eq!(node_fragmentation(&n, &whole), (1300.0, 1300.0), "cannot fit: all idle is fragment");
        let cpu_only = vec![TypicalPod { cpu: 1000, gpus: 0, milli: 0, models: vec![], weight: 1.0 }];
        assert_eq!(node_fragmentation(&n, &cpu_only).0, 1300.0);
        let starved = vec![TypicalPod { cpu: 9000, gpus: 1, milli: 100, models: vec![], weight: 1.0 }];
        assert_eq!(node_fragmentation(&n, &starved).0, 1300.0, "no CPU left for it");
        let (amount, ratio) = cluster_fragmentation([&n].into_iter(), &half);
        assert!((amount - 15.0).abs() < 1e-9 && (ratio - 300.0 / 13.0).abs() < 1e-9);
    }
}
