//! PodGroups of the three APIs and Workloads, read from YAML: every field, priority resolution,
//! materialization, which group wins, and every error naming its object and field.

use super::*;
use crate::ingest::read_objects;
use tessera_plugins::resources::{ResourceId, ResourceVec};

const PRIORITY_CLASSES: &str =
    "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: training}\nvalue: 1000\n";

/// The groups of `yaml` (a file that may also hold PriorityClasses), or the error's message.
fn read(yaml: &str) -> Result<Vec<PodGroup>, String> {
    let objects = read_objects("groups.yaml", yaml).map_err(|e| e.to_string())?;
    let cx = PodContext::from_objects(&objects).map_err(|e| e.to_string())?;
    pod_groups(&objects, &cx).map_err(|e| e.to_string())
}

fn groups(yaml: &str) -> Vec<PodGroup> {
    read(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn one(yaml: &str) -> PodGroup {
    let mut all = groups(yaml);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn error(yaml: &str) -> String {
    read(yaml).expect_err("an error")
}

/// A Kubernetes PodGroup `default/g` with these spec lines.
fn kubernetes(spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!("apiVersion: scheduling.k8s.io/v1alpha3\nkind: PodGroup\nmetadata: {{name: g}}\nspec:\n{body}")
}

/// A coscheduling PodGroup `default/g` with this flow-style spec.
fn coscheduling(spec: &str) -> String {
    format!("apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {{name: g}}\nspec: {spec}\n")
}

#[test]
fn a_kubernetes_gang_reads_every_field() {
    let g = one(r#"
apiVersion: scheduling.k8s.io/v1alpha3
kind: PodGroup
metadata: {name: train, namespace: ml}
spec:
  schedulingPolicy: {gang: {minCount: 8}}
  schedulingConstraints: {topology: [{key: topology.kubernetes.io/rack}]}
  priority: 500
"#);
    assert_eq!(g.key, GroupKey::new("ml", "train"));
    assert_eq!(g.api, PodGroupApi::Kubernetes);
    assert_eq!(g.min_count, 8);
    assert_eq!(g.topology_key, Some(Sym::new("topology.kubernetes.io/rack")));
    assert_eq!(g.priority, Some(500));
    assert_eq!((g.schedule_timeout_s, g.min_resources), (None, None));
}

#[test]
fn a_basic_policy_is_a_group_of_one_in_the_default_namespace() {
    let g = one(&kubernetes("schedulingPolicy: {basic: {}}"));
    assert_eq!(g, PodGroup { disruption: DisruptionMode::Single, ..PodGroup::new("default", "g", 1) });
}

#[test]
fn priority_comes_from_the_field_else_the_class() {
    let by_class =
        format!("{PRIORITY_CLASSES}---\n{}", kubernetes("schedulingPolicy: {basic: {}}\npriorityClassName: training"));
    assert_eq!(one(&by_class).priority, Some(1000));
    let both = format!(
        "{PRIORITY_CLASSES}---\n{}",
        kubernetes("schedulingPolicy: {basic: {}}\npriorityClassName: training\npriority: 7")
    );
    assert_eq!(one(&both).priority, Some(7));
    let system = kubernetes("schedulingPolicy: {basic: {}}\npriorityClassName: system-cluster-critical");
    assert_eq!(one(&system).priority, Some(2_000_000_000));
    // Neither: unset, so that the members' own priorities decide (not the global default).
    let global =
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: d}\nvalue: 5\nglobalDefault: true\n";
    assert_eq!(one(&format!("{global}---\n{}", kubernetes("schedulingPolicy: {basic: {}}"))).priority, None);
    assert_eq!(
        error(&kubernetes("schedulingPolicy: {basic: {}}\npriorityClassName: nope")),
        "PodGroup default/g: spec.priorityClassName: no PriorityClass named \"nope\""
    );
}

#[test]
fn a_coscheduling_gang_reads_every_field() {
    let g = one(r#"
apiVersion: scheduling.x-k8s.io/v1alpha1
kind: PodGroup
metadata: {name: train, namespace: ml}
spec:
  minMember: 16
  scheduleTimeoutSeconds: 600
  minResources: {cpu: "128", memory: 1Ti, nvidia.com/gpu: 16}
"#);
    assert_eq!(g.key, GroupKey::new("ml", "train"));
    assert_eq!(g.api, PodGroupApi::Coscheduling);
    assert_eq!(g.min_count, 16);
    assert_eq!(g.schedule_timeout_s, Some(600.0));
    let mut min = ResourceVec::cpu_mem(128_000, 1 << 40);
    min.set(ResourceId::of("nvidia.com/gpu").unwrap(), 16);
    assert_eq!(g.min_resources, Some(min));
    assert_eq!((g.topology_key, g.priority), (None, None));
}

#[test]
fn a_volcano_gang_reads_min_member_and_min_resources_and_ignores_its_queue() {
    let g = one(r#"
apiVersion: scheduling.volcano.sh/v1beta1
kind: PodGroup
metadata: {name: train, namespace: ml}
spec:
  minMember: 3
  minResources: {cpu: "12", nvidia.com/gpu: 3}
  queue: research
  priorityClassName: not-defined-anywhere
  minTaskMember: {worker: 2}
status: {phase: Inqueue}
"#);
    assert_eq!(g.key, GroupKey::new("ml", "train"));
    assert_eq!((g.api, g.min_count), (PodGroupApi::Volcano, 3));
    let mut min = ResourceVec::cpu_mem(12_000, 0);
    min.set(ResourceId::of("nvidia.com/gpu").unwrap(), 3);
    assert_eq!(g.min_resources, Some(min));
    assert_eq!((g.topology_key, g.schedule_timeout_s, g.priority), (None, None, None));
    // minMember is required and checked as coscheduling's is.
    let volcano = |spec: &str| {
        format!("apiVersion: scheduling.volcano.sh/v1beta1\nkind: PodGroup\nmetadata: {{name: g}}\nspec: {spec}\n")
    };
    assert_eq!(
        error(&volcano("{queue: q}")),
        "PodGroup default/g: spec.minMember: must be between 1 and 100000, got 0"
    );
    assert!(
        error(&volcano("{minMember: 2, minResources: {cpu: lots}}"))
            .starts_with("PodGroup default/g: spec.minResources.cpu: quantity \"lots\""),
        "{}",
        error(&volcano("{minMember: 2, minResources: {cpu: lots}}"))
    );
}

#[test]
fn coscheduling_defaults_are_left_to_the_engine() {
    // No timeout, and 0 (scheduler-plugins' "use the default"): unset alike.
    for spec in ["{minMember: 2}", "{minMember: 2, scheduleTimeoutSeconds: 0}"] {
        let g = one(&coscheduling(spec));
        assert_eq!((g.schedule_timeout_s, g.min_resources), (None, None), "{spec}");
        assert_eq!(g.key, GroupKey::new("default", "g"));
    }
}

#[test]
fn workload_templates_become_groups_named_after_both() {
    let workload = r#"
apiVersion: scheduling.k8s.io/v1alpha3
kind: Workload
metadata: {name: train, namespace: ml}
spec:
  podGroupTemplates:
  - name: workers
    schedulingPolicy: {gang: {minCount: 4}}
    schedulingConstraints: {topology: [{key: rack}]}
    priorityClassName: training
  - name: ps
    schedulingPolicy: {basic: {}}
"#;
    let all = groups(&format!("{PRIORITY_CLASSES}---\n{workload}"));
    let workers = PodGroup {
        topology_key: Some(Sym::new("rack")),
        priority: Some(1000),
        disruption: DisruptionMode::Single,
        ..PodGroup::new("ml", "train-workers", 4)
    };
    let ps = PodGroup { disruption: DisruptionMode::Single, ..PodGroup::new("ml", "train-ps", 1) };
    assert_eq!(all, vec![workers.clone(), ps]);
    let objects = read_objects("w.yaml", workload).unwrap();
    assert_eq!(objects.workloads.len(), 1);
    assert!(objects.unknown_kinds.is_empty());

    // An explicit PodGroup of that name (either API, before or after the Workload) wins.
    let explicit = "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: train-ps, namespace: ml}\nspec: {minMember: 2}\n";
    let all = groups(&format!("{PRIORITY_CLASSES}---\n{workload}---\n{explicit}"));
    let keys: Vec<_> = all.iter().map(|g| (g.key.to_string(), g.api, g.min_count)).collect();
    assert_eq!(
        keys,
        vec![
            ("ml/train-ps".to_string(), PodGroupApi::Coscheduling, 2),
            ("ml/train-workers".to_string(), PodGroupApi::Kubernetes, 4)
        ]
    );
    // So does one a controller made from the template under its own name.
    let made = "apiVersion: scheduling.k8s.io/v1alpha3\nkind: PodGroup\nmetadata: {name: train-ps-7f2c, namespace: ml}\n\
                spec: {schedulingPolicy: {basic: {}}, workloadRef: {workloadName: train, templateName: ps}}\n";
    let names: Vec<_> =
        groups(&format!("{PRIORITY_CLASSES}---\n{made}---\n{workload}")).iter().map(|g| g.key.to_string()).collect();
    assert_eq!(names, vec!["ml/train-ps-7f2c", "ml/train-workers"]);
    // A reference from another namespace is another Workload's.
    let elsewhere = made.replace("namespace: ml", "namespace: other");
    assert_eq!(groups(&format!("{PRIORITY_CLASSES}---\n{elsewhere}---\n{workload}")).len(), 3);
}

#[test]
fn workload_errors_name_the_workload_and_the_template() {
    let workload = |templates: &str| {
        format!(
            "apiVersion: scheduling.k8s.io/v1alpha3\nkind: Workload\nmetadata: {{name: train, namespace: ml}}\nspec:\n  podGroupTemplates:\n{templates}"
        )
    };
    let e = error(&workload(
        "  - {name: a, schedulingPolicy: {basic: {}}}\n  - {name: b, schedulingPolicy: {gang: {minCount: 0}}}\n",
    ));
    assert_eq!(
        e,
        "Workload ml/train: spec.podGroupTemplates[1].schedulingPolicy.gang.minCount: must be between 1 and 100000, got 0"
    );
    let e = error(&workload("  - {name: \"\", schedulingPolicy: {basic: {}}}\n"));
    assert_eq!(e, "Workload ml/train: spec.podGroupTemplates[0].name: required field is missing");
    let e = error(&workload("  - {name: a, schedulingPolicy: {basic: {}}, priorityClassName: nope}\n"));
    assert_eq!(e, "Workload ml/train: spec.podGroupTemplates[0].priorityClassName: no PriorityClass named \"nope\"");
    let e = error(&workload(
        "  - {name: a, schedulingPolicy: {basic: {}}, schedulingConstraints: {topology: [{key: \"\"}]}}\n",
    ));
    assert_eq!(
        e,
        "Workload ml/train: spec.podGroupTemplates[0].schedulingConstraints.topology[0].key: required field is missing"
    );
}

#[test]
fn out_of_range_member_counts_are_errors() {
    for (count, got) in [("0", "0"), ("-3", "-3"), ("100001", "100001")] {
        let e = error(&kubernetes(&format!("schedulingPolicy: {{gang: {{minCount: {count}}}}}")));
        assert_eq!(
            e,
            format!("PodGroup default/g: spec.schedulingPolicy.gang.minCount: must be between 1 and 100000, got {got}")
        );
        let e = error(&coscheduling(&format!("{{minMember: {count}}}")));
        assert_eq!(e, format!("PodGroup default/g: spec.minMember: must be between 1 and 100000, got {got}"));
    }
    assert_eq!(one(&kubernetes("schedulingPolicy: {gang: {minCount: 100000}}")).min_count, 100_000);
    // scheduler-plugins defaults minMember to 0, which is no gang at all.
    assert_eq!(error(&coscheduling("{}")), "PodGroup default/g: spec.minMember: must be between 1 and 100000, got 0");
}

#[test]
fn other_invalid_fields_are_errors_naming_them() {
    assert_eq!(
        error(&coscheduling("{minMember: 2, scheduleTimeoutSeconds: -5}")),
        "PodGroup default/g: spec.scheduleTimeoutSeconds: must be greater than or equal to 0, got -5"
    );
    let e = error(&coscheduling("{minMember: 2, minResources: {cpu: lots}}"));
    assert!(
        e.starts_with(
            "PodGroup default/g: spec.minResources.cpu: quantity \"lots\" is not a valid Kubernetes quantity"
        ),
        "{e}"
    );
    let e = error(&coscheduling("{minMember: 2, minResources: {memory: -1Gi}}"));
    assert_eq!(
        e,
        "PodGroup default/g: spec.minResources.memory: invalid value \"-1Gi\": must be greater than or equal to 0"
    );
    assert_eq!(
        error(&kubernetes("schedulingPolicy: {basic: {}}\nschedulingConstraints: {topology: [{key: \"\"}]}")),
        "PodGroup default/g: spec.schedulingConstraints.topology[0].key: required field is missing"
    );
    assert_eq!(
        error(&kubernetes("schedulingPolicy: {basic: {}}\nschedulingConstraints: {topology: [{key: a}, {key: b}]}")),
        "PodGroup default/g: spec.schedulingConstraints.topology: at most one topology constraint may be set"
    );
    for policy in ["{}", "{basic: {}, gang: {minCount: 2}}"] {
        assert_eq!(
            error(&kubernetes(&format!("schedulingPolicy: {policy}"))),
            "PodGroup default/g: spec.schedulingPolicy: exactly one of basic and gang must be set",
            "{policy}"
        );
    }
    let unnamed =
        "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {namespace: ml}\nspec: {minMember: 2}\n";
    assert_eq!(error(unnamed), "PodGroup ml/<unnamed>: metadata.name: required field is missing");
}

#[test]
fn the_api_version_decides_which_podgroup_it_is() {
    let list = "apiVersion: v1\nkind: List\nitems:\n\
                - {apiVersion: scheduling.x-k8s.io/v1alpha1, kind: PodGroup, metadata: {name: a}, spec: {minMember: 3}}\n\
                - {apiVersion: scheduling.k8s.io/v1alpha3, kind: PodGroup, metadata: {name: b}, spec: {schedulingPolicy: {gang: {minCount: 3}}}}\n\
                ---\napiVersion: scheduling.k8s.io/v1alpha3\nkind: PodGroupList\nitems:\n\
                - {metadata: {name: c}, spec: {schedulingPolicy: {basic: {}}}}\n";
    let objects = read_objects("l.yaml", list).unwrap();
    let apis: Vec<_> = objects.pod_groups.iter().map(|o| matches!(o, PodGroupObject::Kubernetes(_))).collect();
    assert_eq!(apis, vec![false, true, true]);
    assert!(objects.persistent_volume_claims.is_empty() && objects.unknown_kinds.is_empty());
    let apis: Vec<_> = groups(list).iter().map(|g| g.api).collect();
    assert_eq!(apis, vec![PodGroupApi::Coscheduling, PodGroupApi::Kubernetes, PodGroupApi::Kubernetes]);

    let kai = "kind: Namespace\nmetadata: {name: ml}\n---\napiVersion: scheduling.run.ai/v2alpha2\nkind: PodGroup\n\
               metadata: {name: g, namespace: ml}\nspec: {minMember: 2}\n";
    // Another scheduler's PodGroup is skipped with a note (a dump of a KAI cluster runs) ...
    let objects = read_objects("g.yaml", kai).unwrap();
    assert!(objects.pod_groups.is_empty());
    assert_eq!(objects.unknown_kinds.get("PodGroup (scheduling.run.ai/v2alpha2)"), Some(&1));
    // ... but another version of an API Tessera reads is a mistake to report.
    for typo in ["scheduling.x-k8s.io/v1beta1", "scheduling.volcano.sh/v1alpha1"] {
        assert_eq!(
            read_objects("g.yaml", &kai.replace("scheduling.run.ai/v2alpha2", typo)).unwrap_err().to_string(),
            format!(
                "g.yaml: document 2 (PodGroup ml/g): unsupported apiVersion \"{typo}\" for PodGroup: supported: \
                 scheduling.k8s.io/v1alpha3 (Kubernetes), scheduling.x-k8s.io/v1alpha1 (scheduler-plugins \
                 coscheduling), scheduling.volcano.sh/v1beta1 (Volcano)"
            )
        );
    }
    let e =
        read_objects("g.yaml", "kind: PodGroup\nmetadata: {name: g}\nspec: {minMember: 2}\n").unwrap_err().to_string();
    assert!(
        e.starts_with("g.yaml: document 1 (PodGroup g): missing `apiVersion` (a string), which PodGroup needs"),
        "{e}"
    );
    // One API's apiVersion with the other's fields reads as a group with no policy.
    assert_eq!(
        error(&kubernetes("minMember: 2")),
        "PodGroup default/g: spec.schedulingPolicy: exactly one of basic and gang must be set"
    );
}

#[test]
fn workloads_of_other_groups_are_unknown_and_other_versions_errors() {
    let kueue = "apiVersion: kueue.x-k8s.io/v1beta1\nkind: Workload\nmetadata: {name: w}\n";
    let objects = read_objects("k.yaml", kueue).unwrap();
    assert!(objects.workloads.is_empty());
    assert_eq!(objects.unknown_kinds.get("Workload (kueue.x-k8s.io/v1beta1)"), Some(&1));
    let old = "apiVersion: scheduling.k8s.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\n";
    assert_eq!(
        read_objects("w.yaml", old).unwrap_err().to_string(),
        "w.yaml: document 1 (Workload w): unsupported apiVersion \"scheduling.k8s.io/v1alpha1\" for Workload: \
         supported: scheduling.k8s.io/v1alpha3"
    );
}

#[test]
fn of_two_groups_with_one_name_the_later_wins_in_the_earlier_place() {
    let other = "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: h}\nspec: {minMember: 1}\n";
    let text = format!(
        "{}---\n{other}---\n{}",
        coscheduling("{minMember: 2}"),
        kubernetes("schedulingPolicy: {gang: {minCount: 5}}")
    );
    let all = groups(&text);
    let seen: Vec<_> = all.iter().map(|g| (g.key.to_string(), g.api, g.min_count)).collect();
    assert_eq!(
        seen,
        vec![
            ("default/g".to_string(), PodGroupApi::Kubernetes, 5),
            ("default/h".to_string(), PodGroupApi::Coscheduling, 1)
        ]
    );
}

#[test]
fn objects_from_several_files_keep_their_groups() {
    let mut all = read_objects("a.yaml", &coscheduling("{minMember: 2}")).unwrap();
    let workload = "apiVersion: scheduling.k8s.io/v1alpha3\nkind: Workload\nmetadata: {name: w}\nspec: {podGroupTemplates: [{name: t, schedulingPolicy: {basic: {}}}]}\n";
    all.extend(read_objects("b.yaml", workload).unwrap());
    assert_eq!((all.pod_groups.len(), all.workloads.len(), all.len()), (1, 1, 2));
    assert_eq!(all.clone(), all);
}

/// The key of the claim entry `entry` of pod `default/p` in group `group`, resolved against
/// the groups of `yaml`, and the group the claim is reserved for.
fn group_claim(yaml: &str, group: &str, entry: &str) -> (String, Option<String>) {
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {{containers: [{{name: c}}], \
         schedulingGroup: {{podGroupName: {group}}}, resourceClaims: [{entry}]}}\n"
    );
    let objects = read_objects("groups.yaml", &format!("{yaml}---\n{pod}")).unwrap();
    let cx = PodContext::from_objects(&objects).unwrap_or_else(|e| panic!("{e}"));
    let claims = crate::ingest::pod(&objects.pods[0], &cx).unwrap().claims;
    (claims[0].key.to_string(), claims[0].group.as_ref().map(|g| g.name.to_string()))
}

#[test]
fn group_claims_come_from_the_group_that_wins_and_from_materialized_templates() {
    let claims = "resourceClaims: [{name: imex, resourceClaimTemplateName: imex}]";
    let entry = "{name: imex, resourceClaimTemplateName: imex}";
    let with_claims = kubernetes(&format!("schedulingPolicy: {{gang: {{minCount: 2}}}}\n{claims}"));
    assert_eq!(group_claim(&with_claims, "g", entry), ("default/g-imex".into(), Some("g".into())));
    // A later coscheduling group of the name replaces it, claims and all.
    let replaced = format!("{with_claims}---\n{}", coscheduling("{minMember: 2}"));
    assert_eq!(group_claim(&replaced, "g", entry), ("default/p-imex".into(), None));
    // A Workload's template made into a group brings its claims along; one an explicit group
    // stands for does not.
    let workload = format!(
        "apiVersion: scheduling.k8s.io/v1alpha3\nkind: Workload\nmetadata: {{name: w}}\n\
         spec: {{podGroupTemplates: [{{name: t, schedulingPolicy: {{basic: {{}}}}, {claims}}}]}}\n"
    );
    assert_eq!(group_claim(&workload, "w-t", entry), ("default/w-t-imex".into(), Some("w-t".into())));
    let made = "apiVersion: scheduling.k8s.io/v1alpha3\nkind: PodGroup\nmetadata: {name: w-t-1}\n\
                spec: {schedulingPolicy: {basic: {}}, workloadRef: {workloadName: w, templateName: t}}\n";
    assert_eq!(group_claim(&format!("{made}---\n{workload}"), "w-t", entry), ("default/p-imex".into(), None));
    let bad =
        workload.replace("resourceClaimTemplateName: imex", "resourceClaimName: x, resourceClaimTemplateName: imex");
    assert_eq!(
        error(&bad),
        "Workload default/w: spec.podGroupTemplates[0].resourceClaims[0]: \
         exactly one of resourceClaimName and resourceClaimTemplateName must be set"
    );
}
