//! Preemption through the engine: victims leave, the preemptor lands where it made room, its
//! room is held against pods of lower or equal priority, and in both drives no node is ever
//! over-committed and no victim ever outranks its preemptor.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{Node, Pod, PodKey};
use tessera_plugins::registry::Registry;
use tessera_plugins::resources::ResourceVec;

use super::queue::BackoffPolicy;
use super::tests::test_profile;
use super::*;

fn profile() -> tessera_plugins::framework::Profile {
    let mut p = test_profile();
    p.post_filter = vec![Registry::builtin().make("DefaultPreemption", None).unwrap()];
    p
}

fn node(i: usize, cpu: i64) -> Node {
    let name = format!("n{i}");
    Node {
        name: Sym::new(&name),
        labels: LabelSet::from_pairs([("kubernetes.io/hostname", name.as_str())]),
        taints: vec![],
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(cpu, 64 << 30),
        allowed_pods: 110,
        images: vec![],
        gpus: Vec::new(),
        devices: Default::default(),
    }
}

fn pod(name: &str, cpu: i64, priority: i32, on: Option<&str>) -> Arc<Pod> {
    let mut p = Pod::new("default", name, ResourceVec::cpu_mem(cpu, 1 << 20));
    p.scheduler_name = Sym::new("default-scheduler");
    p.priority = priority;
    p.node_name = on.map(Sym::new);
    Arc::new(p)
}

fn engine(nodes: &[Node], workers: usize, eviction: Eviction) -> Engine {
    let opts = EngineOptions {
        workers,
        seed: 3,
        eviction,
        backoff: BackoffPolicy { initial_s: 1.0, max_s: 1.0 },
        ..EngineOptions::default()
    };
    let mut e = Engine::new(vec![profile()], opts);
    for n in nodes {
        e.upsert_node(n.clone(), 0.0);
    }
    e
}

fn victims(out: &[Outcome]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Outcome::Preempted { pod, by, .. } => Some((pod.name.to_string(), by.name.to_string())),
            _ => None,
        })
        .collect()
}

fn bound_on(out: &[Outcome], name: &str) -> Option<&'static str> {
    out.iter().find_map(|o| match o {
        Outcome::Bound { pod, node, .. } if &*pod.name == name => Some(node.as_str()),
        _ => None,
    })
}

#[test]
fn a_high_priority_pod_evicts_the_least_it_must_and_lands_where_it_made_room() {
    let mut e = engine(&[node(0, 4000), node(1, 4000)], 1, Eviction::AtOnce);
    for p in [pod("a", 3000, 10, Some("n0")), pod("b", 2000, 0, Some("n1")), pod("c", 2000, 0, Some("n1"))] {
        e.add_pod(p, 0.0).unwrap();
    }
    e.add_pod(pod("vip", 2000, 100, None), 0.0).unwrap();
    let out = e.schedule_pending(0.0);
    // n1 needs one victim of priority 0; n0's victim has priority 10.
    let v = victims(&out);
    assert_eq!(v.len(), 1, "{out:?}");
    assert!(v[0].0 == "b" || v[0].0 == "c");
    let nominated = out.iter().find_map(|o| match o {
        Outcome::Unschedulable { nominated, .. } => nominated.first().copied().flatten(),
        _ => None,
    });
    assert_eq!(nominated.map(|n| n.as_str()), Some("n1"));
    // The preemptor waits out its backoff, then takes the room.
    assert!(e.schedule_pending(0.5).is_empty());
    let out = e.schedule_pending(1.0);
    assert_eq!(bound_on(&out, "vip"), Some("n1"));
    assert_eq!(e.state().nominated_node(&PodKey::new("default", "vip")), None, "bound: no longer nominated");
}

#[test]
fn until_its_victims_are_gone_the_room_is_held_against_equal_and_lower_priorities() {
    let mut e = engine(&[node(0, 4000)], 1, Eviction::ByApi);
    e.add_pod(pod("low", 4000, 0, Some("n0")), 0.0).unwrap();
    e.add_pod(pod("vip", 4000, 100, None), 0.0).unwrap();
    let out = e.schedule_pending(0.0);
    assert_eq!(victims(&out), vec![("low".to_string(), "vip".to_string())]);
    // The API has not deleted the victim yet: the preemptor keeps waiting, without preempting
    // again, and says why.
    let out = e.schedule_pending(5.0);
    assert!(victims(&out).is_empty());
    // The victim leaves; a pod of the same priority arrives first but the room is held.
    e.delete_pod(&PodKey::new("default", "low"), 6.0);
    e.add_pod(pod("rival", 4000, 100, None), 6.0).unwrap();
    let out = e.schedule_pending(10.0);
    assert_eq!(bound_on(&out, "vip"), Some("n0"), "{out:?}");
    assert_eq!(bound_on(&out, "rival"), None);
}

#[test]
fn a_pod_that_may_not_preempt_waits() {
    let mut e = engine(&[node(0, 4000)], 1, Eviction::AtOnce);
    e.add_pod(pod("low", 4000, 0, Some("n0")), 0.0).unwrap();
    let mut p = Pod::clone(&pod("polite", 4000, 100, None));
    p.preemption_policy = tessera_plugins::model::PreemptionPolicy::Never;
    e.add_pod(Arc::new(p), 0.0).unwrap();
    let out = e.schedule_pending(0.0);
    assert!(victims(&out).is_empty());
    let message = out.iter().find_map(|o| match o {
        Outcome::Unschedulable { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert_eq!(
        message.as_deref(),
        Some("0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")
    );
}

/// Runs `pods` (name, cpu, priority) against nodes of 4 cores each full of running pods, in
/// the step or the parallel drive; returns every outcome. With `gangs`, running pods go in
/// pairs, each pair a gang of two.
fn run(
    nodes: usize,
    running: &[(i64, i32)],
    pods: &[(i64, i32)],
    workers: usize,
    gangs: bool,
) -> (Engine, Vec<Arc<Pod>>, Vec<Outcome>) {
    let ns: Vec<Node> = (0..nodes).map(|i| node(i, 4000)).collect();
    let mut e = engine(&ns, workers, Eviction::AtOnce);
    if gangs {
        for g in 0..running.len().div_ceil(2) {
            e.upsert_pod_group(tessera_plugins::model::PodGroup::new("default", &format!("g{g}"), 2), 0.0);
        }
    }
    let mut initial = Vec::new();
    let mut used = vec![0; nodes];
    for (i, (cpu, prio)) in running.iter().enumerate() {
        // Running pods the kubelet would have admitted: within the node's cores.
        if used[i % nodes] + cpu > 4000 {
            continue;
        }
        used[i % nodes] += cpu;
        let on = format!("n{}", i % nodes);
        let p = if gangs {
            member(&format!("r{i}"), *cpu, *prio, Some(&on), &format!("g{}", i / 2))
        } else {
            pod(&format!("r{i}"), *cpu, *prio, Some(&on))
        };
        e.add_pod(p.clone(), 0.0).unwrap();
        initial.push(p);
    }
    let mut out = Vec::new();
    for (i, (cpu, prio)) in pods.iter().enumerate() {
        e.add_pod(pod(&format!("q{i}"), *cpu, *prio, None), 0.0).unwrap();
    }
    for round in 0..6 {
        let now = f64::from(round) * 2.0;
        if workers == 1 {
            out.extend(e.schedule_pending(now));
        } else {
            e.core().tick(now);
            out.extend(e.run_parallel(&|| now));
        }
    }
    (e, initial, out)
}

fn check(e: &Engine, initial: &[Arc<Pod>], out: &[Outcome]) -> Result<(), TestCaseError> {
    let priority: HashMap<PodKey, i32> = initial
        .iter()
        .map(|p| (p.key(), p.priority))
        .chain(out.iter().filter_map(|o| match o {
            Outcome::Unschedulable { pods, .. } => pods.first().map(|p| (p.key(), p.priority)),
            Outcome::Bound { pod, .. } => Some((pod.key(), pod.priority)),
            Outcome::Preempted { .. } => None,
        }))
        .collect();
    let mut evicted = HashSet::new();
    for o in out {
        if let Outcome::Preempted { pod, by, .. } = o {
            prop_assert!(pod.priority < priority[by], "{} (priority {}) evicted for {by}", pod.key(), pod.priority);
            prop_assert!(evicted.insert(pod.key()), "{} evicted twice", pod.key());
        }
    }
    // A gang's running members leave together or not at all.
    let mut by_group: HashMap<tessera_plugins::intern::Sym, (usize, usize)> = HashMap::new();
    for p in initial {
        if let Some(g) = p.pod_group {
            let e = by_group.entry(g).or_default();
            e.0 += 1;
            e.1 += usize::from(evicted.contains(&p.key()));
        }
    }
    for (g, (members, gone)) in by_group {
        prop_assert!(gone == 0 || gone == members, "gang {g}: {gone} of {members} evicted");
    }
    let mut seen = HashSet::new();
    for n in e.state().snapshot().nodes() {
        prop_assert!(
            n.requested.get(tessera_plugins::resources::ResourceId::CPU) <= 4000,
            "{} over-committed",
            n.name()
        );
        for p in &n.pods {
            prop_assert!(seen.insert(p.key()), "{} placed twice", p.key());
            prop_assert!(!evicted.contains(&p.key()), "{} evicted yet still placed", p.key());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn victims_always_rank_below_their_preemptor_and_nodes_never_overflow(
        nodes in 1usize..6,
        running in proptest::collection::vec((prop::sample::select(vec![1000i64, 2000, 4000]), 0i32..3), 1..20),
        pods in proptest::collection::vec((prop::sample::select(vec![500i64, 1000, 3000]), 0i32..5), 1..12),
        workers in 1usize..3,
        gangs in any::<bool>(),
    ) {
        let (e, initial, out) = run(nodes, &running, &pods, workers, gangs);
        check(&e, &initial, &out)?;
    }
}

/// `pod` as a member of gang `group`.
fn member(name: &str, cpu: i64, priority: i32, on: Option<&str>, group: &str) -> Arc<Pod> {
    let mut p = Pod::clone(&pod(name, cpu, priority, on));
    p.pod_group = Some(Sym::new(group));
    Arc::new(p)
}

fn evicted(out: &[Outcome]) -> Vec<String> {
    let mut v: Vec<String> = victims(out).into_iter().map(|(v, _)| v).collect();
    v.sort();
    v
}

#[test]
fn a_gang_is_evicted_whole_or_not_at_all() {
    for (mode, want) in [
        (tessera_plugins::model::DisruptionMode::All, vec!["g0", "g1"]),
        (tessera_plugins::model::DisruptionMode::Single, vec!["g0"]),
    ] {
        let mut e = engine(&[node(0, 4000), node(1, 4000)], 1, Eviction::AtOnce);
        let group = tessera_plugins::model::PodGroup {
            disruption: mode,
            ..tessera_plugins::model::PodGroup::new("default", "train", 2)
        };
        e.upsert_pod_group(group, 0.0);
        e.add_pod(member("g0", 3000, 0, Some("n0"), "train"), 0.0).unwrap();
        e.add_pod(member("g1", 2000, 0, Some("n1"), "train"), 0.0).unwrap();
        // A pod the preemptor may not evict holds half of n1: n0 is where it can go.
        e.add_pod(pod("side", 2000, 200, Some("n1")), 0.0).unwrap();
        e.add_pod(pod("vip", 3000, 100, None), 0.0).unwrap();
        let out = e.schedule_pending(0.0);
        assert_eq!(evicted(&out), want, "{mode:?}: {out:?}");
    }
}

#[test]
fn a_gang_preempts_as_one_unit_or_not_at_all() {
    // Two nodes, each full of one low pod: a gang of two fits once both leave.
    let mut e = engine(&[node(0, 4000), node(1, 4000)], 1, Eviction::AtOnce);
    e.add_pod(pod("low0", 4000, 0, Some("n0")), 0.0).unwrap();
    e.add_pod(pod("low1", 4000, 0, Some("n1")), 0.0).unwrap();
    e.upsert_pod_group(tessera_plugins::model::PodGroup::new("default", "big", 2), 0.0);
    e.add_pod(member("m0", 3000, 100, None, "big"), 0.0).unwrap();
    e.add_pod(member("m1", 3000, 100, None, "big"), 0.0).unwrap();
    let out = e.schedule_pending(0.0);
    assert_eq!(evicted(&out), vec!["low0", "low1"]);
    // Each member is nominated to its own node.
    let mut nominated: Vec<&str> = out
        .iter()
        .flat_map(|o| match o {
            Outcome::Unschedulable { nominated, .. } => nominated.iter().flatten().map(|n| n.as_str()).collect(),
            _ => Vec::new(),
        })
        .collect();
    nominated.sort_unstable();
    assert_eq!(nominated, vec!["n0", "n1"]);
    let out = e.schedule_pending(5.0);
    let mut nodes: Vec<&str> = ["m0", "m1"].iter().filter_map(|m| bound_on(&out, m)).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, vec!["n0", "n1"], "{out:?}");

    // A gang of three cannot fit on two nodes whatever leaves: nobody is evicted.
    let mut e = engine(&[node(0, 4000), node(1, 4000)], 1, Eviction::AtOnce);
    e.add_pod(pod("low0", 4000, 0, Some("n0")), 0.0).unwrap();
    e.add_pod(pod("low1", 4000, 0, Some("n1")), 0.0).unwrap();
    e.upsert_pod_group(tessera_plugins::model::PodGroup::new("default", "huge", 3), 0.0);
    for m in ["h0", "h1", "h2"] {
        e.add_pod(member(m, 3000, 100, None, "huge"), 0.0).unwrap();
    }
    let out = e.schedule_pending(0.0);
    assert!(victims(&out).is_empty(), "{out:?}");
}
