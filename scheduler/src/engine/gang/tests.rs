//! Gang tests: PreEnqueue, all-or-nothing in both drives, topology, reservations against
//! starvation, timeouts, and the proptest invariant that no gang is ever partly bound.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GroupKey, Node, Pod, PodGroup, PodGroupApi, PodKey};
use tessera_plugins::registry::Registry;
use tessera_plugins::resources::ResourceVec;

use super::GangOptions;
use crate::engine::test_support::{RACK, gpu_node, gpu_pod, shared_gpu_pod};
use crate::engine::*;

fn member(gang: &str, i: usize, gpus: u32) -> Arc<Pod> {
    let mut p = gpu_pod(&format!("{gang}-{i}"), gpus);
    p.pod_group = Some(Sym::new(gang));
    Arc::new(p)
}

/// Registers `group` and adds `size` members of it, each asking `gpus` GPUs, at `now`.
fn add_gang(e: &mut Engine, group: PodGroup, size: usize, gpus: u32, now: f64) {
    let name = group.key.name;
    e.upsert_pod_group(group, now);
    for i in 0..size {
        e.add_pod(member(name.as_str(), i, gpus), now).unwrap();
    }
}

fn solo(name: &str, gpus: u32) -> Arc<Pod> {
    shared_gpu_pod(name, gpus)
}

fn engine_with(nodes: &[Node], workers: usize, gang: GangOptions) -> Engine {
    let profiles = crate::config::default_config(&Registry::builtin()).unwrap().profiles;
    let mut e = Engine::new(profiles, EngineOptions { workers, seed: 3, gang, ..EngineOptions::default() });
    for n in nodes {
        e.upsert_node(n.clone(), 0.0);
    }
    e
}

fn engine(nodes: &[Node]) -> Engine {
    engine_with(nodes, 1, GangOptions::default())
}

fn rack_of(nodes: usize, rack: &str, gpus: usize) -> Vec<Node> {
    (0..nodes).map(|i| gpu_node(&format!("{rack}-n{i}"), rack, gpus)).collect()
}

/// Bound pods per gang name.
fn bound_by_gang(outcomes: &[Outcome]) -> HashMap<String, Vec<Sym>> {
    let mut by = HashMap::new();
    for o in outcomes {
        if let Outcome::Bound { pod, node, .. } = o {
            let g = pod.pod_group.map_or_else(String::new, |g| g.as_str().to_string());
            by.entry(g).or_insert_with(Vec::new).push(*node);
        }
    }
    by
}

fn messages(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Unschedulable { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_gang_waits_for_its_group_and_min_count_then_binds_whole() {
    let mut e = engine(&rack_of(2, "r1", 8));
    assert_eq!(e.add_pod(member("g", 0, 1), 0.0).unwrap(), Admission::Waiting);
    assert_eq!(e.add_pod(member("g", 1, 1), 0.0).unwrap(), Admission::Waiting);
    let why: Vec<String> = e.waiting_gang_members().map(|(_, w)| w).collect();
    assert_eq!(why, ["pod group ml/g does not exist", "pod group ml/g does not exist"]);
    e.upsert_pod_group(PodGroup::new("ml", "g", 3), 0.0);
    assert!(e.schedule_pending(0.0).is_empty(), "2 of 3 members: nothing is tried");
    assert_eq!(e.waiting_gang_members().next().map(|(_, w)| w).as_deref(), Some("gang ml/g waits for 3 pods, 2 exist"));
    assert_eq!(e.add_pod(member("g", 2, 1), 1.0).unwrap(), Admission::Queued);
    let out = e.schedule_pending(1.0);
    assert_eq!(bound_by_gang(&out)["g"].len(), 3);
    // Admitted: a late member schedules on its own.
    assert_eq!(e.add_pod(member("g", 3, 1), 2.0).unwrap(), Admission::Queued);
    assert_eq!(bound_by_gang(&e.schedule_pending(2.0))["g"].len(), 1);
    assert_eq!(e.gang_records()["ml/g"].bound, 4);
}

#[test]
fn two_gangs_that_each_want_sixty_percent_end_one_placed_one_pending() {
    for workers in [1, 2] {
        let nodes = rack_of(10, "r1", 8);
        let mut e = engine_with(&nodes, workers, GangOptions::default());
        for g in ["a", "b"] {
            add_gang(&mut e, PodGroup::new("ml", g, 6), 6, 8, 0.0);
        }
        let out = if workers == 1 { e.schedule_pending(0.0) } else { e.run_parallel(&|| 0.0) };
        let by = bound_by_gang(&out);
        assert_eq!(by.len(), 1, "exactly one gang placed ({workers} workers): {by:?}");
        assert!(by.values().all(|nodes| nodes.len() == 6));
        let m = messages(&out);
        assert!(m.iter().any(|m| m.starts_with("gang ml/") && m.contains("needs 6 pods, 4 fit")), "{m:?}");
        assert_eq!(e.state().placed_count(), 6, "nothing of the other gang is held");
    }
}

#[test]
fn the_shortfall_names_the_gang_and_why() {
    let mut e = engine(&rack_of(2, "r1", 8));
    add_gang(&mut e, PodGroup::new("ml", "train", 4), 4, 6, 0.0);
    let m = messages(&e.schedule_pending(0.0));
    assert_eq!(m, ["gang ml/train needs 4 pods, 2 fit: 2 Insufficient nvidia.com/gpu."]);
}

#[test]
fn a_topology_key_keeps_the_gang_in_the_tightest_domain_that_holds_it() {
    let mut nodes = rack_of(4, "big", 8);
    nodes.extend(rack_of(2, "small", 8));
    let mut e = engine(&nodes);
    let mut g = PodGroup::new("ml", "g", 2);
    g.topology_key = Some(Sym::new(RACK));
    add_gang(&mut e, g, 2, 8, 0.0);
    let by = bound_by_gang(&e.schedule_pending(0.0));
    assert!(by["g"].iter().all(|n| n.as_str().starts_with("small-")), "{by:?}");
}

#[test]
fn a_topology_key_no_domain_can_hold_leaves_the_gang_pending() {
    let mut nodes = rack_of(2, "r1", 8);
    nodes.extend(rack_of(2, "r2", 8));
    let mut e = engine(&nodes);
    let mut g = PodGroup::new("ml", "g", 3);
    g.topology_key = Some(Sym::new(RACK));
    add_gang(&mut e, g, 3, 8, 0.0);
    let out = e.schedule_pending(0.0);
    assert!(bound_by_gang(&out).is_empty(), "three full nodes fit the cluster but no rack");
    assert_eq!(messages(&out), [format!("gang ml/g needs 3 pods, 2 fit in {RACK}=r1: 1 Insufficient nvidia.com/gpu.")]);
}

#[test]
fn a_hierarchy_prefers_one_rack() {
    let mut nodes = rack_of(4, "r1", 8);
    nodes.extend(rack_of(4, "r2", 8));
    // Half of each rack busy, so a rack-blind spread would straddle them.
    let mut e =
        engine_with(&nodes, 1, GangOptions { topology_hierarchy: vec![Sym::new(RACK)], ..GangOptions::default() });
    for (i, n) in ["r1-n0", "r1-n1", "r2-n0"].iter().enumerate() {
        let mut p = Pod::clone(&solo(&format!("busy{i}"), 8));
        p.node_name = Some(Sym::new(n));
        e.add_pod(Arc::new(p), 0.0).unwrap();
    }
    add_gang(&mut e, PodGroup::new("ml", "g", 3), 3, 8, 0.0);
    let by = bound_by_gang(&e.schedule_pending(0.0));
    assert!(by["g"].iter().all(|n| n.as_str().starts_with("r2-")), "the rack with room for all: {by:?}");
}

#[test]
fn a_smaller_min_count_lets_a_waiting_gang_in_and_a_larger_one_takes_it_back() {
    let mut e = engine(&rack_of(1, "r1", 8));
    add_gang(&mut e, PodGroup::new("ml", "g", 4), 3, 1, 0.0);
    assert!(e.schedule_pending(0.0).is_empty());
    e.upsert_pod_group(PodGroup::new("ml", "g", 3), 1.0);
    assert_eq!(bound_by_gang(&e.schedule_pending(1.0))["g"].len(), 3, "re-evaluated with minCount 3");

    let mut e = engine(&rack_of(1, "r1", 8));
    add_gang(&mut e, PodGroup::new("ml", "h", 2), 2, 1, 0.0);
    e.upsert_pod_group(PodGroup::new("ml", "h", 3), 0.0);
    assert!(e.schedule_pending(0.0).is_empty(), "the queued unit went back to wait");
    assert_eq!(e.waiting_gang_members().count(), 2);
}

#[test]
fn deleting_a_member_of_a_queued_gang_sends_the_rest_back_to_wait() {
    let mut e = engine(&rack_of(1, "r1", 8));
    add_gang(&mut e, PodGroup::new("ml", "g", 2), 2, 1, 0.0);
    assert!(e.delete_pod(&PodKey::new("ml", "g-0"), 0.0));
    assert!(e.schedule_pending(0.0).is_empty());
    assert_eq!(e.waiting_gang_members().map(|(p, _)| p.name.to_string()).collect::<Vec<_>>(), ["g-1"]);
    e.add_pod(member("g", 2, 1), 1.0).unwrap();
    assert_eq!(bound_by_gang(&e.schedule_pending(1.0))["g"].len(), 2);
}

#[test]
fn a_coscheduling_gang_times_out_into_backoff() {
    let mut e = engine(&rack_of(1, "r1", 8));
    let mut g = PodGroup::new("ml", "g", 2);
    g.api = PodGroupApi::Coscheduling;
    g.schedule_timeout_s = Some(5.0);
    add_gang(&mut e, g, 2, 8, 0.0);
    e.schedule_pending(0.0);
    assert_eq!(e.gang_records()["ml/g"].timeouts, 0);
    // A node event at t=6 brings it back; it fails past its timeout and backs off.
    e.upsert_node(gpu_node("extra", "r2", 4), 6.0);
    e.schedule_pending(7.0);
    assert_eq!(e.gang_records()["ml/g"].timeouts, 1);
    assert!(e.queue().backoff_units().any(|u| u.gang.is_some()), "in backoff, not parked");
    assert!(e.reservation().is_none(), "a gang that can never fit holds nothing");
}

/// The starvation case: a 64-pod gang arrives behind running 1-GPU jobs while a stream of
/// new 1-GPU jobs keeps arriving, each running 30 s. Returns when the gang was admitted.
fn starvation(reservation: bool, horizon: u32) -> Option<f64> {
    let nodes = rack_of(8, "r1", 8);
    let mut e = engine_with(&nodes, 1, GangOptions { reservation, ..GangOptions::default() });
    let mut ends: Vec<(f64, PodKey)> = Vec::new();
    let mut n = 0;
    let run = |e: &mut Engine, ends: &mut Vec<(f64, PodKey)>, now: f64| {
        for o in e.schedule_pending(now) {
            if let Outcome::Bound { pod, .. } = o
                && pod.pod_group.is_none()
            {
                ends.push((now + 30.0, pod.key()));
            }
        }
    };
    // The cluster is full of jobs ending at staggered times.
    for i in 0..64 {
        e.add_pod(solo(&format!("job{i}"), 1), 0.0).unwrap();
    }
    run(&mut e, &mut ends, 0.0);
    for (i, end) in ends.iter_mut().enumerate() {
        end.0 = 1.0 + (i % 30) as f64;
    }
    add_gang(&mut e, PodGroup::new("ml", "big", 64), 64, 1, 0.5);
    run(&mut e, &mut ends, 0.5);
    for t in 1..=horizon {
        let now = f64::from(t);
        let (done, rest): (Vec<_>, Vec<_>) = ends.into_iter().partition(|(end, _)| *end <= now);
        ends = rest;
        for (_, key) in done {
            e.delete_pod(&key, now);
        }
        for _ in 0..2 {
            n += 1;
            e.add_pod(solo(&format!("stream{n}"), 1), now).unwrap();
        }
        run(&mut e, &mut ends, now);
        if let Some(at) = e.gang_records()["ml/big"].admitted_at {
            return Some(at);
        }
    }
    None
}

#[test]
fn a_big_gang_behind_a_stream_of_small_jobs_is_admitted_within_the_reservation_bound() {
    let bound = GangOptions::default().reservation_s;
    let admitted = starvation(true, 600);
    assert!(admitted.is_some_and(|t| t <= 0.5 + bound), "admitted at {admitted:?}, bound {bound} s");
    assert_eq!(starvation(false, 600), None, "without a reservation the stream starves it");
}

prop_compose! {
    fn cluster()(racks in 1usize..4, per_rack in 1usize..4, gpus in prop::sample::select(vec![2usize, 4, 8]))
        -> Vec<Node> {
        (0..racks).flat_map(|r| rack_of(per_rack, &format!("r{r}"), gpus)).collect()
    }
}

prop_compose! {
    fn gangs()(specs in prop::collection::vec((1usize..6, 1u32..5, any::<bool>(), 1u32..6), 1..6))
        -> Vec<(usize, u32, bool, u32)> {
        specs
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_gang_is_ever_partly_bound_and_no_node_is_over_committed(
        nodes in cluster(),
        gangs in gangs(),
        workers in 1usize..3,
        hierarchy in any::<bool>(),
    ) {
        let opts = GangOptions {
            topology_hierarchy: if hierarchy { vec![Sym::new(RACK)] } else { vec![] },
            ..GangOptions::default()
        };
        let mut e = engine_with(&nodes, workers, opts);
        let mut min_counts = HashMap::new();
        for (g, (size, gpus, rack, min)) in gangs.iter().enumerate() {
            let name = format!("g{g}");
            let min = (*min as usize).min(*size) as u32;
            let mut group = PodGroup::new("ml", &name, min);
            group.topology_key = rack.then(|| Sym::new(RACK));
            e.upsert_pod_group(group, 0.0);
            min_counts.insert(name.clone(), min as usize);
            for i in 0..*size {
                e.add_pod(member(&name, i, *gpus), 0.0).unwrap();
            }
        }
        let out = if workers == 1 { e.schedule_pending(0.0) } else { e.run_parallel(&|| 0.0) };
        for (g, nodes) in bound_by_gang(&out) {
            prop_assert!(nodes.len() >= min_counts[&g], "gang {} partly bound: {} of {}", g, nodes.len(), min_counts[&g]);
        }
        for (g, &min) in &min_counts {
            let placed = e.state().snapshot().nodes().flat_map(|n| n.pods.iter())
                .filter(|p| p.group_key() == Some(GroupKey::new("ml", g))).count();
            prop_assert!(placed == 0 || placed >= min, "gang {} holds {} of {} in the state", g, placed, min);
        }
        for n in e.state().snapshot().nodes() {
            for i in 0..n.node.gpus.len() {
                prop_assert!(n.gpu_used[i] <= 1000, "node {} GPU {} over-committed", n.name(), i);
            }
            let free = n.free();
            prop_assert!(free.covers(&ResourceVec::ZERO), "node {} over-committed: {:?}", n.name(), free);
        }
    }
}

#[test]
fn a_reservation_holds_nodes_against_other_pods_until_the_gang_lands() {
    let mut e = engine(&rack_of(2, "r1", 8));
    let mut busy = Pod::clone(&solo("busy", 4));
    busy.node_name = Some(Sym::new("r1-n0"));
    e.add_pod(Arc::new(busy), 0.0).unwrap();
    add_gang(&mut e, PodGroup::new("ml", "g", 2), 2, 8, 0.0);
    assert!(bound_by_gang(&e.schedule_pending(0.0)).is_empty());
    let held = e.reservation().map(|r| r.nodes.clone());
    assert_eq!(held, Some(vec![0, 1]), "both nodes, as if empty");
    assert!(e.state().snapshot().has_reservations());
    e.add_pod(solo("small", 0), 1.0).unwrap();
    let m = messages(&e.schedule_pending(1.0));
    assert_eq!(
        m,
        ["0/2 nodes are available: 2 node(s) were reserved for a waiting gang. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."]
    );
    e.delete_pod(&PodKey::new("ml", "busy"), 2.0);
    let out = e.schedule_pending(12.0);
    assert_eq!(bound_by_gang(&out)["g"].len(), 2, "{out:?}");
    assert!(e.reservation().is_none() && !e.state().snapshot().has_reservations(), "released once placed");
    assert_eq!(bound_by_gang(&out)[""].len(), 1, "the release lets the small pod in at once");
}

#[test]
fn a_lapsed_hold_and_a_short_timeout_do_not_keep_the_engine_busy_forever() {
    // A pod that never leaves keeps the gang from fitting, though the node would hold it empty:
    // the gang holds the node once, the hold lapses, the gang times out once and backs off, and
    // then nothing more is due.
    let mut e = engine(&rack_of(1, "r1", 8));
    let mut busy = Pod::clone(&solo("busy", 1));
    busy.node_name = Some(Sym::new("r1-n0"));
    e.add_pod(Arc::new(busy), 0.0).unwrap();
    let mut g = PodGroup::new("ml", "g", 2);
    (g.api, g.schedule_timeout_s) = (PodGroupApi::Coscheduling, Some(0.5));
    add_gang(&mut e, g, 2, 4, 0.0);
    e.schedule_pending(0.0);
    assert!(e.reservation().is_some());
    let mut steps = 0;
    while let Some(t) = e.next_wakeup() {
        steps += 1;
        assert!(steps < 20, "still waking at {t}: {:?}", e.gang_records());
        e.schedule_pending(t);
    }
    assert!(e.reservation().is_none(), "the hold lapsed and was not taken again");
    assert_eq!(e.gang_records()["ml/g"].timeouts, 1);
}

#[test]
fn the_parallel_drive_ends_when_gangs_time_out_and_holds_are_released() {
    let nodes = rack_of(4, "r1", 8);
    let mut e = engine_with(&nodes, 2, GangOptions::default());
    let mut g = PodGroup::new("ml", "never", 3);
    (g.api, g.schedule_timeout_s) = (PodGroupApi::Coscheduling, Some(0.0));
    add_gang(&mut e, g, 3, 16, 0.0);
    add_gang(&mut e, PodGroup::new("ml", "fits", 4), 4, 8, 0.0);
    for i in 0..20 {
        e.add_pod(solo(&format!("s{i}"), 0), 0.0).unwrap();
    }
    let start = std::time::Instant::now();
    let out = e.run_parallel(&move || start.elapsed().as_secs_f64());
    let by = bound_by_gang(&out);
    assert_eq!((by["fits"].len(), by[""].len()), (4, 20), "{by:?}");
    assert!(!by.contains_key("never"));
}

#[test]
fn a_pod_given_twice_is_reported_not_retried_forever() {
    let mut e = engine(&rack_of(1, "r1", 8));
    e.add_pod(solo("twice", 1), 0.0).unwrap();
    e.add_pod(solo("twice", 1), 0.0).unwrap();
    let out = e.schedule_pending(0.0);
    assert_eq!(out.iter().filter(|o| matches!(o, Outcome::Bound { .. })).count(), 1);
    let m = messages(&out);
    assert_eq!(m.len(), 1);
    assert!(m[0].contains("ml/twice"), "{m:?}");
}

#[test]
fn a_recreated_pod_group_is_all_or_nothing_again() {
    let mut e = engine(&rack_of(1, "r1", 8));
    add_gang(&mut e, PodGroup::new("ml", "g", 2), 2, 1, 0.0);
    assert_eq!(bound_by_gang(&e.schedule_pending(0.0))["g"].len(), 2);
    // The job is deleted (its pods, then its group) and submitted again under the same name.
    for i in 0..2 {
        e.delete_pod(&PodKey::new("ml", &format!("g-{i}")), 1.0);
    }
    e.remove_pod_group(GroupKey::new("ml", "g"), 1.0);
    e.upsert_pod_group(PodGroup::new("ml", "g", 2), 1.0);
    assert_eq!(e.add_pod(member("g", 5, 1), 1.0).unwrap(), Admission::Waiting, "not admitted any more");
}

#[test]
fn members_already_running_count_toward_the_gang() {
    let mut e = engine(&rack_of(2, "r1", 8));
    e.upsert_pod_group(PodGroup::new("ml", "g", 2), 0.0);
    for (i, n) in ["r1-n0", "r1-n1"].iter().enumerate() {
        let mut p = Pod::clone(&member("g", i, 1));
        p.node_name = Some(Sym::new(n));
        assert_eq!(e.add_pod(Arc::new(p), 0.0).unwrap(), Admission::Running);
    }
    assert_eq!(e.gang_records()["ml/g"].bound, 2);
    assert_eq!(e.add_pod(member("g", 2, 1), 1.0).unwrap(), Admission::Queued, "a replacement joins the running gang");
}

#[test]
fn min_resources_beyond_what_is_free_keep_the_gang_out_without_a_try() {
    let mut e = engine(&rack_of(1, "r1", 8));
    let mut g = PodGroup::new("ml", "g", 1);
    g.api = PodGroupApi::Coscheduling;
    g.min_resources = Some(ResourceVec::cpu_mem(128_000, 1 << 30));
    e.upsert_pod_group(g, 0.0);
    e.add_pod(member("g", 0, 1), 0.0).unwrap();
    let m = messages(&e.schedule_pending(0.0));
    assert_eq!(m, ["gang ml/g needs 1 pods, 0 fit: 1 Insufficient cpu for minResources."]);
    // Changing the group re-forms the queued gang with the new settings.
    let mut g = PodGroup::new("ml", "g", 1);
    g.min_resources = Some(ResourceVec::cpu_mem(1_000, 1 << 30));
    e.upsert_pod_group(g, 1.0);
    assert_eq!(bound_by_gang(&e.schedule_pending(1.0))["g"].len(), 1);
}
