//! Synthetic clusters and workloads for `tessera bench`, reproducible from a seed.
//!
//! Nodes come in three shapes (16, 32 and 64 cores), spread over three zones and racks of 16.
//! Pods come from deployments of 1–100 replicas whose sizes follow a long-tailed distribution
//! like a production cluster's (most pods small, a few big). Each mix adds its constraints on
//! top of the same pods so that mixes compare like with like.
//!
//! The gang mix is its own world: nodes of 8 GPUs (GPUs, not CPU, are what runs out) and
//! gangs of GPU pods, each gang a PodGroup whose `minCount` is its size.

use std::sync::Arc;

use tessera_plugins::intern::Sym;
use tessera_plugins::labels::{LabelSelector, LabelSet, Operator, Requirement};
use tessera_plugins::model::{
    AffinityTerm, GPU_MILLI, Gpu, GpuRequest, InclusionPolicy, NamespaceScope, Node, Pod, PodGroup, SpreadConstraint,
    Taint, TaintEffect, Toleration, TolerationOperator, WeightedAffinityTerm, WhenUnsatisfiable,
};
use tessera_plugins::resources::ResourceVec;

use crate::engine::rng::Rng;

/// A gibibyte.
pub const GI: i64 = 1 << 30;
const MI: i64 = 1 << 20;
/// The zone label.
pub const ZONE: &str = "topology.kubernetes.io/zone";
/// The hostname label.
pub const HOSTNAME: &str = "kubernetes.io/hostname";
/// The rack label.
pub const RACK: &str = "topology.kubernetes.io/rack";
/// Nodes per rack.
pub const RACK_NODES: usize = 16;
/// GPUs per node of the gang mix.
pub const GANG_NODE_GPUS: usize = 8;
/// The namespace of the gang mix's pods and PodGroups.
pub const GANG_NAMESPACE: &str = "bench";
/// The scheduler name every synthetic pod asks for (upstream's default profile).
pub(crate) const SCHEDULER: &str = "default-scheduler";

/// Which constraints the workload carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    /// CPU and memory requests only.
    Basic,
    /// Required anti-affinity against the own deployment per host, preferred affinity to a
    /// sibling deployment per zone.
    Affinity,
    /// Topology spread over zones (hard) and hosts (soft).
    Spread,
    /// A quarter each of basic, affinity, spread, and pods pinned by node selector and
    /// tolerating a dedicated taint.
    Mixed,
    /// Gangs of 1–64 pods wanting 1–8 whole GPUs each, on nodes of 8 GPUs; each gang is a
    /// PodGroup placed all or nothing.
    Gang,
    /// Pods claiming 1–8 GPU+RDMA NIC pairs through DRA, each pair under one PCIe root, on
    /// nodes publishing 8 of each.
    Dra,
    /// Nodes full of running pods of low priority, some protected by budgets, and pods of
    /// high priority that each must preempt; `--verify` also checks every victim and budget.
    Preemption,
}

/// A cluster of `n` nodes.
pub fn cluster(n: usize, mix: Mix, rng: &mut Rng) -> Vec<Node> {
    if mix == Mix::Gang {
        return (0..n).map(gpu_node).collect();
    }
    (0..n).map(|i| node(i, mix, rng)).collect()
}

/// The rack of node `i`: racks of [`RACK_NODES`] in node order.
fn rack_of(i: usize) -> String {
    format!("rack-{:04}", i / RACK_NODES)
}

/// A node of the gang mix: 8 A100s on one NVLink island, with CPU and memory to spare for
/// every pod its GPUs can take, so that GPUs alone decide what fits. All alike, so the mix
/// draws nothing for nodes.
fn gpu_node(i: usize) -> Node {
    let name = format!("node-{i:06}");
    let zone = format!("zone-{}", ["a", "b", "c"][i % 3]);
    let rack = rack_of(i);
    Node {
        name: Sym::new(&name),
        labels: LabelSet::from_pairs([(HOSTNAME, name.as_str()), (ZONE, zone.as_str()), (RACK, rack.as_str())]),
        taints: Vec::new(),
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(96_000, 768 * GI),
        allowed_pods: 110,
        images: Vec::new(),
        gpus: (0..GANG_NODE_GPUS).map(|_| Gpu::new(Sym::new("A100"), 0)).collect(),
        devices: Default::default(),
    }
}

fn node(i: usize, mix: Mix, rng: &mut Rng) -> Node {
    let name = format!("node-{i:06}");
    let cores = match rng.below(10) {
        0 => 16,
        1..=6 => 32,
        _ => 64,
    };
    let zone = format!("zone-{}", ["a", "b", "c"][i % 3]);
    let rack = rack_of(i);
    let mut labels = LabelSet::from_pairs([(HOSTNAME, name.as_str()), (ZONE, zone.as_str()), (RACK, rack.as_str())]);
    let mut taints = Vec::new();
    if mix == Mix::Mixed {
        if rng.below(10) < 3 {
            labels.insert(Sym::new("disktype"), Sym::new("ssd"));
        }
        if rng.below(10) == 0 {
            taints.push(Taint {
                key: Sym::new("dedicated"),
                value: Sym::new("batch"),
                effect: TaintEffect::NoSchedule,
            });
        }
    }
    Node {
        name: Sym::new(&name),
        labels,
        taints,
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(cores * 1000, cores * 4 * GI),
        allowed_pods: 110,
        images: Vec::new(),
        gpus: Vec::new(),
        devices: Default::default(),
    }
}

/// `m` pods in deployments, with the mix's constraints. For [`Mix::Gang`], the gang pods
/// without their PodGroups (use [`gang_workload`] to get those too).
pub fn workload(m: usize, mix: Mix, rng: &mut Rng) -> Vec<Arc<Pod>> {
    if mix == Mix::Gang {
        return gang_workload(m, rng).pods;
    }
    let mut pods = Vec::with_capacity(m);
    let mut dep = 0;
    while pods.len() < m {
        let replicas = (1 + rng.below(100) as usize).min(m - pods.len());
        let (cpu, mem) = size(rng);
        let kind = match mix {
            Mix::Mixed => [Mix::Basic, Mix::Affinity, Mix::Spread, Mix::Mixed][dep % 4],
            other => other,
        };
        for r in 0..replicas {
            pods.push(Arc::new(pod(dep, r, cpu, mem, kind)));
        }
        dep += 1;
    }
    pods
}

/// (millicores, bytes): most pods are small; a few are big.
fn size(rng: &mut Rng) -> (i64, i64) {
    let cpu = match rng.below(100) {
        0..=29 => 100,
        30..=54 => 250,
        55..=74 => 500,
        75..=89 => 1000,
        90..=96 => 2000,
        _ => 4000,
    };
    let mem_per_core = [1, 2, 4][rng.below(3) as usize] * GI;
    (cpu, (cpu * mem_per_core / 1000).max(128 * MI))
}

fn pod(dep: usize, replica: usize, cpu: i64, mem: i64, kind: Mix) -> Pod {
    let app = format!("dep-{dep:05}");
    let mut p = Pod::new("default", &format!("{app}-{replica}"), ResourceVec::cpu_mem(cpu, mem));
    p.scheduler_name = Sym::new(SCHEDULER);
    p.labels = LabelSet::from_pairs([("app", app.as_str())]);
    p.creation_s = dep as f64;
    let own = selector("app", &app);
    match kind {
        // Gang, DRA and preemption pods are built by their own modules; `workload` never asks
        // for them here.
        Mix::Basic | Mix::Gang | Mix::Dra | Mix::Preemption => {}
        Mix::Affinity => {
            p.pod_anti_affinity.required.push(term(own, HOSTNAME));
            let sibling = format!("dep-{:05}", dep ^ 1);
            p.pod_affinity
                .preferred
                .push(WeightedAffinityTerm { weight: 50, term: term(selector("app", &sibling), ZONE) });
        }
        Mix::Spread => {
            p.spread_constraints.push(spread(own.clone(), ZONE, 1, WhenUnsatisfiable::DoNotSchedule));
            p.spread_constraints.push(spread(own, HOSTNAME, 2, WhenUnsatisfiable::ScheduleAnyway));
        }
        Mix::Mixed => {
            p.node_selector = LabelSet::from_pairs([("disktype", "ssd")]);
            p.tolerations.push(Toleration {
                key: Some(Sym::new("dedicated")),
                operator: TolerationOperator::Equal,
                value: Sym::new("batch"),
                effect: Some(TaintEffect::NoSchedule),
            });
        }
    }
    p
}

/// The gang mix's pods and the PodGroups they belong to.
#[derive(Clone, Debug, Default)]
pub struct GangWorkload {
    /// Every pod, gang by gang, members in order.
    pub pods: Vec<Arc<Pod>>,
    /// One PodGroup per gang, in gang order; `min_count` is the gang's size.
    pub groups: Vec<PodGroup>,
}

/// Gang sizes and their weights (out of 100): mostly small jobs, a few of 32 and 64 pods, as
/// a training cluster's mix of single-node runs and large data-parallel jobs.
const GANG_SIZES: [(usize, u64); 7] = [(1, 30), (2, 25), (4, 18), (8, 12), (16, 8), (32, 5), (64, 2)];

/// GPUs per pod of a gang and their weights (out of 100).
const GANG_GPUS: [(u32, u64); 4] = [(1, 40), (2, 30), (4, 20), (8, 10)];

/// `m` pods in gangs of 1–64 (the last gang is cut to make exactly `m`), every pod of a gang
/// wanting the same 1–8 whole GPUs; pod `i` of gang `g` is `g-i` in namespace
/// [`GANG_NAMESPACE`], and each gang has a PodGroup of its name with `minCount` = its size.
pub fn gang_workload(m: usize, rng: &mut Rng) -> GangWorkload {
    let mut out = GangWorkload { pods: Vec::with_capacity(m), groups: Vec::new() };
    while out.pods.len() < m {
        let size = weighted(&GANG_SIZES, rng).min(m - out.pods.len());
        let gpus = weighted(&GANG_GPUS, rng);
        let gang = format!("gang-{:05}", out.groups.len());
        for i in 0..size {
            out.pods.push(Arc::new(gang_pod(&gang, i, gpus, out.groups.len())));
        }
        // `size` is at least 1 and at most 64, far below u32::MAX.
        out.groups.push(PodGroup::new(GANG_NAMESPACE, &gang, size as u32));
    }
    out
}

/// One draw from `table` of (value, weight) whose weights sum to 100.
pub(crate) fn weighted<T: Copy>(table: &[(T, u64)], rng: &mut Rng) -> T {
    let mut x = rng.below(100);
    for &(v, w) in table {
        if x < w {
            return v;
        }
        x -= w;
    }
    // Unreachable while the weights sum to 100; the last entry keeps it total.
    table[table.len() - 1].0
}

/// Member `i` of gang `gang` (the `index`-th gang): `gpus` whole GPUs and the CPU and memory
/// that go with them.
fn gang_pod(gang: &str, i: usize, gpus: u32, index: usize) -> Pod {
    let g = i64::from(gpus);
    let mut p = Pod::new(GANG_NAMESPACE, &format!("{gang}-{i}"), ResourceVec::cpu_mem(2000 * g, 16 * GI * g));
    p.scheduler_name = Sym::new(SCHEDULER);
    p.labels = LabelSet::from_pairs([("gang", gang)]);
    p.gpu = Some(GpuRequest { count: gpus, milli: GPU_MILLI, models: Vec::new() });
    p.pod_group = Some(Sym::new(gang));
    p.creation_s = index as f64;
    p
}

fn selector(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        requirements: vec![Requirement {
            key: Sym::new(key),
            op: Operator::In,
            values: vec![Sym::new(value)],
            bound: 0,
        }],
    }
}

fn term(selector: LabelSelector, key: &str) -> AffinityTerm {
    AffinityTerm {
        selector: Some(selector),
        namespaces: NamespaceScope { names: Vec::new(), selector: None },
        topology_key: Sym::new(key),
    }
}

fn spread(selector: LabelSelector, key: &str, max_skew: i32, when: WhenUnsatisfiable) -> SpreadConstraint {
    SpreadConstraint {
        max_skew,
        topology_key: Sym::new(key),
        when_unsatisfiable: when,
        selector: Some(selector),
        min_domains: None,
        node_affinity_policy: InclusionPolicy::Honor,
        node_taints_policy: InclusionPolicy::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use tessera_plugins::resources::ResourceId;

    #[test]
    fn the_gang_workload_has_exactly_the_pods_asked_for_each_in_a_group_of_its_size() {
        for m in [0, 1, 63, 64, 65, 600, 5000] {
            let w = gang_workload(m, &mut Rng::new(7));
            assert_eq!(w.pods.len(), m, "{m} pods");
            let mut members: HashMap<Sym, u32> = HashMap::new();
            for p in &w.pods {
                let group = p.pod_group.expect("every gang pod names its group");
                assert_eq!(p.namespace, Sym::new(GANG_NAMESPACE));
                assert!(p.name.starts_with(group.as_str()), "{} in {group}", p.name);
                let gpu = p.gpu.as_ref().expect("every gang pod wants GPUs");
                assert!([1, 2, 4, 8].contains(&gpu.count) && gpu.milli == GPU_MILLI, "{gpu:?}");
                *members.entry(group).or_insert(0) += 1;
            }
            assert_eq!(w.groups.len(), members.len(), "one group per gang, and no group without pods");
            for g in &w.groups {
                assert_eq!(g.key.namespace, Sym::new(GANG_NAMESPACE));
                assert_eq!(Some(&g.min_count), members.get(&g.key.name), "{}", g.key);
                assert!((1..=64).contains(&g.min_count));
                assert_eq!(g.topology_key, None);
            }
            let names: HashSet<String> = w.pods.iter().map(|p| p.key().to_string()).collect();
            assert_eq!(names.len(), m, "pod names are unique");
        }
    }

    #[test]
    fn a_gang_asks_the_same_gpus_of_every_member_and_sizes_lean_small() {
        let w = gang_workload(20_000, &mut Rng::new(1));
        let mut per_gang: HashMap<Sym, HashSet<u32>> = HashMap::new();
        for p in &w.pods {
            let (Some(g), Some(gpu)) = (p.pod_group, p.gpu.as_ref()) else { panic!("{} is no gang pod", p.name) };
            per_gang.entry(g).or_default().insert(gpu.count);
        }
        assert!(per_gang.values().all(|counts| counts.len() == 1));
        let small = w.groups.iter().filter(|g| g.min_count <= 4).count();
        assert!(small * 2 > w.groups.len(), "{small} of {} gangs have at most 4 pods", w.groups.len());
        assert!(w.groups.iter().any(|g| g.min_count == 64));
    }

    #[test]
    fn gang_nodes_have_eight_gpus_in_racks_of_sixteen_and_draw_nothing() {
        let mut rng = Rng::new(3);
        let nodes = cluster(40, Mix::Gang, &mut rng);
        assert_eq!(rng.below(1 << 40), Rng::new(3).below(1 << 40), "the gang cluster takes no draws");
        assert!(nodes.iter().all(|n| n.gpus.len() == GANG_NODE_GPUS));
        let rack = |i: usize| nodes[i].labels.get(Sym::new(RACK)).map(Sym::as_str);
        assert_eq!(
            (rack(0), rack(15), rack(16), rack(39)),
            (Some("rack-0000"), Some("rack-0000"), Some("rack-0001"), Some("rack-0002"))
        );
        // Eight pods of one GPU each leave CPU and memory to spare: GPUs are what runs out.
        let pod = gang_pod("g", 0, 8, 0);
        assert!(pod.requests.get(ResourceId::CPU) * 2 <= nodes[0].allocatable.get(ResourceId::CPU));
        assert!(pod.requests.get(ResourceId::MEMORY) * 2 <= nodes[0].allocatable.get(ResourceId::MEMORY));
    }
}
