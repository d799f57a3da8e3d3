//! DRA through the engine: gangs whose members claim GPU+NIC pairs are placed whole with
//! every device and constraint satisfied, or not at all with a reason naming the claim and
//! request, in the step drive and in the parallel drive alike; a claim that can never be
//! allocated keeps only its own pod pending.

use std::sync::Arc;

use tessera_plugins::dra::model::{
    AllocationMode, ClaimKey, ClaimSpec, DeviceRequest, ExactRequest, PodClaim, RequestKind,
};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{Node, Pod, PodGroup, PodKey};
use tessera_plugins::registry::Registry;
use tessera_plugins::resources::ResourceVec;

use super::*;
use crate::bench::dra::DraWorld;

mod group;
mod ledger;
mod wiring;

fn world() -> DraWorld {
    DraWorld::new().unwrap()
}

/// A rack of `n` nodes of the DRA world (8 GPUs and 8 NICs each).
fn rack(world: &DraWorld, n: usize) -> Vec<Node> {
    crate::bench::dra::cluster(n, world, &mut rng::Rng::new(7))
}

fn engine(nodes: &[Node], workers: usize) -> Engine {
    let profiles = crate::config::default_config(&Registry::builtin()).unwrap().profiles;
    let mut e = Engine::new(profiles, EngineOptions { workers, seed: 5, ..EngineOptions::default() });
    for n in nodes {
        e.upsert_node(n.clone(), 0.0);
    }
    e
}

fn member(world: &DraWorld, gang: &str, i: usize, pairs: usize) -> Arc<Pod> {
    let mut p = world.pod("ml", &format!("{gang}-{i}"), pairs);
    p.scheduler_name = Sym::new("default-scheduler");
    p.pod_group = Some(Sym::new(gang));
    Arc::new(p)
}

fn add_gang(e: &mut Engine, world: &DraWorld, gang: &str, size: usize, pairs: usize) {
    e.upsert_pod_group(PodGroup::new("ml", gang, size as u32), 0.0);
    for i in 0..size {
        e.add_pod(member(world, gang, i, pairs), 0.0).unwrap();
    }
}

fn run(e: &mut Engine, workers: usize) -> Vec<Outcome> {
    run_at(e, workers, 0.0)
}

/// Schedules what is pending at `now`: the step drive with one worker, else the parallel one.
fn run_at(e: &mut Engine, workers: usize, now: f64) -> Vec<Outcome> {
    if workers == 1 { e.schedule_pending(now) } else { e.run_parallel(&|| now) }
}

fn verify(nodes: &[Node], e: &Engine, out: &[Outcome]) -> Vec<crate::verify::Violation> {
    let bound: Vec<_> = out.iter().filter_map(Outcome::bound).collect();
    verify_bound(nodes, e, &bound)
}

fn verify_bound(nodes: &[Node], e: &Engine, bound: &[crate::verify::BoundWithClaims]) -> Vec<crate::verify::Violation> {
    crate::verify::verify(nodes, bound, |p| {
        e.profiles().iter().find(|q| q.scheduler_name == p.scheduler_name.as_str()).map(|q| q.as_ref())
    })
}

/// Pod `name` in `ml` asking `requests`, with one claim of `spec` (entry `dev`).
fn pod_claiming(name: &str, requests: ResourceVec, spec: &Arc<ClaimSpec>) -> Arc<Pod> {
    let mut p = Pod::new("ml", name, requests);
    p.scheduler_name = Sym::new("default-scheduler");
    p.claims.push(PodClaim {
        name: Sym::new("dev"),
        key: ClaimKey::new("ml", &format!("{name}-dev")),
        spec: Ok(spec.clone()),
        shared: false,
        allocation: None,
        group: None,
    });
    Arc::new(p)
}

/// A claim for one device of `driver` (request `dev`), asking `capacity` of it (name,
/// milli-units) when given.
fn one_device(driver: &str, capacity: Option<(&str, i64)>) -> Arc<ClaimSpec> {
    let exact = ExactRequest {
        class: crate::bench::dra::class(driver).unwrap(),
        selectors: Vec::new(),
        mode: AllocationMode::ExactCount(1),
        admin_access: false,
        tolerations: Vec::new(),
        capacity: capacity.map(|(n, v)| (Arc::from(n), v)).into_iter().collect(),
    };
    let request = DeviceRequest { name: Arc::from("dev"), kind: RequestKind::Exactly(exact) };
    Arc::new(ClaimSpec { requests: vec![request], constraints: Vec::new(), config: Vec::new() })
}

#[test]
fn a_gang_of_17_pods_with_4_pairs_each_is_placed_whole_on_a_rack_of_18() {
    let w = world();
    let nodes = rack(&w, 18);
    for workers in [1, 2] {
        let mut e = engine(&nodes, workers);
        add_gang(&mut e, &w, "train", 17, 4);
        let out = run(&mut e, workers);
        let bound: Vec<_> = out.iter().filter_map(Outcome::bound).collect();
        assert_eq!(bound.len(), 17, "{workers} workers: every member is placed");
        assert!(bound.iter().all(|(_, _, claims)| claims.len() == 4 && claims.iter().all(|c| c.devices.len() == 2)));
        assert_eq!(verify(&nodes, &e, &out), [], "{workers} workers");
    }
}

#[test]
fn a_gang_that_needs_more_pairs_than_the_rack_has_is_not_placed_and_says_which_claim() {
    let w = world();
    let nodes = rack(&w, 2);
    for workers in [1, 2] {
        let mut e = engine(&nodes, workers);
        // Three pods of 6 pairs on two nodes of 8 pairs: two fit, the third does not.
        add_gang(&mut e, &w, "big", 3, 6);
        let out = run(&mut e, workers);
        assert!(out.iter().all(|o| o.bound().is_none()), "{workers} workers: nothing of the gang is bound");
        let message = out.iter().find_map(|o| match o {
            Outcome::Unschedulable { message, .. } => Some(message.clone()),
            _ => None,
        });
        let message = message.unwrap_or_default();
        assert!(message.contains("needs 3 pods, 2 fit"), "{message}");
        assert!(message.contains("cannot allocate all claims (claim pair-0, request gpu)"), "{message}");
        assert_eq!(e.state().placed_count(), 0);
    }
}

#[test]
fn pods_never_share_a_device_and_a_full_node_turns_the_next_pod_away() {
    let w = world();
    let nodes = rack(&w, 1);
    let mut e = engine(&nodes, 1);
    for i in 0..3 {
        let mut p = w.pod("ml", &format!("p{i}"), 4);
        p.scheduler_name = Sym::new("default-scheduler");
        e.add_pod(Arc::new(p), 0.0).unwrap();
    }
    let out = e.schedule_pending(0.0);
    assert_eq!(out.iter().filter(|o| o.bound().is_some()).count(), 2, "8 pairs hold two pods of 4");
    assert_eq!(verify(&nodes, &e, &out), []);
    let m = out.iter().find_map(|o| match o {
        Outcome::Unschedulable { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert_eq!(
        m.as_deref(),
        Some(
            "0/1 nodes are available: 1 cannot allocate all claims (claim pair-0, request gpu). \
             preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
        )
    );
}

#[test]
fn a_claim_that_can_never_be_allocated_keeps_only_its_pod_pending() {
    let w = world();
    let nodes = rack(&w, 1);
    let mut e = engine(&nodes, 1);
    let mut bad = w.pod("ml", "bad", 1);
    bad.scheduler_name = Sym::new("default-scheduler");
    bad.claims.push(PodClaim {
        name: Sym::new("extra"),
        key: ClaimKey::new("ml", "bad-extra"),
        spec: Err(Arc::from("resourceclaim ml/bad-extra: request \"x\": deviceclass \"nope\" not found")),
        shared: false,
        allocation: None,
        group: None,
    });
    let mut good = w.pod("ml", "good", 1);
    good.scheduler_name = Sym::new("default-scheduler");
    e.add_pod(Arc::new(bad), 0.0).unwrap();
    e.add_pod(Arc::new(good), 0.0).unwrap();
    let out = e.schedule_pending(0.0);
    let bound: Vec<String> = out.iter().filter_map(Outcome::bound).map(|(p, _, _)| p.name.to_string()).collect();
    assert_eq!(bound, ["good"]);
    let m = out.iter().find_map(|o| match o {
        Outcome::Unschedulable { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert!(m.unwrap_or_default().contains("deviceclass \"nope\" not found"));
    assert_eq!(
        e.state().snapshot().nodes().map(|n| n.devices_used.len()).sum::<usize>(),
        2,
        "only good's pair is held"
    );
}

#[test]
fn a_shared_claim_is_allocated_once_and_its_users_follow_it() {
    let w = world();
    let nodes = rack(&w, 4);
    let mut e = engine(&nodes, 1);
    let shared = |name: &str| {
        let mut p = Pod::new("ml", name, Default::default());
        p.scheduler_name = Sym::new("default-scheduler");
        p.claims.push(PodClaim {
            name: Sym::new("pair"),
            key: ClaimKey::new("ml", "team-pair"),
            spec: Ok(w.pair.clone()),
            shared: true,
            allocation: None,
            group: None,
        });
        Arc::new(p)
    };
    e.add_pod(shared("a"), 0.0).unwrap();
    let first = e.schedule_pending(0.0);
    let a_node = first.iter().find_map(Outcome::bound).map(|(_, n, _)| n);
    e.add_pod(shared("b"), 1.0).unwrap();
    let second = e.schedule_pending(1.0);
    let (_, b_node, b_claims) = second.iter().find_map(Outcome::bound).unwrap();
    assert_eq!(Some(b_node), a_node, "the second user goes where the claim is held");
    assert_eq!(b_claims.len(), 1);
    let held: usize = e.state().snapshot().nodes().map(|n| n.devices_used.len()).sum();
    assert_eq!(held, 2, "allocated once: one GPU and one NIC");
    e.core().delete_pod(&PodKey::new("ml", "a"), 2.0);
    assert_eq!(e.state().snapshot().nodes().map(|n| n.devices_used.len()).sum::<usize>(), 2, "b still uses it");
    e.core().delete_pod(&PodKey::new("ml", "b"), 3.0);
    assert_eq!(
        e.state().snapshot().nodes().map(|n| n.devices_used.len()).sum::<usize>(),
        0,
        "freed with its last user"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

    /// Random gangs and lone pods claiming pairs, on a few nodes, in either drive: no device is
    /// ever held twice, every bound pod's claims are allocated and kept, and no gang is partly
    /// bound — in the outcomes and in the engine's own state.
    #[test]
    fn no_device_is_held_twice_and_no_gang_is_partly_bound(
        nodes in 1usize..5,
        units in proptest::collection::vec((1usize..4, proptest::sample::select(vec![1usize, 2, 4, 8])), 1..10),
        workers in 1usize..3,
    ) {
        let w = world();
        let nodes = rack(&w, nodes);
        let mut e = engine(&nodes, workers);
        let mut sizes = std::collections::HashMap::new();
        for (u, &(size, pairs)) in units.iter().enumerate() {
            let gang = format!("g{u}");
            if size > 1 {
                add_gang(&mut e, &w, &gang, size, pairs);
                sizes.insert(gang, size);
            } else {
                let mut p = w.pod("ml", &gang, pairs);
                p.scheduler_name = Sym::new("default-scheduler");
                e.add_pod(Arc::new(p), 0.0).unwrap();
            }
        }
        let out = run(&mut e, workers);
        proptest::prop_assert_eq!(verify(&nodes, &e, &out), []);
        let mut bound = std::collections::HashMap::new();
        for (p, _, _) in out.iter().filter_map(Outcome::bound) {
            if let Some(g) = p.pod_group {
                *bound.entry(g.as_str().to_string()).or_insert(0) += 1;
            }
        }
        for (g, n) in &bound {
            proptest::prop_assert_eq!(*n, sizes[g], "gang {} partly bound", g);
        }
        let held: usize = e.state().snapshot().nodes().map(|n| n.devices_used.len()).sum();
        let claimed: usize = e.state().snapshot().nodes().flat_map(|n| n.pods.iter()).map(|p| 2 * p.claims.len()).sum();
        proptest::prop_assert_eq!(held, claimed, "every placed pair holds exactly its two devices");
    }
}

#[test]
fn a_gang_that_must_keep_to_one_rack_finds_the_only_rack_with_its_devices() {
    // Sixteen racks of one CPU-only node each look tighter by CPU than the one rack of DRA
    // nodes; only the DRA rack can hold the gang's claims.
    let w = world();
    let mut nodes: Vec<Node> =
        (0..16).map(|r| super::test_support::gpu_node(&format!("cpu-{r}"), &format!("r{r:02}"), 0)).collect();
    for mut n in rack(&w, 2) {
        n.labels.insert(Sym::new(super::test_support::RACK), Sym::new("r16"));
        nodes.push(n);
    }
    let mut e = engine(&nodes, 1);
    let mut group = PodGroup::new("ml", "train", 2);
    group.topology_key = Some(Sym::new(super::test_support::RACK));
    e.upsert_pod_group(group, 0.0);
    for i in 0..2 {
        e.add_pod(member(&w, "train", i, 1), 0.0).unwrap();
    }
    let out = e.schedule_pending(0.0);
    assert_eq!(out.iter().filter(|o| o.bound().is_some()).count(), 2, "{out:?}");
}

/// Device `name` of the DRA world's node `node`, allocated for the pair template's request of
/// its driver.
fn pair_device(node: Sym, driver: &str, name: &str) -> tessera_plugins::dra::model::AllocatedDevice {
    tessera_plugins::dra::model::AllocatedDevice {
        request: Arc::from(if driver == crate::bench::dra::GPU_DRIVER { "gpu" } else { "nic" }),
        device: tessera_plugins::dra::model::DeviceId { driver: Sym::new(driver), pool: node, device: Sym::new(name) },
        admin_access: false,
        consumed: Default::default(),
    }
}

#[test]
fn a_claim_the_api_records_allocated_holds_its_devices_without_a_pod_until_it_is_deallocated() {
    use tessera_plugins::dra::model::ClaimAllocation;
    let w = world();
    let nodes = rack(&w, 1);
    let node = nodes[0].name;
    let device = |driver: &str, name: &str| pair_device(node, driver, name);
    // Allocated by an earlier scheduler for a pod it had not bound yet; listed before the node.
    let key = ClaimKey::new("ml", "orphan-pair-0");
    let allocation = Arc::new(ClaimAllocation {
        claim: key,
        devices: vec![device(crate::bench::dra::GPU_DRIVER, "gpu-0"), device(crate::bench::dra::NIC_DRIVER, "nic-0")],
        node: Some(node),
        config: Vec::new(),
    });
    let mut e = engine(&[], 1);
    e.core().set_claim_allocation(key, Some((allocation, false)), 0.0);
    e.upsert_node(nodes[0].clone(), 0.0);
    let used = |e: &Engine| e.state().snapshot().nodes().map(|n| n.devices_used.len()).sum::<usize>();
    assert_eq!(used(&e), 2, "the claim holds its GPU and NIC on a node that arrived after it");
    let mut all = w.pod("ml", "all", 8);
    all.scheduler_name = Sym::new("default-scheduler");
    e.add_pod(Arc::new(all), 0.0).unwrap();
    assert!(e.schedule_pending(0.0).iter().all(|o| o.bound().is_none()), "7 pairs free, 8 wanted");
    e.core().set_claim_allocation(key, None, 1.0);
    assert_eq!(used(&e), 0, "deallocated: freed");
    let out = e.schedule_pending(2.0);
    assert_eq!(out.iter().filter(|o| o.bound().is_some()).count(), 1, "the waiting pod is woken and fits");
}

#[test]
fn a_pod_still_carrying_an_allocation_given_back_meanwhile_does_not_hold_its_devices_again() {
    use tessera_plugins::dra::model::ClaimAllocation;
    let w = world();
    let nodes = rack(&w, 1);
    let node = nodes[0].name;
    let device = |driver: &str, name: &str| pair_device(node, driver, name);
    let mut e = engine(&nodes, 1);
    // `fresh` takes gpu-0 and nic-0 (the first pair) while `stale`'s claim was given back.
    let mut fresh = w.pod("ml", "fresh", 1);
    fresh.scheduler_name = Sym::new("default-scheduler");
    e.add_pod(Arc::new(fresh), 0.0).unwrap();
    assert_eq!(e.schedule_pending(0.0).iter().filter(|o| o.bound().is_some()).count(), 1);
    // `stale` still carries the allocation its claim's status had before the give-back.
    let mut stale = w.pod("ml", "stale", 1);
    stale.scheduler_name = Sym::new("default-scheduler");
    stale.claims[0].allocation = Some(Arc::new(ClaimAllocation {
        claim: stale.claims[0].key,
        devices: vec![device(crate::bench::dra::GPU_DRIVER, "gpu-0"), device(crate::bench::dra::NIC_DRIVER, "nic-0")],
        node: Some(node),
        config: Vec::new(),
    }));
    e.add_pod(Arc::new(stale), 1.0).unwrap();
    let out = e.schedule_pending(1.0);
    assert!(out.iter().all(|o| o.bound().is_none()), "gpu-0 and nic-0 are fresh's now");
    let message = out.iter().find_map(|o| match o {
        Outcome::Unschedulable { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert!(message.is_some_and(|m| m.contains("records devices another claim holds now")));
    let held: usize = e.state().snapshot().nodes().map(|n| n.devices_used.len()).sum();
    assert_eq!(held, 2, "no device is held twice");
}
