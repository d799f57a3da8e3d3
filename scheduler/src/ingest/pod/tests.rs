//! Pod conversion: every field, priority resolution, and every error naming its field.

use super::*;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use tessera_plugins::labels::{LabelSet, Operator};
use tessera_plugins::model::{InclusionPolicy, TaintEffect, TolerationOperator, WhenUnsatisfiable};
use tessera_plugins::resources::ResourceVec;

fn k8s(yaml: &str) -> core::Pod {
    serde_yaml_ng::from_str(yaml).unwrap()
}

/// A pod `default/p` with labels `app: web, version: v2` and the given spec lines, plus one
/// bare container unless the lines list containers.
fn with_spec(spec: &str) -> core::Pod {
    let mut body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    if !spec.contains("containers:") {
        body.push_str("  containers: [{name: c}]\n");
    }
    k8s(&format!("metadata: {{name: p, labels: {{app: web, version: v2}}}}\nspec:\n{body}"))
}

fn convert(spec: &str) -> Pod {
    pod(&with_spec(spec), &PodContext::new()).unwrap()
}

/// The error message for a pod with this spec.
fn error(spec: &str) -> String {
    pod(&with_spec(spec), &PodContext::new()).unwrap_err().to_string()
}

fn assert_error(spec: &str, field: &str) {
    let e = error(spec);
    assert!(e.starts_with(&format!("Pod default/p: {field}: ")), "expected an error at {field}, got: {e}");
}

#[test]
fn metadata_and_simple_fields() {
    let p = k8s(r#"
metadata:
  name: web-1
  namespace: shop
  uid: 1234-abcd
  creationTimestamp: "2024-05-01T12:00:00Z"
  labels: {app: web, scheduling.x-k8s.io/pod-group: gang-a}
spec:
  nodeName: n1
  nodeSelector: {disk: ssd}
  schedulerName: tessera
  containers:
  - {name: a, image: "nginx:1.27", resources: {requests: {cpu: 500m, memory: 1Gi}}}
  initContainers:
  - {name: i, image: busybox}
"#);
    let p = pod(&p, &PodContext::new()).unwrap();
    assert_eq!(p.key().to_string(), "shop/web-1");
    assert_eq!(p.uid.as_ref(), "1234-abcd");
    assert_eq!(p.labels.get(Sym::new("app")), Some(Sym::new("web")));
    assert_eq!(p.node_name, Some(Sym::new("n1")));
    assert_eq!(p.node_selector, LabelSet::from_pairs([("disk", "ssd")]));
    assert_eq!(p.scheduler_name.as_str(), "tessera");
    assert_eq!(p.requests, ResourceVec::cpu_mem(500, 1 << 30));
    assert_eq!(p.non_zero_requests, ResourceVec::cpu_mem(500, 1 << 30));
    let images: Vec<_> = p.images.iter().map(|i| i.as_ref()).collect();
    assert_eq!(images, vec!["nginx:1.27", "busybox"]);
    assert_eq!(p.pod_group, Some(Sym::new("gang-a")));
    assert_eq!(p.creation_s, 1_714_564_800.0);
}

#[test]
fn defaults_for_a_bare_pod() {
    let p = pod(&k8s("metadata: {name: bare}\nspec: {containers: [{name: c}]}"), &PodContext::new()).unwrap();
    assert_eq!(p.namespace.as_str(), "default");
    assert_eq!(p.scheduler_name.as_str(), DEFAULT_SCHEDULER_NAME);
    assert_eq!((p.priority, p.creation_s, p.uid.as_ref()), (0, 0.0, ""));
    assert_eq!((p.node_name, p.pod_group), (None, None));
    assert!(p.tolerations.is_empty() && p.host_ports.is_empty() && p.spread_constraints.is_empty());
    assert!(p.pod_affinity.is_empty() && p.pod_anti_affinity.is_empty() && p.required_node_affinity.is_none());
    assert_eq!(p.requests, ResourceVec::ZERO);
    assert_eq!(p.non_zero_requests, ResourceVec::cpu_mem(100, 200 << 20));
}

#[test]
fn scheduling_group_names_the_gang_before_the_label() {
    let p = k8s(r#"
metadata: {name: p, labels: {scheduling.x-k8s.io/pod-group: old}}
spec: {schedulingGroup: {podGroupName: native}, containers: [{name: c}]}
"#);
    assert_eq!(pod(&p, &PodContext::new()).unwrap().pod_group, Some(Sym::new("native")));
}

#[test]
fn volcanos_annotation_names_the_gang_after_the_label_in_the_simulator_only() {
    let simulator = PodContext::new().with_volcano_groups(true);
    let group = |meta: &str| pod(&k8s(&format!("{meta}\nspec: {{containers: [{{name: c}}]}}")), &simulator);
    let annotated = "metadata: {name: p, annotations: {scheduling.k8s.io/group-name: vc}}";
    assert_eq!(group(annotated).unwrap().pod_group, Some(Sym::new("vc")));
    // A live scheduler does not watch Volcano's groups: the pod is no gang's.
    let live = pod(&k8s(&format!("{annotated}\nspec: {{containers: [{{name: c}}]}}")), &PodContext::new());
    assert_eq!(live.unwrap().pod_group, None);
    let both = "metadata: {name: p, labels: {scheduling.x-k8s.io/pod-group: cs}, \
                annotations: {scheduling.k8s.io/group-name: vc}}";
    assert_eq!(group(both).unwrap().pod_group, Some(Sym::new("cs")));
    let empty = "metadata: {name: p, annotations: {scheduling.k8s.io/group-name: ''}}";
    assert_eq!(group(empty).unwrap().pod_group, None);
}

#[test]
fn priority_from_spec_class_or_global_default() {
    let class = |name: &str, value: i32, global: bool| -> PriorityClass {
        serde_yaml_ng::from_str(&format!("metadata: {{name: {name}}}\nvalue: {value}\nglobalDefault: {global}"))
            .unwrap()
    };
    let mut cx = PodContext::new();
    cx.add_priority_class(&class("high", 1000, false)).unwrap();
    let priority = |spec: &str, cx: &PodContext| pod(&with_spec(spec), cx).map(|p| p.priority);
    // No class anywhere: 0.
    assert_eq!(priority("", &cx), Ok(0));
    assert_eq!(priority("priorityClassName: high", &cx), Ok(1000));
    assert_eq!(priority("priorityClassName: system-node-critical", &cx), Ok(2_000_001_000));
    // spec.priority, as admission wrote it, wins over the class.
    assert_eq!(priority("priority: 7\npriorityClassName: high", &cx), Ok(7));
    cx.add_priority_class(&class("normal", 100, true)).unwrap();
    assert_eq!(priority("", &cx), Ok(100));
    assert_eq!(priority("priorityClassName: high", &cx), Ok(1000));
    let e = priority("priorityClassName: nope", &cx).unwrap_err().to_string();
    assert_eq!(e, "Pod default/p: spec.priorityClassName: no PriorityClass named \"nope\"");
}

#[test]
fn node_affinity_required_and_preferred() {
    let p = convert(
        r#"
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions: [{key: zone, operator: In, values: [a, b]}, {key: gpus, operator: Gt, values: ["3"]}]
      - matchFields: [{key: metadata.name, operator: In, values: [n9]}]
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 20
      preference: {matchExpressions: [{key: spot, operator: DoesNotExist}]}
"#,
    );
    let required = p.required_node_affinity.unwrap();
    assert_eq!(required.terms.len(), 2);
    assert!(required.matches(&LabelSet::from_pairs([("zone", "a"), ("gpus", "8")]), Sym::new("n1")));
    assert!(!required.matches(&LabelSet::from_pairs([("zone", "a"), ("gpus", "2")]), Sym::new("n1")));
    assert!(required.matches(&LabelSet::default(), Sym::new("n9")));
    assert_eq!(p.preferred_node_affinity.len(), 1);
    assert_eq!(p.preferred_node_affinity[0].0, 20);
    assert_eq!(p.preferred_node_affinity[0].1.match_expressions[0].op, Operator::DoesNotExist);
}

#[test]
fn pod_affinity_terms_fold_label_keys_and_scope_namespaces() {
    let p = convert(
        r#"
affinity:
  podAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
    - labelSelector: {matchLabels: {app: db}}
      topologyKey: zone
      matchLabelKeys: [version, missing-key]
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 50
      podAffinityTerm: {labelSelector: {}, topologyKey: rack, namespaces: [a, b]}
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
    - labelSelector: {matchExpressions: [{key: app, operator: Exists}]}
      topologyKey: kubernetes.io/hostname
      namespaceSelector: {matchLabels: {team: x}}
      mismatchLabelKeys: [app]
    - topologyKey: kubernetes.io/hostname
      matchLabelKeys: [app]
"#,
    );
    let req = &p.pod_affinity.required[0];
    assert_eq!(req.topology_key.as_str(), "zone");
    assert_eq!(req.namespaces.names, vec![Sym::new("default")]);
    assert_eq!(req.namespaces.selector, None);
    let sel = req.selector.as_ref().unwrap();
    assert!(sel.matches(&LabelSet::from_pairs([("app", "db"), ("version", "v2")])));
    assert!(!sel.matches(&LabelSet::from_pairs([("app", "db"), ("version", "v1")])));
    let pref = &p.pod_affinity.preferred[0];
    assert_eq!(pref.weight, 50);
    assert_eq!(pref.term.namespaces.names, vec![Sym::new("a"), Sym::new("b")]);
    assert!(pref.term.selector.as_ref().unwrap().is_empty());

    let anti = &p.pod_anti_affinity.required[0];
    assert!(anti.namespaces.names.is_empty(), "a namespace selector replaces the pod's own namespace");
    assert!(anti.namespaces.selector.as_ref().unwrap().matches(&LabelSet::from_pairs([("team", "x")])));
    let sel = anti.selector.as_ref().unwrap();
    assert!(sel.matches(&LabelSet::from_pairs([("app", "cache")])));
    assert!(!sel.matches(&LabelSet::from_pairs([("app", "web")])), "mismatchLabelKeys excludes the pod's own value");
    // A term with no selector matches nothing, and keys do not give it one.
    assert_eq!(p.pod_anti_affinity.required[1].selector, None);
}

#[test]
fn spread_constraints_with_defaults_and_folded_keys() {
    let p = convert(
        r#"
topologySpreadConstraints:
- maxSkew: 1
  topologyKey: zone
  whenUnsatisfiable: DoNotSchedule
  labelSelector: {matchLabels: {app: web}}
  matchLabelKeys: [version]
  minDomains: 3
- maxSkew: 2
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  nodeAffinityPolicy: Ignore
  nodeTaintsPolicy: Honor
"#,
    );
    let [a, b] = p.spread_constraints.as_slice() else { panic!("{:?}", p.spread_constraints) };
    assert_eq!((a.max_skew, a.topology_key.as_str(), a.min_domains), (1, "zone", Some(3)));
    assert_eq!(a.when_unsatisfiable, WhenUnsatisfiable::DoNotSchedule);
    assert_eq!((a.node_affinity_policy, a.node_taints_policy), (InclusionPolicy::Honor, InclusionPolicy::Ignore));
    let sel = a.selector.as_ref().unwrap();
    assert!(sel.matches(&LabelSet::from_pairs([("app", "web"), ("version", "v2")])));
    assert!(!sel.matches(&LabelSet::from_pairs([("app", "web"), ("version", "v1")])));
    assert_eq!(b.when_unsatisfiable, WhenUnsatisfiable::ScheduleAnyway);
    assert_eq!((b.node_affinity_policy, b.node_taints_policy), (InclusionPolicy::Ignore, InclusionPolicy::Honor));
    assert_eq!(b.selector, None);
    assert!(p.has_cross_node_constraints());
}

#[test]
fn tolerations_with_upstream_defaults() {
    let p = convert(
        r#"
tolerations:
- {key: gpu, value: "true", effect: NoSchedule}
- {key: spot, operator: Exists}
- {operator: Exists}
- {key: drain, operator: Equal, value: "", effect: NoExecute, tolerationSeconds: 30}
"#,
    );
    let got: Vec<_> =
        p.tolerations.iter().map(|t| (t.key.map(Sym::as_str), t.operator, t.value.as_str(), t.effect)).collect();
    use TolerationOperator::*;
    assert_eq!(
        got,
        vec![
            (Some("gpu"), Equal, "true", Some(TaintEffect::NoSchedule)),
            (Some("spot"), Exists, "", None),
            (None, Exists, "", None),
            (Some("drain"), Equal, "", Some(TaintEffect::NoExecute)),
        ]
    );
}

#[test]
fn host_ports_of_all_containers() {
    let p = k8s(r#"
metadata: {name: p}
spec:
  containers:
  - name: a
    ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 81}, {containerPort: 53, hostPort: 53, protocol: UDP, hostIP: 10.0.0.1}]
  initContainers:
  - {name: i, ports: [{containerPort: 9000, hostPort: 9000, hostIP: 0.0.0.0}]}
"#);
    let p = pod(&p, &PodContext::new()).unwrap();
    let got: Vec<_> = p.host_ports.iter().map(|h| (h.ip.map(Sym::as_str), h.protocol.as_str(), h.port)).collect();
    assert_eq!(got, vec![(None, "TCP", 8080), (Some("10.0.0.1"), "UDP", 53), (None, "TCP", 9000)]);
    let host_net = convert("hostNetwork: true\ncontainers: [{name: c, ports: [{containerPort: 9100}]}]");
    assert_eq!(host_net.host_ports.iter().map(|h| h.port).collect::<Vec<_>>(), vec![9100]);
}

#[test]
fn errors_name_the_pod_and_field() {
    let e = pod(&k8s("metadata: {namespace: ns}\nspec: {containers: [{name: c}]}"), &PodContext::new()).unwrap_err();
    assert_eq!(e.to_string(), "Pod ns/<unnamed>: metadata.name: required field is missing");
    let e = pod(&k8s("metadata: {name: web-1}"), &PodContext::new()).unwrap_err();
    assert_eq!(e.to_string(), "Pod default/web-1: spec: required field is missing");
    let e = pod(
        &k8s("metadata: {name: web-1}\nspec: {containers: [{name: c, resources: {requests: {cpu: abc}}}]}"),
        &PodContext::new(),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "Pod default/web-1: spec.containers[0].resources.requests.cpu: quantity \"abc\" is not a valid Kubernetes quantity"
        ),
        "{e}"
    );
    let na = "spec.affinity.nodeAffinity";
    let terms = format!("{na}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
    assert_error(
        "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: a, operator: Exists}, {key: b, operator: Like, values: [x]}]}]}}}",
        &format!("{terms}[0].matchExpressions[1].operator"),
    );
    assert_error(
        "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: a, operator: Lt, values: [ten]}]}]}}}",
        &format!("{terms}[0].matchExpressions[0].values[0]"),
    );
    assert_error(
        "affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 0, preference: {}}]}}",
        &format!("{na}.preferredDuringSchedulingIgnoredDuringExecution[0].weight"),
    );
    assert_error(
        "affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 1, preference: {matchFields: [{key: metadata.name, operator: Gt, values: ['1']}]}}]}}",
        &format!("{na}.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchFields[0].operator"),
    );
    assert_error(
        "affinity: {podAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: z, labelSelector: {matchExpressions: [{key: a, operator: Gt, values: ['1']}]}}]}}",
        "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0].operator",
    );
    assert_error(
        "affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 5, podAffinityTerm: {topologyKey: ''}}]}}",
        "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey",
    );
    assert_error(
        "affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: z, namespaceSelector: {matchExpressions: [{key: a, operator: In}]}}]}}",
        "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaceSelector.matchExpressions[0].values",
    );
}

#[test]
fn invalid_scheduling_fields_are_rejected_like_upstream_validation() {
    let tsc = "spec.topologySpreadConstraints";
    assert_error(
        "topologySpreadConstraints: [{maxSkew: 0, topologyKey: z, whenUnsatisfiable: DoNotSchedule}]",
        &format!("{tsc}[0].maxSkew"),
    );
    assert_error(
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: '', whenUnsatisfiable: DoNotSchedule}]",
        &format!("{tsc}[0].topologyKey"),
    );
    assert_error(
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: z, whenUnsatisfiable: Maybe}]",
        &format!("{tsc}[0].whenUnsatisfiable"),
    );
    assert_error(
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: z, whenUnsatisfiable: ScheduleAnyway, minDomains: 2}]",
        &format!("{tsc}[0].minDomains"),
    );
    assert_error(
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: z, whenUnsatisfiable: DoNotSchedule, minDomains: 0}]",
        &format!("{tsc}[0].minDomains"),
    );
    assert_error(
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: z, whenUnsatisfiable: DoNotSchedule, nodeAffinityPolicy: Maybe}]",
        &format!("{tsc}[0].nodeAffinityPolicy"),
    );
    assert_error(
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: z, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Maybe}]",
        &format!("{tsc}[0].nodeTaintsPolicy"),
    );
    assert_error(
        "topologySpreadConstraints: [{maxSkew: 1, topologyKey: z, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchExpressions: [{key: a, operator: Lt, values: ['1']}]}}]",
        &format!("{tsc}[0].labelSelector.matchExpressions[0].operator"),
    );

    assert_error("tolerations: [{key: a}, {key: b, operator: Exists, value: x}]", "spec.tolerations[1].value");
    assert_error("tolerations: [{key: a, operator: Near}]", "spec.tolerations[0].operator");
    assert_error("tolerations: [{value: x}]", "spec.tolerations[0].operator");
    assert_error("tolerations: [{key: a, effect: Sometimes}]", "spec.tolerations[0].effect");

    assert_error(
        "containers: [{name: c, ports: [{containerPort: 1, hostPort: 70000}]}]",
        "spec.containers[0].ports[0].hostPort",
    );
    assert_error(
        "containers: [{name: c, ports: [{containerPort: 1, hostPort: 80, protocol: HTTP}]}]",
        "spec.containers[0].ports[0].protocol",
    );
    assert_error(
        "hostNetwork: true\ninitContainers: [{name: i, ports: [{containerPort: 0}]}]",
        "spec.initContainers[0].ports[0].containerPort",
    );
}

#[test]
fn runtime_class_scheduling_is_merged_as_admission_merges_it() {
    use k8s_openapi::api::node::v1::RuntimeClass;
    let rc: RuntimeClass = serde_yaml_ng::from_str(
        "metadata: {name: gvisor}\nhandler: runsc\nscheduling:\n  nodeSelector: {runtime: gvisor, disk: ssd}\n  \
         tolerations: [{key: sandbox, operator: Exists, effect: NoSchedule}]",
    )
    .unwrap();
    let mut cx = PodContext::new();
    cx.add_runtime_class(&rc).unwrap();
    let convert = |spec: &str| pod(&with_spec(spec), &cx);
    let p = convert("runtimeClassName: gvisor\nnodeSelector: {zone: a, disk: ssd}").unwrap();
    let selector: Vec<(&str, &str)> = p.node_selector.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(selector.len(), 3, "{selector:?}");
    assert_eq!(p.node_selector.get(Sym::new("runtime")), Some(Sym::new("gvisor")));
    assert_eq!(p.node_selector.get(Sym::new("zone")), Some(Sym::new("a")));
    assert_eq!(p.tolerations.len(), 1);
    assert_eq!(p.tolerations[0].key, Some(Sym::new("sandbox")));
    // A pod read back from a cluster already carries the toleration: it is not added twice.
    let again =
        convert("runtimeClassName: gvisor\ntolerations: [{key: sandbox, operator: Exists, effect: NoSchedule}]")
            .unwrap();
    assert_eq!(again.tolerations.len(), 1);
    let e = convert("runtimeClassName: gvisor\nnodeSelector: {disk: hdd}").unwrap_err().to_string();
    assert_eq!(
        e,
        "Pod default/p: spec.nodeSelector.disk: \"hdd\" conflicts with RuntimeClass gvisor's \
         scheduling.nodeSelector.disk \"ssd\""
    );
    assert!(convert("nodeSelector: {disk: hdd}").is_ok(), "a pod without the class is left alone");
}

#[test]
fn a_runtime_class_with_a_bad_toleration_names_its_field() {
    use k8s_openapi::api::node::v1::RuntimeClass;
    let rc: RuntimeClass = serde_yaml_ng::from_str(
        "metadata: {name: kata}\nhandler: kata\nscheduling: {tolerations: [{key: k, operator: Maybe}]}",
    )
    .unwrap();
    let e = PodContext::new().add_runtime_class(&rc).unwrap_err().to_string();
    assert!(e.starts_with("RuntimeClass kata: scheduling.tolerations[0].operator: "), "{e}");
}
