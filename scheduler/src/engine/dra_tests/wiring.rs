//! DynamicResources' Score over a stream of pods on nodes whose GPUs publish NVLink cliques:
//! a 4-GPU pod gets a whole clique whenever some node has one free, where the other plugins
//! alone (the profile with DynamicResources' Score disabled) spread small pods over the
//! cliques and leave large pods none.

use std::collections::{BTreeMap, VecDeque};

use tessera_plugins::dra::inventory::NodeDevices;
use tessera_plugins::dra::model::{AttrValue, Device, ResourceSlice, SliceNodes};
use tessera_plugins::labels::LabelSet;

use super::*;
use crate::bench::dra::{GPU_DRIVER, PCIE_ROOT, class};

const NODES: usize = 16;
/// The default profile with DynamicResources' Score disabled.
const NO_DRA_SCORE: &str = include_str!("../../../../tests/fixtures/sim/no-dra-score.config.yaml");
const GPUS: usize = 8;

/// The basic mix's nodes, each with 8 GPUs in NVLink cliques 0–3 and 4–7, PCIe roots
/// {2i, 2i+1}, NUMA nodes 0–3 and 4–7.
fn wired_nodes() -> Vec<Node> {
    let nodes = crate::bench::synth::cluster(NODES, crate::bench::synth::Mix::Basic, &mut rng::Rng::new(3));
    nodes
        .into_iter()
        .map(|mut node| {
            node.allocatable = ResourceVec::cpu_mem(96_000, 768 << 30);
            node.devices = Arc::new(wired_gpus(node.name));
            node
        })
        .collect()
}

fn wired_gpus(pool: Sym) -> NodeDevices {
    let devices = (0..GPUS)
        .map(|i| {
            let attributes = [
                (Arc::from(PCIE_ROOT), AttrValue::String(Arc::from(format!("pci{}", i / 2)))),
                (Arc::from("resource.kubernetes.io/numaNode"), AttrValue::Int((i / 4) as i64)),
                (Arc::from("gpu.example.com/nvlinkClique"), AttrValue::Int((i / 4) as i64)),
            ];
            Arc::new(Device {
                uid: Device::next_uid(),
                name: Sym::new(&format!("gpu-{i}")),
                driver: Sym::new(GPU_DRIVER),
                pool,
                attributes: attributes.into_iter().collect(),
                capacity: BTreeMap::new(),
                taints: Vec::new(),
                allow_multiple_allocations: false,
                consumes_counters: Vec::new(),
            })
        })
        .collect();
    let slice = Arc::new(ResourceSlice {
        name: Arc::from(format!("{pool}-gpus")),
        driver: Sym::new(GPU_DRIVER),
        pool,
        generation: 1,
        slice_count: 1,
        nodes: SliceNodes::Node(pool),
        devices,
        shared_counters: Vec::new(),
    });
    NodeDevices::for_node(pool, &LabelSet::default(), &[slice])
}

/// What a stream of pods met.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    /// 4-GPU pods placed that arrived while some node had a whole clique free.
    could_have_a_clique: u32,
    /// Of those, the ones that got one.
    got_a_clique: u32,
    /// 4-GPU pods placed that arrived while no node had a whole clique free: split.
    found_none: u32,
    /// Pods placed.
    placed: u32,
}

/// Pods asking 1, 2, 4 or 8 GPUs (weights 45/25/20/10), arriving one at a time; the oldest
/// running pods leave while more than 80% of the GPUs are in use.
fn stream(profiles: Vec<tessera_plugins::framework::Profile>, seed: u64, pods: usize) -> Tally {
    let nodes = wired_nodes();
    let mut e = Engine::new(profiles, EngineOptions { workers: 1, seed: 5, ..EngineOptions::default() });
    for n in &nodes {
        e.upsert_node(n.clone(), 0.0);
    }
    let specs: BTreeMap<u32, Arc<ClaimSpec>> = [1, 2, 4, 8].into_iter().map(|k| (k, gpus(k))).collect();
    let mut used: BTreeMap<Sym, [bool; GPUS]> = nodes.iter().map(|n| (n.name, [false; GPUS])).collect();
    let mut running: VecDeque<(PodKey, Sym, Vec<usize>)> = VecDeque::new();
    let mut rng = rng::Rng::new(seed);
    let mut tally = Tally::default();
    for i in 0..pods {
        let now = i as f64;
        while used.values().flatten().filter(|u| **u).count() * 10 > nodes.len() * GPUS * 8 {
            let Some((key, node, gpus)) = running.pop_front() else { break };
            assert!(e.delete_pod(&key, now), "{key:?} was running");
            gpus.iter().for_each(|&g| used.entry(node).or_default()[g] = false);
        }
        let k = crate::engine::test_support::stream_gpu_count(&mut rng);
        let clique_free = used.values().any(|u| u[..4].iter().all(|x| !x) || u[4..].iter().all(|x| !x));
        let pod = gpu_pod(&format!("p{i}"), k, &specs[&k]);
        let key = pod.key();
        e.add_pod(pod, now).unwrap();
        let placed = e.schedule_pending(now).iter().find_map(Outcome::bound);
        let Some((_, node, claims)) = placed else {
            e.delete_pod(&key, now);
            continue;
        };
        let taken: Vec<usize> = claims
            .iter()
            .flat_map(|c| c.devices.iter())
            .map(|d| d.device.device.as_str().trim_start_matches("gpu-").parse().unwrap())
            .collect();
        taken.iter().for_each(|&g| used.entry(node).or_default()[g] = true);
        tally.placed += 1;
        if k == 4 {
            let one_clique = taken.iter().all(|g| g / 4 == taken[0] / 4);
            match clique_free {
                true => {
                    tally.could_have_a_clique += 1;
                    tally.got_a_clique += u32::from(one_clique);
                }
                false => tally.found_none += 1,
            }
        }
        running.push_back((key, node, taken));
    }
    tally
}

/// A claim for `k` GPUs.
fn gpus(k: u32) -> Arc<ClaimSpec> {
    let exact = ExactRequest {
        class: class(GPU_DRIVER).unwrap(),
        selectors: Vec::new(),
        mode: AllocationMode::ExactCount(k),
        admin_access: false,
        tolerations: Vec::new(),
        capacity: BTreeMap::new(),
    };
    let request = DeviceRequest { name: Arc::from("gpus"), kind: RequestKind::Exactly(exact) };
    Arc::new(ClaimSpec { requests: vec![request], constraints: Vec::new(), config: Vec::new() })
}

fn gpu_pod(name: &str, k: u32, spec: &Arc<ClaimSpec>) -> Arc<Pod> {
    pod_claiming(name, ResourceVec::cpu_mem(4000 * i64::from(k), (16 << 30) * i64::from(k)), spec)
}

fn profiles(dra_score: bool) -> Vec<tessera_plugins::framework::Profile> {
    let registry = Registry::builtin();
    let config = if dra_score {
        crate::config::default_config(&registry)
    } else {
        crate::config::parse_config("no-dra-score", NO_DRA_SCORE, &registry)
    };
    config.unwrap().profiles
}

#[test]
fn four_gpu_pods_get_a_whole_clique_whenever_a_node_has_one() {
    for seed in [1, 2, 3] {
        let scored = stream(profiles(true), seed, 1500);
        let blind = stream(profiles(false), seed, 1500);
        eprintln!("seed {seed}: scored {scored:?}, blind {blind:?}");
        assert_eq!(scored.got_a_clique, scored.could_have_a_clique, "seed {seed}: {scored:?}");
        assert!(blind.got_a_clique < blind.could_have_a_clique, "seed {seed}: {blind:?}");
        // Blind, small pods spread over the nodes and break the cliques the large ones need.
        assert!(scored.found_none < blind.found_none, "seed {seed}: {scored:?} against {blind:?}");
        assert!(scored.placed > blind.placed, "seed {seed}: {scored:?} against {blind:?}");
    }
}
