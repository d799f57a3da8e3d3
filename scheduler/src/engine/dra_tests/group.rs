//! A gang's shared claim on devices that are not local to one node, through the engine: a
//! rack publishes fabric channels in a ResourceSlice for a `nodeSelector` (as an NVLink
//! fabric's IMEX channels are), and a PodGroup's claim takes one channel for all its pods,
//! which land on many nodes. The claim is allocated once, every member uses the same channel,
//! the channel shows as taken on every node of the rack, and it is freed with the last member.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_plugins::dra::inventory::NodeDevices;
use tessera_plugins::dra::model::{
    ClaimGroup, ClaimKey, ClaimSpec, Device, DeviceId, PodClaim, ResourceSlice, SliceNodes,
};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::{NodeSelector, NodeSelectorTerm, Operator, Requirement};
use tessera_plugins::model::{Node, Pod, PodGroup, PodKey};

use super::{engine, one_device, run, verify};
use crate::bench::dra::DraWorld;
use crate::engine::*;

const FABRIC: &str = "fabric.example.com";
const RACK: &str = "example.com/rack";

/// `n` nodes of the DRA world (8 GPU+NIC pairs each) labelled rack `r1`, which also reach
/// the rack's `channels` fabric channels (one slice for the rack's node selector).
fn rack(world: &DraWorld, n: usize, channels: usize) -> Vec<Node> {
    let selector = NodeSelector {
        terms: vec![NodeSelectorTerm {
            match_expressions: vec![Requirement {
                key: Sym::new(RACK),
                op: Operator::In,
                values: vec![Sym::new("r1")],
                bound: 0,
            }],
            match_fields: Vec::new(),
        }],
    };
    let fabric = Arc::new(ResourceSlice {
        name: Arc::from("r1-fabric"),
        driver: Sym::new(FABRIC),
        pool: Sym::new("r1"),
        generation: 1,
        slice_count: 1,
        nodes: SliceNodes::Selector(selector),
        devices: (0..channels).map(|i| channel(&format!("channel-{i}"))).collect(),
        shared_counters: Vec::new(),
    });
    crate::bench::dra::cluster(n, world, &mut rng::Rng::new(7))
        .into_iter()
        .map(|mut node| {
            node.labels.insert(Sym::new(RACK), Sym::new("r1"));
            let local = Arc::new(ResourceSlice {
                name: Arc::from(format!("{}-local", node.name)),
                driver: Sym::new("local"),
                pool: node.name,
                generation: 1,
                slice_count: 1,
                nodes: SliceNodes::Node(node.name),
                devices: node.devices.devices.clone(),
                shared_counters: Vec::new(),
            });
            node.devices = Arc::new(NodeDevices::for_node(node.name, &node.labels, &[local, fabric.clone()]));
            node
        })
        .collect()
}

fn channel(name: &str) -> Arc<Device> {
    Arc::new(Device {
        uid: Device::next_uid(),
        name: Sym::new(name),
        driver: Sym::new(FABRIC),
        pool: Sym::new("r1"),
        attributes: BTreeMap::new(),
        capacity: BTreeMap::new(),
        taints: Vec::new(),
        allow_multiple_allocations: false,
        consumes_counters: Vec::new(),
    })
}

/// Gang `gang` of `size` pods, each with `pairs` GPU+NIC pairs of its own and the group's
/// claim `<gang>-fabric` on one channel.
fn add_gang(e: &mut Engine, world: &DraWorld, spec: &Arc<ClaimSpec>, gang: &str, size: usize, pairs: usize) {
    e.upsert_pod_group(PodGroup::new("ml", gang, size as u32), 0.0);
    let group = Arc::new(ClaimGroup { name: Sym::new(gang), uid: Arc::from("") });
    for i in 0..size {
        let mut p: Pod = world.pod("ml", &format!("{gang}-{i}"), pairs);
        p.scheduler_name = Sym::new("default-scheduler");
        p.pod_group = Some(Sym::new(gang));
        p.claims.push(PodClaim {
            name: Sym::new("fabric"),
            key: ClaimKey::new("ml", &format!("{gang}-fabric")),
            spec: Ok(spec.clone()),
            shared: true,
            allocation: None,
            group: Some(group.clone()),
        });
        e.add_pod(Arc::new(p), 0.0).unwrap();
    }
}

/// How many nodes show fabric channel `name` as taken.
fn nodes_marking(e: &Engine, name: &str) -> usize {
    let id = DeviceId { driver: Sym::new(FABRIC), pool: Sym::new("r1"), device: Sym::new(name) };
    let taken = |n: &tessera_plugins::nodeinfo::NodeInfo| {
        n.node.devices.index_of(&id).is_some_and(|i| n.devices_used.contains(i))
    };
    e.state().snapshot().nodes().filter(|n| taken(n)).count()
}

#[test]
fn a_gang_of_17_with_4_pairs_each_and_a_group_claim_is_placed_whole_on_a_rack_of_18() {
    let w = DraWorld::new().unwrap();
    let spec = one_device(FABRIC, None);
    let nodes = rack(&w, 18, 1);
    for workers in [1, 2] {
        let mut e = engine(&nodes, workers);
        add_gang(&mut e, &w, &spec, "train", 17, 4);
        let out = run(&mut e, workers);
        let bound: Vec<_> = out.iter().filter_map(Outcome::bound).collect();
        assert_eq!(bound.len(), 17, "{workers} workers: every member is placed: {out:?}");
        let fabric: Vec<_> = bound
            .iter()
            .map(|(_, _, claims)| claims.iter().find(|c| c.claim.name.as_str() == "train-fabric").cloned())
            .collect();
        let first = fabric[0].clone().expect("the group claim is allocated");
        assert!(fabric.iter().all(|f| f.as_deref() == Some(&*first)), "{workers} workers: one allocation for all");
        assert_eq!(first.node, None, "reachable from the whole rack, not tied to one node");
        assert!(bound.iter().all(|(_, _, claims)| claims.len() == 5), "four pairs and the group's channel each");
        let nodes_used: std::collections::BTreeSet<_> = bound.iter().map(|(_, n, _)| *n).collect();
        assert_eq!(nodes_used.len(), 17, "one member per node: 4 pairs each, 8 per node, and the rack has 18");
        assert_eq!(verify(&nodes, &e, &out), [], "{workers} workers");
        assert_eq!(nodes_marking(&e, "channel-0"), 18, "the channel is taken on every node that reaches it");

        for i in 0..17 {
            e.core().delete_pod(&PodKey::new("ml", &format!("train-{i}")), 1.0);
        }
        assert_eq!(nodes_marking(&e, "channel-0"), 0, "{workers} workers: freed with the last member");
    }
}

#[test]
fn a_second_gang_finds_the_channel_taken_and_is_not_placed_naming_its_group_claim() {
    let w = DraWorld::new().unwrap();
    let spec = one_device(FABRIC, None);
    let nodes = rack(&w, 18, 1);
    for workers in [1, 2] {
        let mut e = engine(&nodes, workers);
        add_gang(&mut e, &w, &spec, "first", 2, 1);
        assert_eq!(run(&mut e, workers).iter().filter(|o| o.bound().is_some()).count(), 2);
        add_gang(&mut e, &w, &spec, "second", 17, 4);
        let out = run(&mut e, workers);
        assert!(out.iter().all(|o| o.bound().is_none()), "{workers} workers: nothing of the second gang is bound");
        let message = out
            .iter()
            .find_map(|o| match o {
                Outcome::Unschedulable { message, .. } => Some(message.clone()),
                _ => None,
            })
            .unwrap_or_default();
        assert!(message.contains("cannot allocate all claims (claim fabric, request dev)"), "{message}");
        assert_eq!(e.state().placed_count(), 2, "only the first gang holds anything");
    }
}

#[test]
fn two_gangs_take_two_channels_and_never_the_same_one() {
    let w = DraWorld::new().unwrap();
    let spec = one_device(FABRIC, None);
    let nodes = rack(&w, 8, 2);
    for workers in [1, 2] {
        let mut e = engine(&nodes, workers);
        add_gang(&mut e, &w, &spec, "a", 4, 2);
        add_gang(&mut e, &w, &spec, "b", 4, 2);
        let out = run(&mut e, workers);
        assert_eq!(out.iter().filter(|o| o.bound().is_some()).count(), 8, "{workers} workers");
        assert_eq!(verify(&nodes, &e, &out), [], "{workers} workers: no channel is held twice");
        assert_eq!((nodes_marking(&e, "channel-0"), nodes_marking(&e, "channel-1")), (8, 8));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Random gangs with a group claim on the rack's few channels, in either drive, then some
    /// members deleted: no channel is ever held by two claims, every member of a gang sees its
    /// one allocation, no gang is partly bound, and the engine marks a channel taken on every
    /// node exactly while a placed pod's claim holds it.
    #[test]
    fn channels_are_never_held_twice_and_gangs_are_whole(
        nodes in 2usize..6,
        channels in 1usize..3,
        gangs in proptest::collection::vec((1usize..4, 1usize..4), 1..5),
        workers in 1usize..3,
        deleted in proptest::collection::vec(proptest::bits::u8::ANY, 1),
    ) {
        let w = DraWorld::new().unwrap();
        let spec = one_device(FABRIC, None);
        let nodes = rack(&w, nodes, channels);
        let mut e = engine(&nodes, workers);
        for (g, &(size, pairs)) in gangs.iter().enumerate() {
            add_gang(&mut e, &w, &spec, &format!("g{g}"), size, pairs);
        }
        let out = run(&mut e, workers);
        proptest::prop_assert_eq!(verify(&nodes, &e, &out), []);
        let bound: Vec<_> = out.iter().filter_map(Outcome::bound).collect();
        for (g, &(size, _)) in gangs.iter().enumerate() {
            let n = bound.iter().filter(|(p, _, _)| p.pod_group == Some(Sym::new(&format!("g{g}")))).count();
            proptest::prop_assert!(n == 0 || n == size, "gang g{} has {} of {} bound", g, n, size);
        }
        for (p, _, _) in bound.iter().filter(|(p, _, _)| p.name.len() % 2 == usize::from(deleted[0] % 2)) {
            e.core().delete_pod(&p.key(), 1.0);
        }
        for c in 0..channels {
            let name = format!("channel-{c}");
            let holders = e.state().snapshot().nodes().flat_map(|n| n.claims.iter()).filter(|h| {
                h.allocation.devices.iter().any(|d| d.device.device.as_str() == name)
            });
            let held = holders.count() > 0;
            proptest::prop_assert_eq!(nodes_marking(&e, &name), if held { nodes.len() } else { 0 }, "{}", name);
        }
    }
}

#[test]
fn a_channel_the_api_records_allocated_is_taken_on_every_node_that_arrives_until_deallocated() {
    use tessera_plugins::dra::model::{AllocatedDevice, ClaimAllocation};
    let w = DraWorld::new().unwrap();
    let spec = one_device(FABRIC, None);
    let nodes = rack(&w, 3, 1);
    let key = ClaimKey::new("ml", "earlier-fabric");
    let allocation = Arc::new(ClaimAllocation {
        claim: key,
        devices: vec![AllocatedDevice {
            request: Arc::from("dev"),
            device: DeviceId { driver: Sym::new(FABRIC), pool: Sym::new("r1"), device: Sym::new("channel-0") },
            admin_access: false,
            consumed: Default::default(),
        }],
        node: None,
        config: Vec::new(),
    });
    // Claims are listed before nodes, as at a restart.
    let mut e = engine(&[], 1);
    e.core().set_claim_allocation(key, Some((allocation, true)), 0.0);
    for n in &nodes {
        e.upsert_node(n.clone(), 0.0);
    }
    assert_eq!(nodes_marking(&e, "channel-0"), 3);
    add_gang(&mut e, &w, &spec, "late", 2, 1);
    assert!(run(&mut e, 1).iter().all(|o| o.bound().is_none()), "the only channel is held");
    e.core().set_claim_allocation(key, None, 1.0);
    assert_eq!(nodes_marking(&e, "channel-0"), 0, "deallocated: freed everywhere");
    assert_eq!(e.schedule_pending(2.0).iter().filter(|o| o.bound().is_some()).count(), 2);
}
