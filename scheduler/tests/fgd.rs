//! GpuTopology's FGD strategy through the engine: on a small synthetic GPU-sharing cluster it
//! leaves no more GPU unallocated than the default (spreading) profile, runs are reproducible,
//! the GPUs FGD picks are the ones the binder commits, and a placement naming GPUs taken in the
//! meantime is rejected.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tessera_plugins::framework::Profile;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{Gpu, GpuRequest, Node, Pod};
use tessera_plugins::nodeinfo::DeviceChoice;
use tessera_plugins::registry::Registry;
use tessera_plugins::resources::ResourceVec;
use tessera_scheduler::config::{default_config, parse_config};
use tessera_scheduler::engine::algorithm::Placement;
use tessera_scheduler::engine::binder::{Binder, Verdict};
use tessera_scheduler::engine::queue::Unit;
use tessera_scheduler::engine::state::ClusterState;
use tessera_scheduler::engine::worker::Proposal;
use tessera_scheduler::engine::{Engine, EngineOptions, Outcome};
use tessera_scheduler::sim::input::{SimInput, SimPod};
use tessera_scheduler::sim::{NamedConfig, Progress, fill};

const FGD_YAML: &str = include_str!("../../manifests/config/fgd.yaml");

fn node(name: &str, gpus: usize, cores: i64) -> Node {
    Node {
        name: Sym::new(name),
        labels: LabelSet::from_pairs([("kubernetes.io/hostname", name)]),
        taints: vec![],
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(cores * 1000, 1 << 40),
        allowed_pods: 110,
        images: vec![],
        gpus: (0..gpus).map(|_| Gpu::new(Sym::new("G2"), 0)).collect(),
        devices: Default::default(),
    }
}

fn pod(name: &str, scheduler: &str, cpu: i64, count: u32, milli: u32) -> Pod {
    let mut p = Pod::new("default", name, ResourceVec::cpu_mem(cpu, 1 << 30));
    p.scheduler_name = Sym::new(scheduler);
    if count > 0 {
        p.gpu = Some(GpuRequest { count, milli, models: vec![] });
    }
    p
}

/// 32 eight-GPU nodes and 32 two-GPU nodes; a workload in the openb trace's mould, drawn
/// with fixed weights from a fixed sequence: shares of a GPU are a third of the pods, whole
/// GPUs half, CPU-only pods an eighth, and a few 4- and 8-GPU jobs.
fn cluster_and_workload() -> SimInput {
    let mut nodes: Vec<Node> = (0..32).map(|i| node(&format!("big-{i:02}"), 8, 96)).collect();
    nodes.extend((0..32).map(|i| node(&format!("small-{i:02}"), 2, 104)));
    // (cpu, GPUs, share, weight)
    let shapes: [(i64, u32, u32, u64); 10] = [
        (3152, 1, 810, 12),
        (11908, 1, 470, 9),
        (4000, 1, 320, 6),
        (11908, 1, 650, 5),
        (11300, 1, 1000, 22),
        (12000, 1, 1000, 15),
        (18708, 1, 1000, 10),
        (12500, 0, 0, 12),
        (32000, 4, 1000, 1),
        (88000, 8, 1000, 1),
    ];
    let total: u64 = shapes.iter().map(|s| s.3).sum();
    let mut x = 7u64;
    let pods = (0..400)
        .map(|i| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut r = (x >> 33) % total;
            let mut k = 0;
            while r >= shapes[k].3 {
                r -= shapes[k].3;
                k += 1;
            }
            let (cpu, count, milli, _) = shapes[k];
            SimPod {
                pod: Arc::new(pod(&format!("p{i:03}"), "tessera", cpu, count, milli)),
                arrival: 0.0,
                duration: None,
                gates_removed_after: None,
            }
        })
        .collect();
    SimInput { nodes, pods, ..SimInput::default() }
}

/// Unallocated GPU (%) when the arrived demand reaches the cluster's capacity, for `seed`.
fn unallocated(input: &SimInput, profiles: &[Profile], seed: u64) -> f64 {
    let config = NamedConfig::new("test", profiles.to_vec());
    let r = fill::fill(input, &config, seed, 1.3, 1, &Progress::new(false, ""));
    100.0 - r.fill.unwrap().curve()[&100]
}

fn profiles(yaml: Option<&str>) -> Vec<Profile> {
    let registry = Registry::builtin();
    let mut p = match yaml {
        Some(y) => parse_config("test.yaml", y, &registry).unwrap().profiles,
        None => default_config(&registry).unwrap().profiles,
    };
    // The workload's pods name `tessera`; the default profile is `default-scheduler`.
    p[0].scheduler_name = "tessera".into();
    p
}

#[test]
fn fgd_leaves_no_more_gpu_unallocated_than_the_default_profile() {
    let input = cluster_and_workload();
    let (fgd, default) = (profiles(Some(FGD_YAML)), profiles(None));
    let seeds = 1..=4u64;
    let mean = |p: &[Profile]| seeds.clone().map(|s| unallocated(&input, p, s)).sum::<f64>() / 4.0;
    let (f, d) = (mean(&fgd), mean(&default));
    assert!(f <= d, "FGD leaves {f:.2}% unallocated, the default profile {d:.2}%");
    assert_eq!(unallocated(&input, &fgd, 7), unallocated(&input, &fgd, 7), "a seed replays exactly");
}

/// The GPUs pods `a` (400 milli) then `b` (200 milli) hold on one two-GPU node under `profiles`.
fn gpus_of_a_then_b(profiles: Vec<Profile>) -> (u64, u64) {
    let mut e = Engine::new(profiles, EngineOptions::default());
    e.upsert_node(node("n", 2, 8), 0.0);
    for (name, milli) in [("a", 400), ("b", 200)] {
        e.add_pod(Arc::new(pod(name, "tessera", 1000, 1, milli)), 0.0).unwrap();
        let placed = e.schedule_pending(0.0);
        assert!(matches!(placed.as_slice(), [Outcome::Bound { .. }]), "{placed:?}");
    }
    let info = e.state().snapshot().node(0).unwrap();
    let at = |name: &str| info.pod_gpus[info.pods.iter().position(|p| p.name.as_ref() == name).unwrap()];
    (at("a"), at("b"))
}

#[test]
fn the_binder_commits_the_gpus_fgd_chose() {
    // The workload is known to be half-GPU pods only. After `a`, GPU0 has 600 free: `b` there
    // would leave 400, which no half-GPU pod can use, so FGD puts `b` on GPU1. Best fit (the
    // default GPU choice) fills GPU0.
    let yaml = FGD_YAML.replace(
        "scoringStrategy: FGD",
        "scoringStrategy: FGD\n          learn: false\n          typicalPods: [{cpu: 1, gpuCount: 1, gpuMilli: 500, count: 1}]",
    );
    assert_eq!(gpus_of_a_then_b(profiles(Some(&yaml))), (0b01, 0b10));
    assert_eq!(gpus_of_a_then_b(profiles(None)), (0b01, 0b01));
}

#[test]
fn the_binder_rejects_named_gpus_taken_meanwhile() {
    let mut state = ClusterState::new();
    let id = state.upsert_node(node("n", 2, 8));
    let seen = state.snapshot().node(id).unwrap().generation;
    // After the worker looked, another placement took 800 of GPU1.
    state.place_with(Arc::new(pod("other", "tessera", 1000, 1, 800)), id, &DeviceChoice::gpus(0b10)).unwrap();
    let q = Arc::new(pod("q", "tessera", 1000, 1, 500));
    let profile = profiles(Some(FGD_YAML)).remove(0);
    let proposal = |gpus| Proposal {
        worker: 0,
        seq: 1,
        unit: Unit::single(q.clone(), 0, 0.0, 1),
        placements: vec![Placement { node: id, seen_generation: seen, devices: DeviceChoice::gpus(gpus) }],
        snapshot_generation: 0,
    };
    let mut binder = Binder::new();
    let verdict = binder.commit(&mut state, &profile, &proposal(0b10));
    assert!(matches!(&verdict, Verdict::Rejected { reason, .. } if reason.contains("no longer free")), "{verdict:?}");
    assert_eq!(binder.commit(&mut state, &profile, &proposal(0b01)), Verdict::Accepted);
    assert_eq!(state.snapshot().node(id).unwrap().gpu_used, vec![500, 800], "exactly the GPUs named");
}
