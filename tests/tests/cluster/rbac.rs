//! `tessera run` is granted exactly the API calls it makes: `manifests/deploy/20-rbac.yaml`
//! allows every one of them and nothing else, and the static-pod install's extra ClusterRole
//! adds to kube-scheduler's built-in role exactly what Tessera needs beyond it.
//!
//! Nobody lists the calls by hand. The test drives the live scheduler (the library, in process)
//! through everything it does against the API test server: leader election (acquire, renew,
//! release), the watches of `watch::Kind::ALL`, plain bindings, a refused binding, an
//! unschedulable pod (its `PodScheduled` condition and `FailedScheduling` event), gangs of both
//! PodGroup APIs (their status), a GPU pod (its `tessera.io/gpu-ids` annotation), a pod
//! with a DRA claim (the claim's status) and pods with WaitForFirstConsumer claims (a
//! volume's claimRef, a claim's selected-node annotation). The
//! test's own objects go into the server's store directly, so the server records exactly the
//! scheduler's requests, each as the RBAC authorizer sees it (verb, API group,
//! resource/subresource, namespace), and the distinct calls are checked against the manifests
//! in both directions: every call is allowed (else a real cluster answers 403), and every verb a
//! rule grants was called (else it is privilege nothing needs). A grant the scenario cannot reach
//! but the code does use belongs in [`UNEXERCISED`], naming the code that needs it.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tessera_plugins::registry::Registry;
use tessera_scheduler::config;
use tessera_scheduler::live::watch::Kind;
use tessera_scheduler::live::{self, Handles, RunOptions};
use tessera_tests::apiserver::{RequestRecord, TestApiServer};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(60);

/// The Deployment's lease, as `manifests/deploy/30-configmap.yaml` configures it.
const LEASE_NAMESPACE: &str = "tessera-system";
const LEASE_NAME: &str = "tessera";

/// Leader election on, with timings short enough that renewals happen during the test.
const CONFIG: &str = "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: true
  leaseDuration: 2s
  renewDeadline: 1500ms
  retryPeriod: 300ms
  resourceNamespace: tessera-system
  resourceName: tessera
profiles:
- schedulerName: tessera
";

/// Grants the scenario cannot exercise although the code makes the call: (API group, resource,
/// verb, the code that calls it). Empty: the scenario reaches every call `tessera run` makes.
const UNEXERCISED: &[(&str, &str, &str, &str)] = &[];

/// Verbs a rule limited by `resourceNames` can allow: the request names its object in the URL.
const NAMED_VERBS: [&str; 3] = ["get", "update", "patch"];

const READ: &[&str] = &["get", "list", "watch"];

/// kube-scheduler's built-in `system:kube-scheduler` ClusterRole, bound to the user
/// `system:kube-scheduler` of `/etc/kubernetes/scheduler.conf` (upstream
/// `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`), without its feature-gated
/// rules except DynamicResourceAllocation's (GA and on since v1.34), plus the
/// `system:volume-scheduler` ClusterRole bound to the same user: what the static pod may do
/// before `manifests/static-pod/rbac.yaml` is applied. (apiGroups, resources, verbs,
/// resourceNames).
#[allow(clippy::type_complexity)]
const KUBE_SCHEDULER_BUILTIN: &[(&[&str], &[&str], &[&str], &[&str])] = &[
    (&["", "events.k8s.io"], &["events"], &["create", "patch", "update"], &[]),
    (&["coordination.k8s.io"], &["leases"], &["create"], &[]),
    (&["coordination.k8s.io"], &["leases"], &["get", "update"], &["kube-scheduler"]),
    (&[""], &["nodes"], READ, &[]),
    (&[""], &["pods"], &["delete", "get", "list", "watch"], &[]),
    (&[""], &["bindings", "pods/binding"], &["create"], &[]),
    (&[""], &["pods/status"], &["patch", "update"], &[]),
    (&[""], &["replicationcontrollers", "services"], READ, &[]),
    (&["apps", "extensions"], &["replicasets"], READ, &[]),
    (&["apps"], &["statefulsets"], READ, &[]),
    (&["policy"], &["poddisruptionbudgets"], READ, &[]),
    (&[""], &["persistentvolumeclaims", "persistentvolumes"], READ, &[]),
    (&["authentication.k8s.io"], &["tokenreviews"], &["create"], &[]),
    (&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"], &[]),
    (&["storage.k8s.io"], &["csidrivers", "csinodes", "csistoragecapacities"], READ, &[]),
    (&[""], &["namespaces"], READ, &[]),
    (&["resource.k8s.io"], &["resourceclaims", "deviceclasses"], READ, &[]),
    (&["resource.k8s.io"], &["resourceclaims/status"], &["get", "list", "watch", "update", "patch"], &[]),
    (&["resource.k8s.io"], &["resourceslices"], READ, &[]),
    // `system:volume-scheduler`, which the bootstrap policy binds to the same user (its
    // ClusterRoleBinding of that name): what upstream's VolumeBinding reads and writes.
    (&[""], &["persistentvolumes"], &["get", "list", "patch", "update", "watch"], &[]),
    (&[""], &["persistentvolumeclaims"], &["get", "list", "patch", "update", "watch"], &[]),
    (&["storage.k8s.io"], &["storageclasses"], READ, &[]),
];

/// One API call as the RBAC authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Call {
    verb: String,
    group: String,
    /// `pods`, or `pods/binding` for a subresource: how a rule's `resources` name it.
    resource: String,
    /// `None` for cluster-scoped objects and for reads across all namespaces.
    namespace: Option<String>,
}

impl Call {
    fn from_record(r: &RequestRecord) -> Call {
        let resource =
            if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
        let namespace = (!r.namespace.is_empty()).then(|| r.namespace.clone());
        Call { verb: r.verb.clone(), group: r.group.clone(), resource, namespace }
    }

    /// The same call with the lease in `namespace` instead of the Deployment's (a lease call
    /// names its object, which the checks are told separately).
    fn with_lease(&self, namespace: &str) -> Call {
        let mut call = self.clone();
        if self.is_lease() {
            call.namespace = Some(namespace.to_string());
        }
        call
    }

    fn is_lease(&self) -> bool {
        self.group == "coordination.k8s.io" && self.resource == "leases"
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = self.namespace.as_deref().map_or("cluster-wide".to_string(), |ns| format!("in namespace {ns}"));
        write!(f, "verb {} on apiGroup {:?} resource {} {scope}", self.verb, self.group, self.resource)
    }
}

/// A `rules` entry of a Role or ClusterRole.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{apiGroups: {:?}, resources: {:?}, verbs: {:?}", self.api_groups, self.resources, self.verbs)?;
        if !self.resource_names.is_empty() {
            write!(f, ", resourceNames: {:?}", self.resource_names)?;
        }
        write!(f, "}}")
    }
}

/// A rule as a subject holds it: through which role, and where it applies.
#[derive(Debug, Clone)]
struct Grant {
    /// `ClusterRole tessera` or `Role tessera-system/tessera-leader-election`, for messages.
    role: String,
    /// `Some(ns)` when bound by a RoleBinding: it allows requests in `ns` only.
    namespace: Option<String>,
    rule: Rule,
}

impl Grant {
    /// Whether this grant allows `call`, whose named object (if any) is `object`.
    fn allows(&self, call: &Call, object: Option<&str>) -> bool {
        let listed = |list: &[String], x: &str| list.iter().any(|i| i == x || i == "*");
        let in_scope = self.namespace.is_none() || self.namespace == call.namespace;
        let named = self.rule.resource_names.is_empty()
            || (NAMED_VERBS.contains(&call.verb.as_str())
                && object.is_some_and(|o| self.rule.resource_names.iter().any(|n| n == o)));
        in_scope
            && named
            && listed(&self.rule.api_groups, &call.group)
            && listed(&self.rule.resources, &call.resource)
            && listed(&self.rule.verbs, &call.verb)
    }

    /// The grant narrowed to one (API group, resource, verb).
    fn only(&self, group: &str, resource: &str, verb: &str) -> Grant {
        let rule = Rule {
            api_groups: vec![group.to_string()],
            resources: vec![resource.to_string()],
            verbs: vec![verb.to_string()],
            resource_names: self.rule.resource_names.clone(),
        };
        Grant { rule, ..self.clone() }
    }

    /// Every (API group, resource, verb) the grant allows.
    fn triples(&self) -> Vec<(String, String, String)> {
        let r = &self.rule;
        let mut out = Vec::new();
        for g in &r.api_groups {
            for res in &r.resources {
                for v in &r.verbs {
                    out.push((g.clone(), res.clone(), v.clone()));
                }
            }
        }
        out
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rule {}", self.role, self.rule)
    }
}

/// The object a call names in its URL, which the recorder does not keep: the only named
/// objects `tessera run` reads or writes with a rule limited by name are its lease.
fn named_object<'a>(call: &Call, lease_name: &'a str) -> Option<&'a str> {
    (call.is_lease() && NAMED_VERBS.contains(&call.verb.as_str())).then_some(lease_name)
}

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// Every document of the YAML files `files`.
fn documents(files: &[PathBuf]) -> Vec<Value> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !value.is_null() {
                out.push(value);
            }
        }
    }
    out
}

/// Whether `binding` names the subject `kind`/`name` (in `namespace`, for a ServiceAccount).
fn binds(binding: &Value, kind: &str, name: &str, namespace: Option<&str>) -> bool {
    binding["subjects"].as_array().into_iter().flatten().any(|s| {
        s["kind"] == kind && s["name"] == name && (namespace.is_none() || s["namespace"].as_str() == namespace)
    })
}

/// The rules the subject holds through the bindings among `docs`, with the roles they come from.
fn bound_grants(docs: &[Value], kind: &str, name: &str, namespace: Option<&str>) -> Vec<Grant> {
    let mut grants = Vec::new();
    for binding in docs.iter().filter(|d| binds(d, kind, name, namespace)) {
        let bound_in = match binding["kind"].as_str() {
            Some("ClusterRoleBinding") => None,
            Some("RoleBinding") => Some(binding["metadata"]["namespace"].as_str().unwrap().to_string()),
            other => panic!("{other:?} with subjects is not a binding: {binding}"),
        };
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap();
        let role_name = binding["roleRef"]["name"].as_str().unwrap();
        let role = docs
            .iter()
            .find(|d| {
                d["kind"] == role_kind
                    && d["metadata"]["name"] == role_name
                    && (role_kind == "ClusterRole" || d["metadata"]["namespace"].as_str() == bound_in.as_deref())
            })
            .unwrap_or_else(|| {
                panic!("{} {} binds the missing {role_kind} {role_name}", binding["kind"], binding["metadata"]["name"])
            });
        let label = match &bound_in {
            Some(ns) if role_kind == "Role" => format!("Role {ns}/{role_name}"),
            _ => format!("{role_kind} {role_name}"),
        };
        for rule in role["rules"].as_array().unwrap() {
            let rule: Rule = serde_json::from_value(rule.clone()).unwrap_or_else(|e| panic!("{label}: {e}: {rule}"));
            grants.push(Grant { role: label.clone(), namespace: bound_in.clone(), rule });
        }
    }
    grants
}

/// Grants written as [`KUBE_SCHEDULER_BUILTIN`] is.
fn builtin_grants() -> Vec<Grant> {
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
    KUBE_SCHEDULER_BUILTIN
        .iter()
        .map(|(groups, resources, verbs, names)| Grant {
            role: "ClusterRole system:kube-scheduler (built in)".into(),
            namespace: None,
            rule: Rule {
                api_groups: strings(groups),
                resources: strings(resources),
                verbs: strings(verbs),
                resource_names: strings(names),
            },
        })
        .collect()
}

/// Calls no grant allows: each a line naming the call and, from `fix`, what to add where.
fn forbidden(calls: &BTreeSet<Call>, grants: &[Grant], lease_name: &str, fix: impl Fn(&Call) -> String) -> Vec<String> {
    calls
        .iter()
        .filter(|c| !grants.iter().any(|g| g.allows(c, named_object(c, lease_name))))
        .map(|c| format!("{c} is not allowed: {}", fix(c)))
        .collect()
}

/// Grants of `grants` that allow no call `needed` answers true for: each a line naming the rule,
/// what to remove from it, and `hint` on why a call may not count.
fn unused(
    grants: &[Grant],
    calls: &BTreeSet<Call>,
    lease_name: &str,
    needed: impl Fn(&Grant, &Call) -> bool,
    hint: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for grant in grants {
        let wildcard = [&grant.rule.api_groups, &grant.rule.resources, &grant.rule.verbs]
            .iter()
            .any(|list| list.iter().any(|x| x == "*"));
        if wildcard {
            out.push(format!("{grant} grants a wildcard: list the exact API groups, resources and verbs instead"));
            continue;
        }
        let idle: Vec<String> = grant
            .triples()
            .into_iter()
            .filter(|(group, resource, verb)| {
                let one = grant.only(group, resource, verb);
                let used = calls.iter().any(|c| one.allows(c, named_object(c, lease_name)) && needed(&one, c));
                let excused = UNEXERCISED
                    .iter()
                    .any(|(g, r, v, _)| (*g, *r, *v) == (group.as_str(), resource.as_str(), verb.as_str()));
                !used && !excused
            })
            .map(|(group, resource, verb)| format!("{verb} {resource} (apiGroup {group:?})"))
            .collect();
        if !idle.is_empty() {
            out.push(format!(
                "{grant} grants what `tessera run` does not need from it: {}. Remove that from the rule ({hint}; \
                 if the code does make the call on a path this test cannot reach, add it to UNEXERCISED in \
                 tests/tests/cluster/rbac.rs naming that code)",
                idle.join(", ")
            ));
        }
    }
    out
}

fn node(name: &str, extra: Value) -> Value {
    let mut allocatable = json!({"cpu": "8", "memory": "64Gi", "pods": "110"});
    for (k, v) in extra.as_object().unwrap() {
        allocatable[k] = v.clone();
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"allocatable": allocatable, "capacity": allocatable, "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

fn pod(name: &str, cpu: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "rbac"}},
        "spec": {
            "schedulerName": "tessera",
            "containers": [{"name": "c", "image": "pause", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]
        }
    })
}

fn create(server: &TestApiServer, obj: Value) {
    server.store().create(obj).unwrap();
}

fn get_pod(server: &TestApiServer, name: &str) -> Value {
    server.store().get("v1", "Pod", Some("default"), name).unwrap()
}

/// Waits until `done` holds, or fails the test naming `what` after [`WAIT`].
async fn until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `tessera run` on `server`; dropping the returned sender stops it.
async fn start(
    server: &TestApiServer,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), live::LiveError>>, Handles) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let config = config::parse_config("rbac.yaml", CONFIG, &Registry::builtin()).unwrap();
    let opts = RunOptions {
        config,
        client: server.client(),
        leader_elect: Some(true),
        serve: None,
        workers: 2,
        bind_concurrency: 16,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let (started, handles) = oneshot::channel();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(live::run(opts, shutdown, Some(started)));
    (stop, task, handles.await.unwrap())
}

/// Seeds the cluster, runs `tessera run` through every call it makes, stops it, and returns
/// the distinct calls it made.
async fn drive_everything() -> BTreeSet<Call> {
    let server = TestApiServer::start().await;
    create(&server, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE}}));
    create(&server, node("n0", json!({})));
    create(&server, node("n1", json!({})));
    create(&server, node("gpu0", json!({"nvidia.com/gpu": "8"})));
    create(
        &server,
        json!({"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": "gpu.example.com"},
               "spec": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.example.com'"}}]}}),
    );
    create(
        &server,
        json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "n1-gpu"},
               "spec": {"driver": "gpu.example.com", "nodeName": "n1",
                        "pool": {"name": "n1", "generation": 1, "resourceSliceCount": 1},
                        "devices": [{"name": "gpu-0"}]}}),
    );
    create(
        &server,
        json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
               "metadata": {"name": "dra-gpu", "namespace": "default"},
               "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}}]}}}),
    );
    create(
        &server,
        json!({"apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
               "metadata": {"name": "cosched", "namespace": "default"}, "spec": {"minMember": 2}}),
    );
    create(
        &server,
        json!({"apiVersion": "scheduling.k8s.io/v1alpha3", "kind": "PodGroup",
               "metadata": {"name": "train", "namespace": "default"},
               "spec": {"schedulingPolicy": {"gang": {"minCount": 2}}}}),
    );
    // A node full of a pod of priority 0, and a class a preemptor there will have.
    create(&server, node("full", json!({"cpu": "1"})));
    let mut low = pod("low", "1");
    low["spec"]["nodeName"] = json!("full");
    create(&server, low);
    create(
        &server,
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "rbac-high"}, "value": 1000}),
    );
    // Volumes: a local volume on n0 for a WaitForFirstConsumer claim (PreBind writes the
    // volume's claimRef), and a claim to provision (PreBind writes its selected-node).
    for (name, provisioner) in [("local", "kubernetes.io/no-provisioner"), ("csi", "csi.example.com")] {
        create(
            &server,
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                   "provisioner": provisioner, "volumeBindingMode": "WaitForFirstConsumer"}),
        );
    }
    create(
        &server,
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": "n0"},
               "spec": {"drivers": [{"name": "csi.example.com", "nodeID": "n0", "allocatable": {"count": 8}}]}}),
    );
    create(
        &server,
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "local-n0"},
               "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                        "local": {"path": "/mnt/disk"},
                        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions":
                            [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n0"]}]}]}}}}),
    );
    // Created Pending, as upstream: the PV controller (which the server does not run) makes it
    // Available.
    let mut pv = server.store().get("v1", "PersistentVolume", None, "local-n0").unwrap();
    pv["status"]["phase"] = json!("Available");
    server.store().update(pv).unwrap();
    for (claim, class) in [("static", "local"), ("dynamic", "csi")] {
        create(
            &server,
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": "default"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                            "resources": {"requests": {"storage": "1Gi"}}}}),
        );
    }
    // The test's own writes go to the store directly: only the scheduler's calls are recorded.
    assert_eq!(server.requests(), vec![], "the test itself made API requests");

    // The first binding of p0 is refused, as when another scheduler bound it first.
    server.faults().fail_named("create", "pods", "binding", "p0", 409, 1);
    let (stop, task, handles) = start(&server).await;
    until("this replica to lead", || handles.health.is_leader()).await;
    for i in 0..3 {
        create(&server, pod(&format!("p{i}"), "100m"));
    }
    for i in 0..2 {
        let mut m = pod(&format!("cosched-{i}"), "100m");
        m["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"] = json!("cosched");
        create(&server, m);
        let mut m = pod(&format!("train-{i}"), "100m");
        m["spec"]["schedulingGroup"] = json!({"podGroupName": "train"});
        create(&server, m);
    }
    let mut gpu = pod("gpu", "100m");
    gpu["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = json!("1");
    gpu["spec"]["containers"][0]["resources"]["limits"] = json!({"nvidia.com/gpu": "1"});
    create(&server, gpu);
    create(&server, pod("huge", "64"));
    // A pod with a DRA claim: its allocation is written to the claim before it is bound.
    let mut dra = pod("dra", "100m");
    dra["spec"]["resourceClaims"] = json!([{"name": "gpu", "resourceClaimName": "dra-gpu"}]);
    create(&server, dra);
    for claim in ["static", "dynamic"] {
        let mut p = pod(&format!("vol-{claim}"), "100m");
        p["spec"]["volumes"] = json!([{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]);
        create(&server, p);
    }

    // A pod of high priority that fits only where `low` runs: it preempts `low` (a
    // DisruptionTarget condition, a graceful delete, a Preempted event).
    let mut vip = pod("vip", "1");
    vip["spec"]["priorityClassName"] = json!("rbac-high");
    vip["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "full"});
    create(&server, vip);
    until("the victim marked for deletion", || get_pod(&server, "low")["metadata"]["deletionTimestamp"].is_string())
        .await;
    // The kubelet finishes the graceful deletion.
    server.store().delete("v1", "Pod", Some("default"), "low");

    let bindable = [
        "p0",
        "p1",
        "p2",
        "cosched-0",
        "cosched-1",
        "train-0",
        "train-1",
        "gpu",
        "dra",
        "vip",
        "vol-static",
        "vol-dynamic",
    ];
    until("every pod that fits bound", || bindable.iter().all(|p| get_pod(&server, p)["spec"]["nodeName"].is_string()))
        .await;
    let refused = server.requests().iter().filter(|r| r.subresource == "binding").count();
    assert!(refused > bindable.len(), "p0's refused binding was retried ({refused} binding requests)");
    let gpu = get_pod(&server, "gpu");
    assert_eq!(gpu["spec"]["nodeName"], "gpu0");
    assert!(gpu["metadata"]["annotations"]["tessera.io/gpu-ids"].is_string(), "no GPU annotation: {gpu}");
    assert_eq!(get_pod(&server, "dra")["spec"]["nodeName"], "n1");
    let claim = server.store().get("resource.k8s.io/v1", "ResourceClaim", Some("default"), "dra-gpu").unwrap();
    assert!(claim["status"]["allocation"].is_object(), "no allocation written: {claim}");
    assert_eq!(get_pod(&server, "vol-static")["spec"]["nodeName"], "n0");
    let pv = server.store().get("v1", "PersistentVolume", None, "local-n0").unwrap();
    assert_eq!(pv["spec"]["claimRef"]["name"], "static", "no claimRef written: {pv}");
    let node = get_pod(&server, "vol-dynamic")["spec"]["nodeName"].clone();
    let pvc = server.store().get("v1", "PersistentVolumeClaim", Some("default"), "dynamic").unwrap();
    assert_eq!(pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"], node, "{pvc}");
    until("the unschedulable pod's PodScheduled condition", || {
        let huge = get_pod(&server, "huge");
        huge["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "PodScheduled"))
    })
    .await;
    until("a FailedScheduling event", || {
        let events = server.store().list("events.k8s.io/v1", "Event");
        events.iter().any(|e| e["reason"] == "FailedScheduling" && e["regarding"]["name"] == "huge")
    })
    .await;
    until("both gangs' PodGroup statuses", || {
        let status = |api: &str, name: &str| {
            server.store().get(api, "PodGroup", Some("default"), name).unwrap()["status"].clone()
        };
        let written = |s: Value| s.as_object().is_some_and(|o| !o.is_empty());
        written(status("scheduling.x-k8s.io/v1alpha1", "cosched"))
            && written(status("scheduling.k8s.io/v1alpha3", "train"))
    })
    .await;
    // At least one renewal of the lease after it was created.
    let renewals = || server.requests().iter().filter(|r| r.resource == "leases" && r.verb == "update").count();
    until("a lease renewal", || renewals() > 0).await;

    drop(stop);
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    let lease = server.store().get("coordination.k8s.io/v1", "Lease", Some(LEASE_NAMESPACE), LEASE_NAME).unwrap();
    assert!(lease["spec"]["holderIdentity"].as_str().unwrap_or_default().is_empty(), "lease not released: {lease}");
    server.requests().iter().map(Call::from_record).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rbac_manifests_grant_exactly_the_calls_tessera_run_makes() {
    let calls = drive_everything().await;
    let listing = calls.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n");
    println!("calls `tessera run` made:\n{listing}");
    // Every watched kind was listed and watched: the scenario reached all of `Kind::ALL`.
    let watched: BTreeSet<(&str, &str)> =
        calls.iter().filter(|c| c.verb == "watch").map(|c| (c.group.as_str(), c.resource.as_str())).collect();
    assert_eq!(watched.len(), Kind::ALL.len(), "one watch per kind of Kind::ALL:\n{listing}");

    deploy_grants_exactly_the_calls(&calls, &listing);
    static_pod_adds_exactly_what_kube_scheduler_lacks(&calls, &listing);
}

/// `manifests/deploy/20-rbac.yaml`, for the ServiceAccount `tessera-system/tessera`.
fn deploy_grants_exactly_the_calls(calls: &BTreeSet<Call>, listing: &str) {
    let docs = documents(&[manifests().join("deploy/20-rbac.yaml")]);
    for role in docs.iter().filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role") {
        let name = &role["metadata"]["name"];
        let bound = docs.iter().any(|b| b["roleRef"]["kind"] == role["kind"] && &b["roleRef"]["name"] == name);
        assert!(bound, "{} {name} in 20-rbac.yaml is bound to nobody: bind it or remove it", role["kind"]);
    }
    let grants = bound_grants(&docs, "ServiceAccount", "tessera", Some(LEASE_NAMESPACE));
    let mut problems = forbidden(calls, &grants, LEASE_NAME, |c| match c.is_lease() {
        true => format!("add it to the Role tessera-leader-election in {LEASE_NAMESPACE} in 20-rbac.yaml"),
        false => "add it to the ClusterRole tessera in 20-rbac.yaml".to_string(),
    });
    // A cluster-wide grant is needed only by calls that are not confined to the lease's
    // namespace: leader election needs rights in tessera-system alone.
    let hint = "leases belong in the Role tessera-leader-election only";
    problems.extend(unused(&grants, calls, LEASE_NAME, |g, c| g.namespace.is_some() || !c.is_lease(), hint));
    assert!(problems.is_empty(), "manifests/deploy/20-rbac.yaml:\n{}\ncalls made:\n{listing}", problems.join("\n"));
}

/// `manifests/static-pod/`: kube-scheduler's credentials, with kube-scheduler's lease, plus the
/// extra ClusterRole for the user `system:kube-scheduler`.
fn static_pod_adds_exactly_what_kube_scheduler_lacks(calls: &BTreeSet<Call>, listing: &str) {
    let dir = manifests().join("static-pod");
    let text = std::fs::read_to_string(dir.join("config.yaml")).unwrap();
    let cfg = config::parse_config("static-pod/config.yaml", &text, &Registry::builtin()).unwrap();
    let le = &cfg.leader_election;
    let calls: BTreeSet<Call> = calls.iter().map(|c| c.with_lease(&le.resource_namespace)).collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let extra = bound_grants(&documents(&files), "User", "system:kube-scheduler", None);
    let builtin = builtin_grants();
    let all: Vec<Grant> = builtin.iter().chain(&extra).cloned().collect();
    let mut problems = forbidden(&calls, &all, &le.resource_name, |_| {
        "kube-scheduler's built-in role lacks it: add it to the ClusterRole in static-pod/rbac.yaml".to_string()
    });
    // An extra grant is needed only for calls the built-in role does not allow already.
    let lease_name = le.resource_name.as_str();
    let not_builtin = |_: &Grant, c: &Call| !builtin.iter().any(|b| b.allows(c, named_object(c, lease_name)));
    let hint = "a call the built-in system:kube-scheduler role allows already needs nothing here";
    problems.extend(unused(&extra, &calls, lease_name, not_builtin, hint));
    assert!(problems.is_empty(), "manifests/static-pod/:\n{}\ncalls made:\n{listing}", problems.join("\n"));
}
