//! DaemonSets: one pod per node they select and tolerate, pinned by node affinity, with the
//! controller's tolerations, and none on a node one of their listed pods is for.

use k8s_openapi::api::core::v1::Pod;

use crate::ingest::workloads::CONTROLLER_REVISION_HASH_LABEL;
use crate::ingest::{Objects, PodContext, pod, read_objects};

fn read(text: &str) -> Objects {
    read_objects("dump.yaml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn names(objects: &Objects) -> Vec<&str> {
    objects.pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect()
}

/// The node each pod is pinned to by its required node affinity.
fn pinned(p: &Pod) -> Vec<String> {
    let spec = p.spec.as_ref().unwrap();
    let node_affinity = spec.affinity.as_ref().unwrap().node_affinity.as_ref().unwrap();
    let terms =
        &node_affinity.required_during_scheduling_ignored_during_execution.as_ref().unwrap().node_selector_terms;
    assert_eq!(terms.len(), 1, "the controller's term replaces the template's");
    let fields = terms[0].match_fields.as_ref().unwrap();
    assert!(terms[0].match_expressions.is_none());
    assert_eq!((fields[0].key.as_str(), fields[0].operator.as_str()), ("metadata.name", "In"));
    fields[0].values.clone().unwrap()
}

/// A node as `kubectl get -o yaml` writes it, with `spec` (taints) as given.
fn node(name: &str, labels: &str, spec: &str) -> String {
    format!(
        "
- apiVersion: v1
  kind: Node
  metadata:
    name: {name}
    uid: node-{name}
    resourceVersion: '1200'
    creationTimestamp: '2026-11-30T08:00:00Z'
    labels: {{kubernetes.io/hostname: {name}, kubernetes.io/os: linux{labels}}}
    managedFields:
    - {{apiVersion: v1, fieldsType: FieldsV1, fieldsV1: {{f:metadata: {{}}}}, manager: kubelet, operation: Update}}
  spec: {{podCIDR: 10.0.0.0/24{spec}}}
  status:
    allocatable: {{cpu: '8', memory: 32Gi, pods: '110'}}
    capacity: {{cpu: '8', memory: 32Gi, pods: '110'}}
    conditions:
    - {{type: Ready, status: 'True', reason: KubeletReady, lastHeartbeatTime: '2026-12-01T06:00:00Z', lastTransitionTime: '2026-11-30T08:01:00Z'}}
"
    )
}

/// A DaemonSet as `kubectl get -o yaml` writes it; `template_spec` is added to its pod spec.
fn daemon_set(template_spec: &str) -> String {
    format!(
        "
- apiVersion: apps/v1
  kind: DaemonSet
  metadata:
    name: node-exporter
    namespace: monitoring
    uid: ds-1
    generation: 3
    resourceVersion: '5120'
    creationTimestamp: '2026-11-30T08:05:00Z'
    annotations: {{deprecated.daemonset.template.generation: '3'}}
    labels: {{app: node-exporter}}
    managedFields:
    - {{apiVersion: apps/v1, fieldsType: FieldsV1, fieldsV1: {{f:spec: {{}}}}, manager: kubectl, operation: Update}}
  spec:
    revisionHistoryLimit: 10
    selector: {{matchLabels: {{app: node-exporter}}}}
    updateStrategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 0, maxUnavailable: 1}}}}
    template:
      metadata:
        creationTimestamp: null
        labels: {{app: node-exporter}}
      spec:
        containers:
        - name: exporter
          image: prom/node-exporter:v1.8.2
          resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
          terminationMessagePath: /dev/termination-log
        dnsPolicy: ClusterFirst
        restartPolicy: Always
        schedulerName: default-scheduler
        terminationGracePeriodSeconds: 30{template_spec}
  status:
    currentNumberScheduled: 1
    desiredNumberScheduled: 2
    numberAvailable: 1
    numberMisscheduled: 0
    numberReady: 1
    observedGeneration: 3
    updatedNumberScheduled: 1
"
    )
}

/// `kind: List` of the items, as `kubectl get -A -o yaml` wraps them.
fn list(items: &[&str]) -> String {
    format!("apiVersion: v1\nkind: List\nmetadata: {{resourceVersion: ''}}\nitems:{}", items.concat())
}

const GPU_TAINT: &str = ", taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]";

#[test]
fn one_pod_per_node_whose_taints_are_tolerated_each_pinned_by_node_affinity() {
    let text = list(&[&node("a", "", ""), &node("b", "", GPU_TAINT), &node("c", "", ""), &daemon_set("")]);
    let objects = read(&text);
    assert_eq!(names(&objects), ["node-exporter-a", "node-exporter-c"]);
    assert_eq!(objects.expanded.get("DaemonSet"), Some(&2));
    let pinned: Vec<_> = objects.pods.iter().map(pinned).collect();
    assert_eq!(pinned, [["a"], ["c"]]);
    for p in &objects.pods {
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.node_name, None, "the scheduler places it, through Filter");
        assert_eq!(p.metadata.namespace.as_deref(), Some("monitoring"));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("DaemonSet", "node-exporter", "ds-1")
        );
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.get("app").map(String::as_str), Some("node-exporter"));
        assert!(labels.contains_key(CONTROLLER_REVISION_HASH_LABEL));
        // The pod converts, and its affinity admits its node only.
        let converted = pod(p, &PodContext::new()).unwrap();
        let required = converted.required_node_affinity.unwrap();
        let labels = tessera_plugins::labels::LabelSet::default();
        let node = tessera_plugins::intern::Sym::new(&pinned_name(p));
        assert!(required.matches(&labels, node));
        assert!(!required.matches(&labels, tessera_plugins::intern::Sym::new("b")));
    }
    // A toleration in the template lets it on the tainted node too.
    let tolerating = daemon_set("\n        tolerations: [{key: nvidia.com/gpu, operator: Exists}]");
    let text = list(&[&node("a", "", ""), &node("b", "", GPU_TAINT), &node("c", "", ""), &tolerating]);
    assert_eq!(names(&read(&text)), ["node-exporter-a", "node-exporter-b", "node-exporter-c"]);
}

fn pinned_name(p: &Pod) -> String {
    pinned(p).remove(0)
}

#[test]
fn the_controllers_tolerations_let_pods_on_cordoned_and_pressured_nodes() {
    let cordoned = ", unschedulable: true, taints: [{key: node.kubernetes.io/unschedulable, effect: NoSchedule}]";
    let pressured = ", taints: [{key: node.kubernetes.io/disk-pressure, effect: NoSchedule}]";
    let no_network = ", taints: [{key: node.kubernetes.io/network-unavailable, effect: NoSchedule}]";
    let soft = ", taints: [{key: spot, effect: PreferNoSchedule}]";
    let nodes = [node("a", "", cordoned), node("b", "", pressured), node("c", "", no_network), node("d", "", soft)];
    let items = |ds: &str| {
        let mut items: Vec<&str> = nodes.iter().map(String::as_str).collect();
        items.push(ds);
        list(&items)
    };
    let objects = read(&items(&daemon_set("")));
    assert_eq!(names(&objects), ["node-exporter-a", "node-exporter-b", "node-exporter-d"]);
    let tolerations = objects.pods[0].spec.as_ref().unwrap().tolerations.as_ref().unwrap();
    let keys: Vec<_> = tolerations.iter().map(|t| (t.key.as_deref().unwrap(), t.effect.as_deref().unwrap())).collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    assert!(keys.contains(&("node.kubernetes.io/unschedulable", "NoSchedule")));
    assert!(keys.contains(&("node.kubernetes.io/not-ready", "NoExecute")));
    // A cordoned node takes the pod: the scheduler's own check honours the toleration.
    let converted = pod(&objects.pods[0], &PodContext::new()).unwrap();
    assert_eq!(converted.tolerations.len(), 6);
    // On the host network, a node without pod network takes it too.
    let host = read(&items(&daemon_set("\n        hostNetwork: true")));
    assert_eq!(names(&host), ["node-exporter-a", "node-exporter-b", "node-exporter-c", "node-exporter-d"]);
    // A template that already has one of them does not get it twice.
    let again = daemon_set(
        "\n        tolerations: [{key: node.kubernetes.io/unschedulable, operator: Exists, effect: NoSchedule}]",
    );
    let objects = read(&items(&again));
    assert_eq!(objects.pods[0].spec.as_ref().unwrap().tolerations.as_ref().unwrap().len(), 6);
}

#[test]
fn the_node_selector_and_required_affinity_limit_the_nodes() {
    let nodes = [node("a", ", pool: gpu", ""), node("b", ", pool: cpu", ""), node("c", ", pool: gpu, zone: z2", "")];
    let items = |ds: &str| {
        let mut items: Vec<&str> = nodes.iter().map(String::as_str).collect();
        items.push(ds);
        list(&items)
    };
    let selected = read(&items(&daemon_set("\n        nodeSelector: {pool: gpu}")));
    assert_eq!(names(&selected), ["node-exporter-a", "node-exporter-c"]);
    // The nodeSelector stays on the pods: the scheduler checks it again.
    let spec = selected.pods[0].spec.as_ref().unwrap();
    assert_eq!(spec.node_selector.as_ref().unwrap().get("pool").map(String::as_str), Some("gpu"));
    let affinity = "
        affinity:
          nodeAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              nodeSelectorTerms:
              - matchExpressions: [{key: zone, operator: In, values: [z2]}]
              - matchExpressions: [{key: pool, operator: In, values: [cpu]}]
            preferredDuringSchedulingIgnoredDuringExecution:
            - {weight: 5, preference: {matchExpressions: [{key: pool, operator: In, values: [gpu]}]}}";
    let objects = read(&items(&daemon_set(affinity)));
    assert_eq!(names(&objects), ["node-exporter-b", "node-exporter-c"]);
    // The required terms give way to the pin; the preferred ones stay.
    assert_eq!(pinned(&objects.pods[0]), ["b"]);
    let node_affinity = objects.pods[0].spec.as_ref().unwrap().affinity.as_ref().unwrap().node_affinity.as_ref();
    assert_eq!(node_affinity.unwrap().preferred_during_scheduling_ignored_during_execution.as_ref().unwrap().len(), 1);
    // A template pinned to one node by name gets that node only.
    let named = read(&items(&daemon_set("\n        nodeName: c")));
    assert_eq!(names(&named), ["node-exporter-c"]);
}

#[test]
fn listed_pods_keep_their_node_and_the_rest_get_new_ones() {
    // One pod of the DaemonSet runs on `a`, bound; another waits for `c`, pinned only.
    let running = "
- apiVersion: v1
  kind: Pod
  metadata:
    name: node-exporter-x7k2p
    generateName: node-exporter-
    namespace: monitoring
    uid: pod-1
    labels: {app: node-exporter, controller-revision-hash: 6b9f8d7c5, pod-template-generation: '3'}
    ownerReferences:
    - {apiVersion: apps/v1, kind: DaemonSet, name: node-exporter, uid: ds-1, controller: true, blockOwnerDeletion: true}
    managedFields:
    - {apiVersion: v1, fieldsType: FieldsV1, fieldsV1: {f:metadata: {}}, manager: kube-controller-manager, operation: Update}
  spec:
    nodeName: a
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms: [{matchFields: [{key: metadata.name, operator: In, values: [a]}]}]
    containers: [{name: exporter, image: prom/node-exporter:v1.8.2, resources: {requests: {cpu: 100m, memory: 64Mi}}}]
  status: {phase: Running, hostIP: 10.0.0.1, podIP: 10.0.0.1, startTime: '2026-11-30T08:05:10Z'}
";
    let pending = running
        .replace("node-exporter-x7k2p", "node-exporter-q9z4m")
        .replace("uid: pod-1", "uid: pod-2")
        .replace("    nodeName: a\n", "")
        .replace("values: [a]", "values: [c]")
        .replace("status: {phase: Running, hostIP: 10.0.0.1, podIP: 10.0.0.1, ", "status: {phase: Pending, ");
    let nodes = [node("a", "", ""), node("b", "", ""), node("c", "", ""), node("d", "", GPU_TAINT)];
    let mut items: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let ds = daemon_set("");
    items.extend([ds.as_str(), running, &pending]);
    let objects = read(&list(&items));
    assert_eq!(names(&objects), ["node-exporter-b", "node-exporter-x7k2p", "node-exporter-q9z4m"]);
    assert_eq!(objects.expanded.get("DaemonSet"), Some(&1));
    assert_eq!(pinned(&objects.pods[0]), ["b"]);
    // A failed pod does not count: its node gets a new one. One of another DaemonSet (uid)
    // does not count either.
    let failed = running.replace("phase: Running", "phase: Failed");
    let other = pending.replace("uid: ds-1", "uid: ds-0");
    let mut items: Vec<&str> = nodes.iter().map(String::as_str).collect();
    items.extend([ds.as_str(), &failed, &other]);
    let objects = read(&list(&items));
    let added: Vec<_> = objects.pods.iter().take(objects.expanded["DaemonSet"]).map(pinned_name).collect();
    assert_eq!(added, ["a", "b", "c"]);
}

#[test]
fn nodes_and_daemon_sets_in_different_files_are_matched() {
    let mut objects = read(&list(&[&daemon_set("")]));
    assert!(objects.pods.is_empty(), "no node, no pod");
    objects.extend(read(&list(&[&node("a", "", ""), &node("b", "", "")])));
    assert_eq!(names(&objects), ["node-exporter-a", "node-exporter-b"]);
}

#[test]
fn bad_template_fields_name_the_daemon_set_and_field() {
    let bad = daemon_set("\n        tolerations: [{key: k, operator: Near}]");
    let e = read_objects("ds.yaml", &list(&[&bad])).unwrap_err().to_string();
    assert!(
        e.contains(
            "(DaemonSet monitoring/node-exporter): spec.template.spec.tolerations[0].operator: unsupported value"
        ),
        "{e}"
    );
    let bad = daemon_set(
        "\n        affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: z, operator: Near}]}]}}}",
    );
    let e = read_objects("ds.yaml", &list(&[&bad])).unwrap_err().to_string();
    assert!(e.contains("spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator"), "{e}");
}
