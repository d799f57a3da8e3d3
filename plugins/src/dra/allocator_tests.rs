//! The allocator's cases, one per feature, each with the expected allocation or reason; and
//! properties over random nodes and claims, checked against a brute-force search.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::dra::cel::compile_cached;
use crate::dra::inventory::{DeviceSet, NodeDevices};
use crate::dra::model::*;
use crate::labels::LabelSet;
use crate::model::{TaintEffect, Toleration, TolerationOperator};

const GPU: &str = "gpu.example.com";
const NIC: &str = "rdma.example.com";
const ROOT: &str = "resource.kubernetes.io/pcieRoot";

fn device(driver: &str, name: &str, attrs: &[(&str, AttrValue)]) -> Arc<Device> {
    let attributes = attrs.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect();
    Arc::new(Device {
        uid: Device::next_uid(),
        name: Sym::new(name),
        driver: Sym::new(driver),
        pool: Sym::new("n1"),
        attributes,
        capacity: BTreeMap::new(),
        taints: Vec::new(),
        allow_multiple_allocations: false,
        consumes_counters: Vec::new(),
    })
}

fn root(r: &str) -> (&'static str, AttrValue) {
    (ROOT, AttrValue::String(Arc::from(r)))
}

/// A node of `devices`, in the order a slice lists them (the inventory sorts by name).
fn inventory(devices: Vec<Arc<Device>>) -> NodeDevices {
    let mut by_driver: BTreeMap<Sym, Vec<Arc<Device>>> = BTreeMap::new();
    for d in devices {
        by_driver.entry(d.driver).or_default().push(d);
    }
    let slices: Vec<Arc<ResourceSlice>> = by_driver
        .into_iter()
        .map(|(driver, devices)| {
            Arc::new(ResourceSlice {
                name: Arc::from(format!("n1-{driver}")),
                driver,
                pool: Sym::new("n1"),
                generation: 1,
                slice_count: 1,
                nodes: SliceNodes::Node(Sym::new("n1")),
                devices,
                shared_counters: Vec::new(),
            })
        })
        .collect();
    NodeDevices::for_node(Sym::new("n1"), &LabelSet::default(), &slices)
}

/// A DGX-like node: `pairs` PCIe roots, each with one GPU and one NIC.
fn paired_node(pairs: usize) -> NodeDevices {
    let mut devices = Vec::new();
    for p in 0..pairs {
        let r = format!("pci{p}");
        devices.push(device(GPU, &format!("gpu-{p}"), &[root(&r)]));
        devices.push(device(NIC, &format!("nic-{p}"), &[root(&r)]));
    }
    inventory(devices)
}

fn class(driver: &str) -> Arc<DeviceClass> {
    let selector = compile_cached(&format!("device.driver == {driver:?}")).unwrap_or_else(|e| panic!("{e}"));
    Arc::new(DeviceClass { name: Sym::new(driver), selectors: vec![selector], config: Vec::new() })
}

fn exact(driver: &str, count: u32) -> ExactRequest {
    ExactRequest {
        class: class(driver),
        selectors: Vec::new(),
        mode: AllocationMode::ExactCount(count),
        admin_access: false,
        tolerations: Vec::new(),
        capacity: BTreeMap::new(),
    }
}

fn request(name: &str, exact: ExactRequest) -> DeviceRequest {
    DeviceRequest { name: Arc::from(name), kind: RequestKind::Exactly(exact) }
}

fn spec(requests: Vec<DeviceRequest>, constraints: Vec<Constraint>) -> Arc<ClaimSpec> {
    Arc::new(ClaimSpec { requests, constraints, config: Vec::new() })
}

fn same_root(requests: &[&str]) -> Constraint {
    Constraint::MatchAttribute {
        requests: requests.iter().map(|r| Arc::from(*r)).collect(),
        attribute: Arc::from(ROOT),
    }
}

/// One GPU and one NIC under one PCIe root.
fn pair_spec() -> Arc<ClaimSpec> {
    spec(vec![request("gpu", exact(GPU, 1)), request("nic", exact(NIC, 1))], vec![same_root(&["gpu", "nic"])])
}

fn run(
    devices: &NodeDevices,
    used: &DeviceSet,
    specs: &[Arc<ClaimSpec>],
) -> Result<Vec<ClaimAllocation>, Unsatisfiable> {
    run_preferring(devices, used, specs, Preference::FirstFit)
}

fn run_preferring(
    devices: &NodeDevices,
    used: &DeviceSet,
    specs: &[Arc<ClaimSpec>],
    preference: Preference,
) -> Result<Vec<ClaimAllocation>, Unsatisfiable> {
    let keys: Vec<ClaimKey> = (0..specs.len()).map(|i| ClaimKey::new("default", &format!("c{i}"))).collect();
    let claims: Vec<ClaimToAllocate<'_>> =
        keys.iter().zip(specs).map(|(key, spec)| ClaimToAllocate { key: *key, spec }).collect();
    allocate(NodeView { name: Sym::new("n1"), devices, used, drawn: &[] }, &claims, preference).map(|a| a.claims)
}

/// `request=device` pairs of each claim, for short expectations.
fn picks(result: &[ClaimAllocation]) -> Vec<Vec<String>> {
    result.iter().map(|a| a.devices.iter().map(|d| format!("{}={}", d.request, d.device.device)).collect()).collect()
}

#[test]
fn exact_count_takes_the_first_free_devices_in_device_order() {
    let node = paired_node(4);
    let mut used = DeviceSet::new();
    let first_gpu = node.index_of(&DeviceId { driver: Sym::new(GPU), pool: Sym::new("n1"), device: Sym::new("gpu-0") });
    used.extend(first_gpu);
    let got = run(&node, &used, &[spec(vec![request("gpu", exact(GPU, 2))], vec![])]);
    assert_eq!(picks(&got.unwrap_or_default()), [["gpu=gpu-1", "gpu=gpu-2"]]);
}

#[test]
fn too_few_devices_names_the_claim_and_request() {
    let node = paired_node(2);
    let err = run(&node, &DeviceSet::new(), &[spec(vec![request("gpu", exact(GPU, 3))], vec![])]);
    let err = err.err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("cannot allocate all claims: resourceclaim default/c0 request gpu"));
}

#[test]
fn match_attribute_pairs_a_gpu_with_the_nic_under_its_pcie_root() {
    let node = inventory(vec![
        device(GPU, "gpu-0", &[root("a")]),
        device(NIC, "nic-0", &[root("b")]),
        device(NIC, "nic-1", &[root("a")]),
    ]);
    let got = run(&node, &DeviceSet::new(), &[pair_spec()]);
    assert_eq!(picks(&got.unwrap_or_default()), [["gpu=gpu-0", "nic=nic-1"]]);
}

#[test]
fn match_attribute_fails_when_no_root_has_both() {
    let node = inventory(vec![device(GPU, "gpu-0", &[root("a")]), device(NIC, "nic-0", &[root("b")])]);
    let err = run(&node, &DeviceSet::new(), &[pair_spec()]).err();
    assert_eq!(err.map(|e| e.request.to_string()).as_deref(), Some("nic"));
}

#[test]
fn a_device_without_the_constrained_attribute_never_satisfies_it() {
    let node = inventory(vec![device(GPU, "gpu-0", &[]), device(NIC, "nic-0", &[])]);
    assert!(run(&node, &DeviceSet::new(), &[pair_spec()]).is_err());
}

#[test]
fn distinct_attribute_spreads_devices_over_values() {
    let numa = |n: i64| ("example.com/numa", AttrValue::Int(n));
    let node = inventory(vec![
        device(GPU, "gpu-0", &[numa(0)]),
        device(GPU, "gpu-1", &[numa(0)]),
        device(GPU, "gpu-2", &[numa(1)]),
    ]);
    let distinct = Constraint::DistinctAttribute { requests: vec![], attribute: Arc::from("example.com/numa") };
    let got = run(&node, &DeviceSet::new(), &[spec(vec![request("gpu", exact(GPU, 2))], vec![distinct.clone()])]);
    assert_eq!(picks(&got.unwrap_or_default()), [["gpu=gpu-0", "gpu=gpu-2"]]);
    let three = run(&node, &DeviceSet::new(), &[spec(vec![request("gpu", exact(GPU, 3))], vec![distinct])]);
    assert!(three.is_err(), "only two NUMA nodes");
}

#[test]
fn all_mode_takes_every_matching_device_and_needs_them_free() {
    let node = paired_node(3);
    let all = ExactRequest { mode: AllocationMode::All, ..exact(NIC, 0) };
    let s = spec(vec![request("nics", all)], vec![]);
    let got = run(&node, &DeviceSet::new(), std::slice::from_ref(&s));
    assert_eq!(picks(&got.unwrap_or_default()), [["nics=nic-0", "nics=nic-1", "nics=nic-2"]]);
    let mut used = DeviceSet::new();
    let nic1 = DeviceId { driver: Sym::new(NIC), pool: Sym::new("n1"), device: Sym::new("nic-1") };
    used.extend(node.index_of(&nic1));
    assert!(run(&node, &used, &[s]).is_err(), "one NIC is taken");
    let none = ExactRequest { mode: AllocationMode::All, ..exact("none.example.com", 0) };
    assert!(run(&node, &DeviceSet::new(), &[spec(vec![request("x", none)], vec![])]).is_err(), "All needs one device");
}

#[test]
fn first_available_takes_the_first_sub_request_that_fits() {
    let model = |m: &str| ("gpu.example.com/model", AttrValue::String(Arc::from(m)));
    let node = inventory(vec![device(GPU, "gpu-0", &[model("A100")]), device(GPU, "gpu-1", &[model("A100")])]);
    let of_model = |m: &str, count| ExactRequest {
        selectors: vec![
            compile_cached(&format!("device.attributes[{GPU:?}].model == {m:?}")).unwrap_or_else(|e| panic!("{e}")),
        ],
        ..exact(GPU, count)
    };
    let kind = RequestKind::FirstAvailable(vec![
        (Arc::from("h100"), of_model("H100", 1)),
        (Arc::from("a100x4"), of_model("A100", 4)),
        (Arc::from("a100x2"), of_model("A100", 2)),
    ]);
    let s = spec(vec![DeviceRequest { name: Arc::from("gpu"), kind }], vec![same_root(&[])]);
    // The constraint covers every request; these GPUs have no PCIe root, so it cannot hold.
    assert!(run(&node, &DeviceSet::new(), std::slice::from_ref(&s)).is_err());
    let s = spec(s.requests.clone(), vec![]);
    let got = run(&node, &DeviceSet::new(), std::slice::from_ref(&s));
    assert_eq!(picks(&got.unwrap_or_default()), [["gpu/a100x2=gpu-0", "gpu/a100x2=gpu-1"]]);
    // What Score weighs: two sub-requests passed over, both GPUs taken.
    let claim = [ClaimToAllocate { key: ClaimKey::new("default", "c0"), spec: &s }];
    let view = NodeView { name: Sym::new("n1"), devices: &node, used: &DeviceSet::new(), drawn: &[] };
    let allocated = allocate(view, &claim, Preference::Wiring).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((allocated.passed_over, allocated.taken.iter().collect::<Vec<_>>()), (2, vec![0, 1]));
}

#[test]
fn admin_access_is_granted_a_used_device_without_taking_it() {
    let node = paired_node(1);
    let mut used = DeviceSet::new();
    used.insert(0);
    used.insert(1);
    let admin = ExactRequest { admin_access: true, ..exact(GPU, 1) };
    let got = run(&node, &used, &[spec(vec![request("gpu", admin)], vec![])]).unwrap_or_default();
    assert_eq!(picks(&got), [["gpu=gpu-0"]]);
    assert!(got[0].devices[0].admin_access);
    assert!(run(&node, &used, &[spec(vec![request("gpu", exact(GPU, 1))], vec![])]).is_err());
}

#[test]
fn a_tainted_device_needs_a_toleration() {
    let mut tainted = Device::clone(&device(GPU, "gpu-0", &[]));
    tainted.taints.push(DeviceTaint { key: Sym::new("broken"), value: Sym::new(""), effect: TaintEffect::NoSchedule });
    let node = inventory(vec![Arc::new(tainted)]);
    assert!(run(&node, &DeviceSet::new(), &[spec(vec![request("gpu", exact(GPU, 1))], vec![])]).is_err());
    let tolerates = Toleration {
        key: Some(Sym::new("broken")),
        operator: TolerationOperator::Exists,
        value: Sym::new(""),
        effect: None,
    };
    let req = ExactRequest { tolerations: vec![tolerates], ..exact(GPU, 1) };
    assert!(run(&node, &DeviceSet::new(), &[spec(vec![request("gpu", req)], vec![])]).is_ok());
}

#[test]
fn a_capacity_request_needs_a_device_that_large() {
    let mut big = Device::clone(&device(GPU, "gpu-0", &[]));
    big.capacity.insert(
        Arc::from("gpu.example.com/memory"),
        Capacity { text: Arc::from("80Gi"), milli: (80i64 << 30) * 1000, policy: None },
    );
    let node = inventory(vec![Arc::new(big)]);
    let asking = |gib: i64| {
        let capacity = [(Arc::from("gpu.example.com/memory"), (gib << 30) * 1000)].into_iter().collect();
        spec(vec![request("gpu", ExactRequest { capacity, ..exact(GPU, 1) })], vec![])
    };
    assert!(run(&node, &DeviceSet::new(), &[asking(40)]).is_ok());
    assert!(run(&node, &DeviceSet::new(), &[asking(100)]).is_err());
}

#[test]
fn claims_of_one_pod_get_distinct_devices() {
    let node = paired_node(4);
    let s = pair_spec();
    let got = run(&node, &DeviceSet::new(), &[s.clone(), s.clone(), s.clone()]).unwrap_or_default();
    assert_eq!(picks(&got), [["gpu=gpu-0", "nic=nic-0"], ["gpu=gpu-1", "nic=nic-1"], ["gpu=gpu-2", "nic=nic-2"]]);
    let err = run(&node, &DeviceSet::new(), &vec![s; 5]).err();
    assert!(err.is_some_and(|e| !e.gave_up), "one pair short fails at once, not by exhausting the search");
}

#[test]
fn a_node_one_pair_short_fails_without_trying_every_permutation() {
    // 8 GPUs and 8 NICs, but only 7 roots have both: the counts alone do not show it.
    let mut devices = Vec::new();
    for p in 0..8 {
        devices.push(device(GPU, &format!("gpu-{p}"), &[root(&format!("pci{p}"))]));
        let r = if p == 7 { "elsewhere".to_string() } else { format!("pci{p}") };
        devices.push(device(NIC, &format!("nic-{p}"), &[root(&r)]));
    }
    let node = inventory(devices);
    let err = run(&node, &DeviceSet::new(), &vec![pair_spec(); 8]).err();
    assert!(err.is_some_and(|e| !e.gave_up));
}

#[test]
fn a_claim_on_devices_other_nodes_reach_too_is_tied_to_no_node_and_one_local_device_ties_it() {
    // n1 reaches a fabric channel published for every node, besides its own GPU.
    let fabric = Arc::new(ResourceSlice {
        name: Arc::from("fabric"),
        driver: Sym::new("fabric.example.com"),
        pool: Sym::new("fabric"),
        generation: 1,
        slice_count: 1,
        nodes: SliceNodes::All,
        devices: vec![device("fabric.example.com", "channel-0", &[])],
        shared_counters: Vec::new(),
    });
    let gpu = Arc::new(ResourceSlice {
        name: Arc::from("n1-gpu"),
        driver: Sym::new(GPU),
        pool: Sym::new("n1"),
        generation: 1,
        slice_count: 1,
        nodes: SliceNodes::Node(Sym::new("n1")),
        devices: vec![device(GPU, "gpu-0", &[])],
        shared_counters: Vec::new(),
    });
    let node = NodeDevices::for_node(Sym::new("n1"), &LabelSet::default(), &[gpu, fabric]);
    assert_eq!(node.remote.iter().collect::<Vec<_>>(), [0], "the channel sorts first and is not local");
    let channel = spec(vec![request("channel", exact("fabric.example.com", 1))], vec![]);
    let both = spec(vec![request("channel", exact("fabric.example.com", 1)), request("gpu", exact(GPU, 1))], vec![]);
    let result = run(&node, &DeviceSet::new(), &[channel, both.clone()]);
    assert!(result.is_err(), "one channel cannot serve two claims");
    let result =
        run(&node, &DeviceSet::new(), &[spec(vec![request("channel", exact("fabric.example.com", 1))], vec![])]);
    assert_eq!(result.map(|r| r[0].node), Ok(None));
    let result = run(&node, &DeviceSet::new(), &[both]);
    assert_eq!(result.map(|r| r[0].node), Ok(Some(Sym::new("n1"))));
}

/// One GPU published as partitions drawing on its counter set `gpu-0` (memory 80, sm 100):
/// `whole` takes all, `half-0`/`half-1` half each, `quarter-0..3` a quarter each.
fn partitioned_gpu() -> NodeDevices {
    let counters = |memory: i64, sm: i64| {
        let counters = [(Arc::from("memory"), memory), (Arc::from("sm"), sm)].into_iter().collect();
        vec![CounterConsumption { counter_set: Sym::new("gpu-0"), counters }]
    };
    let partition = |name: &str, memory: i64, sm: i64| {
        let mut d = Device::clone(&device(GPU, name, &[]));
        d.consumes_counters = counters(memory, sm);
        Arc::new(d)
    };
    let mut devices = vec![partition("whole", 80, 100), partition("half-0", 40, 50), partition("half-1", 40, 50)];
    devices.extend((0..4).map(|i| partition(&format!("quarter-{i}"), 20, 25)));
    let slice = |name: &str, devices: Vec<Arc<Device>>, shared_counters: Vec<CounterSet>| {
        Arc::new(ResourceSlice {
            name: Arc::from(name),
            driver: Sym::new(GPU),
            pool: Sym::new("n1"),
            generation: 1,
            slice_count: 2,
            nodes: SliceNodes::Node(Sym::new("n1")),
            devices,
            shared_counters,
        })
    };
    let set = CounterSet {
        name: Sym::new("gpu-0"),
        counters: [(Arc::from("memory"), 80), (Arc::from("sm"), 100)].into_iter().collect(),
    };
    NodeDevices::for_node(
        Sym::new("n1"),
        &LabelSet::default(),
        &[slice("counters", vec![], vec![set]), slice("devices", devices, vec![])],
    )
}

/// A claim for one partition of the GPU, any partition.
fn partition_spec() -> Arc<ClaimSpec> {
    spec(vec![request("gpu", exact(GPU, 1))], vec![])
}

#[test]
fn partitions_of_one_gpu_never_draw_more_than_its_counters() {
    let node = partitioned_gpu();
    assert_eq!(node.ledger.slots.len(), 2, "memory and sm of set gpu-0");
    let one = partition_spec();
    // Devices in name order: half-0, half-1, quarter-0..3, whole. Greedy picks go in order.
    let two = run(&node, &DeviceSet::new(), &[one.clone(), one.clone()]).unwrap();
    assert_eq!(picks(&two), [["gpu=half-0"], ["gpu=half-1"]]);
    let three = run(&node, &DeviceSet::new(), &[one.clone(), one.clone(), one.clone()]).unwrap();
    assert_eq!(picks(&three), [["gpu=half-0"], ["gpu=quarter-0"], ["gpu=quarter-1"]], "half + quarter + quarter");
    let five = run(&node, &DeviceSet::new(), &vec![one.clone(); 5]);
    assert!(five.is_err(), "at most four partitions fit in the counters");
    // The whole GPU is drawn on already: nothing else fits.
    let whole = node.devices.iter().position(|d| d.name.as_str() == "whole").unwrap();
    let drawn: Vec<i64> = node.ledger.counters[whole].iter().map(|&(_, amount)| amount).collect();
    let result = allocate(
        NodeView { name: Sym::new("n1"), devices: &node, used: &DeviceSet::new(), drawn: &drawn },
        &[ClaimToAllocate { key: ClaimKey::new("default", "c0"), spec: &one }],
        Preference::FirstFit,
    );
    assert!(result.is_err(), "the whole GPU is allocated");
}

#[test]
fn a_device_drawing_on_a_counter_its_pool_does_not_publish_is_never_allocated() {
    let mut d = Device::clone(&device(GPU, "gpu-0", &[]));
    let counters = [(Arc::from("memory"), 1)].into_iter().collect();
    d.consumes_counters = vec![CounterConsumption { counter_set: Sym::new("missing"), counters }];
    let node = inventory(vec![Arc::new(d)]);
    assert!(run(&node, &DeviceSet::new(), &[spec(vec![request("gpu", exact(GPU, 1))], vec![])]).is_err());
}

/// A NIC shared by many claims: bandwidth 100 (milli-units here), requests rounded up to a
/// multiple of 10 from 10.
fn shared_nic(policy: Option<CapacityPolicy>) -> NodeDevices {
    let mut nic = Device::clone(&device(NIC, "nic-0", &[]));
    nic.allow_multiple_allocations = true;
    nic.capacity.insert(
        Arc::from("rdma.example.com/bandwidth"),
        Capacity { text: Arc::from("100m"), milli: 100, policy: policy.map(Arc::new) },
    );
    inventory(vec![Arc::new(nic)])
}

fn bandwidth(amount: Option<i64>) -> Arc<ClaimSpec> {
    let capacity = amount.map(|a| (Arc::from("bandwidth"), a)).into_iter().collect();
    spec(vec![request("nic", ExactRequest { capacity, ..exact(NIC, 1) })], vec![])
}

#[test]
fn claims_sharing_a_device_consume_its_capacity_as_its_request_policy_says() {
    let range = CapacityRange { min: 10, max: Some(60), step: Some(10) };
    let node = shared_nic(Some(CapacityPolicy { default: Some(20), valid_range: Some(range), ..Default::default() }));
    let consumed =
        |r: &[ClaimAllocation]| -> Vec<i64> { r.iter().map(|a| a.devices[0].consumed.values().sum()).collect() };
    // 25 rounds up to 30; 5 is raised to the minimum 10; unnamed takes the default 20.
    let r = run(&node, &DeviceSet::new(), &[bandwidth(Some(25)), bandwidth(Some(5)), bandwidth(None)]).unwrap();
    assert_eq!(consumed(&r), [30, 10, 20]);
    assert_eq!(r[0].devices[0].consumed.keys().map(|k| &**k).collect::<Vec<_>>(), ["rdma.example.com/bandwidth"]);
    let four = vec![bandwidth(Some(30)); 4];
    assert!(run(&node, &DeviceSet::new(), &four).is_err(), "4 x 30 passes 100");
    assert!(run(&node, &DeviceSet::new(), &four[..3]).is_ok(), "3 x 30 share it");
    assert!(run(&node, &DeviceSet::new(), &[bandwidth(Some(70))]).is_err(), "above the range's max");
    // Without a policy a claim that names no bandwidth takes all of it.
    let open = shared_nic(None);
    assert!(run(&open, &DeviceSet::new(), &[bandwidth(None), bandwidth(Some(1))]).is_err());
    assert!(run(&open, &DeviceSet::new(), &[bandwidth(Some(50)), bandwidth(Some(50))]).is_ok());
}

#[test]
fn capacity_consumption_follows_valid_values() {
    let policy = CapacityPolicy { default: Some(10), valid_values: vec![10, 40, 80], ..Default::default() };
    let c = Capacity { text: Arc::from("80"), milli: 80, policy: Some(Arc::new(policy)) };
    assert_eq!(
        [c.consumption(None), c.consumption(Some(1)), c.consumption(Some(41)), c.consumption(Some(81))],
        [Some(10), Some(10), Some(80), None]
    );
}

#[test]
fn a_selector_that_fails_to_evaluate_is_reported() {
    let node = paired_node(1);
    let missing =
        compile_cached("device.attributes[\"gpu.example.com\"].nosuch == 1").unwrap_or_else(|e| panic!("{e}"));
    let req = ExactRequest { selectors: vec![missing], ..exact(GPU, 1) };
    let err = run(&node, &DeviceSet::new(), &[spec(vec![request("gpu", req)], vec![])]).err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("request gpu") && text.contains("nosuch"), "{text}");
}

// ---- wiring ----

/// An 8-GPU node as a driver publishes it: NVLink cliques 0–3 and 4–7, GPUs 2i and 2i+1 under
/// one PCIe root with NIC i, GPUs 0–3 and NICs 0–1 on NUMA node 0.
fn wired_node() -> NodeDevices {
    let clique = "gpu.example.com/nvlinkClique";
    let numa = |i: usize| ("resource.kubernetes.io/numaNode", AttrValue::Int(i as i64));
    let mut devices: Vec<Arc<Device>> = (0..8)
        .map(|i| {
            let island = AttrValue::String(Arc::from(if i < 4 { "a" } else { "b" }));
            device(GPU, &format!("gpu-{i}"), &[root(&format!("pci{}", i / 2)), numa(i / 4), (clique, island)])
        })
        .collect();
    devices.extend((0..4).map(|i| device(NIC, &format!("nic-{i}"), &[root(&format!("pci{i}")), numa(i / 2)])));
    inventory(devices)
}

fn used(node: &NodeDevices, names: &[&str]) -> DeviceSet {
    let mut used = DeviceSet::new();
    used.extend(names.iter().filter_map(|n| node.devices.iter().position(|d| d.name.as_str() == *n)));
    used
}

/// First fit's and the wired preference's picks, in that order.
fn both(node: &NodeDevices, used: &DeviceSet, specs: &[Arc<ClaimSpec>]) -> [Vec<Vec<String>>; 2] {
    [Preference::FirstFit, Preference::Wiring].map(|p| match run_preferring(node, used, specs, p) {
        Ok(r) => picks(&r),
        Err(e) => panic!("{p:?}: {e}"),
    })
}

#[test]
fn a_four_gpu_claim_gets_a_whole_nvlink_clique_when_one_is_free() {
    let node = wired_node();
    let [first_fit, wired] =
        both(&node, &used(&node, &["gpu-0"]), &[spec(vec![request("gpu", exact(GPU, 4))], vec![])]);
    assert_eq!(wired, [["gpu=gpu-4", "gpu=gpu-5", "gpu=gpu-6", "gpu=gpu-7"]]);
    assert_eq!(first_fit, [["gpu=gpu-1", "gpu=gpu-2", "gpu=gpu-3", "gpu=gpu-4"]], "first fit spans both cliques");
}

#[test]
fn a_nic_asked_beside_a_gpu_comes_from_the_gpus_pcie_root_without_a_constraint() {
    let node = wired_node();
    let taken = used(&node, &["gpu-0", "gpu-1", "gpu-2", "gpu-3", "gpu-4"]);
    let one_each = spec(vec![request("gpu", exact(GPU, 1)), request("nic", exact(NIC, 1))], vec![]);
    let [first_fit, wired] = both(&node, &taken, &[one_each]);
    // gpu-5 leaves gpu-6 and gpu-7, one root and one clique, free together; nic-2 is under
    // gpu-5's root.
    assert_eq!(wired, [["gpu=gpu-5", "nic=nic-2"]]);
    assert_eq!(first_fit, [["gpu=gpu-5", "nic=nic-0"]]);
}

#[test]
fn a_pods_second_claim_is_wired_to_its_first_and_leaves_a_whole_pair_free() {
    let node = wired_node();
    let pair = spec(vec![request("gpu", exact(GPU, 2))], vec![]);
    let [first_fit, wired] = both(&node, &used(&node, &["gpu-0", "gpu-4"]), &[pair.clone(), pair]);
    // The first claim takes the pair under one root in a clique; the second joins gpu-1 to
    // them (the pod's four GPUs then have three NVLink pairs, where gpu-6 and gpu-7 would add
    // none to the first two) and takes gpu-5, which keeps gpu-6 and gpu-7 free together.
    assert_eq!(wired, [["gpu=gpu-2", "gpu=gpu-3"], ["gpu=gpu-1", "gpu=gpu-5"]]);
    assert_eq!(first_fit, [["gpu=gpu-1", "gpu=gpu-2"], ["gpu=gpu-3", "gpu=gpu-5"]]);
}

#[test]
fn the_wired_preference_finds_what_first_fit_finds_when_a_constraint_rules_out_the_best_devices() {
    let node = wired_node();
    // The best-wired GPU for one (gpu-5, as above) has no free NIC under its root: the
    // constraint sends the search on to gpu-6 or gpu-7, under nic-3.
    let taken = used(&node, &["gpu-0", "gpu-1", "gpu-2", "gpu-3", "gpu-4", "nic-2"]);
    let [_, wired] = both(&node, &taken, &[pair_spec()]);
    assert_eq!(wired, [["gpu=gpu-6", "nic=nic-3"]]);
}

// ---- properties ----

/// Whether `result` is a valid allocation of `specs` on the node: counts met, devices of the
/// right class, none used or given twice (outside admin access), constraints kept.
fn valid(devices: &NodeDevices, used: &DeviceSet, specs: &[Arc<ClaimSpec>], result: &[ClaimAllocation]) -> bool {
    let mut taken = std::collections::HashSet::new();
    for (s, a) in specs.iter().zip(result) {
        for r in &s.requests {
            let RequestKind::Exactly(exact) = &r.kind else { return false };
            let mine: Vec<_> = a.devices.iter().filter(|d| d.request == r.name).collect();
            let AllocationMode::ExactCount(n) = exact.mode else { return false };
            if mine.len() != n as usize || mine.iter().any(|d| d.device.driver != exact.class.name) {
                return false;
            }
        }
        for d in &a.devices {
            let Some(i) = devices.index_of(&d.device) else { return false };
            if used.contains(i) || !taken.insert(i) {
                return false;
            }
        }
        for c in &s.constraints {
            let Constraint::MatchAttribute { requests, attribute } = c else { return false };
            let values: Vec<_> = a
                .devices
                .iter()
                .filter(|d| requests.is_empty() || requests.contains(&d.request))
                .map(|d| devices.index_of(&d.device).and_then(|i| devices.devices[i].attribute(attribute)))
                .collect();
            if values.iter().any(Option::is_none) || values.windows(2).any(|w| w[0] != w[1]) {
                return false;
            }
        }
    }
    true
}

/// Whether any allocation exists, by trying every device for every wanted slot.
fn brute_force(devices: &NodeDevices, used: &DeviceSet, specs: &[Arc<ClaimSpec>]) -> bool {
    let mut slots: Vec<(usize, Arc<str>, Sym)> = Vec::new();
    for (c, s) in specs.iter().enumerate() {
        for r in &s.requests {
            let RequestKind::Exactly(exact) = &r.kind else { continue };
            let AllocationMode::ExactCount(n) = exact.mode else { continue };
            for _ in 0..n {
                slots.push((c, r.name.clone(), exact.class.name));
            }
        }
    }
    fn go(
        k: usize,
        slots: &[(usize, Arc<str>, Sym)],
        devices: &NodeDevices,
        used: &DeviceSet,
        specs: &[Arc<ClaimSpec>],
        chosen: &mut Vec<usize>,
    ) -> bool {
        if k == slots.len() {
            let result: Vec<ClaimAllocation> = (0..specs.len())
                .map(|c| ClaimAllocation {
                    claim: ClaimKey::new("default", &format!("c{c}")),
                    devices: slots
                        .iter()
                        .zip(chosen.iter())
                        .filter(|((sc, _, _), _)| *sc == c)
                        .map(|((_, r, _), &d)| AllocatedDevice {
                            request: r.clone(),
                            device: devices.devices[d].id(),
                            admin_access: false,
                            consumed: Default::default(),
                        })
                        .collect(),
                    node: None,
                    config: Vec::new(),
                })
                .collect();
            return valid(devices, used, specs, &result);
        }
        for d in 0..devices.len() {
            if devices.devices[d].driver != slots[k].2 || chosen.contains(&d) || used.contains(d) {
                continue;
            }
            chosen.push(d);
            if go(k + 1, slots, devices, used, specs, chosen) {
                return true;
            }
            chosen.pop();
        }
        false
    }
    go(0, &slots, devices, used, specs, &mut Vec::new())
}

fn arb_node() -> impl Strategy<Value = (NodeDevices, DeviceSet)> {
    let dev = (0..2usize, 0..3usize);
    (prop::collection::vec(dev, 1..7), any::<u8>()).prop_map(|(ds, used_bits)| {
        let devices = ds
            .iter()
            .enumerate()
            .map(|(i, &(kind, r))| device([GPU, NIC][kind], &format!("d{i}"), &[root(&format!("r{r}"))]))
            .collect();
        let node = inventory(devices);
        let mut used = DeviceSet::new();
        for i in (0..node.len()).filter(|i| used_bits & (1 << i) != 0) {
            used.insert(i);
        }
        (node, used)
    })
}

/// One to two claims, and sometimes a twin of the first (one template's claims).
fn arb_specs() -> impl Strategy<Value = Vec<Arc<ClaimSpec>>> {
    let one = (1..3u32, 0..2u32, any::<bool>()).prop_map(|(gpus, nics, matched)| {
        let mut requests = vec![request("gpu", exact(GPU, gpus))];
        if nics > 0 {
            requests.push(request("nic", exact(NIC, nics)));
        }
        spec(requests, if matched { vec![same_root(&[])] } else { vec![] })
    });
    (prop::collection::vec(one, 1..3), any::<bool>()).prop_map(|(mut specs, twin)| {
        if twin {
            specs.insert(1, specs[0].clone());
        }
        specs
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn allocations_are_valid_and_found_whenever_one_exists((node, used) in arb_node(), specs in arb_specs()) {
        for preference in [Preference::FirstFit, Preference::Wiring] {
            match run_preferring(&node, &used, &specs, preference) {
                Ok(result) => prop_assert!(valid(&node, &used, &specs, &result), "{preference:?} invalid: {:?}", picks(&result)),
                Err(e) => prop_assert!(!brute_force(&node, &used, &specs), "{preference:?} missed an allocation: {e}"),
            }
        }
    }
}
