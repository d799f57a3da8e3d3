//! Cases from upstream's `filtering_test.go` and `scoring_test.go`, each run twice: with the
//! topology keys tracked (the index path) and untracked (counting from the nodes).

use serde_json::json;

use super::*;
use crate::default_selector::{SelectorSources, SourceChange};
use crate::framework::{CycleState, PreFilterPlugin, PreScorePlugin, ScorePlugin};
use crate::labels::{LabelSelector, LabelSet};
use crate::model::{Node, SpreadConstraint};
use crate::nodeinfo::NodeInfo;
use crate::plugins::testing::*;
use crate::snapshot::Snapshot;
use crate::status::Code;

mod filtering;
mod scoring;

const TRACKED: &[&str] = &["zone", "node", "rack", LABEL_HOSTNAME, LABEL_ZONE];
use Code::Success as S;
use WhenUnsatisfiable::{DoNotSchedule, ScheduleAnyway};

fn plugin(args: serde_json::Value) -> PodTopologySpread {
    let args: PodTopologySpreadArgs = serde_json::from_value(args).unwrap_or_else(|e| panic!("{e}"));
    PodTopologySpread::from_args(args).unwrap_or_else(|e| panic!("{e}"))
}

fn list_defaulting() -> PodTopologySpread {
    plugin(json!({"defaultingType": "List"}))
}

fn n(name: &str, labels: &[(&str, &str)]) -> Node {
    let mut node = with_labels(node(name, 1000, GI), labels);
    // Upstream's fixtures have only the labels they list.
    if !labels.iter().any(|(k, _)| *k == LABEL_HOSTNAME) {
        node.labels = LabelSet::from_pairs(labels.iter().copied());
    }
    node
}

fn zn(name: &str, zone: &str) -> Node {
    n(name, &[("zone", zone), ("node", name)])
}

fn p(name: &str, labels: &[(&str, &str)]) -> Pod {
    labelled(pod(name, 0, 0), labels)
}

fn foo_pods(names: &[&str]) -> Vec<Pod> {
    names.iter().map(|name| p(name, &[("foo", "")])).collect()
}

fn foo() -> Option<LabelSelector> {
    Some(match_labels(&[("foo", "")]))
}

fn bar() -> Option<LabelSelector> {
    Some(match_labels(&[("bar", "")]))
}

fn incoming(labels: &[(&str, &str)], constraints: Vec<SpreadConstraint>) -> Pod {
    let mut pod = p("p", labels);
    pod.spread_constraints = constraints;
    pod
}

fn with_min_domains(mut c: SpreadConstraint, m: i32) -> SpreadConstraint {
    c.min_domains = Some(m);
    c
}

fn filter_codes(pl: &PodTopologySpread, pod: &Pod, snap: &Snapshot) -> Vec<Code> {
    let mut cs = CycleState::new();
    match pl.pre_filter(&mut cs, pod, snap) {
        Err(s) if s.code == Code::Skip => return snap.nodes().map(|_| S).collect(),
        Err(s) => panic!("PreFilter failed: {s}"),
        Ok(restriction) => assert_eq!(restriction, None),
    }
    snap.nodes().map(|node| pl.filter(&cs, pod, node).code).collect()
}

/// Filter verdicts per node, asserted equal on the index and on the fallback path.
fn check_filter(pl: &PodTopologySpread, pod: &Pod, nodes: Vec<(Node, Vec<Pod>)>, want: &[Code]) {
    check_filter_with(pl, pod, nodes, &SelectorSources::default(), want);
}

/// As [`check_filter`], with Services and controllers for default constraints.
fn check_filter_with(
    pl: &PodTopologySpread,
    pod: &Pod,
    nodes: Vec<(Node, Vec<Pod>)>,
    sources: &SelectorSources,
    want: &[Code],
) {
    for keys in [TRACKED, &[]] {
        let snap = snapshot_with(nodes.clone(), keys, sources);
        assert_eq!(filter_codes(pl, pod, &snap), want, "tracked keys {keys:?}");
    }
}

fn snapshot_with(nodes: Vec<(Node, Vec<Pod>)>, keys: &[&str], sources: &SelectorSources) -> Snapshot {
    let mut snap = snapshot(nodes, keys);
    snap.set_selector_sources(std::sync::Arc::new(sources.clone()));
    snap
}

/// A Service in namespace `default` selecting `labels`.
fn service(labels: &[(&str, &str)]) -> SelectorSources {
    let mut sources = SelectorSources::default();
    sources.apply(SourceChange::Service {
        namespace: crate::intern::Sym::new("default"),
        name: "svc".into(),
        selector: Some(LabelSet::from_pairs(labels.iter().copied())),
    });
    sources
}

fn scores(pl: &PodTopologySpread, pod: &Pod, snap: &Snapshot, feasible: &[&str]) -> Option<Vec<i64>> {
    let nodes: Vec<&NodeInfo> = feasible
        .iter()
        .filter_map(|name| snap.node_by_name(crate::intern::Sym::new(name)))
        .map(|n| n.as_ref())
        .collect();
    let mut cs = CycleState::new();
    let status = pl.pre_score(&mut cs, pod, snap, &nodes);
    if status.code == Code::Skip {
        return None;
    }
    assert!(status.is_success(), "{status}");
    let mut s: Vec<i64> = nodes.iter().map(|node| pl.score(&cs, pod, node)).collect();
    // The batch path (columns, per-domain tables, memo) must give exactly the per-node scores.
    let ids: Vec<_> = nodes.iter().map(|n| n.id).collect();
    let mut batch = vec![0; nodes.len()];
    pl.score_batch(&cs, pod, crate::framework::ScoreBatch::new(snap, &ids, &nodes), &mut batch);
    assert_eq!(batch, s, "score_batch differs from score");
    pl.normalize_score(&cs, pod, &mut s);
    Some(s)
}

/// Normalised scores of the `feasible` nodes, asserted equal on both paths.
fn check_scores(pl: &PodTopologySpread, pod: &Pod, nodes: Vec<(Node, Vec<Pod>)>, feasible: &[&str], want: &[i64]) {
    check_scores_with(pl, pod, nodes, &SelectorSources::default(), feasible, want);
}

/// As [`check_scores`], with Services and controllers for default constraints.
fn check_scores_with(
    pl: &PodTopologySpread,
    pod: &Pod,
    nodes: Vec<(Node, Vec<Pod>)>,
    sources: &SelectorSources,
    feasible: &[&str],
    want: &[i64],
) {
    for keys in [TRACKED, &[]] {
        let snap = snapshot_with(nodes.clone(), keys, sources);
        assert_eq!(scores(pl, pod, &snap, feasible).as_deref(), Some(want), "tracked keys {keys:?}");
    }
}

fn four_zoned_nodes(pods: [&[&str]; 4]) -> Vec<(Node, Vec<Pod>)> {
    let [a, b, x, y] = pods;
    vec![
        (zn("node-a", "zone1"), foo_pods(a)),
        (zn("node-b", "zone1"), foo_pods(b)),
        (zn("node-x", "zone2"), foo_pods(x)),
        (zn("node-y", "zone2"), foo_pods(y)),
    ]
}

fn hard(skew: i32, key: &str, selector: Option<LabelSelector>) -> SpreadConstraint {
    spread_constraint(skew, key, DoNotSchedule, selector)
}

fn soft(skew: i32, key: &str, selector: Option<LabelSelector>) -> SpreadConstraint {
    spread_constraint(skew, key, ScheduleAnyway, selector)
}

#[test]
fn args_are_validated_naming_the_field() {
    let err = |args: serde_json::Value| match new(Some(&args)) {
        Err(PluginError::BadArgs { message, .. }) => message,
        other => panic!("expected BadArgs, got {other:?}"),
    };
    let c = |extra: serde_json::Value| {
        let mut base = json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    };
    assert!(err(json!({"defaultConstraints": [c(json!({}))]})).contains("defaultConstraints"));
    assert!(
        err(json!({"defaultingType": "List", "defaultConstraints": [c(json!({"maxSkew": 0}))]})).contains("maxSkew")
    );
    assert!(
        err(json!({"defaultingType": "List", "defaultConstraints": [c(json!({"topologyKey": ""}))]}))
            .contains("topologyKey")
    );
    let selector = c(json!({"labelSelector": {"matchLabels": {"a": "b"}}}));
    assert!(err(json!({"defaultingType": "List", "defaultConstraints": [selector]})).contains("labelSelector"));
    assert!(
        err(json!({"defaultingType": "List", "defaultConstraints": [c(json!({"minDomains": 0}))]}))
            .contains("minDomains")
    );
    assert!(
        err(json!({"defaultingType": "List", "defaultConstraints": [c(json!({})), c(json!({}))]}))
            .contains("duplicates")
    );
    assert!(err(json!({"defaultingType": "Sometimes"})).contains("defaultingType"));
    assert!(err(json!({"unknown": 1})).contains("unknown"));
    let when = c(json!({"whenUnsatisfiable": "Maybe"}));
    assert!(err(json!({"defaultingType": "List", "defaultConstraints": [when]})).contains("whenUnsatisfiable"));
    let policy = c(json!({"nodeTaintsPolicy": "Sometimes"}));
    assert!(err(json!({"defaultingType": "List", "defaultConstraints": [policy]})).contains("nodeTaintsPolicy"));
    assert!(new(None).is_ok());
}

#[test]
fn default_constraint_keys_are_exposed_for_tracking() {
    let keys = new(None).unwrap().topology_keys();
    let names: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    assert_eq!(names, vec![LABEL_ZONE, LABEL_HOSTNAME]);
    let list = json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"}]});
    let keys = new(Some(&list)).unwrap().topology_keys();
    assert_eq!(keys.iter().map(|k| k.as_str()).collect::<Vec<_>>(), vec!["rack"]);
}
