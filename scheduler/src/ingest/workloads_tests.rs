//! Workload expansion: names, labels, template precedence, counts and errors, for each kind.

use super::*;
use crate::ingest::{PodContext, pod, read_objects};

fn expand(kind: &str, yaml: &str) -> Result<Vec<Pod>, WorkloadError> {
    let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
    WorkloadKind::parse(kind).unwrap().expand(value).map(|e| e.pods)
}

fn ok(kind: &str, yaml: &str) -> Vec<Pod> {
    expand(kind, yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn err(kind: &str, yaml: &str) -> String {
    expand(kind, yaml).unwrap_err().to_string()
}

fn names(pods: &[Pod]) -> Vec<&str> {
    pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect()
}

fn label<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn annotation<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  uid: d-uid
  annotations: {tessera.io/arrival: 10m, tessera.io/duration: 1h30m, unrelated: x}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web, pod-template-hash: overridden}
      annotations: {tessera.io/duration: 2h, note: kept}
    spec:
      containers: [{name: c, image: nginx, resources: {requests: {cpu: 500m}}}]
"#;

#[test]
fn deployments_expand_to_hashed_names_and_labels() {
    let pods = ok("Deployment", DEPLOYMENT);
    assert_eq!(pods.len(), 3);
    let hash = label(&pods[0], POD_TEMPLATE_HASH_LABEL).unwrap().to_string();
    assert_eq!(hash.len(), 10);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{hash}");
    let expected: Vec<String> = (0..3).map(|i| format!("web-{hash}-{i}")).collect();
    assert_eq!(names(&pods), expected);
    for p in &pods {
        assert_eq!(p.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(label(p, "app"), Some("web"));
        assert_eq!(label(p, POD_TEMPLATE_HASH_LABEL), Some(hash.as_str()), "the controller's label wins");
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("ReplicaSet", format!("web-{hash}").as_str()));
        assert_eq!(owner.controller, Some(true));
        assert_eq!(p.spec.as_ref().unwrap().containers[0].image.as_deref(), Some("nginx"));
    }
    // The template's own timing wins; the controller's fills in what the template lacks;
    // other controller annotations stay on the controller.
    assert_eq!(annotation(&pods[0], DURATION_ANNOTATION), Some("2h"));
    assert_eq!(annotation(&pods[0], ARRIVAL_ANNOTATION), Some("10m"));
    assert_eq!(annotation(&pods[0], "note"), Some("kept"));
    assert_eq!(annotation(&pods[0], "unrelated"), None);
}

#[test]
fn expanded_pods_name_their_controller_whose_selector_default_spreading_reads() {
    use tessera_plugins::default_selector::{ControllerKind, SelectorSources};
    let value: Value = serde_yaml_ng::from_str(DEPLOYMENT).unwrap();
    let expansion = WorkloadKind::Deployment.expand(value).unwrap();
    let controller = expansion.controller.clone().expect("the ReplicaSet's selector");
    let mut sources = SelectorSources::default();
    sources.apply(controller);
    let pods: Vec<_> = expansion.pods.iter().map(|p| pod(p, &PodContext::default()).unwrap()).collect();
    let owner = pods[0].controller.expect("the ReplicaSet owns the pod");
    assert_eq!(owner.kind, ControllerKind::ReplicaSet);
    let selector = sources.default_selector(&pods[0]).expect("a selector");
    // The Deployment's selector plus pod-template-hash: the ReplicaSet's, as its controller makes it.
    let mut keys: Vec<&str> = selector.requirements.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["app", POD_TEMPLATE_HASH_LABEL]);
    assert!(pods.iter().all(|p| selector.matches(&p.labels)));
    // A Job's pods have no such controller.
    let job = "kind: Job\nmetadata: {name: j}\nspec: {template: {spec: {containers: [{name: c}]}}}\n";
    let expansion = WorkloadKind::Job.expand(serde_yaml_ng::from_str(job).unwrap()).unwrap();
    assert_eq!(expansion.controller, None);
    assert_eq!(pod(&expansion.pods[0], &PodContext::default()).unwrap().controller, None);
}

#[test]
fn the_template_hash_is_stable_and_follows_the_template() {
    let a = ok("Deployment", DEPLOYMENT);
    let b = ok("Deployment", DEPLOYMENT);
    assert_eq!(names(&a), names(&b));
    // Not the template: same hash.
    let scaled = DEPLOYMENT.replace("replicas: 3", "replicas: 2").replace("arrival: 10m", "arrival: 20m");
    assert_eq!(label(&ok("Deployment", &scaled)[0], POD_TEMPLATE_HASH_LABEL), label(&a[0], POD_TEMPLATE_HASH_LABEL));
    let changed = ok("Deployment", &DEPLOYMENT.replace("image: nginx", "image: nginx:2"));
    assert_ne!(label(&changed[0], POD_TEMPLATE_HASH_LABEL), label(&a[0], POD_TEMPLATE_HASH_LABEL));
}

#[test]
fn replicas_default_to_one_and_zero_is_fine() {
    let one = DEPLOYMENT.replace("  replicas: 3\n", "");
    assert_eq!(ok("Deployment", &one).len(), 1);
    assert!(ok("Deployment", &DEPLOYMENT.replace("replicas: 3", "replicas: 0")).is_empty());
}

#[test]
fn replica_sets_name_pods_by_index() {
    let pods = ok(
        "ReplicaSet",
        "kind: ReplicaSet\nmetadata: {name: rs, uid: u1}\nspec:\n  replicas: 2\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: []}}\n",
    );
    assert_eq!(names(&pods), vec!["rs-0", "rs-1"]);
    assert_eq!(pods[0].metadata.namespace, None, "pod() defaults it, as for a pod written without one");
    let owner = &pods[1].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.api_version.as_str(), owner.kind.as_str(), owner.name.as_str()), ("apps/v1", "ReplicaSet", "rs"));
    assert_eq!(owner.uid, "u1");
    assert_eq!(pods[0].metadata.labels.as_ref().unwrap().len(), 1, "a ReplicaSet adds no labels");
}

#[test]
fn stateful_sets_have_ordinals_identity_and_labels() {
    let yaml = "kind: StatefulSet\nmetadata: {name: db, namespace: data}\nspec:\n  replicas: 2\n  serviceName: db-svc\n  ordinals: {start: 3}\n  selector: {matchExpressions: [{key: app, operator: In, values: [db]}]}\n  template: {metadata: {labels: {app: db}}, spec: {containers: []}}\n";
    let pods = ok("StatefulSet", yaml);
    assert_eq!(names(&pods), vec!["db-3", "db-4"]);
    let p = &pods[1];
    assert_eq!(label(p, STATEFULSET_POD_NAME_LABEL), Some("db-4"));
    assert_eq!(label(p, POD_INDEX_LABEL), Some("4"));
    assert!(label(p, CONTROLLER_REVISION_HASH_LABEL).unwrap().starts_with("db-"));
    assert_eq!(label(p, "app"), Some("db"));
    let spec = p.spec.as_ref().unwrap();
    assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("db-4"), Some("db-svc")));
    assert_eq!(p.metadata.owner_references.as_ref().unwrap()[0].kind, "StatefulSet");
    let no_start = yaml.replace("  ordinals: {start: 3}\n", "");
    assert_eq!(names(&ok("StatefulSet", &no_start)), vec!["db-0", "db-1"]);
}

const JOB: &str = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: train, namespace: ml}\nspec:\n  template:\n    metadata: {labels: {scheduling.x-k8s.io/pod-group: train}}\n    spec: {restartPolicy: Never, containers: [{name: c, resources: {limits: {nvidia.com/gpu: 8}}}]}\n";

#[test]
fn stateful_sets_give_each_pod_a_claim_per_template() {
    let yaml = "kind: StatefulSet\nmetadata: {name: db, namespace: data}\nspec:\n  replicas: 2\n  \
                selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    \
                spec: {containers: [], volumes: [{name: data, emptyDir: {}}, {name: cfg, configMap: {name: c}}]}\n  \
                volumeClaimTemplates: [{metadata: {name: data}, spec: {storageClassName: fast}}]\n";
    let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
    let expansion = WorkloadKind::StatefulSet.expand(value).unwrap();
    let volumes = |p: &Pod| -> Vec<(String, Option<String>)> {
        let spec = p.spec.as_ref().unwrap();
        let claim =
            |v: &k8s_openapi::api::core::v1::Volume| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone());
        spec.volumes.iter().flatten().map(|v| (v.name.clone(), claim(v))).collect()
    };
    // The template's own volume of the claim's name is replaced, as upstream's updateStorage does.
    assert_eq!(volumes(&expansion.pods[1]), [("data".into(), Some("data-db-1".into())), ("cfg".into(), None)]);
    let claims: Vec<_> =
        expansion.claims.iter().map(|c| (c.metadata.namespace.as_deref(), c.metadata.name.as_deref())).collect();
    assert_eq!(claims, [(Some("data"), Some("data-db-0")), (Some("data"), Some("data-db-1"))]);
    assert_eq!(expansion.claims[0].spec.as_ref().unwrap().storage_class_name.as_deref(), Some("fast"));
    let e = err(
        "StatefulSet",
        "kind: StatefulSet\nmetadata: {name: s}\nspec: {template: {spec: {containers: []}}, volumeClaimTemplates: [{spec: {}}]}\n",
    );
    assert!(e.contains("spec.volumeClaimTemplates[0].metadata.name: required field is missing"), "{e}");
}

#[test]
fn jobs_run_parallelism_pods_capped_by_completions() {
    let pods = ok("Job", JOB);
    assert_eq!(names(&pods), vec!["train-0"]);
    assert_eq!(label(&pods[0], JOB_NAME_LABEL), Some("train"));
    assert_eq!(label(&pods[0], "job-name"), Some("train"));
    assert_eq!(label(&pods[0], JOB_COMPLETION_INDEX), None, "only Indexed jobs have an index");
    assert_eq!(pods[0].metadata.owner_references.as_ref().unwrap()[0].api_version, "batch/v1");
    let with = |extra: &str| JOB.replace("spec:\n  template:", &format!("spec:\n{extra}  template:"));
    assert_eq!(ok("Job", &with("  parallelism: 4\n")).len(), 4);
    assert_eq!(ok("Job", &with("  parallelism: 4\n  completions: 2\n")).len(), 2);
    assert_eq!(ok("Job", &with("  parallelism: 4\n  completions: 10\n")).len(), 4);
    assert_eq!(ok("Job", &with("  completions: 5\n")).len(), 1);
    assert!(ok("Job", &with("  parallelism: 0\n")).is_empty());
    assert!(ok("Job", &with("  parallelism: 3\n  suspend: true\n")).is_empty());
}

#[test]
fn indexed_jobs_label_and_annotate_the_index() {
    let yaml = JOB.replace(
        "spec:\n  template:",
        "spec:\n  completionMode: Indexed\n  completions: 3\n  parallelism: 3\n  template:",
    );
    let pods = ok("Job", &yaml);
    assert_eq!(names(&pods), vec!["train-0", "train-1", "train-2"]);
    assert_eq!(label(&pods[2], JOB_COMPLETION_INDEX), Some("2"));
    assert_eq!(annotation(&pods[2], JOB_COMPLETION_INDEX), Some("2"));
    assert_eq!(label(&pods[2], "scheduling.x-k8s.io/pod-group"), Some("train"));
    let e = err("Job", &JOB.replace("spec:\n  template:", "spec:\n  completionMode: Indexed\n  template:"));
    assert_eq!(e, "spec.completions: required field is missing");
    let e = err("Job", &JOB.replace("spec:\n  template:", "spec:\n  completionMode: Sometimes\n  template:"));
    assert!(e.starts_with("spec.completionMode: unsupported value \"Sometimes\""), "{e}");
}

#[test]
fn expanded_pods_convert() {
    let pods = ok("Job", &JOB.replace("spec:\n  template:", "spec:\n  parallelism: 2\n  template:"));
    let cx = PodContext::new();
    let converted = pod(&pods[1], &cx).unwrap();
    assert_eq!((converted.namespace.as_str(), &*converted.name), ("ml", "train-1"));
    assert_eq!(converted.pod_group.map(|g| g.as_str()), Some("train"));
    assert_eq!(converted.gpu.map(|g| g.count), Some(8));
}

#[test]
fn missing_templates_name_the_field() {
    assert_eq!(
        err("Deployment", "kind: Deployment\nmetadata: {name: d}\n"),
        "spec.template: required field is missing"
    );
    assert_eq!(
        err("Deployment", "kind: Deployment\nmetadata: {name: d}\nspec: {replicas: 0}\n"),
        "spec.template: required field is missing"
    );
    assert_eq!(
        err("ReplicaSet", "kind: ReplicaSet\nmetadata: {name: r}\nspec: {selector: {}}\n"),
        "spec.template: required field is missing"
    );
    assert_eq!(
        err("StatefulSet", "kind: StatefulSet\nmetadata: {name: s}\n"),
        "spec.template: required field is missing"
    );
    assert_eq!(err("Job", "kind: Job\nmetadata: {name: j}\n"), "spec.template: required field is missing");
    assert_eq!(
        err("DaemonSet", "kind: DaemonSet\nmetadata: {name: d}\nspec: {selector: {}}\n"),
        "spec.template: required field is missing"
    );
    assert_eq!(
        err("Job", "kind: Job\nmetadata: {name: j}\nspec: {template: {metadata: {labels: {a: b}}}}\n"),
        "spec.template.spec: required field is missing"
    );
    assert_eq!(
        err("Job", "kind: Job\nspec: {template: {spec: {containers: []}}}\n"),
        "metadata.name: required field is missing"
    );
}

#[test]
fn bad_counts_name_the_field() {
    let e = err("Deployment", &DEPLOYMENT.replace("replicas: 3", "replicas: -1"));
    assert_eq!(e, "spec.replicas: invalid value \"-1\": must be a non-negative integer");
    let e = err("Deployment", &DEPLOYMENT.replace("replicas: 3", "replicas: three"));
    assert_eq!(e, "spec.replicas: invalid value \"three\": must be a non-negative integer");
    let e = err("Deployment", &DEPLOYMENT.replace("replicas: 3", "replicas: 1.5"));
    assert!(e.starts_with("spec.replicas: invalid value \"1.5\""), "{e}");
    let e = err("Deployment", &DEPLOYMENT.replace("replicas: 3", "replicas: 5000000"));
    assert_eq!(e, "spec.replicas: invalid value \"5000000\": must be between 0 and 1000000");
    let e = err("Job", &JOB.replace("spec:\n  template:", "spec:\n  completions: [1]\n  template:"));
    assert!(e.starts_with("spec.completions: invalid value \"[1]\""), "{e}");
    let e = err(
        "StatefulSet",
        "kind: StatefulSet\nmetadata: {name: s}\nspec: {ordinals: {start: -2}, template: {spec: {containers: []}}}\n",
    );
    assert!(e.starts_with("spec.ordinals.start: invalid value \"-2\""), "{e}");
}

#[test]
fn other_bad_fields_are_errors() {
    let e = err("Deployment", &DEPLOYMENT.replace("matchLabels: {app: web}", "matchLabels: {app: api}"));
    assert!(e.starts_with("spec.selector: invalid value"), "{e}");
    assert!(e.ends_with("does not match the template's labels"), "{e}");
    let e = err("Deployment", &DEPLOYMENT.replace("arrival: 10m", "arrival: soon"));
    assert!(e.starts_with("metadata.annotations.tessera.io/arrival: invalid value \"soon\""), "{e}");
    let e = err("Deployment", &DEPLOYMENT.replace("selector: {matchLabels: {app: web}}", "selector: 7"));
    assert!(e.starts_with("not a valid object of its kind: invalid type"), "{e}");
    // A selector left out is taken as the template's labels.
    assert_eq!(ok("Deployment", &DEPLOYMENT.replace("  selector: {matchLabels: {app: web}}\n", "")).len(), 3);
}

#[test]
fn yaml_files_expand_workloads_in_place_and_count_them() {
    let text = format!(
        "kind: Pod\nmetadata: {{name: first}}\nspec: {{containers: []}}\n---\n{DEPLOYMENT}---\nkind: List\nitems:\n- {{kind: Job, metadata: {{name: j}}, spec: {{parallelism: 2, template: {{spec: {{containers: []}}}}}}}}\n- {{kind: Pod, metadata: {{name: last}}, spec: {{containers: []}}}}\n"
    );
    let mut objects = read_objects("w.yaml", &text).unwrap();
    let all = names(&objects.pods);
    assert_eq!(all.len(), 7);
    assert_eq!((all[0], all[4], all[5], all[6]), ("first", "j-0", "j-1", "last"));
    assert!(all[1].starts_with("web-"));
    let expanded: Vec<_> = objects.expanded.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(expanded, vec![("Deployment", 3), ("Job", 2)]);
    assert!(objects.unknown_kinds.is_empty());
    objects.extend(read_objects("more.yaml", &DEPLOYMENT.replace("replicas: 3", "replicas: 0")).unwrap());
    assert_eq!(objects.expanded.get("Deployment"), Some(&3));
    assert_eq!(objects.pods.len(), 7);
}

#[test]
fn yaml_errors_name_file_document_object_and_field() {
    let text = format!(
        "kind: Namespace\nmetadata: {{name: shop}}\n---\n{}",
        DEPLOYMENT.replace("replicas: 3", "replicas: -3")
    );
    let e = read_objects("w.yaml", &text).unwrap_err().to_string();
    assert_eq!(
        e,
        "w.yaml: document 2 (Deployment shop/web): spec.replicas: invalid value \"-3\": must be a non-negative integer"
    );
    let e = read_objects("w.yaml", "kind: Job\nmetadata: {name: j}\n").unwrap_err().to_string();
    assert_eq!(e, "w.yaml: document 1 (Job j): spec.template: required field is missing");
}

#[test]
fn listed_pods_leave_only_the_rest_to_create() {
    let value: Value = serde_yaml_ng::from_str(DEPLOYMENT).unwrap();
    let deployment = Controller::read(WorkloadKind::Deployment, value).unwrap();
    assert_eq!((deployment.namespace.as_str(), deployment.name.as_str()), ("shop", "web"));
    assert_eq!(deployment.uid.as_deref(), Some("d-uid"));
    let taken: HashSet<&str> = ["web-abc-0"].into();
    let rs = ReplicaSetRef { name: "web-abc".into(), uid: "rs-uid".into(), hash: Some("abc".into()), listed: true };
    let listed = Listed { active: 1, replica_set: Some(rs), taken: Some(&taken), ..Listed::default() };
    let expansion = deployment.expand(&listed);
    // Two of three to go, into the listed ReplicaSet, past the name a listed pod has.
    assert_eq!(names(&expansion.pods), ["web-abc-1", "web-abc-2"]);
    assert_eq!(label(&expansion.pods[0], POD_TEMPLATE_HASH_LABEL), Some("abc"));
    let owner = &expansion.pods[0].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("ReplicaSet", "web-abc", "rs-uid"));
    assert_eq!(expansion.controller, None, "a listed ReplicaSet records its own selector");
    // More listed than wanted: nothing is created, nothing removed.
    assert!(deployment.expand(&Listed { active: 5, ..Listed::default() }).pods.is_empty());
}

#[test]
fn completed_indexes_are_read_leniently() {
    assert_eq!(index_set("0,3-5, 9"), [0, 3, 4, 5, 9].into());
    assert_eq!(index_set(""), BTreeSet::new());
    // Nonsense is skipped rather than failing the input: it is the controller's bookkeeping.
    assert_eq!(index_set("x,2-1,7,-3,4-2000000"), [7].into());
}

#[test]
fn a_finished_or_suspended_job_adds_nothing() {
    let failed = format!("{JOB}status: {{conditions: [{{type: Failed, status: 'True'}}]}}\n");
    assert!(ok("Job", &failed).is_empty());
    // A condition that does not hold does not stop it.
    assert_eq!(ok("Job", &failed.replace("'True'", "'False'")).len(), 1);
}
