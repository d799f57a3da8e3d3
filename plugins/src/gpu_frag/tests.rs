use std::sync::Arc;

use super::*;
use crate::labels::LabelSet;
use crate::model::{Gpu, GpuRequest, Node};
use crate::resources::ResourceVec;

fn pod(name: &str, cpu: i64, count: u32, milli: u32) -> Pod {
    let mut p = Pod::new("default", name, ResourceVec::cpu_mem(cpu, 0));
    if count > 0 {
        p.gpu = Some(GpuRequest { count, milli, models: vec![] });
    }
    p
}

fn node_with(cpu: i64, gpus: Vec<Gpu>) -> NodeInfo {
    let n = Node {
        name: Sym::new("n"),
        labels: LabelSet::default(),
        taints: vec![],
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(cpu, 1 << 40),
        allowed_pods: 110,
        images: vec![],
        gpus,
        devices: Default::default(),
    };
    NodeInfo::new(0, Arc::new(n))
}

fn node(gpus: usize, cpu: i64) -> NodeInfo {
    node_with(cpu, (0..gpus).map(|_| Gpu::new(Sym::new("T4"), 0)).collect())
}

/// A node whose GPUs have exactly `used` milli-GPU in use (one pod per GPU).
fn used(cpu: i64, used: &[u32]) -> NodeInfo {
    let mut n = node(used.len(), cpu);
    for (i, &u) in used.iter().enumerate() {
        if u > 0 {
            n.add_pod_with(Arc::new(pod(&format!("u{i}"), 0, 1, u)), &crate::nodeinfo::DeviceChoice::gpus(1 << i));
        }
    }
    n
}

/// Typical pods from (cpu, GPUs, share, count).
fn typical(shapes: &[(i64, u32, u32, u64)]) -> TypicalSet {
    let total: u64 = shapes.iter().map(|s| s.3).sum();
    let t = |&(cpu, gpus, milli, count): &(i64, u32, u32, u64)| TypicalPod {
        shape: PodShape::new(cpu, gpus, milli, vec![]),
        count,
        weight: count as f64 / total as f64,
    };
    TypicalSet::new(shapes.iter().map(t).collect())
}

#[test]
fn typical_pods_cover_95_percent_most_frequent_first() {
    let mut pods: Vec<Pod> = (0..90).map(|i| pod(&format!("a{i}"), 1000, 1, 500)).collect();
    pods.extend((0..6).map(|i| pod(&format!("b{i}"), 2000, 0, 0)));
    pods.extend((0..4).map(|i| pod(&format!("c{i}"), 4000, 8, 1000)));
    let t = typical_pods(pods.iter());
    assert_eq!(t.len(), 2, "90% then 96%: the rarest shape is left out");
    assert_eq!((t[0].shape.gpus, t[0].shape.milli), (1, 500));
    assert!((t[0].weight - 90.0 / 96.0).abs() < 1e-9);
    assert!((t.iter().map(|p| p.weight).sum::<f64>() - 1.0).abs() < 1e-9);
}

#[test]
fn fragments_follow_the_fgd_definition() {
    // GPU0 has 300 free (< 500): fragment; GPU1 has 1000 free: usable.
    let n = used(8000, &[700, 0]);
    assert_eq!(node_fragmentation(&n, &typical(&[(1000, 1, 500, 1)])), (300.0, 1300.0));
    assert_eq!(node_fragmentation(&n, &typical(&[(1000, 2, 1000, 1)])).0, 1300.0, "cannot fit: all idle");
    assert_eq!(node_fragmentation(&n, &typical(&[(1000, 0, 0, 1)])).0, 1300.0, "CPU-only: all idle");
    assert_eq!(node_fragmentation(&n, &typical(&[(9000, 1, 100, 1)])).0, 1300.0, "no CPU left for it");
    let mixed = typical(&[(1000, 1, 500, 1), (1000, 2, 1000, 3)]);
    assert_eq!(node_fragmentation(&n, &mixed).0, 0.25 * 300.0 + 0.75 * 1300.0);
    assert_eq!(node_fragmentation(&used(8000, &[1000, 1000]), &mixed), (0.0, 0.0), "no idle GPU");
}

#[test]
fn a_gpu_of_a_model_the_pod_refuses_is_a_fragment_for_it() {
    let gpus = vec![Gpu::new(Sym::new("T4"), 0), Gpu::new(Sym::new("A10"), 0)];
    let n = node_with(8000, gpus);
    let t4_only = TypicalSet::new(vec![TypicalPod {
        shape: PodShape::new(0, 1, 500, vec![Sym::new("T4")]),
        count: 1,
        weight: 1.0,
    }]);
    assert_eq!(node_fragmentation(&n, &t4_only).0, 1000.0, "the A10 is idle but unusable");
}

#[test]
fn fgd_delta_of_a_shared_pod_on_an_empty_node() {
    // Before: both shapes fit with nothing stranded. After 300 on GPU0: the 500 shape still
    // fits everywhere, the whole-GPU shape strands GPU0's 700.
    let t = typical(&[(1000, 1, 500, 1), (1000, 1, 1000, 1)]);
    let c = fgd_choice(&used(8000, &[0, 0]), &pod("q", 1000, 1, 300), &t);
    assert_eq!(c, Some(FgdChoice { gpus: 0b01, increase: 350.0 }));
}

#[test]
fn fgd_fills_the_partly_used_gpu_when_that_strands_nothing_new() {
    // GPU0 has 600 free, GPU1 1000. Before: 0.5 × 600 (GPU0 for the whole-GPU shape) = 300.
    // 300 on GPU0 → [300, 1000]: 150 + 150 = 300, no increase. On GPU1 → [600, 700]: the
    // whole-GPU shape no longer fits, all 1300 idle counts: 650, an increase of 350.
    let t = typical(&[(1000, 1, 500, 1), (1000, 1, 1000, 1)]);
    let c = fgd_choice(&used(8000, &[400, 0]), &pod("q", 1000, 1, 300), &t);
    assert_eq!(c, Some(FgdChoice { gpus: 0b01, increase: 0.0 }));
}

#[test]
fn fgd_avoids_the_best_fit_gpu_when_it_would_strand_a_share() {
    // Only 500-shares run here. Best fit puts 200 on GPU0 (600 → 400 < 500: 400 stranded);
    // GPU1 (1000 → 800) keeps both GPUs usable.
    let t = typical(&[(1000, 1, 500, 1)]);
    let n = used(8000, &[400, 0]);
    assert_eq!(n.choose_gpus(&GpuRequest { count: 1, milli: 200, models: vec![] }), Some(0b01));
    let c = fgd_choice(&n, &pod("q", 1000, 1, 200), &t);
    assert_eq!(c, Some(FgdChoice { gpus: 0b10, increase: 0.0 }));
}

#[test]
fn fgd_charges_cpu_that_leaves_idle_gpus_unreachable() {
    let t = typical(&[(4000, 1, 1000, 1)]);
    let cpu_pod = pod("c", 3000, 0, 0);
    let c = fgd_choice(&used(6000, &[0]), &cpu_pod, &t);
    assert_eq!(c, Some(FgdChoice { gpus: 0, increase: 1000.0 }), "3 of 6 cores left: the GPU pod no longer fits");
    let c = fgd_choice(&used(6000, &[1000]), &cpu_pod, &t);
    assert_eq!(c, Some(FgdChoice { gpus: 0, increase: 0.0 }), "no idle GPU to strand");
}

#[test]
fn fgd_keeps_whole_gpus_in_one_island_and_reports_misfits() {
    let gpus = [0, 0, 1, 1].iter().map(|&island| Gpu::new(Sym::new("T4"), island)).collect();
    let mut n = node_with(8000, gpus);
    n.add_pod_with(Arc::new(pod("x", 0, 1, 1000)), &crate::nodeinfo::DeviceChoice::gpus(0b0001));
    let t = typical(&[(1000, 1, 1000, 1)]);
    let c = fgd_choice(&n, &pod("q", 1000, 2, 1000), &t);
    assert_eq!(c.map(|c| c.gpus), Some(0b1100), "island 0 has one free GPU, island 1 two");
    assert_eq!(fgd_choice(&n, &pod("q", 1000, 4, 1000), &t), None);
}

#[test]
fn fgd_takes_several_shares_one_gpu_at_a_time() {
    // 2 × 500 on free [500, 1000, 1000, 700] under 500-shares: GPU0 and GPU1 both strand
    // nothing (GPU0 wins the tie as the fuller); then GPU1 (a second 1000 is alike, GPU3
    // would strand 200).
    let t = typical(&[(0, 1, 500, 1)]);
    let c = fgd_choice(&used(8000, &[500, 0, 0, 300]), &pod("q", 0, 2, 500), &t);
    assert_eq!(c, Some(FgdChoice { gpus: 0b0011, increase: 0.0 }));
}

#[test]
fn the_histogram_keeps_its_order_as_counts_change() {
    let shapes: Vec<PodShape> = (0..6).map(|i| PodShape::new(1000 * i, 1, 100, vec![])).collect();
    let mut h = ShapeHistogram::new();
    let mut counts = [0u64; 6];
    // A fixed, uneven sequence of additions: the kept order must match a full sort each time.
    for step in 0..200usize {
        let i = (step * 7 + step / 3) % 6;
        let n = 1 + (step % 4) as u64;
        h.add(shapes[i].clone(), n);
        counts[i] += n;
        let mut want: Vec<usize> = (0..6).filter(|&i| counts[i] > 0).collect();
        want.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(shapes[a].cmp(&shapes[b])));
        let got: Vec<i64> = h.typical(1.0).iter().map(|t| t.shape.cpu).collect();
        assert_eq!(got, want.iter().map(|&i| shapes[i].cpu).collect::<Vec<_>>(), "step {step}");
    }
    assert_eq!(h.total(), counts.iter().sum::<u64>());
    h.halve();
    assert_eq!(h.total(), counts.iter().map(|c| c / 2).sum::<u64>());
}

#[test]
fn shapes_ignore_model_order_and_order_models_by_name() {
    let (a, b) = (Sym::new("V100M16"), Sym::new("V100M32"));
    assert_eq!(PodShape::new(1, 1, 1000, vec![b, a]), PodShape::new(1, 1, 1000, vec![a, b, a]));
    assert!(PodShape::new(1, 1, 1000, vec![a]) < PodShape::new(1, 1, 1000, vec![b]));
    assert_eq!(PodShape::of(&pod("p", 500, 0, 0)), PodShape::new(500, 0, 0, vec![]));
}

/// The definition, spelled out (see the module docs): per typical pod, all idle GPU if it
/// cannot run, else the idle on GPUs it cannot use; weighted by frequency.
fn reference(cpu: i64, free: &[u32], gpus: &[Gpu], typical: &TypicalSet) -> f64 {
    let idle: u32 = free.iter().sum();
    let mut frag = 0.0;
    for p in typical.pods() {
        let s = &p.shape;
        let usable = |i: usize| free[i] >= s.milli && s.accepts(gpus[i].model);
        let fits = s.gpus > 0 && s.cpu <= cpu && (0..free.len()).filter(|&i| usable(i)).count() >= s.gpus as usize;
        let unusable: u32 = if fits { (0..free.len()).filter(|&i| !usable(i)).map(|i| free[i]).sum() } else { idle };
        frag += p.weight * f64::from(unusable);
    }
    frag
}

#[test]
fn the_fast_sweep_matches_the_definition() {
    let (t4, a10) = (Sym::new("T4"), Sym::new("A10"));
    let shape = |cpu, gpus, milli, models: Vec<Sym>, count| TypicalPod {
        shape: PodShape::new(cpu, gpus, milli, models),
        count,
        weight: 0.0,
    };
    let mut pods = vec![
        shape(4000, 1, 500, vec![], 7),
        shape(2000, 1, 1000, vec![], 5),
        shape(8000, 2, 1000, vec![], 2),
        shape(1000, 1, 250, vec![t4], 3),
        shape(3000, 1, 700, vec![a10], 2),
        shape(6000, 0, 0, vec![], 4),
        shape(500, 4, 300, vec![], 1),
    ];
    let total: u64 = pods.iter().map(|p| p.count).sum();
    for p in &mut pods {
        p.weight = p.count as f64 / total as f64;
    }
    let typical = TypicalSet::new(pods);
    // A fixed pseudo-random walk over node states, on one-model and mixed nodes.
    let mut x = 12345u64;
    let mut next = |m: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    for case in 0..2000 {
        let n = 1 + next(8) as usize;
        let mixed = case % 2 == 1;
        let gpus: Vec<Gpu> = (0..n).map(|i| Gpu::new(if mixed && i % 3 == 0 { a10 } else { t4 }, 0)).collect();
        let free: Vec<u32> = (0..n).map(|_| [0, 100, 250, 300, 500, 700, 1000][next(7) as usize]).collect();
        let cpu = next(10_000) as i64;
        let fast = typical.milli(GpuLayout::of(&gpus).fragmentation(cpu, &free, &typical));
        let want = reference(cpu, &free, &gpus, &typical);
        assert!((fast - want).abs() < 1e-6, "case {case}: {free:?} cpu {cpu} mixed {mixed}: {fast} != {want}");
    }
}
