//! Devices that are not taken whole, through the engine: a GPU published as partitions drawing
//! on one counter set (as MIG slices share a GPU's memory and multiprocessors), and a NIC
//! shared by many claims, each consuming some of its bandwidth. However pods come and go, in
//! either drive, no counter and no capacity is ever overdrawn, and what a node records as
//! drawn is exactly what the claims it holds draw.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_plugins::dra::inventory::NodeDevices;
use tessera_plugins::dra::model::{
    Capacity, CapacityPolicy, CapacityRange, ClaimSpec, CounterConsumption, CounterSet, Device, ResourceSlice,
    SliceNodes,
};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{Node, Pod, PodKey};

use super::{engine, one_device, pod_claiming, run_at, verify_bound};
use crate::bench::dra::DraWorld;
use crate::engine::*;

const GPU: &str = "gpu.example.com";
const NIC: &str = "rdma.example.com";
const GIB: i64 = 1 << 30;

fn device(node: Sym, driver: &str, name: &str) -> Device {
    Device {
        uid: Device::next_uid(),
        name: Sym::new(name),
        driver: Sym::new(driver),
        pool: node,
        attributes: BTreeMap::new(),
        capacity: BTreeMap::new(),
        taints: Vec::new(),
        allow_multiple_allocations: false,
        consumes_counters: Vec::new(),
    }
}

/// Node `name`'s devices: GPU `gpu-0` (80Gi, 100 SMs) as a whole, two halves and four
/// quarters, and NIC `nic-0` (100 units of bandwidth) shared in steps of 10.
fn devices(name: Sym) -> NodeDevices {
    let partition = |part: &str, memory: i64, sm: i64| {
        let counters = [(Arc::from("memory"), memory * GIB * 1000), (Arc::from("sm"), sm * 1000)].into_iter().collect();
        let consumes = vec![CounterConsumption { counter_set: Sym::new("gpu-0"), counters }];
        Arc::new(Device { consumes_counters: consumes, ..device(name, GPU, part) })
    };
    let mut gpus = vec![partition("whole", 80, 100), partition("half-0", 40, 50), partition("half-1", 40, 50)];
    gpus.extend((0..4).map(|i| partition(&format!("quarter-{i}"), 20, 25)));
    let set = CounterSet {
        name: Sym::new("gpu-0"),
        counters: [(Arc::from("memory"), 80 * GIB * 1000), (Arc::from("sm"), 100 * 1000)].into_iter().collect(),
    };
    let range = CapacityRange { min: 10_000, max: None, step: Some(10_000) };
    let policy = CapacityPolicy { default: Some(10_000), valid_range: Some(range), ..Default::default() };
    let bandwidth = Capacity { text: Arc::from("100"), milli: 100_000, policy: Some(Arc::new(policy)) };
    let nic = Device {
        allow_multiple_allocations: true,
        capacity: [(Arc::from("rdma.example.com/bandwidth"), bandwidth)].into_iter().collect(),
        ..device(name, NIC, "nic-0")
    };
    let slice = |suffix: &str, driver: &str, devices: Vec<Arc<Device>>, shared_counters: Vec<CounterSet>| {
        Arc::new(ResourceSlice {
            name: Arc::from(format!("{name}-{suffix}")),
            driver: Sym::new(driver),
            pool: name,
            generation: 1,
            slice_count: if driver == GPU { 2 } else { 1 },
            nodes: SliceNodes::Node(name),
            devices,
            shared_counters,
        })
    };
    let slices = [
        slice("counters", GPU, Vec::new(), vec![set]),
        slice("gpus", GPU, gpus, Vec::new()),
        slice("nics", NIC, vec![Arc::new(nic)], Vec::new()),
    ];
    NodeDevices::for_node(name, &LabelSet::default(), &slices)
}

fn nodes(n: usize) -> Vec<Node> {
    let w = DraWorld::new().unwrap();
    crate::bench::dra::cluster(n, &w, &mut rng::Rng::new(3))
        .into_iter()
        .map(|mut node| {
            node.devices = Arc::new(devices(node.name));
            node
        })
        .collect()
}

/// Pod `name` with one claim of `spec`, asking no CPU or memory.
fn pod(name: &str, spec: &Arc<ClaimSpec>) -> Arc<Pod> {
    pod_claiming(name, Default::default(), spec)
}

/// What every node records as drawn equals the sum of its held claims' draws.
fn ledgers_agree(e: &Engine) -> bool {
    e.state().snapshot().nodes().all(|n| {
        let ledger = &n.node.devices.ledger;
        let mut sums = Vec::new();
        for h in &n.claims {
            ledger.apply(&mut sums, &h.draws, 1);
        }
        sums.resize(ledger.slots.len(), 0);
        let mut drawn = n.drawn.clone();
        drawn.resize(ledger.slots.len(), 0);
        drawn == sums
    })
}

#[test]
fn partitions_fill_a_gpu_to_its_counters_and_a_shared_nic_to_its_bandwidth() {
    let nodes = nodes(1);
    let partition = one_device(GPU, None);
    let link = one_device(NIC, Some(("bandwidth", 30_000)));
    let mut e = engine(&nodes, 1);
    for i in 0..5 {
        e.add_pod(pod(&format!("gpu-{i}"), &partition), 0.0).unwrap();
        e.add_pod(pod(&format!("nic-{i}"), &link), 0.0).unwrap();
    }
    let out = e.schedule_pending(0.0);
    let bound: Vec<_> = out.iter().filter_map(Outcome::bound).collect();
    let count = |prefix: &str| bound.iter().filter(|(p, _, _)| p.name.starts_with(prefix)).count();
    // Halves go first (name order), then quarters: half + half fills the GPU's counters.
    assert_eq!(count("gpu-"), 2, "two halves draw all 80Gi and 100 SMs");
    assert_eq!(count("nic-"), 3, "3 x 30 of 100; a fourth would pass it");
    assert_eq!(verify_bound(&nodes, &e, &bound), []);
    assert!(ledgers_agree(&e));
    for i in 0..5 {
        e.core().delete_pod(&PodKey::new("ml", &format!("gpu-{i}")), 1.0);
        e.core().delete_pod(&PodKey::new("ml", &format!("nic-{i}")), 1.0);
    }
    let node = e.state().snapshot().nodes().next().map(|n| n.drawn.iter().all(|&d| d == 0));
    assert_eq!(node, Some(true), "everything drawn is given back");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Random pods asking partitions or bandwidth arrive in rounds, some leave between them:
    /// no counter or capacity is ever overdrawn, and every node's record of what is drawn is
    /// the sum of its claims' draws.
    #[test]
    fn counters_and_shared_capacity_are_never_overdrawn(
        nodes_n in 1usize..4,
        rounds in proptest::collection::vec(proptest::collection::vec((0u8..2, 1i64..8), 1..8), 1..4),
        workers in 1usize..3,
    ) {
        let nodes = nodes(nodes_n);
        let partition = one_device(GPU, None);
        let mut e = engine(&nodes, workers);
        let mut bound: Vec<crate::verify::BoundWithClaims> = Vec::new();
        for (r, round) in rounds.iter().enumerate() {
            for (i, &(kind, amount)) in round.iter().enumerate() {
                let name = format!("r{r}-{i}");
                let spec = if kind == 0 { partition.clone() } else { one_device(NIC, Some(("bandwidth", amount * 7_000))) };
                e.add_pod(pod(&name, &spec), r as f64).unwrap();
            }
            bound.extend(run_at(&mut e, workers, r as f64).iter().filter_map(Outcome::bound));
            proptest::prop_assert_eq!(verify_bound(&nodes, &e, &bound), []);
            proptest::prop_assert!(ledgers_agree(&e));
            // Every other pod bound so far leaves.
            let leaving: Vec<PodKey> = bound.iter().step_by(2).map(|(p, _, _)| p.key()).collect();
            for key in &leaving {
                e.core().delete_pod(key, r as f64 + 0.5);
            }
            bound.retain(|(p, _, _)| !leaving.contains(&p.key()));
            proptest::prop_assert!(ledgers_agree(&e));
        }
    }
}

#[test]
fn verify_catches_a_gpu_whose_partitions_overdraw_its_counters() {
    use tessera_plugins::dra::model::{AllocatedDevice, ClaimAllocation, DeviceId};
    let nodes = nodes(1);
    let node = nodes[0].name;
    let partition = one_device(GPU, None);
    let holding = |pod_name: &str, part: &str| {
        let p = pod(pod_name, &partition);
        let device = DeviceId { driver: Sym::new(GPU), pool: node, device: Sym::new(part) };
        let a = ClaimAllocation {
            claim: p.claims[0].key,
            devices: vec![AllocatedDevice {
                request: Arc::from("dev"),
                device,
                admin_access: false,
                consumed: BTreeMap::new(),
            }],
            node: Some(node),
            config: Vec::new(),
        };
        (p, node, vec![Arc::new(a)])
    };
    let e = engine(&nodes, 1);
    assert_eq!(verify_bound(&nodes, &e, &[holding("a", "half-0"), holding("b", "half-1")]), []);
    let both = [holding("a", "whole"), holding("b", "half-1")];
    assert_eq!(verify_bound(&nodes, &e, &both).len(), 1, "b is flagged");
    let v = crate::verify::device_violations(&nodes, &both);
    let want = format!("gpu.example.com/{node}/gpu-0/memory is overdrawn");
    assert!(v.iter().any(|v| v.pod.name.as_ref() == "b" && v.reason.starts_with(&want)), "{v:?}");
}
