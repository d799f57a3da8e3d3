//! The default profile.

use std::sync::Arc;
use std::time::Duration;

use tessera_plugins::registry::Registry;

use super::fakes::{upstream_like, with_future_defaults};
use super::{at, ok, scores};
use crate::config::ExtensionPoint as E;
use crate::config::default_config;

/// Upstream's default multiPoint list restricted to Tessera's plugins, with score weights.
const DEFAULTS: &[(&str, i64)] = &[
    ("SchedulingGates", 1),
    ("PrioritySort", 1),
    ("NodeUnschedulable", 1),
    ("NodeName", 1),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 1),
    ("NodeResourcesFit", 1),
    ("GpuTopology", 1),
    ("VolumeRestrictions", 1),
    ("NodeVolumeLimits", 1),
    ("VolumeBinding", 1),
    ("VolumeZone", 1),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DynamicResources", 1),
    ("DefaultPreemption", 1),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 1),
];

#[test]
fn defaults_match_upstream_per_extension_point() {
    let c = default_config(&upstream_like()).unwrap();
    assert_eq!(c.parallelism, 16);
    assert_eq!(c.percentage_of_nodes_to_score, 0);
    assert_eq!(c.pod_initial_backoff, Duration::from_secs(1));
    assert_eq!(c.pod_max_backoff, Duration::from_secs(10));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.profiles.len(), 1);
    let p = &c.profiles[0];
    assert_eq!(p.scheduler_name, "default-scheduler");
    assert_eq!(p.percentage_of_nodes_to_score, Some(0));
    assert_eq!(at(p, E::QueueSort), ["PrioritySort"]);
    assert_eq!(
        at(p, E::PreFilter),
        ["NodeAffinity", "NodePorts", "NodeResourcesFit", "PodTopologySpread", "InterPodAffinity"]
    );
    assert_eq!(
        at(p, E::Filter),
        [
            "NodeUnschedulable",
            "NodeName",
            "TaintToleration",
            "NodeAffinity",
            "NodePorts",
            "NodeResourcesFit",
            "PodTopologySpread",
            "InterPodAffinity"
        ]
    );
    assert_eq!(
        at(p, E::PreScore),
        [
            "TaintToleration",
            "NodeAffinity",
            "NodeResourcesFit",
            "PodTopologySpread",
            "InterPodAffinity",
            "NodeResourcesBalancedAllocation"
        ]
    );
    assert_eq!(
        scores(p),
        [
            ("TaintToleration", 3),
            ("NodeAffinity", 2),
            ("NodeResourcesFit", 1),
            ("PodTopologySpread", 2),
            ("InterPodAffinity", 2),
            ("NodeResourcesBalancedAllocation", 1),
            ("ImageLocality", 1)
        ]
    );
    assert_eq!(at(p, E::Bind), ["DefaultBinder"]);
    for point in [E::PreEnqueue, E::PostFilter, E::Reserve, E::Permit, E::PreBind, E::PostBind] {
        assert!(at(p, point).is_empty(), "{point:?}");
    }
}

#[test]
fn builtin_defaults_follow_each_plugins_as_methods() {
    let registry = Registry::builtin();
    let c = default_config(&registry).unwrap();
    let p = &c.profiles[0];
    // Every built-in plugin is still being finished, so the expected lists come from what each
    // one says it implements, in the default order.
    for point in E::ALL {
        let want: Vec<&str> = DEFAULTS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| point.implemented_by(registry.make(n, None).unwrap().as_ref()))
            .collect();
        assert_eq!(at(p, point), want, "{point:?}");
    }
    let want: Vec<(&str, i64)> = DEFAULTS
        .iter()
        .copied()
        .filter(|(n, _)| E::Score.implemented_by(registry.make(n, None).unwrap().as_ref()))
        .collect();
    assert_eq!(scores(p), want);
    // Every name in the defaults is a plugin Tessera registers.
    for (n, _) in DEFAULTS {
        assert!(registry.contains(n), "{n}");
    }
}

#[test]
fn one_instance_per_plugin_is_shared_across_points() {
    let c = default_config(&Registry::builtin()).unwrap();
    let p = &c.profiles[0];
    let fit_filter = p.filter.iter().find(|x| x.name() == "NodeResourcesFit").unwrap();
    let fit_score = p.score.iter().find(|x| x.plugin.name() == "NodeResourcesFit").unwrap();
    assert!(Arc::ptr_eq(fit_filter, &fit_score.plugin));

    let c = default_config(&upstream_like()).unwrap();
    let p = &c.profiles[0];
    let pre = p.pre_filter.iter().find(|x| x.name() == "NodeAffinity").unwrap();
    let filter = p.filter.iter().find(|x| x.name() == "NodeAffinity").unwrap();
    let pre_score = p.pre_score.iter().find(|x| x.name() == "NodeAffinity").unwrap();
    let score = p.score.iter().find(|x| x.plugin.name() == "NodeAffinity").unwrap();
    assert!(Arc::ptr_eq(pre, filter) && Arc::ptr_eq(filter, pre_score) && Arc::ptr_eq(pre_score, &score.plugin));
}

#[test]
fn upstream_defaults_tessera_adds_later_take_upstream_positions() {
    let c = default_config(&with_future_defaults()).unwrap();
    let p = &c.profiles[0];
    assert_eq!(at(p, E::PostFilter), ["DynamicResources", "DefaultPreemption"]);
    assert_eq!(at(p, E::PreEnqueue), ["DynamicResources"]);
    assert_eq!(at(p, E::Filter).last(), Some(&"DynamicResources"));
    assert_eq!(at(p, E::Reserve), ["DynamicResources"]);
}

#[test]
fn no_profiles_means_one_default_profile_and_an_empty_plugins_block_means_defaults() {
    let r = upstream_like();
    let want = default_config(&r).unwrap();
    for body in [
        "profiles: []\n",
        "parallelism: 16\n",
        "profiles:\n- plugins: {}\n",
        "profiles:\n- schedulerName: default-scheduler\n  plugins:\n",
    ] {
        let c = ok(body, &r);
        assert_eq!(c.profiles.len(), 1, "{body}");
        for point in E::ALL {
            assert_eq!(at(&c.profiles[0], point), at(&want.profiles[0], point), "{body} {point:?}");
        }
        assert_eq!(scores(&c.profiles[0]), scores(&want.profiles[0]));
        assert_eq!(c.profiles[0].scheduler_name, "default-scheduler");
    }
}
