use std::sync::Arc;

use super::*;
use crate::disruption::{Allowance, DisruptionBudget};
use crate::framework::{CycleState, Profile};
use crate::model::{HostPort, PreemptionPolicy};
use crate::plugins::testing::{labelled, match_labels, node, pod, snapshot};
use crate::registry::Registry;
use crate::snapshot::Snapshot;
use crate::status::Diagnosis;

const GI: i64 = 1 << 30;

/// NodeResourcesFit and NodePorts as Filters, DefaultPreemption as PostFilter.
fn profile() -> Profile {
    let r = Registry::builtin();
    Profile {
        filter: vec![r.make("NodeResourcesFit", None).unwrap(), r.make("NodePorts", None).unwrap()],
        post_filter: vec![r.make(NAME, None).unwrap()],
        ..Profile::default()
    }
}

fn prio(mut p: Pod, priority: i32, created: f64) -> Pod {
    p.priority = priority;
    p.creation_s = created;
    p
}

/// Runs PreFilter, Filter over every node of `snap`, then PostFilter.
fn preempt(profile: &Profile, snap: &Snapshot, p: &Pod) -> PostFilterResult {
    let mut state = CycleState::new();
    profile.run_pre_filter(&mut state, p, snap).unwrap();
    let mut d = Diagnosis { num_all_nodes: snap.num_nodes(), ..Diagnosis::default() };
    for n in snap.nodes() {
        let s = profile.run_filter_with_nominated(&state, p, n);
        assert!(!s.is_success(), "the pod fits node {} without preemption", n.name());
        d.add_node(n.id, &s);
    }
    let input = PostFilterInput { profile, state: &state, pod: p, snapshot: snap, diagnosis: &d, nominated: None };
    profile.run_post_filter(&input).unwrap()
}

fn nominated(r: PostFilterResult) -> Nomination {
    match r {
        PostFilterResult::Nominate(n) => n,
        other => panic!("expected a nomination, got {other:?}"),
    }
}

fn names(n: &Nomination) -> Vec<String> {
    n.victims.iter().map(|v| v.pod.name.to_string()).collect()
}

#[test]
fn evicts_the_fewest_pods_of_the_lowest_priority() {
    // n0 holds one big low pod; n1 two small ones of lower priority still; n2 a pod of higher
    // priority than the preemptor.
    let snap = snapshot(
        vec![
            (node("n0", 4000, 8 * GI), vec![prio(pod("big", 4000, GI), 10, 0.0)]),
            (node("n1", 4000, 8 * GI), vec![prio(pod("s1", 2000, GI), 5, 0.0), prio(pod("s2", 2000, GI), 5, 1.0)]),
            (node("n2", 4000, 8 * GI), vec![prio(pod("vip", 4000, GI), 200, 0.0)]),
        ],
        &[],
    );
    let p = prio(pod("p", 3000, GI), 100, 5.0);
    let n = nominated(preempt(&profile(), &snap, &p));
    // n1's victims have the lower highest priority (5 < 10), which comes before their count.
    assert_eq!((snap.node(n.node).unwrap().name().as_str(), names(&n)), ("n1", vec!["s1".into(), "s2".into()]));
    assert_eq!(n.pdb_violations, 0);
}

#[test]
fn reprieves_every_pod_the_preemptor_fits_beside() {
    let snap = snapshot(
        vec![(
            node("n0", 4000, 8 * GI),
            vec![prio(pod("a", 1000, GI), 1, 0.0), prio(pod("b", 1000, GI), 2, 0.0), prio(pod("c", 2000, GI), 3, 0.0)],
        )],
        &[],
    );
    let p = prio(pod("p", 2000, GI), 100, 5.0);
    let n = nominated(preempt(&profile(), &snap, &p));
    // Most important first is reprieved first: c (priority 3) stays, then b; a must go, and b.
    // With c back only 2000 is free: a and b leave.
    assert_eq!(names(&n), vec!["b".to_string(), "a".to_string()]);
}

#[test]
fn among_equals_the_node_whose_victims_started_last_loses_least() {
    let port = |mut p: Pod| {
        p.host_ports = vec![HostPort { ip: None, protocol: crate::intern::Sym::new("TCP"), port: 80 }];
        p
    };
    // n2 could need one victim of priority 0 by resources, but a pod of higher priority holds
    // the port the preemptor needs: the search cannot stop at n0 or n1 and must compare them.
    let snap = snapshot(
        vec![
            (node("n0", 4000, 8 * GI), vec![prio(pod("old", 4000, GI), 5, 10.0)]),
            (node("n1", 4000, 8 * GI), vec![prio(pod("new", 4000, GI), 5, 50.0)]),
            (
                node("n2", 4000, 8 * GI),
                vec![prio(pod("low", 4000, GI), 0, 0.0), port(prio(pod("vip", 0, 0), 200, 0.0))],
            ),
        ],
        &[],
    );
    let p = port(prio(pod("p", 4000, GI), 100, 99.0));
    let n = nominated(preempt(&profile(), &snap, &p));
    assert_eq!((snap.node(n.node).unwrap().name().as_str(), names(&n)), ("n1", vec!["new".to_string()]));
}

#[test]
fn a_budget_is_broken_only_when_no_node_spares_it() {
    let web = |name: &str| labelled(prio(pod(name, 4000, GI), 0, 0.0), &[("app", "web")]);
    let budget = DisruptionBudget {
        namespace: crate::intern::Sym::new("default"),
        name: Arc::from("web"),
        selector: Some(match_labels(&[("app", "web")])),
        allowance: Allowance::Fixed(0),
        healthy: 0,
        disrupted: 0,
    };
    let mut snap = snapshot(
        vec![
            (node("n0", 4000, 8 * GI), vec![web("w0")]),
            (node("n1", 4000, 8 * GI), vec![prio(pod("free", 4000, GI), 50, 0.0)]),
        ],
        &[],
    );
    snap.budgets_mut().budgets.push(budget);
    let p = prio(pod("p", 4000, GI), 100, 5.0);
    // n1's victim has the higher priority, but evicting w0 would break the budget.
    let n = nominated(preempt(&profile(), &snap, &p));
    assert_eq!((names(&n), n.pdb_violations), (vec!["free".to_string()], 0));
    // With no other choice, the budget is broken and says so.
    let mut only = snapshot(vec![(node("n0", 4000, 8 * GI), vec![web("w0")])], &[]);
    only.set_budgets(snap.budgets().clone());
    let n = nominated(preempt(&profile(), &only, &p));
    assert_eq!((names(&n), n.pdb_violations), (vec!["w0".to_string()], 1));
}

#[test]
fn never_preempts_with_policy_never_and_says_so() {
    let snap = snapshot(vec![(node("n0", 4000, 8 * GI), vec![prio(pod("low", 4000, GI), 0, 0.0)])], &[]);
    let mut p = prio(pod("p", 4000, GI), 100, 5.0);
    p.preemption_policy = PreemptionPolicy::Never;
    match preempt(&profile(), &snap, &p) {
        PostFilterResult::Keep(s) => {
            assert_eq!(s.to_string(), "preemption: not eligible due to preemptionPolicy=Never")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_victims_gives_upstreams_message() {
    let snap = snapshot(
        vec![
            (node("n0", 4000, 8 * GI), vec![prio(pod("vip", 4000, GI), 500, 0.0)]),
            // Smaller than the pod even when empty: NodeResourcesFit says unresolvable.
            (node("n1", 1000, 8 * GI), vec![prio(pod("low", 1000, GI), 0, 0.0)]),
        ],
        &[],
    );
    let p = prio(pod("p", 4000, GI), 100, 5.0);
    match preempt(&profile(), &snap, &p) {
        PostFilterResult::Clear(s) => assert_eq!(
            s.to_string(),
            "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, \
             1 Preemption is not helpful for scheduling."
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_nominated_pod_of_equal_priority_holds_its_room() {
    let mut info = crate::plugins::testing::node_info(0, node("n0", 4000, 8 * GI), vec![]);
    info.nominate(Arc::new(prio(pod("first", 3000, GI), 100, 0.0)));
    let profile = profile();
    let state = CycleState::new();
    let same = prio(pod("same", 2000, GI), 100, 1.0);
    let higher = prio(pod("higher", 2000, GI), 101, 1.0);
    assert!(!profile.run_filter_with_nominated(&state, &same, &info).is_success());
    assert!(profile.run_filter_with_nominated(&state, &higher, &info).is_success(), "a higher priority passes over it");
    let first = prio(pod("first", 3000, GI), 100, 0.0);
    assert!(profile.run_filter_with_nominated(&state, &first, &info).is_success(), "its own room is its own");
}

#[test]
fn args_are_validated_as_upstream() {
    let bad = |v: serde_json::Value| new(Some(&v)).is_err();
    assert!(bad(serde_json::json!({"minCandidateNodesPercentage": 101})));
    assert!(bad(serde_json::json!({"minCandidateNodesAbsolute": -1})));
    assert!(bad(serde_json::json!({"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 0})));
    assert!(bad(serde_json::json!({"minCandidates": 3})));
    assert!(new(Some(&serde_json::json!({"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 5}))).is_ok());
}

#[test]
fn a_pod_kept_out_by_anti_affinity_evicts_the_pod_it_avoids() {
    // PreFilter counted `db` against the preemptor's anti-affinity; setting it aside must
    // uncount it (the PreFilter extensions), else no node would ever be a candidate.
    let r = Registry::builtin();
    let ipa = r.make("InterPodAffinity", None).unwrap();
    let profile = Profile {
        pre_filter: vec![ipa.clone()],
        filter: vec![r.make("NodeResourcesFit", None).unwrap(), ipa],
        post_filter: vec![r.make(NAME, None).unwrap()],
        ..Profile::default()
    };
    let db = labelled(prio(pod("db", 1000, GI), 0, 0.0), &[("app", "db")]);
    let snap = snapshot(
        vec![(
            crate::plugins::testing::with_labels(node("n0", 8000, 8 * GI), &[("kubernetes.io/hostname", "n0")]),
            vec![db],
        )],
        &["kubernetes.io/hostname"],
    );
    let mut p = prio(pod("p", 1000, GI), 100, 5.0);
    p.pod_anti_affinity.required =
        vec![crate::plugins::testing::affinity_term("kubernetes.io/hostname", Some(match_labels(&[("app", "db")])))];
    let n = nominated(preempt(&profile, &snap, &p));
    assert_eq!(names(&n), vec!["db".to_string()]);
}

#[test]
fn a_hard_spread_constraint_counts_the_victims_out() {
    // Two zones; zone a holds two matching pods of priority 0, zone b one (that may not be
    // evicted) and a pod of priority 10 filling it. maxSkew 1 keeps the pod out of zone a while
    // both stay; evicting one there is cheaper than evicting zone b's priority 10, but only if
    // setting it aside uncounts it (the PreFilter extensions).
    let r = Registry::builtin();
    let spread = r.make("PodTopologySpread", None).unwrap();
    let profile = Profile {
        pre_filter: vec![spread.clone()],
        filter: vec![r.make("NodeResourcesFit", None).unwrap(), spread],
        post_filter: vec![r.make(NAME, None).unwrap()],
        ..Profile::default()
    };
    let web = |name: &str, prio_: i32| labelled(prio(pod(name, 1000, GI), prio_, 0.0), &[("app", "web")]);
    let zone = |n: &str, z: &str| crate::plugins::testing::with_labels(node(n, 4000, 8 * GI), &[("zone", z)]);
    let snap = snapshot(
        vec![
            (zone("a0", "a"), vec![web("w1", 0), web("w2", 0)]),
            (zone("b0", "b"), vec![web("w3", 500), prio(pod("big", 3000, GI), 10, 0.0)]),
        ],
        &["zone"],
    );
    let mut p = labelled(prio(pod("p", 1000, GI), 100, 5.0), &[("app", "web")]);
    p.spread_constraints = vec![crate::plugins::testing::spread_constraint(
        1,
        "zone",
        crate::model::WhenUnsatisfiable::DoNotSchedule,
        Some(match_labels(&[("app", "web")])),
    )];
    let n = nominated(preempt(&profile, &snap, &p));
    assert_eq!(snap.node(n.node).unwrap().name().as_str(), "a0");
    assert_eq!(n.victims.len(), 1, "one of zone a's pods is enough: {:?}", names(&n));
}
