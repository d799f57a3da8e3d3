//! The placement simulator at library level: small scenarios replayed on the engine, with
//! assertions on where and when each pod ran, and fill mode's inflation rule.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{GPU_MILLI, Gpu, GpuRequest, Node, Pod};
use tessera_plugins::registry::Registry;
use tessera_plugins::resources::ResourceVec;
use tessera_scheduler::config;
use tessera_scheduler::sim::input::{self, SimInput, SimPod};
use tessera_scheduler::sim::record::{PodRecord, RunResult};
use tessera_scheduler::sim::{NamedConfig, Progress, fill, replay};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sim").join(name)
}

fn load(files: &[&str]) -> SimInput {
    let paths: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
    input::load(&paths, input::OnInvalid::Stop).unwrap_or_else(|e| panic!("loading {files:?}: {e}"))
}

/// Replays `input` under upstream's default profile, seed 42, one thread.
fn replay_default(input: &SimInput) -> RunResult {
    let config = NamedConfig::from_config("default", config::default_config(&Registry::builtin()).unwrap());
    replay::replay(input, &config, 42, 1, &Progress::new(false, ""))
}

fn record<'a>(run: &'a RunResult, name: &str) -> &'a PodRecord {
    run.records.iter().find(|r| &*r.key.name == name).unwrap_or_else(|| panic!("no record for pod {name}"))
}

fn node_of(run: &RunResult, name: &str) -> Option<&'static str> {
    record(run, name).node.map(|n| n.as_str())
}

fn web_pods(run: &RunResult) -> Vec<&PodRecord> {
    let web: Vec<&PodRecord> = run.records.iter().filter(|r| r.key.name.starts_with("web-")).collect();
    assert_eq!(web.len(), 4, "the Deployment expands to 4 pods");
    web
}

#[test]
fn a_taint_keeps_pods_off_a_node() {
    let input = load(&["taint-cluster.yaml", "taint-workload.yaml"]);
    let run = replay_default(&input);

    for r in web_pods(&run) {
        assert_eq!(r.node.map(|n| n.as_str()), Some("cpu-0"), "{} ran on a tainted node", r.key.name);
        assert_eq!(r.start, Some(0.0));
    }
    // A pod that tolerates the taint may use the node.
    assert_eq!(node_of(&run, "train"), Some("gpu-0"));
    // A pod that fits only on the tainted node by size waits, with both reasons.
    let big = record(&run, "big");
    assert_eq!(big.node, None);
    assert_eq!(big.start, None);
    assert!(big.reason.starts_with("0/2 nodes are available: "), "{}", big.reason);
    assert!(big.reason.contains("1 Insufficient cpu"), "{}", big.reason);
    assert!(big.reason.contains("1 node(s) had untolerated taint"), "{}", big.reason);
    assert_eq!(big.reasons.len(), 2, "{:?}", big.reasons);

    // Control: without the taint the same workload spreads onto gpu-0, so it is the taint
    // (not scoring) that kept the web pods off it above.
    let mut untainted = input.clone();
    for n in &mut untainted.nodes {
        n.taints.clear();
    }
    let run = replay_default(&untainted);
    assert!(
        web_pods(&run).iter().any(|r| r.node.map(|n| n.as_str()) == Some("gpu-0")),
        "without the taint LeastAllocated should use the empty node: {:?}",
        run.records
    );
    assert!(record(&run, "big").node.is_some());
}

#[test]
fn a_departure_frees_room_at_the_right_virtual_time() {
    let input = load(&["departure.yaml"]);
    let by_name = |name: &str| input.pods.iter().find(|p| &*p.pod.name == name).unwrap();
    assert_eq!((by_name("second").arrival, by_name("second").duration), (10.0, Some(60.0)));
    assert_eq!(
        (by_name("batch-1").arrival, by_name("batch-1").duration),
        (120.0, Some(30.0)),
        "inherited from the Job"
    );

    let run = replay_default(&input);
    let span = |name: &str| {
        let r = record(&run, name);
        assert_eq!(r.node.map(|n| n.as_str()), Some("n1"), "{name}: {}", r.reason);
        (r.arrival, r.start, r.end)
    };
    assert_eq!(span("first"), (0.0, Some(0.0), Some(100.0)));
    // Arrives at 10 s, waits for first's 3 CPUs, starts the instant they are free.
    assert_eq!(span("second"), (10.0, Some(100.0), Some(160.0)));
    // Fits beside first at once.
    assert_eq!(span("third"), (20.0, Some(20.0), Some(50.0)));
    // At 120 s only 1 CPU is free; both start when second leaves.
    assert_eq!(span("batch-0"), (120.0, Some(160.0), Some(190.0)));
    assert_eq!(span("batch-1"), (120.0, Some(160.0), Some(190.0)));
    assert!(record(&run, "second").attempts >= 2, "second was tried before the departure too");

    // The timeline shows the wait: a pending pod from 10 s until 100 s.
    let at = |t: f64| run.timeline.iter().find(|p| p.t == t).unwrap_or_else(|| panic!("no timeline point at {t}"));
    assert_eq!((at(10.0).pending, at(10.0).running), (1, 1));
    assert_eq!((at(100.0).pending, at(100.0).running), (0, 1));
    assert_eq!((at(120.0).pending, at(120.0).running), (2, 1));
    assert_eq!((at(190.0).pending, at(190.0).running), (0, 0));
}

// ---- fill mode's inflation (sim::fill::workload) ----

fn gpu_node(name: &str, gpus: usize) -> Node {
    Node {
        name: Sym::new(name),
        labels: LabelSet::from_pairs([("kubernetes.io/hostname", name)]),
        taints: Vec::new(),
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(64_000, 256 << 30),
        allowed_pods: 110,
        images: Vec::new(),
        gpus: vec![Gpu::new(Sym::new("V100M32"), 0); gpus],
        devices: Default::default(),
    }
}

/// A pod of `count` GPUs with `milli` of each (`count` 0: CPU only).
fn trace_pod(name: &str, count: u32, milli: u32) -> SimPod {
    let mut pod = Pod::new("default", name, ResourceVec::cpu_mem(1000, 1 << 30));
    if count > 0 {
        pod.gpu = Some(GpuRequest { count, milli, models: Vec::new() });
    }
    SimPod { pod: Arc::new(pod), arrival: 0.0, duration: None, gates_removed_after: None }
}

fn fill_input(gpus_per_node: &[usize], pods: Vec<SimPod>) -> SimInput {
    let nodes = gpus_per_node.iter().enumerate().map(|(i, g)| gpu_node(&format!("n{i}"), *g)).collect();
    SimInput { nodes, pods, ..SimInput::default() }
}

fn demand(p: &Pod) -> u64 {
    p.gpu.as_ref().map_or(0, |g| g.total_milli())
}

fn total(pods: &[Arc<Pod>]) -> u64 {
    pods.iter().map(|p| demand(p)).sum()
}

/// The originals come first, each once, in some order; every later pod is a clone named
/// `<original>-tuned-<i>` with i counting from 0, identical to its original but for the name.
fn check_shape(input: &SimInput, pods: &[Arc<Pod>]) {
    let n = input.pods.len();
    let mut first: Vec<&str> = pods[..n].iter().map(|p| &*p.name).collect();
    let mut originals: Vec<&str> = input.pods.iter().map(|p| &*p.pod.name).collect();
    first.sort_unstable();
    originals.sort_unstable();
    assert_eq!(first, originals);
    for (i, clone) in pods[n..].iter().enumerate() {
        let (base, index) = clone.name.rsplit_once("-tuned-").unwrap_or_else(|| panic!("clone named {}", clone.name));
        assert_eq!(index, i.to_string());
        let original = input.pods.iter().find(|p| &*p.pod.name == base).unwrap();
        let renamed = Pod { name: original.pod.name.clone(), ..Pod::clone(clone) };
        assert_eq!(&renamed, original.pod.as_ref(), "clone {} differs from its original", clone.name);
    }
}

#[test]
fn fill_inflates_until_the_next_clone_would_pass_the_target() {
    // 10 GPUs: capacity 10000 milli. Whole-GPU pods and CPU-only pods (which add nothing).
    let pods = vec![trace_pod("a", 1, 1000), trace_pod("b", 1, 1000), trace_pod("c", 1, 1000), trace_pod("cpu", 0, 0)];
    let input = fill_input(&[8, 2], pods);
    for (fill_to, expected) in [(1.3, 13_000), (1.25, 12_000), (1.0, 10_000), (0.35, 3_000)] {
        for seed in 0..20 {
            let out = fill::workload(&input, fill_to, seed);
            let target = fill_to * 10_000.0;
            let t = total(&out);
            // The sampled pod that stopped inflation is a 1000-milli pod (a CPU-only pick never
            // stops it), so the rule gives exactly: total <= target < total + 1000.
            assert!(t as f64 <= target, "fill_to {fill_to} seed {seed}: {t} over {target}");
            assert!((t + 1000) as f64 > target, "fill_to {fill_to} seed {seed}: stopped early at {t}");
            assert_eq!(t, expected, "fill_to {fill_to} seed {seed}");
            check_shape(&input, &out);
            assert_eq!(out, fill::workload(&input, fill_to, seed), "same seed, same workload");
        }
    }
    // The seed decides the order.
    let names = |seed| fill::workload(&input, 1.3, seed).iter().map(|p| p.name.to_string()).collect::<Vec<_>>();
    assert!((1..10).any(|s| names(s) != names(0)), "the seed does not change the workload");
}

#[test]
fn fill_with_mixed_requests_never_passes_the_target() {
    // Shared-GPU pods (300 and 500 milli) and 2-GPU pods, on 16 GPUs.
    let pods = vec![
        trace_pod("share-3", 1, 300),
        trace_pod("share-5", 1, 500),
        trace_pod("pair", 2, 1000),
        trace_pod("cpu", 0, 0),
    ];
    let input = fill_input(&[8, 4, 4], pods);
    let capacity = 16.0 * f64::from(GPU_MILLI);
    let largest = 2000;
    for seed in 0..30 {
        let out = fill::workload(&input, 1.3, seed);
        let t = total(&out) as f64;
        assert!(t <= 1.3 * capacity, "seed {seed}: {t}");
        // Inflation stops at the first sampled pod that would pass the target, and no pod
        // asks for more than `largest`.
        assert!(t + f64::from(largest) > 1.3 * capacity, "seed {seed}: stopped early at {t}");
        check_shape(&input, &out);
    }
}

#[test]
fn fill_drops_originals_when_they_already_pass_the_target() {
    // Ten whole-GPU pods on 4 GPUs: the workload shrinks instead, to originals only.
    let pods: Vec<SimPod> = (0..10).map(|i| trace_pod(&format!("p{i}"), 1, 1000)).collect();
    let input = fill_input(&[4], pods);
    for (fill_to, kept) in [(1.0, 4), (0.55, 2), (2.5, 10)] {
        for seed in 0..10 {
            let out = fill::workload(&input, fill_to, seed);
            assert_eq!(out.len(), kept, "fill_to {fill_to} seed {seed}");
            assert_eq!(total(&out), kept as u64 * 1000, "fill_to {fill_to} seed {seed}");
            let mut names: Vec<&str> = out.iter().take(kept).map(|p| &*p.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), kept, "each original at most once");
            assert!(names.iter().all(|n| !n.contains("-tuned-")));
        }
    }
}

#[test]
fn fill_of_a_workload_without_gpu_pods_ends() {
    // Nothing to sample can reach the target; inflation must stop rather than loop forever.
    let pods = vec![trace_pod("cpu-a", 0, 0), trace_pod("cpu-b", 0, 0)];
    for gpus in [vec![8], vec![0]] {
        let input = fill_input(&gpus, pods.clone());
        let out = fill::workload(&input, 1.3, 7);
        assert_eq!(out.len(), 2, "{gpus:?}");
        check_shape(&input, &out);
    }
}

#[test]
fn gangs_land_whole_or_wait_with_the_reason() {
    let input = load(&["gangs.yaml"]);
    assert_eq!(input.pod_groups.len(), 3, "both PodGroup APIs are read");
    let run = replay_default(&input);

    let pair: Vec<_> = ["pair-0", "pair-1"].iter().map(|n| record(&run, n)).collect();
    assert!(pair.iter().all(|r| r.start == Some(0.0)), "{pair:?}");
    assert_ne!(pair[0].node, pair[1].node, "3 + 3 CPU cannot share a 4-CPU node");
    // wide waits, whole, until pair leaves; never one pod early.
    for n in ["wide-0", "wide-1"] {
        assert_eq!(record(&run, n).start, Some(60.0), "{n}");
    }
    // tight's last try came after wide (older) took 3 CPU on both nodes at 60 s.
    for n in ["tight-0", "tight-1"] {
        let r = record(&run, n);
        assert_eq!(r.node, None, "{n}");
        let want = "gang default/tight needs 2 pods, 0 fit in topology.kubernetes.io/rack=a: 2 Insufficient cpu.";
        assert_eq!(r.reason, want);
    }
    assert_eq!(record(&run, "ghost-0").reason, "pod group default/ghost does not exist");

    let gangs = &run.gangs;
    assert_eq!(gangs.len(), 3);
    assert_eq!(gangs["default/wide"].admitted_at, Some(60.0));
    assert_eq!(gangs["default/wide"].first_seen, 10.0);
    assert_eq!(gangs["default/tight"].admitted_at, None);
    let summary =
        tessera_scheduler::sim::summary::summarize(&[run], tessera_scheduler::sim::Mode::Replay, 1.3).unwrap();
    let g = summary.gangs.unwrap();
    assert_eq!((g.total, g.scheduled, g.waiting, g.partial), (3, 2, 1, 0));
    assert_eq!(g.time_to_admit_s.p99, 50.0, "wide waited 10 s → 60 s");
}

#[test]
fn volcano_gangs_land_whole_or_wait_with_the_reason() {
    let input = load(&["volcano.yaml"]);
    assert_eq!(input.pod_groups.len(), 2, "Volcano's PodGroups are read");
    assert!(input.unknown_kinds.is_empty(), "{:?}", input.unknown_kinds);
    let run = replay_default(&input);

    // 3 + 3 + 3 CPU on three 4-CPU nodes: one pod a node, all at once.
    let train: Vec<_> = ["train-0", "train-1", "train-2"].iter().map(|n| record(&run, n)).collect();
    assert!(train.iter().all(|r| r.start == Some(0.0)), "{train:?}");
    let nodes: std::collections::BTreeSet<_> = train.iter().map(|r| r.node.map(|n| n.as_str())).collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    for n in ["short-0", "short-1"] {
        let r = record(&run, n);
        assert_eq!((r.node, r.reason.as_str()), (None, "gang ml/short waits for 3 pods, 2 exist"), "{n}");
    }
    assert_eq!(record(&run, "stray-0").reason, "pod group ml/missing does not exist");

    // podgroups.csv gives Volcano's phase: Running once placed, Pending short of minMember.
    let csv = tessera_scheduler::sim::output::podgroups_csv(&run);
    assert!(csv.contains("ml,train,scheduling.volcano.sh,3,3,3,0,0,Running,,\n"), "{csv}");
    assert!(csv.contains("ml,short,scheduling.volcano.sh,3,2,0,,0,Pending,,"), "{csv}");
}

#[test]
fn a_cluster_dump_simulates_each_pod_once() {
    let input = load(&["dump.yaml"]);
    // The Deployment's two pods and the one StatefulSet pod run; nothing of the Deployment
    // or its ReplicaSet is created again, only the two missing ordinals.
    let running: Vec<&str> = input.running.iter().map(|p| &*p.name).collect();
    assert_eq!(running, ["web-5f6b8c9d7-x2kqp", "web-5f6b8c9d7-m8zvt", "db-1"]);
    let pending: Vec<&str> = input.pods.iter().map(|p| &*p.pod.name).collect();
    assert_eq!(pending, ["db-0", "db-2"]);
    assert!(input.unknown_kinds.is_empty(), "{:?}", input.unknown_kinds);

    let run = replay_default(&input);
    let mut names: Vec<&str> = run.records.iter().map(|r| &*r.key.name).collect();
    names.sort_unstable();
    assert_eq!(names, ["db-0", "db-1", "db-2", "web-5f6b8c9d7-m8zvt", "web-5f6b8c9d7-x2kqp"], "no pod doubled");
    for n in ["db-0", "db-2"] {
        assert!(record(&run, n).node.is_some(), "{n}: {}", record(&run, n).reason);
    }
    let summary =
        tessera_scheduler::sim::summary::summarize(&[run], tessera_scheduler::sim::Mode::Replay, 1.3).unwrap();
    assert_eq!((summary.pods_total, summary.scheduled, summary.unschedulable), (5, 5, 0));
    assert_eq!((summary.already_bound, summary.placed), (3, 2), "bound in the dump, placed by the simulation");
    let placed_per_sec = 2.0 / summary.engine_wall_s;
    assert!((summary.pods_per_sec - placed_per_sec).abs() < 1e-6 * placed_per_sec, "only placed pods count");
}

#[test]
fn a_daemon_set_adds_a_pod_for_each_admitting_node_its_listed_pods_leave() {
    let input = load(&["daemonsets.yaml"]);
    let running: Vec<&str> = input.running.iter().map(|p| &*p.name).collect();
    assert_eq!(running, ["node-exporter-7xk2p"]);
    let pending: Vec<&str> = input.pods.iter().map(|p| &*p.pod.name).collect();
    assert_eq!(pending, ["node-exporter-node-b", "node-exporter-node-full"], "none on the tainted node");
    assert!(input.unknown_kinds.is_empty(), "{:?}", input.unknown_kinds);

    let run = replay_default(&input);
    assert_eq!(node_of(&run, "node-exporter-7xk2p"), Some("node-a"));
    assert_eq!(node_of(&run, "node-exporter-node-b"), Some("node-b"));
    // Pinned by node affinity, not bound: Filter runs on the one node the pin leaves, and
    // the cordoned node's lack of CPU keeps its pod waiting; the nodes the pin left out count
    // under NodeAffinity, as upstream's message has them.
    let full = record(&run, "node-exporter-node-full");
    assert_eq!(full.node, None);
    assert_eq!(
        full.reason,
        "0/4 nodes are available: 1 Insufficient cpu, 3 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
         preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling.."
    );
}

#[test]
fn gated_pods_wait_and_are_reported_as_gated_not_unschedulable() {
    let yaml = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {allocatable: {cpu: '4', memory: 8Gi, pods: '10'}}\n---\n\
                apiVersion: v1\nkind: Pod\nmetadata: {name: held}\n\
                spec: {containers: [{name: c}], schedulingGates: [{name: example.com/quota}]}\n---\n\
                apiVersion: v1\nkind: Pod\nmetadata: {name: free}\nspec: {containers: [{name: c}]}\n";
    let objects = tessera_scheduler::ingest::read_objects("gates.yaml", yaml).unwrap();
    let input = input::from_objects(&objects, input::OnInvalid::Stop).unwrap();
    let run = replay_default(&input);
    assert_eq!(node_of(&run, "free"), Some("n1"));
    let held = record(&run, "held");
    assert_eq!((held.node, held.attempts), (None, 0), "never tried");
    assert_eq!(held.reason, replay::GATED_MESSAGE);
    let summary =
        tessera_scheduler::sim::summary::summarize(&[run], tessera_scheduler::sim::Mode::Replay, 1.3).unwrap();
    assert_eq!((summary.placed, summary.gated, summary.unschedulable), (1, 1, 0));
    assert!(summary.unschedulable_by_reason.is_empty(), "{:?}", summary.unschedulable_by_reason);
}

#[test]
fn a_gang_shares_its_podgroup_claim_on_a_rack_channel_across_nodes() {
    let input = load(&["dra-group.yaml"]);
    let run = replay_default(&input);
    let members: Vec<&PodRecord> = run.records.iter().filter(|r| r.key.name.starts_with("train-")).collect();
    assert_eq!(members.len(), 3);
    let nodes: std::collections::BTreeSet<_> = members.iter().map(|r| r.node).collect();
    assert_eq!(nodes.len(), 3, "one member per 2-GPU node of rack r1: {members:?}");
    assert!(nodes.iter().all(|n| n.is_some_and(|n| n.as_str().starts_with("r1-"))), "{nodes:?}");
    for r in &members {
        let devices: Vec<String> = r.devices.iter().map(|d| d.to_string()).collect();
        assert!(
            devices.contains(&"imex.example.com/imex-r1/channel-0".to_string()),
            "the group's one channel: {devices:?}"
        );
        assert_eq!(devices.len(), 2, "the channel and the pod's own GPU: {devices:?}");
    }
}

#[test]
fn dra_devices_are_chosen_by_their_published_wiring() {
    let input = load(&["dra-wired.yaml"]);
    let run = replay_default(&input);
    let devices: Vec<String> = record(&run, "trainer").devices.iter().map(|d| d.to_string()).collect();
    let want: Vec<String> = ["gpu-4", "gpu-5", "gpu-6", "gpu-7"]
        .iter()
        .map(|g| format!("gpu.example.com/gpu-w0/{g}"))
        .chain(["rdma.example.com/gpu-w0/nic-2".to_string()])
        .collect();
    assert_eq!(devices, want, "the free NVLink clique, and the NIC under its first PCIe root");
    let Some((_, held)) = run.device_curve.last() else { panic!("no DRA device curve") };
    let want = [("gpu.example.com", [8, 5]), ("rdma.example.com", [4, 1])].into();
    assert_eq!(held, &want, "the notebook's GPU, and the trainer's four GPUs and NIC");
}

/// Replays `input` under the default profile with DynamicResources' Score disabled: where
/// the other plugins alone would put the pods.
fn replay_without_dra_score(input: &SimInput) -> RunResult {
    let parsed = config::load_config(&fixture("no-dra-score.config.yaml"), &Registry::builtin()).unwrap();
    replay::replay(input, &NamedConfig::from_config("no-dra-score", parsed), 42, 1, &Progress::new(false, ""))
}

fn devices_of(run: &RunResult, pod: &str) -> Vec<String> {
    record(run, pod).devices.iter().map(|d| d.device.to_string()).collect()
}

#[test]
fn dra_pods_go_to_the_node_whose_wiring_suits_them() {
    let input = load(&["dra-wired-nodes.yaml"]);
    let run = replay_default(&input);
    assert_eq!(node_of(&run, "inference"), Some("gpu-w0"), "a GPU from a clique already broken");
    assert_eq!(node_of(&run, "trainer"), Some("gpu-w1"), "the node with a whole free clique");
    assert_eq!(devices_of(&run, "trainer"), ["gpu-4", "gpu-5", "gpu-6", "gpu-7"]);
    let blind = replay_without_dra_score(&input);
    assert_eq!(
        [node_of(&blind, "inference"), node_of(&blind, "trainer")],
        [Some("gpu-w1"), Some("gpu-w0")],
        "by CPU alone the inference pod breaks gpu-w1's clique and the trainer is split"
    );
}

#[test]
fn a_dra_claims_first_available_choice_wins_over_a_fallback_elsewhere() {
    let input = load(&["dra-prioritized.yaml"]);
    assert_eq!(node_of(&replay_default(&input), "tuner"), Some("gpu-h100"));
    assert_eq!(node_of(&replay_without_dra_score(&input), "tuner"), Some("gpu-a100"), "by CPU alone");
}

#[test]
fn gpu_partitions_and_shared_nic_bandwidth_are_never_overdrawn() {
    let input = load(&["dra-partitions.yaml"]);
    let run = replay_default(&input);
    let placed = |name: &str| record(&run, name).node.is_some();
    for name in ["half-a", "quarter-a", "quarter-b", "net-0", "net-1", "net-2"] {
        assert!(placed(name), "{name} fits");
    }
    // 40Gi + 2 x 20Gi fill the GPU's 80Gi; 3 x 30G of the NIC's 100G leave 10G.
    for name in ["quarter-c", "net-3"] {
        let r = record(&run, name);
        assert_eq!(r.node, None, "{name} does not fit");
        assert!(r.reason.contains("cannot allocate all claims"), "{name}: {}", r.reason);
    }
    let devices: Vec<String> = ["half-a", "quarter-a", "quarter-b"]
        .iter()
        .flat_map(|n| record(&run, n).devices.iter().map(|d| d.to_string()))
        .collect();
    let distinct: std::collections::BTreeSet<_> = devices.iter().collect();
    assert_eq!(distinct.len(), 3, "three distinct partitions: {devices:?}");
}
