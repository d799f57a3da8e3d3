//! Hard constraints: upstream's `TestSingleConstraint` and `TestMultipleConstraints` cases.

use super::super::filter::{PRE_FILTER_KEY, PreFilterState};
use super::*;
use crate::framework::FilterPlugin;
use crate::intern::Sym;
use crate::labels::{LabelSet, NodeSelector, NodeSelectorTerm, Operator, Requirement};
use crate::model::{InclusionPolicy, Taint, TaintEffect, Toleration, TolerationOperator};
use crate::status::Reason;
use Code::{Unschedulable as U, UnschedulableAndUnresolvable as UU};

#[test]
fn filter_without_existing_pods_admits_every_node() {
    let pl = list_defaulting();
    let nodes = four_zoned_nodes([&[], &[], &[], &[]]);
    check_filter(&pl, &incoming(&[("foo", "")], vec![hard(1, "zone", foo())]), nodes.clone(), &[S, S, S, S]);
    // The incoming pod does not match its own selector.
    check_filter(&pl, &incoming(&[("foo", "")], vec![hard(1, "zone", bar())]), nodes, &[S, S, S, S]);
}

#[test]
fn pods_of_other_namespaces_do_not_count() {
    let nodes = vec![
        (
            zn("node-a", "zone1"),
            vec![in_namespace(p("p-a1", &[("foo", "")]), "ns1"), in_namespace(p("p-b1", &[("foo", "")]), "ns2")],
        ),
        (zn("node-b", "zone1"), vec![]),
        (zn("node-x", "zone2"), foo_pods(&["p-x1"])),
        (zn("node-y", "zone2"), foo_pods(&["p-y1"])),
    ];
    check_filter(&list_defaulting(), &incoming(&[("foo", "")], vec![hard(1, "zone", foo())]), nodes, &[S, S, U, U]);
}

#[test]
fn a_null_selector_matches_no_pod() {
    let nodes = four_zoned_nodes([&[], &[], &["p-x1"], &["p-y1"]]);
    check_filter(&list_defaulting(), &incoming(&[("foo", "")], vec![hard(1, "zone", None)]), nodes, &[S, S, S, S]);
}

#[test]
fn zones_spread_three_three_admit_every_node() {
    let nodes = four_zoned_nodes([&["p-a1", "p-a2"], &["p-b1"], &[], &["p-y1", "p-y2", "p-y3"]]);
    check_filter(&list_defaulting(), &incoming(&[("foo", "")], vec![hard(1, "zone", foo())]), nodes, &[S, S, S, S]);
}

#[test]
fn a_node_without_the_key_is_unresolvable_and_its_pods_do_not_count() {
    let nodes = vec![
        (zn("node-a", "zone1"), foo_pods(&["p-a1"])),
        (n("node-b", &[("zon", "zone1"), ("node", "node-b")]), foo_pods(&["p-b1"])),
        (zn("node-x", "zone2"), foo_pods(&["p-x1"])),
        (zn("node-y", "zone2"), foo_pods(&["p-y1"])),
    ];
    let pod = incoming(&[("foo", "")], vec![hard(1, "zone", foo())]);
    check_filter(&list_defaulting(), &pod, nodes.clone(), &[S, UU, U, U]);
    let snap = snapshot(nodes, TRACKED);
    let mut cs = CycleState::new();
    assert!(list_defaulting().pre_filter(&mut cs, &pod, &snap).is_ok());
    let nodes: Vec<_> = snap.nodes().collect();
    let missing = list_defaulting().filter(&cs, &pod, nodes[1]);
    assert_eq!(missing.reasons, vec![Reason::Borrowed(ERR_REASON_NODE_LABEL_NOT_MATCH)]);
    let skewed = list_defaulting().filter(&cs, &pod, nodes[2]);
    assert_eq!(skewed.reasons, vec![Reason::Borrowed(ERR_REASON_CONSTRAINTS_NOT_MATCH)]);
}

#[test]
fn no_node_has_the_key() {
    let nodes = vec![(zn("node-a", "zone1"), vec![]), (zn("node-x", "zone2"), vec![])];
    check_filter(&list_defaulting(), &incoming(&[("foo", "")], vec![hard(1, "rack", foo())]), nodes, &[UU, UU]);
}

#[test]
fn nodes_spread_two_one_zero_three() {
    let nodes = four_zoned_nodes([&["p-a1", "p-a2"], &["p-b1"], &[], &["p-y1", "p-y2", "p-y3"]]);
    let pl = list_defaulting();
    check_filter(&pl, &incoming(&[("foo", "")], vec![hard(1, "node", foo())]), nodes.clone(), &[U, U, S, U]);
    check_filter(&pl, &incoming(&[("foo", "")], vec![hard(2, "node", foo())]), nodes.clone(), &[U, S, S, U]);
    // The pod does not match itself: placing it changes nothing, so skew 1 from the minimum is allowed.
    check_filter(&pl, &incoming(&[("bar", "")], vec![hard(1, "node", foo())]), nodes, &[U, S, S, U]);
}

#[test]
fn node_affinity_policy_honor_counts_only_nodes_the_pod_may_use() {
    let nodes = four_zoned_nodes([&["p-a1", "p-a2"], &["p-b1"], &[], &["p-y1", "p-y2", "p-y3"]]);
    let mut pod = incoming(&[("foo", "")], vec![hard(1, "node", foo())]);
    let node_in = |values: &[&str]| Requirement {
        key: Sym::new("node"),
        op: Operator::In,
        values: values.iter().map(|v| Sym::new(v)).collect(),
        bound: 0,
    };
    let term = NodeSelectorTerm { match_expressions: vec![node_in(&["node-a", "node-y"])], match_fields: vec![] };
    pod.required_node_affinity = Some(NodeSelector { terms: vec![term] });
    // Spread as 2/~1~/~0~/3: node-b and node-x are not domains (NodeAffinity rejects them in
    // a real profile), so the minimum is 2 and node-a fits.
    check_filter(&list_defaulting(), &pod, nodes.clone(), &[S, S, S, U]);
    pod.spread_constraints[0].node_affinity_policy = InclusionPolicy::Ignore;
    check_filter(&list_defaulting(), &pod, nodes, &[U, U, S, U]);
}

#[test]
fn node_affinity_not_in_excludes_a_node_from_its_zone() {
    let nodes = four_zoned_nodes([&[], &["p-b1", "p-b2"], &[], &["p-y1"]]);
    let mut pod = incoming(&[("foo", "")], vec![hard(1, "zone", foo())]);
    let not_b = Requirement { key: Sym::new("node"), op: Operator::NotIn, values: vec![Sym::new("node-b")], bound: 0 };
    let term = NodeSelectorTerm { match_expressions: vec![not_b], match_fields: vec![] };
    pod.required_node_affinity = Some(NodeSelector { terms: vec![term] });
    // Spread as 0/~2~/0/1 by zone: zone1 counts 0.
    check_filter(&list_defaulting(), &pod, nodes, &[S, S, U, U]);
}

#[test]
fn node_selector_honor_counts_only_matching_nodes() {
    let mut nodes = four_zoned_nodes([&["p-a1", "p-a2"], &["p-b1"], &[], &["p-y1", "p-y2", "p-y3"]]);
    for (node, _) in nodes.iter_mut().filter(|(node, _)| ["node-a", "node-y"].contains(&node.name.as_str())) {
        node.labels.insert(Sym::new("pool"), Sym::new("big"));
    }
    let mut pod = incoming(&[("foo", "")], vec![hard(1, "node", foo())]);
    pod.node_selector = LabelSet::from_pairs([("pool", "big")]);
    check_filter(&list_defaulting(), &pod, nodes, &[S, S, S, U]);
}

#[test]
fn min_domains_treats_the_minimum_as_zero_when_domains_are_too_few() {
    let nodes = vec![
        (n("node-a", &[("node", "node-a")]), foo_pods(&["p-a1", "p-a2"])),
        (n("node-b", &[("node", "node-b")]), foo_pods(&["p-b1", "p-b2"])),
        (n("node-c", &[("node", "node-c")]), foo_pods(&["p-c1"])),
    ];
    let pl = list_defaulting();
    let more = incoming(&[("foo", "")], vec![with_min_domains(hard(2, "node", foo()), 4)]);
    check_filter(&pl, &more, nodes.clone(), &[U, U, S]);
    let fewer = incoming(&[("foo", "")], vec![with_min_domains(hard(2, "node", foo()), 2)]);
    check_filter(&pl, &fewer, nodes, &[S, S, S]);
}

#[test]
fn node_taints_policy_honor_drops_tainted_domains() {
    let taint = Taint { key: Sym::new("dedicated"), value: Sym::new("x"), effect: TaintEffect::NoSchedule };
    let nodes =
        vec![(zn("node-a", "zone1"), foo_pods(&["p-a1"])), (with_taint(zn("node-b", "zone2"), taint.clone()), vec![])];
    let mut pod = incoming(&[("foo", "")], vec![hard(1, "zone", foo())]);
    // Ignore (the default): zone2 counts 0, so zone1 would reach skew 2.
    check_filter(&list_defaulting(), &pod, nodes.clone(), &[U, S]);
    // Honor: zone2 holds only an untolerated node and is no domain; the minimum is zone1's 1.
    pod.spread_constraints[0].node_taints_policy = InclusionPolicy::Honor;
    check_filter(&list_defaulting(), &pod, nodes.clone(), &[S, S]);
    // Tolerating the taint brings zone2 back.
    pod.tolerations.push(Toleration {
        key: Some(taint.key),
        operator: TolerationOperator::Exists,
        value: Sym::new(""),
        effect: None,
    });
    check_filter(&list_defaulting(), &pod, nodes, &[U, S]);
}

#[test]
fn two_constraints_must_both_hold_and_nodes_need_every_key() {
    // zone: 3/3; node: 2/1/0/3 (node-x has no "rack", which only the third pod asks for).
    let nodes = four_zoned_nodes([&["p-a1", "p-a2"], &["p-b1"], &[], &["p-y1", "p-y2", "p-y3"]]);
    let pl = list_defaulting();
    let both = incoming(&[("foo", "")], vec![hard(1, "zone", foo()), hard(1, "node", foo())]);
    check_filter(&pl, &both, nodes.clone(), &[U, U, S, U]);
    let mut racked = nodes;
    for (node, _) in racked.iter_mut().filter(|(node, _)| node.name.as_str() != "node-x") {
        node.labels.insert(Sym::new("rack"), Sym::new("r1"));
    }
    // node-x lacks "rack": it is rejected and its domain drops out of "node", whose minimum
    // becomes node-b's 1.
    let three = incoming(&[("foo", "")], vec![hard(3, "rack", foo()), hard(1, "node", foo())]);
    check_filter(&pl, &three, racked, &[U, S, UU, U]);
}

#[test]
fn filter_without_pre_filter_state_is_an_error() {
    let ni = node_info(0, zn("node-a", "zone1"), vec![]);
    let s = list_defaulting().filter(&CycleState::new(), &incoming(&[], vec![]), &ni);
    assert_eq!(s.code, Code::Error);
}

#[test]
fn pre_filter_skips_pods_without_hard_constraints() {
    let snap = snapshot(vec![(zn("node-a", "zone1"), vec![])], TRACKED);
    let mut cs = CycleState::new();
    let soft_only = incoming(&[("foo", "")], vec![soft(1, "zone", foo())]);
    assert_eq!(list_defaulting().pre_filter(&mut cs, &soft_only, &snap).map_err(|s| s.code), Err(Code::Skip));
    assert!(cs.read::<PreFilterState>(PRE_FILTER_KEY).is_none());
}
