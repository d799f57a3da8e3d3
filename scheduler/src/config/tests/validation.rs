//! Upstream's validation, the shape checks, and warnings.

use serde_json::json;
use tessera_plugins::registry::Registry;

use super::fakes::{upstream_like, with_extras};
use super::{err, ok, parse};
use crate::config::{ConfigError, parse_config};

#[test]
fn duplicate_scheduler_names_are_an_error() {
    let e = err("profiles:\n- schedulerName: a\n- schedulerName: b\n- schedulerName: a\n", &upstream_like());
    assert_eq!(e, "test.yaml: profiles[2].schedulerName: duplicate value \"a\" (profiles[0] has the same name)");
}

#[test]
fn only_a_lone_profile_gets_the_default_name() {
    let e = err("profiles:\n- schedulerName: a\n- percentageOfNodesToScore: 10\n", &upstream_like());
    assert_eq!(e, "test.yaml: profiles[1].schedulerName: required when there is more than one profile");
    let e = err("profiles:\n- schedulerName: \"\"\n", &upstream_like());
    assert!(e.starts_with("test.yaml: profiles[0].schedulerName: required"), "{e}");
    let c = ok("profiles:\n- schedulerName: a\n- schedulerName: b\n", &upstream_like());
    let names: Vec<_> = c.profiles.iter().map(|p| p.scheduler_name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(c.profile("b").is_some() && c.profile("default-scheduler").is_none());
}

#[test]
fn every_profile_must_share_the_queue_sort_plugin_and_args() {
    let e = err(
        r#"
profiles:
- schedulerName: a
- schedulerName: b
  plugins:
    queueSort:
      enabled:
      - name: OtherSort
      disabled:
      - name: "*"
"#,
        &with_extras(),
    );
    assert_eq!(
        e,
        "test.yaml: profiles[1].plugins.queueSort: must be the same for all profiles: profiles[0] uses \"PrioritySort\", this one \"OtherSort\""
    );

    let two = |args_b: &str| {
        format!(
            r#"
profiles:
- schedulerName: a
  plugins:
    queueSort: {{enabled: [{{name: TunedSort}}], disabled: [{{name: "*"}}]}}
  pluginConfig:
  - name: TunedSort
    args: {{order: fifo}}
- schedulerName: b
  plugins:
    queueSort: {{enabled: [{{name: TunedSort}}], disabled: [{{name: "*"}}]}}
  pluginConfig:
  - name: Picky
  - name: TunedSort
    args: {args_b}
"#
        )
    };
    ok(&two("{order: fifo}"), &with_extras());
    let e = err(&two("{order: lifo}"), &with_extras());
    assert_eq!(
        e,
        "test.yaml: profiles[1].pluginConfig[1].args: queueSort plugin args must be the same for all profiles"
    );
}

#[test]
fn percentage_of_nodes_to_score_is_checked_and_profiles_override_it() {
    let e = err("percentageOfNodesToScore: 101\n", &upstream_like());
    assert_eq!(e, "test.yaml: percentageOfNodesToScore: not in valid range [0-100], got 101");
    let e = err("profiles:\n- percentageOfNodesToScore: -1\n", &upstream_like());
    assert_eq!(e, "test.yaml: profiles[0].percentageOfNodesToScore: not in valid range [0-100], got -1");

    let c = ok(
        "percentageOfNodesToScore: 50\nprofiles:\n- schedulerName: a\n- schedulerName: b\n  percentageOfNodesToScore: 0\n- schedulerName: c\n  percentageOfNodesToScore: 100\n",
        &upstream_like(),
    );
    let pcts: Vec<_> = c.profiles.iter().map(|p| p.percentage_of_nodes_to_score).collect();
    assert_eq!(pcts, [Some(50), Some(0), Some(100)]);
    assert_eq!(c.percentage_of_nodes_to_score, 50);
}

#[test]
fn scalar_settings_are_checked() {
    let r = upstream_like();
    assert_eq!(
        err("parallelism: 0\n", &r),
        "test.yaml: parallelism: should be an integer value greater than zero (at most 2147483647), got 0"
    );
    assert_eq!(
        err("podInitialBackoffSeconds: 0\n", &r),
        "test.yaml: podInitialBackoffSeconds: must be greater than 0, got 0"
    );
    assert_eq!(
        err("podInitialBackoffSeconds: 5\npodMaxBackoffSeconds: 4\n", &r),
        "test.yaml: podMaxBackoffSeconds: must be greater than or equal to podInitialBackoffSeconds (5), got 4"
    );
    let c = ok("parallelism: 64\npodInitialBackoffSeconds: 2\npodMaxBackoffSeconds: 2\n", &r);
    assert_eq!((c.parallelism, c.pod_initial_backoff.as_secs(), c.pod_max_backoff.as_secs()), (64, 2, 2));
    let e = err("parallelism: many\n", &r);
    assert!(e.starts_with("test.yaml: parallelism: invalid type: string \"many\""), "{e}");
}

#[test]
fn api_version_and_kind_are_required() {
    let r = upstream_like();
    let e = parse_config("x.yaml", "kind: KubeSchedulerConfiguration\n", &r).unwrap_err();
    assert_eq!(e.to_string(), "x.yaml: apiVersion: required; set it to \"kubescheduler.config.k8s.io/v1\"");
    let e = parse_config(
        "x.yaml",
        "apiVersion: kubescheduler.config.k8s.io/v1beta3\nkind: KubeSchedulerConfiguration\n",
        &r,
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("x.yaml: apiVersion: must be \"kubescheduler.config.k8s.io/v1\""), "{e}");
    let e = parse_config("x.yaml", "apiVersion: kubescheduler.config.k8s.io/v1\nkind: Pod\n", &r).unwrap_err();
    assert_eq!(e.to_string(), "x.yaml: kind: must be \"KubeSchedulerConfiguration\", got \"Pod\"");
    assert_eq!(e.field(), Some("kind"));
}

#[test]
fn plugin_config_for_a_plugin_not_enabled_is_accepted_but_still_validated() {
    let r = with_extras();
    let c = ok("profiles:\n- pluginConfig:\n  - name: Picky\n    args: {level: 3}\n", &r);
    assert_eq!(c.plugin_args["default-scheduler"]["Picky"], json!({"level": 3}));
    assert!(c.warnings.is_empty());
    let e = parse("profiles:\n- pluginConfig:\n  - name: Picky\n    args: {level: 11}\n", &r).unwrap_err();
    assert_eq!(
        e.to_string(),
        "test.yaml: profiles[0].pluginConfig[0].args: invalid args for plugin Picky: level must be at most 10, got 11"
    );
    assert!(matches!(&e, ConfigError::PluginArgs { plugin, .. } if plugin == "Picky"));
}

#[test]
fn duplicate_plugin_config_is_an_error() {
    let e = err("profiles:\n- pluginConfig:\n  - name: Picky\n  - name: Gang\n  - name: Picky\n", &with_extras());
    assert_eq!(e, "test.yaml: profiles[0].pluginConfig[2].name: duplicate value \"Picky\"");
}

#[test]
fn args_are_validated_by_the_plugin_factory() {
    let e = err(
        "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        type: Fullest\n",
        &Registry::builtin(),
    );
    assert!(
        e.starts_with("test.yaml: profiles[0].pluginConfig[0].args: invalid args for plugin NodeResourcesFit: "),
        "{e}"
    );
    assert!(e.contains("Fullest"), "{e}");
    let e = err(
        "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args: {ignoredResource: [x]}\n",
        &Registry::builtin(),
    );
    assert!(e.contains("ignoredResource"), "{e}");
}

#[test]
fn upstream_type_meta_in_args_is_checked_and_dropped() {
    let body = |kind: &str| {
        format!(
            "profiles:\n- pluginConfig:\n  - name: Picky\n    args:\n      apiVersion: kubescheduler.config.k8s.io/v1\n      kind: {kind}\n      level: 2\n"
        )
    };
    let c = ok(&body("PickyArgs"), &with_extras());
    assert_eq!(c.plugin_args["default-scheduler"]["Picky"], json!({"level": 2}));
    let e = err(&body("NodeResourcesFitArgs"), &with_extras());
    assert_eq!(
        e,
        "test.yaml: profiles[0].pluginConfig[0].args.kind: args for plugin Picky must be of kind PickyArgs, got \"NodeResourcesFitArgs\""
    );
}

#[test]
fn plugin_config_for_a_plugin_tessera_lacks_is_a_warning() {
    let c = ok(
        "profiles:\n- pluginConfig:\n  - name: VolumeBinding\n    args: {bindTimeoutSeconds: 600}\n",
        &upstream_like(),
    );
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].starts_with(
        "test.yaml: profiles[0].pluginConfig[0].name: Tessera has no plugin \"VolumeBinding\"; its args are ignored"
    ));
    assert!(c.plugin_args["default-scheduler"].is_empty());
}

#[test]
fn upstream_settings_tessera_does_not_use_are_warnings() {
    let c = ok(
        r#"
leaderElection:
  leaderElect: true
  resourceNamespace: kube-system
clientConnection:
  kubeconfig: /etc/kubernetes/scheduler.conf
  qps: 50
extenders:
- urlPrefix: http://127.0.0.1:8888
  filterVerb: filter
enableProfiling: true
enableContentionProfiling: false
delayCacheUntilActive: true
"#,
        &upstream_like(),
    );
    let fields: Vec<&str> = c.warnings.iter().map(|w| w.split(": ").nth(1).unwrap_or("")).collect();
    assert_eq!(fields, ["extenders", "enableProfiling", "enableContentionProfiling", "delayCacheUntilActive"]);
    assert_eq!(c.warnings[0], "test.yaml: extenders: an upstream setting Tessera does not use; ignored");
}

#[test]
fn leader_election_and_client_connection_are_read_with_upstream_defaults() {
    let c = ok(
        "leaderElection:\n  leaseDuration: 30s\n  renewDeadline: 20s\n  resourceName: kube-scheduler\nclientConnection:\n  qps: 50\n  burst: 100\n",
        &upstream_like(),
    );
    let le = &c.leader_election;
    assert!(le.leader_elect);
    assert_eq!((le.lease_duration.as_secs(), le.renew_deadline.as_secs(), le.retry_period.as_secs()), (30, 20, 2));
    assert_eq!((le.resource_namespace.as_str(), le.resource_name.as_str()), ("kube-system", "kube-scheduler"));
    assert_eq!((c.client_connection.qps, c.client_connection.burst), (50.0, 100));
    let d = ok("", &upstream_like());
    assert_eq!(d.leader_election.lease_duration.as_secs(), 15);
    assert_eq!(
        (d.client_connection.qps, d.client_connection.burst),
        (crate::config::DEFAULT_QPS, crate::config::DEFAULT_BURST)
    );
    for (yaml, field) in [
        ("leaderElection: {leaseDuration: 5s}\n", "leaderElection.leaseDuration"),
        ("leaderElection: {retryPeriod: abc}\n", "leaderElection.retryPeriod"),
        ("leaderElection: {resourceLock: endpoints}\n", "leaderElection.resourceLock"),
        ("clientConnection: {burst: 0}\n", "clientConnection.burst"),
        ("clientConnection: {contentType: application/vnd.kubernetes.protobuf}\n", "clientConnection.contentType"),
    ] {
        let e = err(yaml, &upstream_like());
        assert!(e.contains(field), "{yaml}: {e}");
    }
}

#[test]
fn unknown_fields_are_errors_naming_the_path() {
    let r = upstream_like();
    let cases = [
        ("parallelsm: 4\n", "test.yaml: unknown field `parallelsm`"),
        ("profiles:\n- schedulerName: a\n  plugin: {}\n", "test.yaml: profiles[0]: unknown field `plugin`"),
        ("profiles:\n- plugins:\n    filtr: {}\n", "test.yaml: profiles[0].plugins: unknown field `filtr`"),
        (
            "profiles:\n- plugins:\n    filter:\n      enable: []\n",
            "test.yaml: profiles[0].plugins.filter: unknown field `enable`",
        ),
        (
            "profiles:\n- plugins:\n    score:\n      enabled:\n      - name: ImageLocality\n        wieght: 2\n",
            "test.yaml: profiles[0].plugins.score.enabled[0]: unknown field `wieght`",
        ),
        (
            "profiles:\n- pluginConfig:\n  - name: Picky\n    arg: {}\n",
            "test.yaml: profiles[0].pluginConfig[0]: unknown field `arg`",
        ),
        ("tessera:\n  workers: 4\n", "test.yaml: tessera: unknown field `workers`"),
    ];
    for (body, want) in cases {
        let e = parse(body, &r).unwrap_err();
        assert!(e.to_string().starts_with(want), "{body}: {e}");
        assert!(matches!(e, ConfigError::Yaml { line: Some(_), column: Some(_), .. }), "{body}: {e:?}");
    }
    ok("tessera: {}\n", &r);
}

#[test]
fn tie_break_is_read_from_the_tessera_block() {
    use tessera_plugins::framework::TieBreak;
    let r = Registry::builtin();
    let c = parse("tessera:\n  tieBreak: Stable\nprofiles:\n- schedulerName: a\n- schedulerName: b\n", &r).unwrap();
    assert!(c.profiles.iter().all(|p| p.tie_break == TieBreak::Stable(0)), "every profile");
    assert_eq!(parse("tessera: {}\n", &r).unwrap().profiles[0].tie_break, TieBreak::Random);
    let e = err("tessera:\n  tieBreak: First\n", &r);
    assert!(e.contains("tessera.tieBreak: must be Random or Stable"), "{e}");
}

#[test]
fn malformed_yaml_names_the_file_line_and_column() {
    let text = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n  - schedulerName: a\n   plugins: {}\n";
    let e = parse_config("conf/scheduler.yaml", text, &upstream_like()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("conf/scheduler.yaml: "), "{msg}");
    assert!(msg.contains("line 5 column"), "{msg}");
    assert!(matches!(e, ConfigError::Yaml { line: Some(5), .. }), "{e:?}");

    let e = parse_config("empty.yaml", "# nothing\n", &upstream_like()).unwrap_err();
    assert_eq!(e.to_string(), "empty.yaml: empty document; expected a KubeSchedulerConfiguration");
}

#[test]
fn the_gang_block_sets_hierarchy_reservation_and_timeout() {
    let r = upstream_like();
    let text = "tessera:\n  gang:\n    topologyHierarchy: [block, rack]\n    reservation: {enabled: false, seconds: 90}\n    defaultTimeoutSeconds: 30\n";
    let g = parse(text, &r).unwrap().gang;
    let levels: Vec<&str> = g.topology_hierarchy.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        (levels, g.reservation, g.reservation_s, g.default_timeout_s),
        (vec!["block", "rack"], false, 90.0, 30.0)
    );
    assert_eq!(parse("tessera: {gang: {}}\n", &r).unwrap().gang, crate::engine::gang::GangOptions::default());
    let e = err("tessera:\n  gang: {topologyHierarchy: [rack, rack]}\n", &r);
    assert!(e.contains("tessera.gang.topologyHierarchy[1]: \"rack\" is listed twice"), "{e}");
    let e = err("tessera:\n  gang: {reservation: {seconds: 0}}\n", &r);
    assert!(e.contains("tessera.gang.reservation.seconds: must be greater than 0, got 0"), "{e}");
    let e = err("tessera:\n  gang: {reservation: {hold: true}}\n", &r);
    assert!(e.contains("hold"), "unknown fields are errors: {e}");
}
