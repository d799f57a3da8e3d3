//! Engine tests: the drives agree, the binder never over-commits, conflicts change nothing.

use std::sync::Arc;

use proptest::prelude::*;
use tessera_plugins::framework::{Profile, WeightedScore};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{HostPort, Node, Pod};
use tessera_plugins::registry::Registry;
use tessera_plugins::resources::ResourceVec;

use super::binder::{Binder, Verdict};
use super::queue::Unit;
use super::worker::{Attempt, Worker};
use super::*;

/// A small profile of resource and port plugins, built the way configuration builds one.
pub(crate) fn test_profile() -> Profile {
    let r = Registry::builtin();
    let make = |n: &str| r.make(n, None).unwrap();
    let fit = make("NodeResourcesFit");
    let ports = make("NodePorts");
    let name = make("NodeName");
    Profile {
        scheduler_name: "default-scheduler".into(),
        pre_filter: vec![name.clone(), ports.clone()],
        filter: vec![name, ports, fit.clone()],
        score: vec![WeightedScore { plugin: fit, weight: 1 }],
        ..Profile::default()
    }
}

fn node(i: usize, cpu: i64, pods: u32) -> Node {
    let name = format!("n{i}");
    Node {
        name: Sym::new(&name),
        labels: LabelSet::from_pairs([("kubernetes.io/hostname", name.as_str())]),
        taints: vec![],
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(cpu, 64 << 30),
        allowed_pods: pods,
        images: vec![],
        gpus: Vec::new(),
        devices: Default::default(),
    }
}

fn pod(i: usize, cpu: i64, port: Option<u16>) -> Arc<Pod> {
    let mut p = Pod::new("default", &format!("p{i}"), ResourceVec::cpu_mem(cpu, 1 << 20));
    p.scheduler_name = Sym::new("default-scheduler");
    if let Some(port) = port {
        p.host_ports.push(HostPort { ip: None, protocol: Sym::new("TCP"), port });
    }
    Arc::new(p)
}

fn engine(nodes: &[Node], workers: usize) -> Engine {
    let mut e = Engine::new(vec![test_profile()], EngineOptions { workers, seed: 7, ..EngineOptions::default() });
    for n in nodes {
        e.upsert_node(n.clone(), 0.0);
    }
    e
}

fn bound(outcomes: &[Outcome]) -> Vec<(Arc<Pod>, Sym)> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Bound { pod, node, .. } => Some((pod.clone(), *node)),
            _ => None,
        })
        .collect()
}

fn violations(nodes: &[Node], outcomes: &[Outcome]) -> usize {
    let p = test_profile();
    let bound: Vec<_> = outcomes.iter().filter_map(Outcome::bound).collect();
    crate::verify::verify(nodes, &bound, |_| Some(&p)).len()
}

#[test]
fn step_drive_fills_then_reports_why() {
    let nodes: Vec<Node> = (0..3).map(|i| node(i, 1000, 110)).collect();
    let mut e = engine(&nodes, 1);
    for i in 0..7 {
        e.add_pod(pod(i, 500, None), 0.0).unwrap();
    }
    let out = e.schedule_pending(0.0);
    assert_eq!(bound(&out).len(), 6);
    let msgs: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Outcome::Unschedulable { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(msgs, ["0/3 nodes are available: 3 Insufficient cpu."]);
    assert_eq!(violations(&nodes, &out), 0);
    assert_eq!(e.queue().len(), 1, "the pod waits, parked");
}

#[test]
fn a_departure_lets_a_parked_pod_in() {
    let nodes = vec![node(0, 1000, 110)];
    let mut e = engine(&nodes, 1);
    e.add_pod(pod(0, 1000, None), 0.0).unwrap();
    e.add_pod(pod(1, 1000, None), 0.0).unwrap();
    assert_eq!(bound(&e.schedule_pending(0.0)).len(), 1);
    // Upstream backoff runs from the failed attempt (t=0, 1 s for a first failure).
    assert!(e.delete_pod(&pod(0, 0, None).key(), 0.5));
    assert!(e.schedule_pending(0.5).is_empty(), "still in backoff right after the event");
    let later = e.schedule_pending(1.0);
    assert_eq!(bound(&later).len(), 1);
}

#[test]
fn parallel_drive_is_deterministic_with_one_worker() {
    let nodes: Vec<Node> = (0..50).map(|i| node(i, 8000, 110)).collect();
    let run = || {
        let mut e = engine(&nodes, 1);
        for i in 0..400 {
            e.add_pod(pod(i, 100 + (i as i64 % 7) * 100, None), 0.0).unwrap();
        }
        let out = e.run_parallel(&|| 0.0);
        crate::bench::placement_hash(&bound(&out))
    };
    assert_eq!(run(), run());
}

#[test]
fn a_rejected_proposal_changes_nothing() {
    let nodes = [node(0, 1000, 110)];
    let mut state = state::ClusterState::new();
    state.upsert_node(nodes[0].clone());
    let profile = test_profile();
    let mut a = Worker::new(0, 1, false, Vec::new());
    let mut b = Worker::new(1, 1, false, Vec::new());
    a.refresh(&state, 0);
    b.refresh(&state, 0);
    let pa = match a.schedule(&profile, Unit::single(pod(0, 800, None), 0, 0.0, 1)) {
        Attempt::Proposed(p) => p,
        Attempt::Unschedulable { .. } => panic!("fits"),
    };
    let pb = match b.schedule(&profile, Unit::single(pod(1, 800, None), 0, 0.0, 2)) {
        Attempt::Proposed(p) => p,
        Attempt::Unschedulable { .. } => panic!("fits in b's view"),
    };
    let mut binder = Binder::new();
    assert_eq!(binder.commit(&mut state, &profile, &pa), Verdict::Accepted);
    let before = state.snapshot().node(0).unwrap().requested.clone();
    let generation = state.generation();
    assert!(matches!(binder.commit(&mut state, &profile, &pb), Verdict::Rejected { .. }));
    assert_eq!(state.snapshot().node(0).unwrap().requested, before);
    assert_eq!(state.generation(), generation);
    // The loser's overlay is dropped on refresh once the binder has answered it.
    b.refresh(&state, pb.seq);
    assert_eq!(b.snapshot().node(0).unwrap().requested, before);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the worker count, the binder never over-commits CPU, pod slots or host ports,
    /// and every committed placement passes the Filters on the final state.
    #[test]
    fn binder_never_over_commits(
        caps in prop::collection::vec((500i64..4000, 1u32..6), 1..12),
        reqs in prop::collection::vec((100i64..1500, prop::option::of(8000u16..8003)), 1..80),
        workers in 1usize..5,
    ) {
        let nodes: Vec<Node> = caps.iter().enumerate().map(|(i, (c, p))| node(i, *c, *p)).collect();
        let mut e = engine(&nodes, workers);
        for (i, (cpu, port)) in reqs.iter().enumerate() {
            e.add_pod(pod(i, *cpu, *port), 0.0).unwrap();
        }
        let out = e.run_parallel(&|| 0.0);
        prop_assert_eq!(violations(&nodes, &out), 0);
        let placed = bound(&out).len();
        prop_assert_eq!(placed, e.state().placed_count());
        let failed: usize = out.iter().map(|o| match o { Outcome::Unschedulable { pods, .. } => pods.len(), _ => 0 }).sum();
        prop_assert_eq!(placed + failed, reqs.len(), "every pod is placed or reported");
    }
}

/// A feed that hands the engine pods once, then stops when each has an outcome.
struct OnceFeed {
    pods: Vec<Arc<Pod>>,
    nodes: Vec<Node>,
    outcomes: Vec<Outcome>,
}

impl drive::Feed for OnceFeed {
    fn has_events(&self) -> bool {
        !self.pods.is_empty() || !self.nodes.is_empty()
    }
    fn apply(&mut self, core: &mut Core<'_>, now: f64) {
        for n in self.nodes.drain(..) {
            core.upsert_node(n, now);
        }
        for p in self.pods.drain(..) {
            core.add_pod(p, now).unwrap();
        }
    }
    fn outcomes(&mut self, outcomes: Vec<Outcome>) {
        self.outcomes.extend(outcomes);
    }
    fn stop(&self) -> bool {
        self.outcomes.len() == 20
    }
}

#[test]
fn the_continuous_drive_applies_events_between_commits_and_places_every_pod() {
    let mut e = engine(&[], 2);
    let mut feed = OnceFeed {
        nodes: (0..4).map(|i| node(i, 4000, 110)).collect(),
        pods: (0..20).map(|i| pod(i, 500, None)).collect(),
        outcomes: Vec::new(),
    };
    e.run_continuous(&|| 0.0, &mut feed);
    let placed = bound(&feed.outcomes);
    assert_eq!(placed.len(), 20);
    assert_eq!(e.state().placed_count(), 20);
}

#[test]
fn a_node_update_that_changes_nothing_bumps_no_generation_and_wakes_no_pod() {
    let mut e = engine(&[node(0, 1000, 110)], 1);
    e.add_pod(pod(0, 2000, None), 0.0).unwrap();
    assert!(bound(&e.schedule_pending(0.0)).is_empty(), "too big: parked");
    let generation = e.state().generation();
    // A status heartbeat: the same node again.
    e.upsert_node(node(0, 1000, 110), 5.0);
    assert_eq!(e.state().generation(), generation, "nothing a plugin reads changed");
    assert_eq!(e.queue().lens(), (0, 0, 1), "the parked pod stays parked");
    // A real change wakes it.
    e.upsert_node(node(0, 4000, 110), 6.0);
    assert_ne!(e.state().generation(), generation);
    assert_eq!(bound(&e.schedule_pending(10.0)).len(), 1);
}

#[test]
fn a_departure_wakes_only_the_parked_pods_its_room_can_take_in_queue_order() {
    let mut e = engine(&[node(0, 2000, 110)], 1);
    for i in 0..2 {
        e.add_pod(pod(i, 1000, None), 0.0).unwrap();
    }
    // p9 holds port 80; then a pod wanting that port and five one-CPU pods wait.
    e.add_pod(pod(9, 0, Some(80)), 0.0).unwrap();
    assert_eq!(bound(&e.schedule_pending(0.0)).len(), 3);
    e.add_pod(pod(2, 1000, Some(80)), 1.0).unwrap();
    for i in 3..8 {
        e.add_pod(pod(i, 1000, None), 1.0 + i as f64).unwrap();
    }
    assert!(bound(&e.schedule_pending(10.0)).is_empty());
    assert_eq!(e.queue().lens(), (0, 0, 6), "all six parked");
    // One CPU freed: the port-bound p2 cannot take it, so it goes to the oldest pod that can.
    assert!(e.delete_pod(&pod(0, 0, None).key(), 20.0));
    assert_eq!(e.queue().lens(), (1, 0, 5), "one pod woken, not six");
    let woken: Vec<String> = bound(&e.schedule_pending(20.0)).iter().map(|(p, _)| p.name.to_string()).collect();
    assert_eq!(woken, ["p3"]);
}

#[test]
fn pods_whose_fit_depends_on_other_nodes_are_always_woken() {
    let mut e = engine(&[node(0, 1000, 110)], 1);
    e.add_pod(pod(0, 1000, None), 0.0).unwrap();
    assert_eq!(bound(&e.schedule_pending(0.0)).len(), 1);
    let mut spread = (*pod(1, 1000, None)).clone();
    spread.spread_constraints.push(tessera_plugins::model::SpreadConstraint {
        max_skew: 1,
        topology_key: Sym::new("kubernetes.io/hostname"),
        when_unsatisfiable: tessera_plugins::model::WhenUnsatisfiable::DoNotSchedule,
        selector: None,
        min_domains: None,
        node_affinity_policy: tessera_plugins::model::InclusionPolicy::Honor,
        node_taints_policy: tessera_plugins::model::InclusionPolicy::Ignore,
    });
    e.add_pod(Arc::new(spread), 1.0).unwrap();
    e.add_pod(pod(2, 1000, None), 2.0).unwrap();
    assert!(bound(&e.schedule_pending(2.0)).is_empty());
    // The node's room goes to p2 (the spread pod is not offered it, it is woken regardless).
    assert!(e.delete_pod(&pod(0, 0, None).key(), 5.0));
    assert_eq!(e.queue().lens(), (2, 0, 0), "both woken: one for the room, one for its spread");
}

#[test]
fn room_a_woken_pod_leaves_untaken_is_offered_to_the_next() {
    let mut e = engine(&[node(0, 1000, 110), node(1, 4000, 110)], 1);
    let on = |p: Arc<Pod>, n: &str| {
        let mut p = (*p).clone();
        p.node_name = Some(Sym::new(n));
        Arc::new(p)
    };
    e.add_pod(on(pod(10, 1000, None), "n0"), 0.0).unwrap();
    e.add_pod(on(pod(11, 4000, None), "n1"), 0.0).unwrap();
    e.add_pod(on(pod(12, 0, Some(80)), "n1"), 0.0).unwrap();
    // p0 fits anywhere; p1 wants port 80, which n1 has given away: only n0 can ever take it.
    e.add_pod(pod(0, 1000, None), 0.0).unwrap();
    e.add_pod(pod(1, 1000, Some(80)), 0.5).unwrap();
    assert!(bound(&e.schedule_pending(0.0)).is_empty());
    assert!(bound(&e.schedule_pending(0.5)).is_empty());
    // n0's room goes to p0, first in line; n1's cannot serve p1.
    assert!(e.delete_pod(&pod(10, 0, None).key(), 5.0));
    assert!(e.delete_pod(&pod(11, 0, None).key(), 5.0));
    assert_eq!(e.queue().lens(), (1, 0, 1));
    // p0 prefers the emptier n1, leaving n0's room untaken: p1 is offered it and takes it.
    let placed: Vec<(String, String)> =
        bound(&e.schedule_pending(5.0)).iter().map(|(p, n)| (p.name.to_string(), n.to_string())).collect();
    assert_eq!(placed, [("p0".to_string(), "n1".to_string()), ("p1".to_string(), "n0".to_string())]);
}
