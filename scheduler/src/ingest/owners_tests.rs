//! Expansion of a dump: controllers add only what their listed pods and ReplicaSets do not
//! already account for.

use tessera_plugins::default_selector::{ControllerKind, SelectorSources, SourceChange};

use crate::ingest::{Objects, PodContext, pod, read_objects};

fn read(text: &str) -> Objects {
    read_objects("dump.yaml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn names(objects: &Objects) -> Vec<&str> {
    objects.pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect()
}

fn owner_of(objects: &Objects, name: &str) -> (String, String) {
    let p = objects.pods.iter().find(|p| p.metadata.name.as_deref() == Some(name)).unwrap();
    let o = &p.metadata.owner_references.as_ref().unwrap()[0];
    (o.name.clone(), o.uid.clone())
}

fn label(objects: &Objects, name: &str, key: &str) -> Option<String> {
    let p = objects.pods.iter().find(|p| p.metadata.name.as_deref() == Some(name)).unwrap();
    p.metadata.labels.as_ref()?.get(key).cloned()
}

/// The ReplicaSet and StatefulSet names whose selectors were recorded.
fn selector_names(objects: &Objects) -> Vec<String> {
    let name = |c: &SourceChange| match c {
        SourceChange::Controller { controller, .. } => controller.name.as_str().to_string(),
        SourceChange::Service { name, .. } => name.to_string(),
    };
    objects.controller_selectors.iter().map(name).collect()
}

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, uid: d-1}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
";

/// A ReplicaSet as the Deployment controller makes it: the template plus `pod-template-hash`.
fn replica_set(hash: &str, uid: &str, owner_uid: &str, image: &str) -> String {
    format!(
        "
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-{hash}
  namespace: shop
  uid: {uid}
  labels: {{app: web, pod-template-hash: {hash}}}
  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: web, uid: '{owner_uid}', controller: true}}]
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web, pod-template-hash: {hash}}}}}
  template:
    metadata: {{labels: {{app: web, pod-template-hash: {hash}}}}}
    spec: {{containers: [{{name: c, image: {image}}}]}}
"
    )
}

/// A pod of ReplicaSet `web-<hash>` (owner uid `rs_uid`, empty for none), bound to `n1`.
fn rs_pod(name: &str, hash: &str, rs_uid: &str, phase: &str) -> String {
    format!(
        "
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: shop
  labels: {{app: web, pod-template-hash: {hash}}}
  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: web-{hash}, uid: '{rs_uid}', controller: true}}]
spec: {{nodeName: n1, containers: [{{name: c, image: nginx}}]}}
status: {{phase: {phase}}}
"
    )
}

fn docs(parts: &[&str]) -> String {
    parts.join("---\n")
}

#[test]
fn a_deployment_with_its_replica_set_and_pods_is_the_pods_it_has() {
    let text = docs(&[
        DEPLOYMENT,
        &replica_set("7d4b9c", "rs-1", "d-1", "nginx"),
        &rs_pod("web-7d4b9c-abcde", "7d4b9c", "rs-1", "Running"),
        &rs_pod("web-7d4b9c-fghij", "7d4b9c", "rs-1", "Running"),
    ]);
    let objects = read(&text);
    assert_eq!(names(&objects), ["web-7d4b9c-abcde", "web-7d4b9c-fghij"]);
    assert!(objects.expanded.values().all(|n| *n == 0), "{:?}", objects.expanded);
    assert_eq!(objects.controllers().count(), 2);
    // The listed ReplicaSet still records its selector, under its own name.
    assert_eq!(selector_names(&objects), ["web-7d4b9c"]);
}

#[test]
fn a_deployment_adds_its_missing_replicas_to_its_listed_replica_set() {
    let text = docs(&[
        &DEPLOYMENT.replace("replicas: 2", "replicas: 3"),
        &replica_set("7d4b9c", "rs-1", "d-1", "nginx"),
        &rs_pod("web-7d4b9c-abcde", "7d4b9c", "rs-1", "Running"),
    ]);
    let objects = read(&text);
    assert_eq!(names(&objects), ["web-7d4b9c-0", "web-7d4b9c-1", "web-7d4b9c-abcde"], "added where the Deployment is");
    assert_eq!(objects.expanded.get("Deployment"), Some(&2));
    assert_eq!(objects.expanded.get("ReplicaSet"), Some(&0));
    assert_eq!(owner_of(&objects, "web-7d4b9c-0"), ("web-7d4b9c".to_string(), "rs-1".to_string()));
    assert_eq!(label(&objects, "web-7d4b9c-1", "pod-template-hash").as_deref(), Some("7d4b9c"));
    // Created and listed pods are owned by the ReplicaSet whose selector is recorded, once.
    assert_eq!(selector_names(&objects), ["web-7d4b9c"]);
    let mut sources = SelectorSources::default();
    for change in &objects.controller_selectors {
        sources.apply(change.clone());
    }
    for p in &objects.pods {
        let p = pod(p, &PodContext::new()).unwrap();
        assert_eq!(p.controller.map(|c| c.kind), Some(ControllerKind::ReplicaSet));
        let selector = sources.default_selector(&p).unwrap_or_else(|| panic!("{} has no selector", p.name));
        assert!(selector.matches(&p.labels));
    }
}

#[test]
fn a_deployment_and_its_replica_set_without_pods_expand_once() {
    let text = docs(&[DEPLOYMENT, &replica_set("7d4b9c", "rs-1", "d-1", "nginx")]);
    let objects = read(&text);
    assert_eq!(names(&objects), ["web-7d4b9c-0", "web-7d4b9c-1"]);
}

#[test]
fn ownership_is_by_uid_when_both_have_one_else_by_name() {
    // The ReplicaSet names a Deployment `web` that was deleted and made again: not this one.
    let text = docs(&[DEPLOYMENT, &replica_set("7d4b9c", "rs-1", "d-0", "nginx")]);
    let objects = read(&text);
    assert_eq!(objects.pods.len(), 4, "each expands on its own: {:?}", names(&objects));
    // Without uids (stripped, or hand-written), kind, name and namespace decide.
    let text = docs(&[&DEPLOYMENT.replace(", uid: d-1", ""), &replica_set("7d4b9c", "rs-1", "", "nginx")]);
    assert_eq!(read(&text).pods.len(), 2);
    // A pod whose reference has no uid belongs to the ReplicaSet of that name.
    let text =
        docs(&[DEPLOYMENT, &replica_set("7d4b9c", "rs-1", "d-1", "nginx"), &rs_pod("p", "7d4b9c", "", "Running")]);
    assert_eq!(names(&read(&text)), ["web-7d4b9c-0", "p"]);
    // One naming another uid is not its pod (and keeps its own name free).
    let text =
        docs(&[DEPLOYMENT, &replica_set("7d4b9c", "rs-1", "d-1", "nginx"), &rs_pod("p", "7d4b9c", "rs-0", "Running")]);
    assert_eq!(names(&read(&text)), ["web-7d4b9c-0", "web-7d4b9c-1", "p"]);
}

#[test]
fn pods_of_an_unlisted_replica_set_are_the_deployments_by_their_name() {
    let text = docs(&[DEPLOYMENT, &rs_pod("web-7d4b9c-abcde", "7d4b9c", "rs-1", "Running")]);
    let objects = read(&text);
    assert_eq!(names(&objects), ["web-7d4b9c-0", "web-7d4b9c-abcde"]);
    assert_eq!(owner_of(&objects, "web-7d4b9c-0"), ("web-7d4b9c".to_string(), "rs-1".to_string()));
    // Nobody lists that ReplicaSet: the Deployment records its selector, with the real hash.
    assert_eq!(selector_names(&objects), ["web-7d4b9c"]);
    // A ReplicaSet named otherwise is not the Deployment's.
    let text =
        docs(&[DEPLOYMENT, &rs_pod("x", "7d4b9c", "", "Running").replace("name: web-7d4b9c", "name: api-7d4b9c")]);
    assert_eq!(read(&text).pods.len(), 3);
}

#[test]
fn finished_pods_do_not_count_and_are_replaced() {
    let text = docs(&[
        DEPLOYMENT,
        &replica_set("7d4b9c", "rs-1", "d-1", "nginx"),
        &rs_pod("ok", "7d4b9c", "rs-1", "Running"),
        &rs_pod("evicted", "7d4b9c", "rs-1", "Failed"),
    ]);
    assert_eq!(names(&read(&text)), ["web-7d4b9c-0", "ok", "evicted"]);
}

#[test]
fn new_pods_join_the_replica_set_with_the_deployments_template() {
    // The old ReplicaSet (another image) is newer by creation time than the current one,
    // as after a rollback: the template, not the age, decides.
    let old = replica_set("0ld0ld", "rs-0", "d-1", "nginx:1")
        .replace("uid: rs-0", "uid: rs-0\n  creationTimestamp: '2024-02-01T00:00:00Z'");
    let current = replica_set("7d4b9c", "rs-1", "d-1", "nginx")
        .replace("uid: rs-1", "uid: rs-1\n  creationTimestamp: '2024-01-01T00:00:00Z'");
    let text = docs(&[&old, DEPLOYMENT, &current, &rs_pod("old-pod", "0ld0ld", "rs-0", "Running")]);
    let objects = read(&text);
    // The old ReplicaSet's pod counts: one more makes the Deployment's two.
    assert_eq!(names(&objects), ["web-7d4b9c-0", "old-pod"]);
    // Without a ReplicaSet of its template, the newest it owns.
    let text = docs(&[&old, &DEPLOYMENT.replace("image: nginx", "image: nginx:3"), &current]);
    assert_eq!(names(&read(&text)), ["web-0ld0ld-0", "web-0ld0ld-1"]);
}

#[test]
fn a_replica_set_of_no_listed_deployment_adds_its_missing_pods() {
    let text = docs(&[&replica_set("7d4b9c", "rs-1", "d-1", "nginx"), &rs_pod("p", "7d4b9c", "rs-1", "Running")]);
    let objects = read(&text);
    assert_eq!(names(&objects), ["web-7d4b9c-0", "p"]);
    assert_eq!(objects.expanded.get("ReplicaSet"), Some(&1));
}

#[test]
fn created_pods_skip_names_listed_pods_have() {
    let bare = "kind: Pod\nmetadata: {name: web-7d4b9c-0, namespace: shop}\nspec: {containers: []}\n";
    let other_namespace = "kind: Pod\nmetadata: {name: web-7d4b9c-1}\nspec: {containers: []}\n";
    let text = docs(&[bare, other_namespace, &replica_set("7d4b9c", "rs-1", "d-1", "nginx")]);
    assert_eq!(names(&read(&text)), ["web-7d4b9c-0", "web-7d4b9c-1", "web-7d4b9c-1", "web-7d4b9c-2"]);
}

const STATEFUL_SET: &str = "
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: data, uid: s-1}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c}]}
";

fn sts_pod(name: &str, labels: &str) -> String {
    format!(
        "kind: Pod\nmetadata:\n  name: {name}\n  namespace: data\n  labels: {{app: db{labels}}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: s-1, controller: true}}]\nspec: {{containers: [{{name: c}}]}}\nstatus: {{phase: Failed}}\n"
    )
}

#[test]
fn stateful_sets_create_only_the_ordinals_nobody_holds() {
    // Even a failed pod holds its ordinal: the controller replaces it under the same name.
    let objects = read(&docs(&[STATEFUL_SET, &sts_pod("db-1", "")]));
    assert_eq!(names(&objects), ["db-0", "db-2", "db-1"]);
    assert_eq!(objects.expanded.get("StatefulSet"), Some(&2));
    assert_eq!(selector_names(&objects), ["db"]);
    // The pod-index label wins over the name.
    let objects = read(&docs(&[STATEFUL_SET, &sts_pod("db-x", ", apps.kubernetes.io/pod-index: '2'")]));
    assert_eq!(names(&objects), ["db-0", "db-1", "db-x"]);
}

const JOB: &str = "
apiVersion: batch/v1
kind: Job
metadata: {name: etl, namespace: batch, uid: j-1}
spec:
  parallelism: 3
  completions: 5
  template: {spec: {restartPolicy: Never, containers: [{name: c}]}}
";

fn job_pod(name: &str, phase: &str, index: Option<u32>) -> String {
    let index = index.map(|i| format!(", batch.kubernetes.io/job-completion-index: '{i}'")).unwrap_or_default();
    format!(
        "kind: Pod\nmetadata:\n  name: {name}\n  namespace: batch\n  labels: {{job-name: etl{index}}}\n  ownerReferences: [{{apiVersion: batch/v1, kind: Job, name: etl, uid: j-1, controller: true}}]\nspec: {{containers: [{{name: c}}]}}\nstatus: {{phase: {phase}}}\n"
    )
}

#[test]
fn running_pods_count_against_a_jobs_parallelism() {
    let objects = read(&docs(&[JOB, &job_pod("etl-abc", "Running", None)]));
    assert_eq!(names(&objects), ["etl-0", "etl-1", "etl-abc"]);
    // Three of five done: two left, one of them running.
    let status = "status: {succeeded: 3}\n";
    let objects = read(&docs(&[&format!("{JOB}{status}"), &job_pod("etl-abc", "Running", None)]));
    assert_eq!(objects.expanded.get("Job"), Some(&1));
    // Succeeded pods the status does not count yet count too.
    let done: Vec<String> = (0..4).map(|i| job_pod(&format!("done-{i}"), "Succeeded", None)).collect();
    let mut parts = vec![JOB];
    parts.extend(done.iter().map(String::as_str));
    assert_eq!(read(&docs(&parts)).expanded.get("Job"), Some(&1));
    // A finished Job runs nothing.
    let complete = "status: {conditions: [{type: Complete, status: 'True'}]}\n";
    assert_eq!(read(&format!("{JOB}{complete}")).expanded.get("Job"), Some(&0));
    // Without completions, the first success ends the work.
    let open = JOB.replace("  completions: 5\n", "");
    assert_eq!(read(&format!("{open}status: {{succeeded: 1}}\n")).expanded.get("Job"), Some(&0));
}

#[test]
fn indexed_jobs_create_the_indexes_neither_done_nor_running() {
    let indexed = JOB.replace("  completions: 5\n", "  completions: 5\n  completionMode: Indexed\n");
    let with_status = format!("{indexed}status: {{succeeded: 2, completedIndexes: '0,3'}}\n");
    let objects = read(&docs(&[&with_status, &job_pod("etl-1-xyz", "Running", Some(1))]));
    // Three left (1, 2, 4) at parallelism 3, one running: 2 and 4.
    assert_eq!(names(&objects), ["etl-2", "etl-4", "etl-1-xyz"]);
    assert_eq!(label(&objects, "etl-4", "batch.kubernetes.io/job-completion-index").as_deref(), Some("4"));
}

#[test]
fn owners_and_pods_in_different_files_are_matched() {
    let mut objects = read(&docs(&[
        &rs_pod("web-7d4b9c-abcde", "7d4b9c", "rs-1", "Running"),
        &rs_pod("web-7d4b9c-fghij", "7d4b9c", "rs-1", "Running"),
    ]));
    objects.extend(read(&docs(&[DEPLOYMENT])));
    objects.extend(read(&replica_set("7d4b9c", "rs-1", "d-1", "nginx")));
    assert_eq!(names(&objects), ["web-7d4b9c-abcde", "web-7d4b9c-fghij"]);
    assert!(objects.expanded.values().all(|n| *n == 0), "{:?}", objects.expanded);
    assert_eq!(selector_names(&objects), ["web-7d4b9c"]);
}
