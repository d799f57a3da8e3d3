//! multiPoint expansion, per-point overrides, disabling and weights, as upstream's framework.

use tessera_plugins::registry::Registry;

use super::fakes::{upstream_like, with_extras};
use super::{at, err, ok, scores};
use crate::config::ExtensionPoint as E;

#[test]
fn multi_point_with_everything_disabled_keeps_only_what_is_listed() {
    let c = ok(
        r#"
profiles:
- plugins:
    multiPoint:
      enabled:
      - name: PrioritySort
      - name: NodeResourcesFit
        weight: 5
      - name: ImageLocality
      disabled:
      - name: "*"
"#,
        &upstream_like(),
    );
    let p = &c.profiles[0];
    assert_eq!(at(p, E::QueueSort), ["PrioritySort"]);
    assert_eq!(at(p, E::PreFilter), ["NodeResourcesFit"]);
    assert_eq!(at(p, E::Filter), ["NodeResourcesFit"]);
    assert_eq!(at(p, E::PreScore), ["NodeResourcesFit"]);
    assert_eq!(scores(p), [("NodeResourcesFit", 5), ("ImageLocality", 1)]);
}

#[test]
fn multi_point_disabled_removes_a_default_everywhere() {
    let c = ok(
        "profiles:\n- plugins:\n    multiPoint:\n      disabled:\n      - name: TaintToleration\n",
        &upstream_like(),
    );
    let p = &c.profiles[0];
    for point in E::ALL {
        assert!(!at(p, point).contains(&"TaintToleration"), "{point:?}");
    }
    assert_eq!(at(p, E::Filter)[..3], ["NodeUnschedulable", "NodeName", "NodeAffinity"]);
}

#[test]
fn disabling_at_one_point_keeps_the_plugin_at_the_others() {
    let c = ok("profiles:\n- plugins:\n    filter:\n      disabled:\n      - name: NodePorts\n", &upstream_like());
    let p = &c.profiles[0];
    assert!(!at(p, E::Filter).contains(&"NodePorts"));
    assert!(at(p, E::PreFilter).contains(&"NodePorts"));
}

#[test]
fn star_at_one_point_keeps_multi_point_out_of_it_only() {
    let c = ok(
        "profiles:\n- plugins:\n    filter:\n      enabled:\n      - name: NodeName\n      disabled:\n      - name: \"*\"\n",
        &upstream_like(),
    );
    let p = &c.profiles[0];
    assert_eq!(at(p, E::Filter), ["NodeName"]);
    assert_eq!(at(p, E::PreFilter).len(), 5);
    assert_eq!(scores(p).len(), 7);
}

#[test]
fn a_plugin_enabled_at_a_single_point_runs_only_there() {
    let c = ok("profiles:\n- plugins:\n    permit:\n      enabled:\n      - name: Gang\n", &with_extras());
    let p = &c.profiles[0];
    assert_eq!(at(p, E::Permit), ["Gang"]);
    // Gang also implements PreEnqueue and Reserve, but was not enabled there.
    assert!(at(p, E::PreEnqueue).is_empty());
    assert!(at(p, E::Reserve).is_empty());
}

#[test]
fn a_custom_multi_point_plugin_goes_to_every_point_it_implements_after_the_defaults() {
    let c = ok(
        "profiles:\n- plugins:\n    multiPoint:\n      enabled:\n      - name: Gang\n      - name: Nothing\n",
        &with_extras(),
    );
    let p = &c.profiles[0];
    assert_eq!(at(p, E::PreEnqueue), ["Gang"]);
    assert_eq!(at(p, E::Reserve), ["Gang"]);
    assert_eq!(at(p, E::Permit), ["Gang"]);
    assert_eq!(at(p, E::Filter).len(), 8);
}

#[test]
fn explicit_entry_at_a_point_overrides_multi_point_and_moves_first() {
    let c = ok(
        r#"
profiles:
- plugins:
    filter:
      enabled:
      - name: NodePorts
    score:
      enabled:
      - name: ImageLocality
        weight: 5
"#,
        &upstream_like(),
    );
    let p = &c.profiles[0];
    assert_eq!(
        at(p, E::Filter),
        [
            "NodePorts",
            "NodeUnschedulable",
            "NodeName",
            "TaintToleration",
            "NodeAffinity",
            "NodeResourcesFit",
            "PodTopologySpread",
            "InterPodAffinity"
        ]
    );
    assert_eq!(scores(p)[0], ("ImageLocality", 5));
    assert_eq!(scores(p).len(), 7);
}

#[test]
fn explicit_entries_not_in_multi_point_come_after_it() {
    let c = ok(
        "profiles:\n- plugins:\n    filter:\n      enabled:\n      - name: Picky\n      - name: NodeName\n",
        &with_extras(),
    );
    let f = at(&c.profiles[0], E::Filter);
    assert_eq!(f[0], "NodeName");
    assert_eq!(f.last(), Some(&"Picky"));
    assert_eq!(f.len(), 9);
}

#[test]
fn reconfiguring_a_default_in_multi_point_keeps_its_position() {
    let c = ok(
        "profiles:\n- plugins:\n    multiPoint:\n      enabled:\n      - name: NodeAffinity\n        weight: 7\n",
        &upstream_like(),
    );
    let p = &c.profiles[0];
    assert_eq!(scores(p)[..3], [("TaintToleration", 3), ("NodeAffinity", 7), ("NodeResourcesFit", 1)]);
    assert_eq!(at(p, E::Filter)[3], "NodeAffinity");
}

#[test]
fn disabling_then_enabling_a_default_in_multi_point_moves_it_last() {
    let c = ok(
        "profiles:\n- plugins:\n    multiPoint:\n      enabled:\n      - name: NodeAffinity\n      disabled:\n      - name: NodeAffinity\n",
        &upstream_like(),
    );
    let p = &c.profiles[0];
    assert_eq!(at(p, E::Filter).last(), Some(&"NodeAffinity"));
    assert_eq!(scores(p).last(), Some(&("NodeAffinity", 1)));
}

#[test]
fn weights_default_to_one_and_zero_means_default() {
    let c = ok(
        r#"
profiles:
- plugins:
    multiPoint:
      enabled:
      - name: Picky
    score:
      enabled:
      - name: TaintToleration
      - name: ImageLocality
        weight: 0
      - name: NodeAffinity
        weight: 4
"#,
        &with_extras(),
    );
    let s = scores(&c.profiles[0]);
    let w = |n: &str| s.iter().find(|(x, _)| *x == n).map(|(_, w)| *w);
    // An explicit score entry decides the weight even without one: upstream reads score's
    // entries before multiPoint's, and an unset weight there is 1, not multiPoint's 3.
    assert_eq!(w("TaintToleration"), Some(1));
    assert_eq!(w("ImageLocality"), Some(1));
    assert_eq!(w("NodeAffinity"), Some(4));
    assert_eq!(w("Picky"), Some(1));
    assert_eq!(w("PodTopologySpread"), Some(2));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn weight_outside_score_is_a_warning_and_bad_weights_are_errors() {
    let c = ok(
        "profiles:\n- plugins:\n    filter:\n      enabled:\n      - name: Picky\n        weight: 3\n",
        &with_extras(),
    );
    assert_eq!(
        c.warnings,
        [
            "test.yaml: profiles[0].plugins.filter.enabled[0].weight: weights apply only at score and multiPoint; ignored"
        ]
    );

    let e = err(
        "profiles:\n- plugins:\n    score:\n      enabled:\n      - name: ImageLocality\n        weight: -1\n",
        &upstream_like(),
    );
    assert_eq!(
        e,
        "test.yaml: profiles[0].plugins.score.enabled[0].weight: must be in 0..=2147483647 (0 means the default, 1), got -1"
    );
    let e = err(
        "profiles:\n- plugins:\n    multiPoint:\n      enabled:\n      - name: ImageLocality\n        weight: 2147483648\n",
        &upstream_like(),
    );
    assert!(
        e.starts_with("test.yaml: profiles[0].plugins.multiPoint.enabled[0].weight: must be in 0..=2147483647"),
        "{e}"
    );
}

#[test]
fn unknown_plugin_names_the_field_and_lists_known_plugins() {
    let r = Registry::builtin();
    let e = err(
        "profiles:\n- plugins:\n    filter:\n      enabled:\n      - name: NodeName\n      - name: NodePorts\n      - name: NodeResourceFit\n",
        &r,
    );
    let known = r.names().collect::<Vec<_>>().join(", ");
    assert_eq!(
        e,
        format!(
            "test.yaml: profiles[0].plugins.filter.enabled[2].name: unknown plugin \"NodeResourceFit\" (known plugins: {known})"
        )
    );
    assert!(known.contains("NodeResourcesFit"));

    let e = err("profiles:\n- plugins:\n    multiPoint:\n      disabled:\n      - name: NodeResourceFit\n", &r);
    assert!(
        e.starts_with("test.yaml: profiles[0].plugins.multiPoint.disabled[0].name: unknown plugin \"NodeResourceFit\""),
        "{e}"
    );
}

#[test]
fn disabling_an_upstream_plugin_tessera_lacks_is_a_warning() {
    let c = ok(
        "profiles:\n- plugins:\n    multiPoint:\n      disabled:\n      - name: EBSLimits\n      - name: DefaultPreemption\n",
        &Registry::builtin(),
    );
    assert_eq!(c.warnings.len(), 2);
    assert_eq!(
        c.warnings[0],
        "test.yaml: profiles[0].plugins.multiPoint.disabled[0].name: Tessera has no plugin \"EBSLimits\"; disabling it changes nothing"
    );
}

#[test]
fn a_plugin_enabled_where_it_does_not_belong_is_an_error() {
    let e = err("profiles:\n- plugins:\n    filter:\n      enabled:\n      - name: PrioritySort\n", &upstream_like());
    assert_eq!(
        e,
        "test.yaml: profiles[0].plugins.filter.enabled[0].name: plugin \"PrioritySort\" does not extend FilterPlugin"
    );
}

#[test]
fn duplicates_are_errors() {
    let e = err(
        "profiles:\n- plugins:\n    filter:\n      enabled:\n      - name: Picky\n      - name: Picky\n",
        &with_extras(),
    );
    assert_eq!(
        e,
        "test.yaml: profiles[0].plugins.filter.enabled[1].name: plugin \"Picky\" already registered as FilterPlugin"
    );
    let e = err(
        "profiles:\n- plugins:\n    multiPoint:\n      enabled:\n      - name: Gang\n      - name: Gang\n",
        &with_extras(),
    );
    assert_eq!(e, "test.yaml: profiles[0].plugins.multiPoint.enabled[1].name: plugin already registered: \"Gang\"");
}

#[test]
fn at_most_one_queue_sort_plugin() {
    let e = err("profiles:\n- plugins:\n    queueSort:\n      enabled:\n      - name: OtherSort\n", &with_extras());
    assert_eq!(
        e,
        "test.yaml: profiles[0].plugins.queueSort: only one queue sort plugin can be enabled, got 2: PrioritySort, OtherSort"
    );

    let c = ok(
        "profiles:\n- plugins:\n    queueSort:\n      enabled:\n      - name: OtherSort\n      disabled:\n      - name: \"*\"\n",
        &with_extras(),
    );
    assert_eq!(at(&c.profiles[0], E::QueueSort), ["OtherSort"]);

    // None at all is allowed: the framework then sorts by priority and age.
    let c = ok("profiles:\n- plugins:\n    multiPoint:\n      disabled:\n      - name: PrioritySort\n", &with_extras());
    assert!(c.profiles[0].queue_sort.is_none());
}
