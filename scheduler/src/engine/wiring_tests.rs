//! GpuTopology's `bestWiredFirst` over a stream of pods on nodes of 8 GPUs in two 4-GPU NVLink
//! islands (device-plugin GPUs, wired by annotation): a 2- or 4-GPU pod gets GPUs inside one
//! island whenever some node has room for it there, under the default profile and under
//! `gpu.yaml`, where the strategies alone, blind to islands, split pods that had an island
//! free elsewhere, and break up more whole islands with small pods.

use std::collections::VecDeque;
use std::sync::Arc;

use tessera_plugins::gpu_wiring::GpuWiring;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GPU_MILLI, Gpu, GpuRequest, Node, Pod, PodKey};
use tessera_plugins::registry::Registry;
use tessera_plugins::resources::ResourceVec;

use super::*;

const NODES: usize = 16;
const GPUS: usize = 8;
/// Each island's GPUs, as a bit set.
const ISLANDS: [u64; 2] = [0x0F, 0xF0];

/// 96-core nodes (CPU never decides) with 8 H100s in NVLink islands 0–3 and 4–7.
fn islands_nodes() -> Vec<Node> {
    let wiring = Arc::new(GpuWiring::from_islands(&[0, 0, 0, 0, 1, 1, 1, 1]));
    (0..NODES)
        .map(|i| {
            let mut node = super::test_support::gpu_node(&format!("n{i}"), "r0", GPUS);
            node.allocatable = ResourceVec::cpu_mem(96_000, 768 << 30);
            for (g, gpu) in node.gpus.iter_mut().enumerate() {
                *gpu = Gpu { wiring: Some(wiring.clone()), ..Gpu::new(Sym::new("H100"), wiring.islands()[g]) };
            }
            node
        })
        .collect()
}

/// What a stream of pods met, for the 2- and 4-GPU pods placed.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    /// Placed while some node had room for them inside one island.
    could_have_an_island: u32,
    /// Of those, the ones that got GPUs inside one island.
    got_an_island: u32,
    /// Placed while no node had room inside one island: split.
    found_none: u32,
    /// Pods of every size placed.
    placed: u32,
}

impl Tally {
    /// Counts a `k`-GPU pod placed on `gpus`, when `room` was free inside one island somewhere.
    fn count(&mut self, k: i64, gpus: u64, room: bool) {
        self.placed += 1;
        if k != 2 && k != 4 {
            return;
        }
        if room {
            self.could_have_an_island += 1;
            self.got_an_island += u32::from(ISLANDS.iter().any(|isl| gpus & !isl == 0));
        } else {
            self.found_none += 1;
        }
    }
}

/// The GPUs in use on each node, and the pods holding them, oldest first.
struct Cluster {
    names: Vec<Sym>,
    used: Vec<u64>,
    running: VecDeque<(PodKey, usize, u64)>,
}

impl Cluster {
    /// Removes the oldest pods while more than 90% of the GPUs are in use.
    fn depart(&mut self, e: &mut Engine, now: f64) {
        while self.used.iter().map(|u| u.count_ones() as usize).sum::<usize>() * 10 > self.used.len() * GPUS * 9 {
            let Some((key, node, gpus)) = self.running.pop_front() else { break };
            assert!(e.delete_pod(&key, now), "{key:?} was running");
            self.used[node] &= !gpus;
        }
    }

    /// Whether some node has `k` GPUs free inside one island.
    fn room_in_an_island(&self, k: i64) -> bool {
        self.used.iter().any(|u| ISLANDS.iter().any(|isl| i64::from((isl & !u).count_ones()) >= k))
    }

    fn bind(&mut self, key: PodKey, node: Sym, gpus: u64) {
        let at = self.names.iter().position(|n| *n == node).unwrap();
        assert_eq!(self.used[at] & gpus, 0, "{key:?} got GPUs in use");
        self.used[at] |= gpus;
        self.running.push_back((key, at, gpus));
    }
}

/// Pods asking 1, 2, 4 or 8 whole GPUs (weights 45/25/20/10), one at a time; the oldest running
/// pods leave while more than 90% of the GPUs are in use.
fn stream(config: &str, seed: u64, pods: usize) -> Tally {
    let config = crate::config::parse_config("test", config, &Registry::builtin()).unwrap();
    let scheduler = Sym::new(&config.profiles[0].scheduler_name);
    let mut e = Engine::new(config.profiles, EngineOptions { workers: 1, seed: 5, ..EngineOptions::default() });
    let nodes = islands_nodes();
    for n in &nodes {
        e.upsert_node(n.clone(), 0.0);
    }
    let names = nodes.iter().map(|n| n.name).collect();
    let mut cluster = Cluster { names, used: vec![0; nodes.len()], running: VecDeque::new() };
    let mut rng = rng::Rng::new(seed);
    let mut tally = Tally::default();
    for i in 0..pods {
        let now = i as f64;
        cluster.depart(&mut e, now);
        let k = i64::from(super::test_support::stream_gpu_count(&mut rng));
        let room = cluster.room_in_an_island(k);
        let mut pod = Pod::new("ml", &format!("p{i}"), ResourceVec::cpu_mem(4000 * k, (16 << 30) * k));
        pod.scheduler_name = scheduler;
        pod.gpu = Some(GpuRequest { count: k as u32, milli: GPU_MILLI, models: vec![] });
        let key = pod.key();
        e.add_pod(Arc::new(pod), now).unwrap();
        let placed = e.schedule_pending(now).into_iter().find_map(|o| match o {
            Outcome::Bound { node, gpus, .. } => Some((node, gpus)),
            _ => None,
        });
        match placed {
            Some((node, gpus)) => {
                tally.count(k, gpus, room);
                cluster.bind(key, node, gpus);
            }
            None => _ = e.delete_pod(&key, now),
        }
    }
    tally
}

/// `config` with GpuTopology's `bestWiredFirst` turned off.
fn blind(config: &str) -> String {
    let args = "- name: GpuTopology\n        args:\n";
    assert!(config.contains(args), "the profile configures GpuTopology");
    config.replacen(args, &format!("{args}          bestWiredFirst: false\n"), 1)
}

/// The default profile, with GpuTopology's args written out so that [`blind`] can turn them.
const DEFAULT: &str = "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
  - schedulerName: default-scheduler
    pluginConfig:
      - name: GpuTopology
        args:
          scoringStrategy: MostAllocated
";
const GPU_YAML: &str = include_str!("../../../manifests/config/gpu.yaml");

#[test]
fn multi_gpu_pods_get_one_island_whenever_some_node_has_room_in_one() {
    let (mut wired_split, mut blind_split) = (0, 0);
    for (name, config) in [("default", DEFAULT), ("gpu.yaml", GPU_YAML)] {
        for seed in 1..=10 {
            let wired = stream(config, seed, 1500);
            let blind = stream(&blind(config), seed, 1500);
            eprintln!("{name}, seed {seed}: best wired first {wired:?}, blind {blind:?}");
            assert_eq!(wired.got_an_island, wired.could_have_an_island, "{name}, seed {seed}: {wired:?}");
            assert!(blind.got_an_island < blind.could_have_an_island, "{name}, seed {seed}: {blind:?}");
            wired_split += wired.found_none;
            blind_split += blind.found_none;
        }
    }
    // Small pods keep whole islands whole, so fewer later pods find none.
    assert!(wired_split < blind_split, "split for lack of an island: {wired_split} against {blind_split}");
}
