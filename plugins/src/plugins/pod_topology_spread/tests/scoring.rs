//! Soft constraints and defaults: upstream's `TestPodTopologySpreadScore` cases.

use super::*;
use crate::default_selector::{ControllerKind, ControllerRef};
use crate::intern::Sym;
use crate::labels::LabelSet;
use crate::model::{InclusionPolicy, Taint, TaintEffect};
use Code::Unschedulable as U;

fn hosts(pods: &[(&str, &[&str])]) -> Vec<(Node, Vec<Pod>)> {
    pods.iter().map(|(name, names)| (n(name, &[(LABEL_HOSTNAME, name)]), foo_pods(names))).collect()
}

#[test]
fn score_one_hostname_constraint() {
    let pl = list_defaulting();
    let pod = incoming(&[("foo", "")], vec![soft(1, LABEL_HOSTNAME, foo())]);
    let empty = hosts(&[("node-a", &[]), ("node-b", &[])]);
    check_scores(&pl, &pod, empty, &["node-a", "node-b"], &[100, 100]);
    let one_candidate = hosts(&[("node-a", &["p-a1", "p-a2"]), ("node-b", &["p-b1"])]);
    check_scores(&pl, &pod, one_candidate, &["node-a"], &[100]);
    let equal = hosts(&[("node-a", &["p-a1"]), ("node-b", &["p-b1"])]);
    check_scores(&pl, &pod, equal, &["node-a", "node-b"], &[100, 100]);
    let spread =
        hosts(&[("node-a", &["a1", "a2"]), ("node-b", &["b1"]), ("node-c", &[]), ("node-d", &["d1", "d2", "d3"])]);
    let all = ["node-a", "node-b", "node-c", "node-d"];
    check_scores(&pl, &pod, spread.clone(), &all, &[20, 60, 100, 0]);
    let null_selector = incoming(&[("foo", "")], vec![soft(1, LABEL_HOSTNAME, None)]);
    check_scores(&pl, &null_selector, spread.clone(), &all, &[100, 100, 100, 100]);
    let skew2 = incoming(&[("foo", "")], vec![soft(2, LABEL_HOSTNAME, foo())]);
    check_scores(&pl, &skew2, spread, &all, &[33, 66, 100, 16]);
}

#[test]
fn score_max_skew_three_waters_down_differences() {
    let pod = incoming(&[("foo", "")], vec![soft(3, LABEL_HOSTNAME, foo())]);
    let nodes = hosts(&[
        ("node-a", &["a1", "a2", "a3", "a4"]),
        ("node-b", &["b1", "b2", "b3"]),
        ("node-c", &["c1", "c2"]),
        ("node-d", &["d1"]),
    ]);
    check_scores(&list_defaulting(), &pod, nodes, &["node-a", "node-b", "node-c", "node-d"], &[44, 66, 77, 100]);
}

#[test]
fn score_counts_unfeasible_nodes_but_weighs_by_feasible_ones() {
    let pl = list_defaulting();
    let pod = incoming(&[("foo", "")], vec![soft(1, LABEL_HOSTNAME, foo())]);
    let nodes = hosts(&[
        ("node-a", &["a1", "a2", "a3", "a4"]),
        ("node-b", &["b1", "b2"]),
        ("node-x", &["x1"]),
        ("node-y", &["y1", "y2", "y3"]),
    ]);
    check_scores(&pl, &pod, nodes.clone(), &["node-a", "node-b", "node-x"], &[33, 83, 100]);
    // node-b lacks the hostname label: it scores 0 and does not count as a domain.
    let mut unlabelled = nodes;
    unlabelled[1].0.labels = LabelSet::from_pairs([("n", "node-b")]);
    check_scores(&pl, &pod, unlabelled, &["node-a", "node-b", "node-x"], &[16, 0, 100]);
}

#[test]
fn score_one_zone_constraint() {
    let pod = incoming(&[("foo", "")], vec![soft(1, "zone", foo())]);
    let nodes = four_zoned_nodes([&["a1", "a2", "a3", "a4"], &["b1", "b2"], &["x1"], &["y1", "y2", "y3"]]);
    check_scores(&list_defaulting(), &pod, nodes, &["node-a", "node-b", "node-x"], &[75, 75, 100]);
}

fn hosted_zones() -> [Node; 4] {
    let hz = |name, zone| n(name, &[("zone", zone), (LABEL_HOSTNAME, name)]);
    [hz("node-a", "zone1"), hz("node-b", "zone1"), hz("node-x", "zone2"), hz("node-y", "zone2")]
}

#[test]
fn score_zone_and_hostname_constraints() {
    let pl = list_defaulting();
    let [a, b, x, y] = hosted_zones();
    let same = incoming(&[("foo", "")], vec![soft(1, "zone", foo()), soft(1, LABEL_HOSTNAME, foo())]);
    let nodes = vec![
        (a.clone(), foo_pods(&["a1", "a2"])),
        (b.clone(), foo_pods(&["b1"])),
        (x.clone(), foo_pods(&["x1", "x2"])),
        (y.clone(), foo_pods(&["y1", "y2", "y3", "y4"])),
    ];
    check_scores(&pl, &same, nodes, &["node-a", "node-x"], &[100, 63]);

    let two = incoming(&[("foo", ""), ("bar", "")], vec![soft(1, "zone", foo()), soft(1, LABEL_HOSTNAME, bar())]);
    let fb = || p("b1", &[("foo", ""), ("bar", "")]);
    let nodes = vec![
        (a.clone(), vec![p("a1", &[("foo", "")])]),
        (b.clone(), vec![fb()]),
        (x.clone(), vec![]),
        (y.clone(), vec![p("y1", &[("foo", "")]), p("y2", &[("bar", "")])]),
    ];
    check_scores(&pl, &two, nodes.clone(), &["node-a", "node-b", "node-x", "node-y"], &[60, 20, 100, 60]);
    check_scores(&pl, &two, nodes, &["node-a", "node-b", "node-x"], &[50, 25, 100]);
    let nodes = vec![
        (a, vec![]),
        (b, vec![p("b1", &[("bar", "")])]),
        (x, vec![p("x1", &[("foo", "")])]),
        (y, vec![p("y1", &[("foo", ""), ("bar", "")])]),
    ];
    check_scores(&pl, &two, nodes, &["node-a", "node-b", "node-x", "node-y"], &[100, 60, 40, 0]);
}

#[test]
fn score_ignores_other_namespaces_and_min_domains() {
    let pl = list_defaulting();
    let pod = incoming(&[("foo", "")], vec![soft(1, LABEL_HOSTNAME, foo())]);
    let nodes = vec![
        (
            n("node-a", &[(LABEL_HOSTNAME, "node-a")]),
            vec![in_namespace(p("a1", &[("foo", "")]), "ns1"), p("a2", &[("foo", "")])],
        ),
        (n("node-b", &[(LABEL_HOSTNAME, "node-b")]), foo_pods(&["b1", "b2"])),
    ];
    check_scores(&pl, &pod, nodes, &["node-a", "node-b"], &[100, 33]);
    let min_domains = incoming(&[("foo", "")], vec![with_min_domains(soft(2, "node", foo()), 10)]);
    let nodes = vec![
        (n("node-a", &[("node", "node-a")]), foo_pods(&["a1", "a2"])),
        (n("node-b", &[("node", "node-b")]), foo_pods(&["b1", "b2"])),
        (n("node-c", &[("node", "node-c")]), foo_pods(&["c1"])),
    ];
    check_scores(&pl, &min_domains, nodes, &["node-a", "node-b", "node-c"], &[75, 75, 100]);
}

#[test]
fn score_honours_inclusion_policies() {
    let pl = list_defaulting();
    let nodes = |taint: Option<Taint>| {
        let mut c = n("node-c", &[("node", "node-c")]);
        c.taints.extend(taint);
        vec![
            (n("node-a", &[("node", "node-a"), ("foo", "")]), foo_pods(&["a1", "a2"])),
            (n("node-b", &[("node", "node-b"), ("foo", "")]), foo_pods(&["b1"])),
            (c, foo_pods(&["c1"])),
        ]
    };
    let all = ["node-a", "node-b", "node-c"];
    let mut pod = incoming(&[("foo", "")], vec![soft(1, "node", foo())]);
    pod.node_selector = LabelSet::from_pairs([("foo", "")]);
    check_scores(&pl, &pod, nodes(None), &all, &[0, 33, 100]);
    pod.spread_constraints[0].node_affinity_policy = InclusionPolicy::Ignore;
    check_scores(&pl, &pod, nodes(None), &all, &[66, 100, 100]);

    let taint = Taint { key: Sym::new("t"), value: Sym::new(""), effect: TaintEffect::NoSchedule };
    let mut pod = incoming(&[("foo", "")], vec![soft(1, "node", foo())]);
    check_scores(&pl, &pod, nodes(Some(taint.clone())), &all, &[66, 100, 100]);
    pod.spread_constraints[0].node_taints_policy = InclusionPolicy::Honor;
    check_scores(&pl, &pod, nodes(Some(taint)), &all, &[0, 33, 100]);
}

#[test]
fn system_defaults_spread_by_hostname_when_nodes_have_no_zone() {
    let pl = plugin(json!({}));
    let pod = p("p", &[("foo", "")]);
    let nodes = hosts(&[
        ("node-a", &["a1", "a2", "a3", "a4"]),
        ("node-b", &["b1", "b2", "b3"]),
        ("node-c", &["c1", "c2"]),
        ("node-d", &["d1"]),
    ]);
    let feasible = ["node-a", "node-b", "node-c", "node-d"];
    // Same scores as one hostname constraint with maxSkew 3: zone counts nowhere.
    check_scores_with(&pl, &pod, nodes.clone(), &service(&[("foo", "")]), &feasible, &[44, 66, 77, 100]);
    // No Service selects the pod and no controller owns it: no defaults, as upstream.
    assert_eq!(scores(&pl, &pod, &snapshot(nodes, TRACKED), &feasible), None);
    let mut cs = CycleState::new();
    let snap =
        snapshot_with(vec![(n("node-a", &[(LABEL_HOSTNAME, "node-a")]), vec![])], TRACKED, &service(&[("foo", "")]));
    assert_eq!(pl.pre_filter(&mut cs, &pod, &snap).map_err(|s| s.code), Err(Code::Skip), "system defaults are soft");
}

#[test]
fn default_selector_is_the_owning_statefulsets_and_skips_pods_nothing_selects() {
    let pl = plugin(json!({}));
    let db = ControllerRef { kind: ControllerKind::StatefulSet, name: Sym::new("db") };
    let member = |name: &str, revision: &str| {
        let mut pod = p(
            name,
            &[("app", "db"), ("statefulset.kubernetes.io/pod-name", name), ("controller-revision-hash", revision)],
        );
        pod.controller = Some(db);
        pod
    };
    let mut sources = SelectorSources::default();
    sources.apply(SourceChange::Controller {
        namespace: crate::intern::Sym::new("default"),
        controller: db,
        selector: Some(match_labels(&[("app", "db")])),
    });
    let nodes = vec![
        (n("node-a", &[(LABEL_HOSTNAME, "node-a")]), vec![member("db-0", "r1"), member("db-1", "r2")]),
        (n("node-b", &[(LABEL_HOSTNAME, "node-b")]), vec![p("other", &[("app", "web")])]),
    ];
    // Siblings count whatever their pod name and revision; pods of another app do not.
    // hostname weight ln(4): node-a 2·1.39 + 2 → 5, node-b 0 + 2 → 2.
    check_scores_with(&pl, &member("db-2", "r2"), nodes.clone(), &sources, &["node-a", "node-b"], &[40, 100]);
    let snap = snapshot_with(nodes, TRACKED, &sources);
    let feasible = ["node-a", "node-b"];
    let bare = p("bare", &[("app", "db")]);
    assert_eq!(scores(&pl, &bare, &snap, &feasible), None, "labels alone select nothing");
    assert_eq!(scores(&pl, &p("bare", &[]), &snap, &feasible), None);
}

#[test]
fn list_defaults_apply_only_to_pods_without_constraints() {
    let pl = plugin(json!({
        "defaultingType": "List",
        "defaultConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
            {"maxSkew": 2, "topologyKey": "planet", "whenUnsatisfiable": "ScheduleAnyway"}
        ]
    }));
    let nodes = four_zoned_nodes([&["a1"], &[], &[], &[]]);
    check_filter_with(&pl, &p("p", &[("foo", "")]), nodes.clone(), &service(&[("foo", "")]), &[U, U, S, S]);
    // A pod with a constraint of its own (even only a soft one) gets no defaults.
    check_filter(&pl, &incoming(&[("foo", "")], vec![soft(1, "zone", foo())]), nodes, &[S, S, S, S]);
}
