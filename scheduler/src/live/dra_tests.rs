//! Inventories with slices not local to one node: who is told when such a slice or a node's
//! labels change, and where PreBind finds a device can be used from and whether it is shared.

use std::sync::Arc;

use k8s_openapi::api::resource::v1 as api;
use serde_json::{Value, json};
use tessera_plugins::dra::model::DeviceId;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;

use super::{DevicesChanged, DraObjects, Reach};
use crate::ingest;

/// A ResourceSlice `name` of driver `fabric.example.com`, pool `pool` (of `count` slices),
/// with devices `devices`, placed by `placement` (`nodeName`, `nodeSelector` or `allNodes`).
fn slice(name: &str, pool: &str, count: u32, devices: &[&str], placement: Value) -> api::ResourceSlice {
    let mut spec = json!({
        "driver": "fabric.example.com",
        "pool": {"name": pool, "generation": 1, "resourceSliceCount": count},
        "devices": devices.iter().map(|d| json!({"name": d})).collect::<Vec<_>>(),
    });
    if let (Some(spec), Some(placement)) = (spec.as_object_mut(), placement.as_object()) {
        spec.extend(placement.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn rack(value: &str) -> Value {
    json!({"nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "rack", "operator": "In", "values": [value]}
    ]}]}})
}

fn put(dra: &mut DraObjects, s: &api::ResourceSlice) -> Vec<(String, Vec<String>)> {
    let model = ingest::dra::resource_slice(s).unwrap();
    names(dra.put_slice(s.metadata.name.as_deref().unwrap(), Arc::new(model), s))
}

/// Each changed node with the devices (`pool/device`) it has now, by node name.
fn names(changed: Vec<DevicesChanged>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = changed
        .into_iter()
        .map(|(n, d)| (n.to_string(), d.devices.iter().map(|d| format!("{}/{}", d.pool, d.name)).collect()))
        .collect();
    out.sort();
    out
}

fn labels(rack: &str) -> LabelSet {
    LabelSet::from_pairs([("rack", rack)])
}

fn n(name: &str) -> Sym {
    Sym::new(name)
}

#[test]
fn an_all_nodes_slice_reaches_every_known_node_and_leaving_takes_it_from_each() {
    let mut dra = DraObjects::default();
    assert_eq!(dra.put_node(n("a0"), &labels("r1")), None, "no devices anywhere: nothing to tell");
    assert_eq!(dra.put_node(n("a1"), &labels("r2")), None);
    let all = slice("fabric", "fabric", 1, &["link-0"], json!({"allNodes": true}));
    let both = vec![("a0".to_string(), vec!["fabric/link-0".to_string()]), ("a1".into(), vec!["fabric/link-0".into()])];
    assert_eq!(put(&mut dra, &all), both);
    let devices = dra.devices_of(n("a0"));
    assert_eq!(devices.remote.iter().collect::<Vec<_>>(), [0], "marked as not local");
    // A node seen later reaches it too; the same labels again change nothing.
    let later = dra.put_node(n("a2"), &labels("r1")).expect("a new node reaches the allNodes slice");
    assert_eq!(later.devices.len(), 1);
    assert_eq!(dra.put_node(n("a2"), &labels("r1")), None);
    let gone = names(dra.drop_slice("fabric"));
    assert_eq!(gone.iter().map(|(n, d)| (n.as_str(), d.len())).collect::<Vec<_>>(), [("a0", 0), ("a1", 0), ("a2", 0)]);
}

#[test]
fn a_node_selector_slice_reaches_matching_nodes_and_follows_their_labels() {
    let mut dra = DraObjects::default();
    dra.put_node(n("s0"), &labels("r1"));
    dra.put_node(n("s1"), &labels("r2"));
    let local = slice("s1-gpus", "s1", 1, &["gpu-0"], json!({"nodeName": "s1"}));
    assert_eq!(put(&mut dra, &local), [("s1".to_string(), vec!["s1/gpu-0".to_string()])]);
    let shared = slice("r1-switch", "r1", 1, &["port-0"], rack("r1"));
    assert_eq!(put(&mut dra, &shared), [("s0".to_string(), vec!["r1/port-0".to_string()])], "s1 is in r2");
    // s1 moves to r1: it reaches the switch beside its own GPU; s0 leaves r1.
    let moved = dra.put_node(n("s1"), &labels("r1")).unwrap();
    let ids: Vec<String> = moved.devices.iter().map(|d| d.id().to_string()).collect();
    assert_eq!(ids, ["fabric.example.com/r1/port-0", "fabric.example.com/s1/gpu-0"]);
    assert_eq!(moved.remote.iter().collect::<Vec<_>>(), [0]);
    assert!(dra.put_node(n("s0"), &labels("r2")).unwrap().is_empty());
    // A node that is gone and back is told its devices again.
    dra.drop_node(n("s0"));
    assert_eq!(dra.put_node(n("s0"), &labels("r2")), None, "still nothing reaches s0");
    assert!(dra.put_node(n("s0"), &labels("r1")).is_some());
}

#[test]
fn a_shared_pool_is_used_once_complete_by_every_node_reaching_any_of_its_slices() {
    let mut dra = DraObjects::default();
    dra.put_node(n("p0"), &labels("r1"));
    dra.put_node(n("p1"), &labels("r2"));
    // The pool has two slices, one per rack: with one seen, it is incomplete where it reaches.
    let first = slice("pool-r1", "pool", 2, &["x-0"], rack("r1"));
    let model = ingest::dra::resource_slice(&first).unwrap();
    let changed = dra.put_slice("pool-r1", Arc::new(model), &first);
    assert_eq!(changed.len(), 1);
    assert_eq!((changed[0].0, changed[0].1.devices.len(), changed[0].1.incomplete.len()), (n("p0"), 0, 1));
    // The second slice reaches only p1, yet completes the pool for p0 too.
    let second = slice("pool-r2", "pool", 2, &["x-1"], rack("r2"));
    assert_eq!(
        put(&mut dra, &second),
        [("p0".to_string(), vec!["pool/x-0".to_string()]), ("p1".to_string(), vec!["pool/x-1".to_string()])]
    );
}

#[test]
fn without_shared_slices_a_node_change_computes_nothing_and_a_local_slice_tells_its_node_only() {
    let mut dra = DraObjects::default();
    dra.put_node(n("l0"), &labels("r1"));
    let local = slice("l0-gpus", "l0", 1, &["gpu-0"], json!({"nodeName": "l0"}));
    assert_eq!(put(&mut dra, &local), [("l0".to_string(), vec!["l0/gpu-0".to_string()])]);
    assert_eq!(dra.put_node(n("l0"), &labels("r9")), None, "labels do not matter to local slices");
    assert_eq!(put(&mut dra, &slice("l1-gpus", "l1", 1, &["gpu-0"], json!({"nodeName": "l1"}))).len(), 1);
}

#[test]
fn a_device_reaches_its_node_its_selector_or_every_node() {
    let mut dra = DraObjects::default();
    put(&mut dra, &slice("r0-gpus", "r0", 1, &["gpu-0"], json!({"nodeName": "r0"})));
    let switch = slice("r1-switch", "r1", 1, &["port-0"], rack("r1"));
    put(&mut dra, &switch);
    put(&mut dra, &slice("fabric", "fabric", 1, &["link-0"], json!({"allNodes": true})));
    let id = |pool: &str, device: &str| DeviceId {
        driver: Sym::new("fabric.example.com"),
        pool: Sym::new(pool),
        device: Sym::new(device),
    };
    assert_eq!(dra.reach_of(&id("r0", "gpu-0"), Some(n("r0"))), Some(Reach::Node(n("r0"))));
    assert_eq!(dra.reach_of(&id("r0", "gpu-0"), None), None, "local slices are looked at on their node only");
    assert_eq!(
        dra.reach_of(&id("r1", "port-0"), Some(n("r0"))),
        Some(Reach::Selector(switch.spec.node_selector.unwrap()))
    );
    assert_eq!(dra.reach_of(&id("fabric", "link-0"), None), Some(Reach::All));
    assert_eq!(dra.reach_of(&id("fabric", "link-9"), None), None);
    // Per-device placement is not read: its devices reach no node, and no allocation holds them.
    let per_device = slice("odd", "odd", 1, &["d-0"], json!({"perDeviceNodeSelection": true}));
    assert_eq!(put(&mut dra, &per_device), Vec::new());
    assert_eq!(dra.reach_of(&id("odd", "d-0"), None), None);
}

#[test]
fn a_device_is_found_on_its_node_or_in_the_newest_shared_slice_publishing_it() {
    let mut dra = DraObjects::default();
    let mut local = slice("r0-nics", "r0", 1, &["nic-0"], json!({"nodeName": "r0"}));
    if let Some(devices) = local.spec.devices.as_mut() {
        devices[0].allow_multiple_allocations = Some(true);
    }
    put(&mut dra, &local);
    put(&mut dra, &slice("fabric-1", "fabric", 1, &["link-0"], json!({"allNodes": true})));
    let mut newer = slice("fabric-2", "fabric", 1, &["link-0"], json!({"allNodes": true}));
    newer.spec.pool.generation = 2;
    if let Some(devices) = newer.spec.devices.as_mut() {
        devices[0].allow_multiple_allocations = Some(true);
    }
    put(&mut dra, &newer);
    let id = |pool: &str, device: &str| DeviceId {
        driver: Sym::new("fabric.example.com"),
        pool: Sym::new(pool),
        device: Sym::new(device),
    };
    let shared = |pool: &str, device: &str, node: Option<Sym>| {
        dra.device_of(&id(pool, device), node).map(|d| d.allow_multiple_allocations)
    };
    assert_eq!(shared("r0", "nic-0", Some(n("r0"))), Some(true));
    assert_eq!(shared("r0", "nic-0", None), None, "local slices are looked at on their node only");
    assert_eq!(shared("fabric", "link-0", None), Some(true), "the newer generation's device");
    assert_eq!(shared("fabric", "link-9", Some(n("r0"))), None);
}
