//! Cases after upstream's `filtering_test.go` and `scoring_test.go`, each run twice: with the
//! topology keys tracked (the index path) and untracked (counting from the nodes).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::filter::PRE_FILTER_KEY;
use super::*;
use crate::framework::{CycleState, FilterPlugin, PreFilterPlugin, PreScorePlugin, ScorePlugin};
use crate::labels::{LabelSelector, LabelSet, Operator, Requirement};
use crate::model::{NamespaceScope, Node, WeightedAffinityTerm};
use crate::nodeinfo::NodeInfo;
use crate::plugins::testing::*;
use crate::snapshot::Snapshot;
use crate::status::{Code, Reason, Status};

const TRACKED: &[&str] = &["region", "zone", "az", "kubernetes.io/hostname"];
use Code::{Success as S, Unschedulable as U, UnschedulableAndUnresolvable as UU};

fn plugin(args: serde_json::Value) -> InterPodAffinity {
    let args: InterPodAffinityArgs = serde_json::from_value(args).unwrap_or_else(|e| panic!("{e}"));
    InterPodAffinity::from_args(args).unwrap_or_else(|e| panic!("{e}"))
}

fn default_plugin() -> InterPodAffinity {
    plugin(json!({}))
}

fn n(name: &str, labels: &[(&str, &str)]) -> Node {
    with_labels(node(name, 1000, GI), labels)
}

fn p(name: &str, labels: &[(&str, &str)]) -> Pod {
    labelled(pod(name, 0, 0), labels)
}

fn req(key: &str, op: Operator, values: &[&str]) -> Requirement {
    Requirement { key: Sym::new(key), op, values: values.iter().map(|v| Sym::new(v)).collect(), bound: 0 }
}

fn sel(reqs: Vec<Requirement>) -> Option<LabelSelector> {
    Some(LabelSelector { requirements: reqs })
}

fn service_in(values: &[&str]) -> Option<LabelSelector> {
    sel(vec![req("service", Operator::In, values)])
}

fn weighted(weight: i32, key: &str, selector: Option<LabelSelector>) -> WeightedAffinityTerm {
    WeightedAffinityTerm { weight, term: affinity_term(key, selector) }
}

/// Four nodes: two in region r1 (zones z11, z12), one in r2, one with no region or zone.
fn cluster(pods: [Vec<Pod>; 4]) -> Vec<(Node, Vec<Pod>)> {
    let [a, b, c, d] = pods;
    vec![
        (n("machine1", &[("region", "r1"), ("zone", "z11")]), a),
        (n("machine2", &[("region", "r1"), ("zone", "z12")]), b),
        (n("machine3", &[("region", "r2"), ("zone", "z21")]), c),
        (n("machine4", &[]), d),
    ]
}

fn namespaces() -> Arc<HashMap<Sym, LabelSet>> {
    Arc::new(HashMap::from([
        (Sym::new("default"), LabelSet::from_pairs([("team", "core")])),
        (Sym::new("prod-a"), LabelSet::from_pairs([("env", "prod")])),
        (Sym::new("prod-b"), LabelSet::from_pairs([("env", "prod")])),
        (Sym::new("dev"), LabelSet::from_pairs([("env", "dev")])),
    ]))
}

fn snapshots(nodes: &[(Node, Vec<Pod>)]) -> [(Snapshot, &'static str); 2] {
    [(TRACKED, "tracked"), (&[][..], "untracked")].map(|(keys, what)| {
        let mut snap = snapshot(nodes.to_vec(), keys);
        snap.set_namespaces(namespaces());
        (snap, what)
    })
}

fn filter_statuses(pl: &InterPodAffinity, pod: &Pod, snap: &Snapshot) -> Vec<Status> {
    let mut cs = CycleState::new();
    match pl.pre_filter(&mut cs, pod, snap) {
        Err(s) if s.code == Code::Skip => return snap.nodes().map(|_| Status::success()).collect(),
        Err(s) => panic!("PreFilter failed: {s}"),
        Ok(restriction) => assert_eq!(restriction, None),
    }
    snap.nodes().map(|node| pl.filter(&cs, pod, node)).collect()
}

/// Filter verdicts per node, asserted equal on both paths.
fn check_filter(pod: &Pod, nodes: Vec<(Node, Vec<Pod>)>, want: &[Code]) {
    for (snap, what) in snapshots(&nodes) {
        let codes: Vec<Code> = filter_statuses(&default_plugin(), pod, &snap).iter().map(|s| s.code).collect();
        assert_eq!(codes, want, "{what}");
    }
}

fn with_affinity(mut pod: Pod, terms: Vec<AffinityTerm>) -> Pod {
    pod.pod_affinity.required = terms;
    pod
}

fn with_anti_affinity(mut pod: Pod, terms: Vec<AffinityTerm>) -> Pod {
    pod.pod_anti_affinity.required = terms;
    pod
}

fn securityscan(name: &str) -> Pod {
    p(name, &[("service", "securityscan")])
}

#[test]
fn a_pod_without_terms_and_no_existing_anti_affinity_skips() {
    let (snap, _) = snapshots(&cluster([vec![securityscan("e")], vec![], vec![], vec![]]))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!());
    let mut cs = CycleState::new();
    let r = default_plugin().pre_filter(&mut cs, &p("p", &[]), &snap);
    assert_eq!(r.map_err(|s| s.code), Err(Code::Skip));
    assert!(cs.read::<filter::PreFilterState>(PRE_FILTER_KEY).is_none());
}

#[test]
fn required_affinity_needs_a_matching_pod_in_the_domain() {
    let nodes = cluster([vec![securityscan("e")], vec![], vec![], vec![]]);
    let in_op = with_affinity(p("p", &[]), vec![affinity_term("region", service_in(&["securityscan", "value2"]))]);
    check_filter(&in_op, nodes.clone(), &[S, S, UU, UU]);
    let not_in = sel(vec![req("service", Operator::NotIn, &["securityscan3", "value3"])]);
    check_filter(&with_affinity(p("p", &[]), vec![affinity_term("region", not_in)]), nodes.clone(), &[S, S, UU, UU]);
    let unmatched = with_affinity(p("p", &[]), vec![affinity_term("region", service_in(&["antivirusscan", "value2"]))]);
    check_filter(&unmatched, nodes.clone(), &[UU, UU, UU, UU]);
    // matchExpressions are ANDed.
    let anded = sel(vec![
        req("service", Operator::Exists, &[]),
        req("wrongkey", Operator::DoesNotExist, &[]),
        req("service", Operator::In, &["x"]),
    ]);
    check_filter(&with_affinity(p("p", &[]), vec![affinity_term("region", anded)]), nodes.clone(), &[UU, UU, UU, UU]);
    let (snap, _) = snapshots(&nodes).into_iter().next().unwrap_or_else(|| panic!());
    let statuses = filter_statuses(&default_plugin(), &in_op, &snap);
    assert_eq!(statuses[2].reasons, vec![Reason::Borrowed(ERR_REASON_AFFINITY_RULES_NOT_MATCH)]);
}

#[test]
fn required_affinity_looks_only_in_the_term_namespaces() {
    let nodes = cluster([vec![securityscan("e")], vec![in_namespace(securityscan("f"), "prod-a")], vec![], vec![]]);
    let mut term = affinity_term("zone", service_in(&["securityscan"]));
    term.namespaces = NamespaceScope { names: vec![Sym::new("prod-a")], selector: None };
    check_filter(&with_affinity(p("p", &[]), vec![term.clone()]), nodes.clone(), &[UU, S, UU, UU]);
    term.namespaces = NamespaceScope { names: vec![], selector: sel(vec![req("env", Operator::In, &["prod"])]) };
    check_filter(&with_affinity(p("p", &[]), vec![term.clone()]), nodes.clone(), &[UU, S, UU, UU]);
    term.namespaces = NamespaceScope { names: vec![], selector: Some(LabelSelector::default()) };
    check_filter(&with_affinity(p("p", &[]), vec![term]), nodes, &[S, S, UU, UU]);
}

#[test]
fn an_existing_pod_must_match_all_affinity_terms() {
    // One pod matches each term, none both: nothing counts, and the incoming pod does not match
    // itself, so no node fits.
    let nodes = cluster([vec![securityscan("e1")], vec![p("e2", &[("tier", "db")])], vec![], vec![]]);
    let terms = vec![
        affinity_term("region", service_in(&["securityscan"])),
        affinity_term("region", sel(vec![req("tier", Operator::Exists, &[])])),
    ];
    check_filter(&with_affinity(p("p", &[]), terms.clone()), nodes.clone(), &[UU, UU, UU, UU]);
    let both = cluster([vec![p("e", &[("service", "securityscan"), ("tier", "db")])], vec![], vec![], vec![]]);
    check_filter(&with_affinity(p("p", &[]), terms), both, &[S, S, UU, UU]);
}

#[test]
fn the_first_pod_of_a_self_attracting_group_may_go_anywhere_with_the_keys() {
    let term = affinity_term("zone", service_in(&["securityscan"]));
    let first = with_affinity(securityscan("p"), vec![term.clone()]);
    check_filter(&first, cluster([vec![], vec![p("other", &[("service", "web")])], vec![], vec![]]), &[S, S, S, UU]);
    // Not matching its own terms, it has nothing to be near.
    check_filter(
        &with_affinity(p("p", &[]), vec![term.clone()]),
        cluster([vec![], vec![], vec![], vec![]]),
        &[UU, UU, UU, UU],
    );
    // Once one matching pod exists, only its domain fits.
    check_filter(&first, cluster([vec![], vec![securityscan("e")], vec![], vec![]]), &[UU, S, UU, UU]);
}

#[test]
fn required_anti_affinity_forbids_domains_with_matching_pods() {
    let nodes = cluster([vec![securityscan("e")], vec![], vec![], vec![]]);
    let affinity = affinity_term("region", service_in(&["securityscan"]));
    let pod = with_anti_affinity(
        with_affinity(p("p", &[]), vec![affinity.clone()]),
        vec![affinity_term("zone", service_in(&["securityscan"]))],
    );
    check_filter(&pod, nodes.clone(), &[U, S, UU, UU]);
    let away_from_antivirus = with_anti_affinity(
        with_affinity(p("p", &[]), vec![affinity]),
        vec![affinity_term("zone", service_in(&["antivirusscan"]))],
    );
    check_filter(&away_from_antivirus, nodes.clone(), &[S, S, UU, UU]);
    // A node without the anti-affinity key is never in a forbidden domain.
    let region_anti = with_anti_affinity(p("p", &[]), vec![affinity_term("region", service_in(&["securityscan"]))]);
    check_filter(&region_anti, nodes.clone(), &[U, U, S, S]);
    // A term with no selector matches no pod.
    check_filter(&with_anti_affinity(p("p", &[]), vec![affinity_term("region", None)]), nodes.clone(), &[S, S, S, S]);
    let (snap, _) = snapshots(&nodes).into_iter().next().unwrap_or_else(|| panic!());
    let statuses = filter_statuses(&default_plugin(), &region_anti, &snap);
    assert_eq!(statuses[0].reasons, vec![Reason::Borrowed(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH)]);
}

#[test]
fn anti_affinity_namespace_selectors() {
    let nodes = cluster([
        vec![in_namespace(securityscan("a"), "prod-a")],
        vec![in_namespace(securityscan("b"), "dev")],
        vec![],
        vec![],
    ]);
    let mut term = affinity_term("zone", service_in(&["securityscan"]));
    term.namespaces = NamespaceScope { names: vec![], selector: sel(vec![req("env", Operator::In, &["prod"])]) };
    check_filter(&with_anti_affinity(p("p", &[]), vec![term.clone()]), nodes.clone(), &[U, S, S, S]);
    term.namespaces = NamespaceScope { names: vec![Sym::new("dev")], selector: Some(LabelSelector::default()) };
    check_filter(&with_anti_affinity(p("p", &[]), vec![term]), nodes, &[U, U, S, S]);
}

#[test]
fn existing_pods_anti_affinity_is_symmetric() {
    let existing =
        with_anti_affinity(p("e", &[("service", "web")]), vec![affinity_term("zone", service_in(&["securityscan"]))]);
    let nodes = cluster([vec![existing.clone()], vec![], vec![], vec![]]);
    // The incoming pod has no terms, but matches the existing pod's anti-affinity.
    check_filter(&securityscan("p"), nodes.clone(), &[U, S, S, S]);
    check_filter(&p("p", &[("service", "other")]), nodes.clone(), &[S, S, S, S]);
    let (snap, _) = snapshots(&nodes).into_iter().next().unwrap_or_else(|| panic!());
    let statuses = filter_statuses(&default_plugin(), &securityscan("p"), &snap);
    assert_eq!(statuses[0].reasons, vec![Reason::Borrowed(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH)]);
    // An existing term looks at its owner's namespace by default.
    check_filter(&in_namespace(securityscan("p"), "dev"), nodes, &[S, S, S, S]);
    // With a namespace selector, it is evaluated on the incoming pod's namespace labels.
    let mut term = affinity_term("region", service_in(&["securityscan"]));
    term.namespaces = NamespaceScope { names: vec![], selector: sel(vec![req("env", Operator::In, &["prod"])]) };
    let nodes = cluster([vec![with_anti_affinity(p("e", &[]), vec![term])], vec![], vec![], vec![]]);
    check_filter(&in_namespace(securityscan("p"), "prod-b"), nodes.clone(), &[U, U, S, S]);
    check_filter(&in_namespace(securityscan("p"), "dev"), nodes.clone(), &[S, S, S, S]);
    check_filter(&in_namespace(securityscan("p"), "unknown"), nodes, &[S, S, S, S]);
}

#[test]
fn existing_anti_affinity_by_hostname_forbids_only_that_node() {
    let anti = |name: &str| {
        with_anti_affinity(
            p(name, &[("app", "web")]),
            vec![affinity_term("kubernetes.io/hostname", sel(vec![req("app", Operator::In, &["web"])]))],
        )
    };
    let nodes = cluster([vec![anti("w1")], vec![], vec![anti("w2")], vec![]]);
    check_filter(&anti("w3"), nodes, &[U, S, U, S]);
}

#[test]
fn filter_without_pre_filter_state_is_an_error() {
    let ni = node_info(0, n("machine1", &[]), vec![]);
    assert_eq!(default_plugin().filter(&CycleState::new(), &p("p", &[]), &ni).code, Code::Error);
}

fn scores_of(pl: &InterPodAffinity, pod: &Pod, snap: &Snapshot) -> Option<Vec<i64>> {
    let nodes: Vec<&NodeInfo> = snap.nodes().map(|n| n.as_ref()).collect();
    let mut cs = CycleState::new();
    let status = pl.pre_score(&mut cs, pod, snap, &nodes);
    if status.code == Code::Skip {
        return None;
    }
    assert!(status.is_success(), "{status}");
    let mut s: Vec<i64> = nodes.iter().map(|node| pl.score(&cs, pod, node)).collect();
    pl.normalize_score(&cs, pod, &mut s);
    Some(s)
}

/// Normalised scores per node (`None`: PreScore skipped), asserted equal on both paths.
fn check_scores(pl: &InterPodAffinity, pod: &Pod, nodes: Vec<(Node, Vec<Pod>)>, want: Option<&[i64]>) {
    for (snap, what) in snapshots(&nodes) {
        assert_eq!(scores_of(pl, pod, &snap).as_deref(), want, "{what}");
    }
}

fn s1(name: &str) -> Pod {
    p(name, &[("security", "S1")])
}

fn s2(name: &str) -> Pod {
    p(name, &[("security", "S2")])
}

fn security(value: &str) -> Option<LabelSelector> {
    sel(vec![req("security", Operator::In, &[value])])
}

fn preferring(mut pod: Pod, affinity: Vec<WeightedAffinityTerm>, anti: Vec<WeightedAffinityTerm>) -> Pod {
    pod.pod_affinity.preferred = affinity;
    pod.pod_anti_affinity.preferred = anti;
    pod
}

fn china_india_az() -> [Node; 3] {
    [n("node1", &[("region", "China")]), n("node2", &[("region", "India")]), n("node3", &[("az", "az1")])]
}

#[test]
fn preferred_affinity_scores_the_matching_domain() {
    let [china, india, az] = china_india_az();
    let pod = preferring(s1("p"), vec![weighted(5, "region", security("S1"))], vec![]);
    let nodes = vec![
        (china.clone(), vec![s1("a")]),
        (india, vec![s2("b")]),
        (az, vec![p("c", &[("security", "S1"), ("x", "y")])]),
    ];
    check_scores(&default_plugin(), &pod, nodes, Some(&[100, 0, 0]));
    // Every node of the matching domain scores alike.
    let china2 = n("node2", &[("region", "China"), ("az", "az1")]);
    let nodes = vec![(china, vec![s1("a")]), (china2, vec![]), (n("node3", &[("region", "India")]), vec![])];
    check_scores(&default_plugin(), &pod, nodes, Some(&[100, 100, 0]));
}

#[test]
fn preferred_anti_affinity_and_negative_totals_normalise_min_to_max() {
    let anti = preferring(s1("p"), vec![], vec![weighted(5, "az", security("S1"))]);
    let nodes =
        vec![(n("node1", &[("az", "az1")]), vec![s1("a")]), (n("node2", &[("region", "China")]), vec![s2("b")])];
    check_scores(&default_plugin(), &anti, nodes, Some(&[0, 100]));
    let mixed = preferring(
        p("p", &[]),
        vec![weighted(3, "region", security("S2"))],
        vec![weighted(5, "region", security("S1"))],
    );
    let nodes = vec![
        (n("node1", &[("region", "China")]), vec![s1("a")]),
        (n("node2", &[("region", "India")]), vec![s2("b")]),
        (n("node3", &[("region", "Japan")]), vec![]),
    ];
    // Raw -5, 3, 0.
    check_scores(&default_plugin(), &mixed, nodes, Some(&[0, 100, 62]));
}

#[test]
fn existing_pods_terms_toward_the_pod_score_symmetrically() {
    let nodes = |existing: Pod| {
        vec![(n("node1", &[("region", "China")]), vec![existing]), (n("node2", &[("region", "India")]), vec![s2("b")])]
    };
    let preferred = preferring(s2("e"), vec![weighted(5, "region", security("S1"))], vec![]);
    check_scores(&default_plugin(), &s1("p"), nodes(preferred.clone()), Some(&[100, 0]));
    let avoiding = preferring(s2("e"), vec![], vec![weighted(5, "region", security("S1"))]);
    check_scores(&default_plugin(), &s1("p"), nodes(avoiding), Some(&[0, 100]));
    let required = with_affinity(s2("e"), vec![affinity_term("region", security("S1"))]);
    check_scores(&default_plugin(), &s1("p"), nodes(required.clone()), Some(&[100, 0]));
    check_scores(&plugin(json!({"hardPodAffinityWeight": 0})), &s1("p"), nodes(required), None);
    // Existing pods' preferred terms are ignored only for pods without preferred terms.
    let ignoring = plugin(json!({"ignorePreferredTermsOfExistingPods": true}));
    check_scores(&ignoring, &s1("p"), nodes(preferred.clone()), None);
    let own = preferring(s1("p"), vec![weighted(1, "region", security("none"))], vec![]);
    check_scores(&ignoring, &own, nodes(preferred), Some(&[100, 0]));
}

#[test]
fn weights_accumulate_per_matching_pod() {
    let pod = preferring(p("p", &[]), vec![weighted(2, "region", security("S1"))], vec![]);
    let nodes = vec![
        (n("node1", &[("region", "China")]), vec![s1("a1"), s1("a2"), s1("a3")]),
        (n("node2", &[("region", "India")]), vec![s1("b1")]),
        (n("node3", &[("region", "Japan")]), vec![]),
    ];
    // Raw 6, 2, 0.
    check_scores(&default_plugin(), &pod, nodes, Some(&[100, 33, 0]));
}

#[test]
fn no_matching_term_anywhere_skips_scoring() {
    let pod = preferring(p("p", &[]), vec![weighted(2, "region", security("nobody"))], vec![]);
    let nodes = vec![(n("node1", &[("region", "China")]), vec![s1("a")])];
    check_scores(&default_plugin(), &pod, nodes, None);
}

#[test]
fn args_are_validated_naming_the_field() {
    for bad in [json!({"hardPodAffinityWeight": 101}), json!({"hardPodAffinityWeight": -1})] {
        match new(Some(&bad)) {
            Err(PluginError::BadArgs { message, .. }) => {
                assert!(message.contains("hardPodAffinityWeight"), "{message}")
            }
            other => panic!("expected BadArgs, got {other:?}"),
        }
    }
    assert!(
        matches!(new(Some(&json!({"bogus": true}))), Err(PluginError::BadArgs { message, .. }) if message.contains("bogus"))
    );
    assert!(new(None).is_ok());
    assert_eq!(InterPodAffinityArgs::default().hard_pod_affinity_weight, 1);
}
