//! The operator tools (`tessera loadtest`, `tessera snapshot`): their pure parts (report
//! math, Prometheus parsing, object builders, YAML documents) and whole runs against the
//! in-process API server, with a small binder task standing in for a scheduler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tessera_scheduler::ingest::read_objects;
use tessera_scheduler::live::metrics::parse_sample;
use tessera_scheduler::ops::OpsError;
use tessera_scheduler::ops::loadtest::{
    self, Cleanup, LoadtestOptions, NodeSize, Tally, fake_node, loadtest_pod, percentile, rate, without_not_ready_taint,
};
use tessera_scheduler::ops::snapshot::{self, document};
use tessera_scheduler::sim::input::{OnInvalid, from_objects};
use tessera_tests::apiserver::TestApiServer;

/// Bounds every wait so a broken run fails the test instead of hanging it.
async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut).await.expect("timed out")
}

fn small(nodes: usize, pods: usize) -> LoadtestOptions {
    LoadtestOptions { nodes, pods, timeout: Duration::from_secs(30), concurrency: 8, ..LoadtestOptions::default() }
}

// ---------------------------------------------------------------------------------------
// Pure parts

#[test]
fn percentile_is_nearest_rank() {
    let values: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&values, 50.0), 50.0);
    assert_eq!(percentile(&values, 99.0), 99.0);
    assert_eq!(percentile(&values, 100.0), 100.0);
    assert_eq!(percentile(&[7.0], 99.0), 7.0);
    assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
    assert_eq!(percentile(&[], 50.0), 0.0);
}

#[test]
fn rate_needs_an_interval() {
    let t0 = Instant::now();
    assert_eq!(rate(10, Some(t0), Some(t0 + Duration::from_secs(2))), 5.0);
    assert_eq!(rate(1, Some(t0), Some(t0 + Duration::from_secs(2))), 0.0);
    assert_eq!(rate(5, Some(t0), Some(t0)), 0.0);
    assert_eq!(rate(5, None, None), 0.0);
}

#[test]
fn tally_counts_each_pod_once_and_reports_rebinds() {
    let opts = small(2, 3);
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut tally = Tally::default();
    tally.created("loadtest-0", ms(0), ms(5));
    tally.created("loadtest-1", ms(10), ms(15));
    tally.created("loadtest-2", ms(20), ms(40));
    // Seen bound before its create answered: the watch can be faster than the response.
    tally.observe("loadtest-0", "n0", ms(3));
    tally.observe("loadtest-1", "n1", ms(110));
    tally.observe("loadtest-1", "n1", ms(500)); // the same binding seen again
    tally.observe("loadtest-0", "n1", ms(600)); // moved: a rebind
    tally.observe("someone-else", "n0", ms(50)); // not created by this run
    assert!(!tally.all_bound());

    let report = tally.report(&opts, true);
    assert_eq!((report.created, report.bound, report.rebound), (3, 2, 1));
    assert!(report.timed_out);
    // Latencies 3 ms and 100 ms; the rate spans the first and the last binding, 107 ms.
    assert_eq!(report.bind_latency_ms.p50, 3.0);
    assert_eq!(report.bind_latency_ms.p99, 100.0);
    assert!((report.pods_per_sec - 2.0 / 0.107).abs() < 1e-6, "{}", report.pods_per_sec);
    assert!((report.create_per_sec - 3.0 / 0.040).abs() < 1e-6, "{}", report.create_per_sec);

    tally.observe("loadtest-2", "n0", ms(1020));
    assert!(tally.all_bound());
    assert_eq!(tally.report(&opts, false).bound, 3);
}

#[test]
fn report_json_has_the_documented_field_names() {
    let mut report = Tally::default().report(&small(4, 8), false);
    let keys = |report: &loadtest::LoadtestReport| -> BTreeSet<String> {
        serde_json::to_value(report).unwrap().as_object().unwrap().keys().cloned().collect()
    };
    let expected = [
        "created",
        "bound",
        "rebound",
        "pods_per_sec",
        "create_per_sec",
        "bind_latency_ms",
        "timed_out",
        "scheduler_name",
        "nodes",
        "pods",
    ];
    assert_eq!(keys(&report), expected.iter().map(|k| k.to_string()).collect());
    let latency = serde_json::to_value(report.bind_latency_ms).unwrap();
    assert_eq!(latency, json!({ "p50": 0.0, "p99": 0.0 }));
    report.scheduler_cpu_ms_per_pod = Some(1.5);
    report.cleanup = Some(Cleanup::default());
    let with_extras = keys(&report);
    assert!(with_extras.contains("scheduler_cpu_ms_per_pod") && with_extras.contains("cleanup"));
    assert!(report.table().contains("scheduler_cpu_ms_per_pod  1.500"), "{}", report.table());
}

#[test]
fn parse_sample_reads_only_the_unlabelled_sample() {
    let text = "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
                # TYPE process_cpu_seconds_total counter\n\
                process_cpu_seconds_total_extra 99\n\
                process_cpu_seconds_total{mode=\"user\"} 98\n\
                process_cpu_seconds_total 12.5\n\
                process_open_fds 1.5e+03\n";
    assert_eq!(parse_sample(text, "process_cpu_seconds_total"), Some(12.5));
    assert_eq!(parse_sample(text, "process_open_fds"), Some(1500.0));
    assert_eq!(parse_sample(text, "process_max_fds"), None);
    assert_eq!(parse_sample("process_max_fds{} 7\n", "process_max_fds"), Some(7.0));
    assert_eq!(parse_sample("process_max_fds lots\n", "process_max_fds"), None);
}

#[test]
fn node_size_holds_twice_the_pods() {
    let default = NodeSize::for_load(&small(10, 100)).unwrap();
    assert_eq!(default, NodeSize { cpu_milli: 32_000, memory_bytes: 128 << 30, pods: 110 });
    // 10 000 pods on 10 nodes: 2 000 per node of 100m and 128Mi.
    let dense = NodeSize::for_load(&small(10, 10_000)).unwrap();
    assert_eq!(dense, NodeSize { cpu_milli: 200_000, memory_bytes: 2000 * (128 << 20), pods: 2000 });

    let err = NodeSize::for_load(&LoadtestOptions { pod_cpu: "lots".into(), ..small(1, 1) }).unwrap_err();
    assert!(err.to_string().starts_with("--pod-cpu: \"lots\""), "{err}");
    let err = NodeSize::for_load(&small(0, 1)).unwrap_err();
    assert_eq!(err.to_string(), "--nodes: must be at least 1");
}

#[test]
fn fake_nodes_and_pods_look_like_kwoks() {
    let size = NodeSize { cpu_milli: 1500, memory_bytes: 512 << 20, pods: 110 };
    let node = fake_node(
        "tessera-fake-node-7",
        size,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-02T03:04:05Z".parse().unwrap()),
    );
    let v = serde_json::to_value(&node).unwrap();
    assert_eq!(v["metadata"]["labels"]["tessera.io/fake-node"], "true");
    assert_eq!(v["metadata"]["labels"]["kubernetes.io/hostname"], "tessera-fake-node-7");
    assert_eq!(v["metadata"]["labels"]["type"], "fake");
    assert_eq!(v["status"]["allocatable"], json!({ "cpu": "1500m", "memory": "512Mi", "pods": "110" }));
    assert_eq!(v["status"]["capacity"], v["status"]["allocatable"]);
    assert_eq!(v["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(v["status"]["conditions"][0]["status"], "True");
    assert!(v["spec"].get("taints").is_none());
    // What the simulator's reader makes of it: the same capacity.
    tessera_scheduler::ingest::node(&node).unwrap();

    let opts = LoadtestOptions { scheduler_name: "default-scheduler".into(), pod_cpu: "250m".into(), ..small(1, 1) };
    let pod = serde_json::to_value(loadtest_pod(3, &opts)).unwrap();
    assert_eq!(pod["metadata"]["name"], "loadtest-3");
    assert_eq!(pod["metadata"]["namespace"], "tessera-loadtest");
    assert_eq!(pod["metadata"]["labels"], json!({ "tessera.io/loadtest": "true" }));
    assert_eq!(pod["spec"]["schedulerName"], "default-scheduler");
    assert_eq!(pod["spec"]["nodeSelector"], json!({ "tessera.io/fake-node": "true" }));
    assert_eq!(pod["spec"]["containers"][0]["image"], "registry.k8s.io/pause:3.10");
    assert_eq!(pod["spec"]["containers"][0]["resources"]["requests"], json!({ "cpu": "250m", "memory": "128Mi" }));
    let tolerated: Vec<&str> =
        pod["spec"]["tolerations"].as_array().unwrap().iter().map(|t| t["key"].as_str().unwrap()).collect();
    assert_eq!(tolerated, ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]);
}

#[test]
fn only_the_not_ready_taint_is_removed() {
    let mut node: Node = serde_json::from_value(json!({
        "metadata": { "name": "n" },
        "spec": { "taints": [
            { "key": "node.kubernetes.io/not-ready", "effect": "NoSchedule" },
            { "key": "dedicated", "value": "gpu", "effect": "NoSchedule" },
        ] },
    }))
    .unwrap();
    let kept = without_not_ready_taint(&node).unwrap();
    assert_eq!(kept.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(), ["dedicated"]);
    node.spec.as_mut().unwrap().taints = Some(kept);
    assert_eq!(without_not_ready_taint(&node), None);
}

#[test]
fn documents_carry_their_type_and_no_bookkeeping() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "42", "generation": 3,
            "managedFields": [{ "manager": "kubectl", "operation": "Apply" }],
            "annotations": { "kubectl.kubernetes.io/last-applied-configuration": "{...}" },
            "labels": { "app": "web" },
        },
        "spec": { "containers": [{ "name": "c" }], "nodeName": "n1" },
    }))
    .unwrap();
    let yaml = document(&pod).unwrap();
    assert!(yaml.starts_with("apiVersion: v1\nkind: Pod\n"), "{yaml}");
    let objects = read_objects("doc.yaml", &yaml).unwrap();
    let meta = &objects.pods[0].metadata;
    assert_eq!((meta.name.as_deref(), meta.namespace.as_deref()), (Some("web-1"), Some("shop")));
    assert_eq!(meta.labels, Some([("app".to_string(), "web".to_string())].into()));
    assert_eq!((&meta.uid, &meta.resource_version, meta.generation), (&None, &None, None));
    assert_eq!((&meta.managed_fields, &meta.annotations), (&None, &None));
    assert_eq!(objects.pods[0].spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
}

// ---------------------------------------------------------------------------------------
// Against the test API server

/// Stands in for a scheduler: binds every pending pod of `scheduler` round-robin onto the
/// fake nodes, as a scheduler's binder POSTs `pods/binding`.
async fn binder(client: Client, scheduler: &'static str) {
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("spec.schedulerName={scheduler},spec.nodeName="));
    let mut events = std::pin::pin!(watcher(pods, config));
    let mut next = 0;
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            _ => continue,
        };
        let fake = nodes.list(&ListParams::default().labels("tessera.io/fake-node=true")).await.unwrap().items;
        if fake.is_empty() || pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
            continue;
        }
        let node = fake[next % fake.len()].name_any();
        next += 1;
        let binding = Binding {
            metadata: kube::core::ObjectMeta { name: Some(pod.name_any()), ..Default::default() },
            target: ObjectReference { kind: Some("Node".into()), name: Some(node), ..Default::default() },
        };
        let namespaced: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        // A pod seen twice before its binding shows is bound once; the second POST is a 409.
        let _: kube::Result<kube::core::Status> =
            namespaced.create_subresource("binding", &pod.name_any(), &PostParams::default(), &binding).await;
    }
}

fn node_names(server: &TestApiServer) -> BTreeSet<String> {
    server.store().list("v1", "Node").iter().map(|n| n["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

fn labelled_node(name: &str, labels: Value, taints: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name, "labels": labels },
        "spec": { "taints": taints },
        "status": { "allocatable": { "cpu": "1", "memory": "1Gi", "pods": "10" } },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_binds_every_pod_and_cleanup_removes_only_what_it_made() {
    let server = TestApiServer::start().await;
    let store = server.store();
    // A fake node from an earlier run, still carrying the taint a cluster without a node
    // controller never removes; a real node; and someone else's pod.
    let not_ready = json!([{ "key": "node.kubernetes.io/not-ready", "effect": "NoSchedule" }]);
    store.create(labelled_node("tessera-fake-node-0", json!({ "tessera.io/fake-node": "true" }), not_ready)).unwrap();
    store.create(labelled_node("real-1", json!({}), json!([]))).unwrap();
    store
        .create(json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "keep", "namespace": "default" },
            "spec": { "containers": [{ "name": "c", "image": "busybox" }] } }))
        .unwrap();

    let bind = tokio::spawn(binder(server.client(), "tessera"));
    let opts = LoadtestOptions { cleanup: true, ..small(3, 20) };
    let report = within(loadtest::run(server.client(), &opts)).await.unwrap();
    bind.abort();

    assert_eq!((report.created, report.bound, report.rebound, report.timed_out), (20, 20, 0, false));
    assert_eq!((report.nodes, report.pods, report.scheduler_name.as_str()), (3, 20, "tessera"));
    assert!(report.bind_latency_ms.p50 > 0.0 && report.bind_latency_ms.p99 >= report.bind_latency_ms.p50);
    assert!(report.pods_per_sec > 0.0 && report.create_per_sec > 0.0);
    // Node 0 was reused, so cleanup deletes only the two it registered.
    assert_eq!(report.cleanup, Some(Cleanup { pods: 20, nodes: 2, namespace: true }));

    let bindings = server.bindings();
    assert_eq!(bindings.len(), 20);
    assert!(bindings.iter().all(|(ns, pod, node)| ns == "tessera-loadtest"
        && pod.starts_with("loadtest-")
        && node.starts_with("tessera-fake-node-")));
    assert_eq!(node_names(&server), BTreeSet::from(["real-1".to_string(), "tessera-fake-node-0".to_string()]));
    let reused = store.get("v1", "Node", None, "tessera-fake-node-0").unwrap();
    assert_eq!(reused["spec"]["taints"], json!([]), "the not-ready taint is removed: {reused}");
    assert_eq!(reused["status"]["conditions"][0]["type"], "Ready");
    let pods: Vec<String> =
        store.list("v1", "Pod").iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(pods, ["keep"]);
    // No namespace controller runs here: the namespace is left Terminating, as on a cluster.
    let ns = store.get("v1", "Namespace", None, "tessera-loadtest");
    assert!(ns.is_none_or(|ns| ns["metadata"]["deletionTimestamp"].is_string()));
    assert!(store.get("v1", "Namespace", None, "default").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_times_out_without_a_scheduler_and_a_rerun_refuses_its_leftovers() {
    let server = TestApiServer::start().await;
    let opts = LoadtestOptions { timeout: Duration::from_secs(1), ..small(2, 5) };
    let report = within(loadtest::run(server.client(), &opts)).await.unwrap();
    assert_eq!((report.created, report.bound, report.timed_out), (5, 0, true));
    assert_eq!((report.pods_per_sec, report.bind_latency_ms.p99), (0.0, 0.0));
    assert_eq!(report.cleanup, None);
    // Without --cleanup everything stays, including the ServiceAccount pods need.
    assert_eq!(server.store().list("v1", "Pod").len(), 5);
    assert!(server.store().get("v1", "ServiceAccount", Some("tessera-loadtest"), "default").is_some());

    let err = within(loadtest::run(server.client(), &opts)).await.unwrap_err();
    assert!(matches!(err, OpsError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("left from an earlier run"), "{err}");
    assert_eq!(server.store().list("v1", "Pod").len(), 5);
    assert_eq!(node_names(&server).len(), 2, "the rerun reused both fake nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_never_takes_over_a_real_node() {
    let server = TestApiServer::start().await;
    server.store().create(labelled_node("tessera-fake-node-1", json!({ "team": "a" }), json!([]))).unwrap();
    let opts = LoadtestOptions { cleanup: true, ..small(3, 4) };
    let err = within(loadtest::run(server.client(), &opts)).await.unwrap_err();
    assert!(
        err.to_string().starts_with("Node tessera-fake-node-1: a Node of this name exists without the label"),
        "{err}"
    );
    // The two nodes it did register are cleaned up; the real one stays.
    assert_eq!(node_names(&server), BTreeSet::from(["tessera-fake-node-1".to_string()]));
    assert!(server.store().list("v1", "Pod").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_api_errors_name_the_call_and_the_object() {
    let server = TestApiServer::start().await;
    server.faults().fail("create", "pods", "", 403, 1, None);
    let opts = LoadtestOptions { cleanup: true, concurrency: 1, ..small(1, 3) };
    let err = within(loadtest::run(server.client(), &opts)).await.unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("create (POST) Pod tessera-loadtest/loadtest-0: 403"), "{message}");
    assert!(message.contains("RBAC"), "{message}");
    // Stopped at the first failure, and cleaned up what it had made.
    assert!(server.store().list("v1", "Pod").is_empty());
    assert!(node_names(&server).is_empty());

    // An API server that is not there: the message says so rather than a bare I/O error.
    let addr = server.url();
    server.shutdown().await;
    let client = kube::Client::try_from(kube::Config::new(addr.parse().unwrap())).unwrap();
    let err = within(loadtest::run(client, &small(1, 1))).await.unwrap_err();
    assert!(err.to_string().contains("get (GET) Node tessera-fake-node-0"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_reads_scheduler_cpu_from_metrics() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    // A /metrics whose CPU counter grows by 2 s between scrapes.
    let scrapes = Arc::new(AtomicU32::new(0));
    let counter = scrapes.clone();
    let app =
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    format!("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n", 10 + 2 * n)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let metrics = tokio::spawn(async move { axum::serve(listener, app).await });

    let server = TestApiServer::start().await;
    let bind = tokio::spawn(binder(server.client(), "tessera"));
    let opts = LoadtestOptions { metrics_url: Some(url.clone()), ..small(2, 4) };
    let report = within(loadtest::run(server.client(), &opts)).await.unwrap();
    bind.abort();
    assert_eq!(report.bound, 4);
    assert_eq!(report.scheduler_cpu_ms_per_pod, Some(500.0));
    // One scrape to fail early, the baseline once the nodes exist, and the final one.
    assert_eq!(scrapes.load(Ordering::SeqCst), 3);

    // A URL that answers without the metric fails before anything is created.
    let other = LoadtestOptions { metrics_url: Some(url.replace("/metrics", "/nothing")), ..small(2, 4) };
    let err = within(loadtest::run(server.client(), &LoadtestOptions { namespace: "other".into(), ..other }))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with(&format!("metrics {}", url.replace("/metrics", "/nothing"))), "{err}");
    assert!(server.store().get("v1", "Namespace", None, "other").is_none());
    metrics.abort();
}

fn seed_cluster(server: &TestApiServer, pods: usize) {
    let store = server.store();
    for i in 0..3 {
        store
            .create(json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": format!("n{i}"),
                "labels": { "topology.kubernetes.io/zone": format!("z{i}") } },
                "status": { "allocatable": { "cpu": "64", "memory": "256Gi", "pods": "2000" } } }))
            .unwrap();
    }
    store.create(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "ml" } })).unwrap();
    store
        .create(json!({ "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": { "name": "batch" }, "value": 1000 }))
        .unwrap();
    store
        .create(json!({ "apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
            "metadata": { "name": "train", "namespace": "ml" }, "spec": { "minMember": 2 } }))
        .unwrap();
    store
        .create(json!({ "apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
            "metadata": { "name": "gpu.example.com" }, "spec": {} }))
        .unwrap();
    let pod = |name: String, ns: &str, node: Option<&str>, phase: &str, labels: Value| {
        let mut spec = json!({ "containers": [{ "name": "c", "image": "busybox",
            "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }] });
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name, "namespace": ns, "labels": labels },
            "spec": spec, "status": { "phase": phase } })
    };
    for i in 0..pods {
        store
            .create(pod(format!("web-{i}"), "default", Some(["n0", "n1", "n2"][i % 3]), "Running", json!({})))
            .unwrap();
    }
    // Creation resets the status to Pending, as upstream's does: a kubelet would write it later.
    for (name, node, phase) in [("done", "n0", "Succeeded"), ("failed", "n1", "Failed")] {
        let created = store.create(pod(name.into(), "default", Some(node), phase, json!({}))).unwrap();
        let mut finished = created.clone();
        finished["status"]["phase"] = json!(phase);
        store.update(finished).unwrap();
    }
    for i in 0..2 {
        let labels = json!({ "scheduling.x-k8s.io/pod-group": "train" });
        store.create(pod(format!("train-{i}"), "ml", None, "Pending", labels)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_round_trips_through_the_simulators_reader() {
    let server = TestApiServer::start().await;
    // More pods than one page holds, so pagination must work for them all to come back.
    seed_cluster(&server, 1200);
    // A Deployment, its ReplicaSet and their two running pods, and a Service selecting them: the
    // selectors their default spreading reads come along, and the pods are one workload, not
    // created a second time by the ReplicaSet or the Deployment.
    let store = server.store();
    let template = json!({ "metadata": { "labels": { "app": "api" } },
        "spec": { "containers": [{ "name": "c", "image": "busybox" }] } });
    store
        .create(json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "api", "namespace": "default" },
            "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "api" } }, "template": template } }))
        .unwrap();
    store
        .create(json!({ "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": { "name": "api-7f", "namespace": "default",
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": "deploy-uid",
                    "controller": true }] },
            "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "api" } },
                "template": { "metadata": { "labels": { "app": "api" } },
                    "spec": { "containers": [{ "name": "c", "image": "busybox" }] } } } }))
        .unwrap();
    store
        .create(json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "api", "namespace": "default" },
            "spec": { "selector": { "app": "api" } } }))
        .unwrap();
    for i in 0..2 {
        store
            .create(json!({ "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": format!("api-7f-{i}"), "namespace": "default", "labels": { "app": "api" },
                    "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7f",
                        "uid": "rs-uid", "controller": true }] },
                "spec": { "nodeName": "n0", "containers": [{ "name": "c", "image": "busybox" }] } }))
            .unwrap();
    }
    // A DaemonSet whose pod already runs on one of the three nodes: the snapshot's replay adds
    // one for each of the other two, as its controller would; a finished Job adds none; a
    // PodDisruptionBudget comes for preemption.
    store
        .create(json!({ "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": { "name": "agent", "namespace": "kube-system" },
            "spec": { "selector": { "matchLabels": { "app": "agent" } },
                "template": { "metadata": { "labels": { "app": "agent" } },
                    "spec": { "containers": [{ "name": "c", "image": "agent" }] } } } }))
        .unwrap();
    store
        .create(json!({ "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "agent-x1", "namespace": "kube-system", "labels": { "app": "agent" },
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                    "uid": "ds-uid", "controller": true }] },
            "spec": { "nodeName": "n0", "containers": [{ "name": "c", "image": "agent" }] } }))
        .unwrap();
    let job = json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "etl", "namespace": "default" },
        "spec": { "completions": 1, "parallelism": 1, "template": { "metadata": { "labels": { "job": "etl" } },
            "spec": { "restartPolicy": "Never", "containers": [{ "name": "c", "image": "etl" }] } } } });
    let job = store.create(job).unwrap();
    let mut done = job.clone();
    done["status"] = json!({ "succeeded": 1 });
    store.update(done).unwrap();
    store
        .create(json!({ "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": { "name": "api", "namespace": "default" },
            "spec": { "minAvailable": 1, "selector": { "matchLabels": { "app": "api" } } } }))
        .unwrap();
    // A claim bound to a volume, and their class: the volume plugins read them.
    store
        .create(json!({ "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": { "name": "local" },
            "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer" }))
        .unwrap();
    store
        .create(json!({ "apiVersion": "v1", "kind": "PersistentVolume", "metadata": { "name": "pv-0" },
            "spec": { "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                "claimRef": { "namespace": "default", "name": "data" }, "local": { "path": "/mnt" } } }))
        .unwrap();
    store
        .create(json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": { "name": "data", "namespace": "default" },
            "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "local", "volumeName": "pv-0",
                "resources": { "requests": { "storage": "1Gi" } } } }))
        .unwrap();
    let snap = within(snapshot::snapshot(server.client())).await.unwrap();
    assert!(snap.skipped.is_empty(), "{:?}", snap.skipped);
    assert_eq!(snap.finished_pods, 2);
    assert_eq!(
        (count_of(&snap, "v1 PersistentVolume"), count_of(&snap, "v1 PersistentVolumeClaim")),
        (Some(1), Some(1))
    );
    let count = |kind: &str| snap.counts.iter().find(|(k, _)| k == kind).map(|(_, n)| *n);
    assert_eq!(count("v1 Node"), Some(3));
    assert_eq!(count("v1 Pod"), Some(1205));
    assert_eq!((count("apps/v1 ReplicaSet"), count("v1 Service")), (Some(1), Some(1)));
    let controllers = ["apps/v1 Deployment", "apps/v1 DaemonSet", "batch/v1 Job", "policy/v1 PodDisruptionBudget"];
    assert_eq!(controllers.map(count), [Some(1); 4]);
    assert_eq!(count("scheduling.x-k8s.io/v1alpha1 PodGroup"), Some(1));
    assert_eq!(count("resource.k8s.io/v1 DeviceClass"), Some(1));
    // Objects' own uids go (owner references keep theirs: the API requires them).
    assert!(!snap.yaml.contains("resourceVersion") && !snap.yaml.contains("\n  uid:"));
    assert!(snap.summary().contains("3 v1 Node"), "{}", snap.summary());
    assert!(!snap.summary().contains(" 0 "), "kinds without objects are left out: {}", snap.summary());

    let objects = read_objects("snapshot.yaml", &snap.yaml).unwrap();
    assert_eq!(objects.nodes.len(), 3);
    assert_eq!(objects.pod_groups.len(), 1);
    assert_eq!(objects.device_classes.len(), 1, "the DeviceClass, for the DRA plugin");
    assert!(objects.unknown_kinds.is_empty(), "{:?}", objects.unknown_kinds);
    // Namespaces: default, kube-system, kube-public, kube-node-lease and ml.
    assert_eq!(objects.namespaces.len(), 5);
    let input = from_objects(&objects, OnInvalid::Stop).unwrap();
    assert_eq!(input.nodes.len(), 3);
    assert_eq!(input.running.len(), 1203, "bound pods replay as running, the Deployment's once");
    let pending: Vec<&str> = input.pods.iter().map(|p| &*p.pod.name).collect();
    assert_eq!(pending.len(), 4, "the gang's two members and the DaemonSet's pods for n1 and n2: {pending:?}");
    assert_eq!(pending.iter().filter(|n| n.starts_with("agent-")).count(), 2, "{pending:?}");
    assert!(!input.budgets.is_empty(), "the PodDisruptionBudget");
    assert_eq!(input.pod_groups.len(), 1);
    assert!(!input.volumes.is_empty(), "the volume, claim and class");
}

fn count_of(snap: &snapshot::Snapshot, kind: &str) -> Option<usize> {
    snap.counts.iter().find(|(k, _)| k == kind).map(|(_, n)| *n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_skips_a_kind_the_cluster_does_not_serve_and_stops_on_other_errors() {
    let server = TestApiServer::start().await;
    seed_cluster(&server, 3);
    // The first PodGroup list is Kubernetes' (scheduling.k8s.io); make it look unserved.
    server.faults().fail("list", "podgroups", "", 404, 1, None);
    let snap = within(snapshot::snapshot(server.client())).await.unwrap();
    assert_eq!(snap.skipped.len(), 1, "{:?}", snap.skipped);
    assert!(snap.skipped[0].starts_with("scheduling.k8s.io/v1alpha3 PodGroup: not served"), "{}", snap.skipped[0]);
    assert!(snap.counts.iter().all(|(k, _)| k != "scheduling.k8s.io/v1alpha3 PodGroup"));
    assert!(snap.counts.contains(&("scheduling.x-k8s.io/v1alpha1 PodGroup".to_string(), 1)));
    read_objects("snapshot.yaml", &snap.yaml).unwrap();

    server.faults().fail("list", "nodes", "", 403, 1, None);
    let err = within(snapshot::snapshot(server.client())).await.unwrap_err();
    assert!(err.to_string().starts_with("list (GET) nodes (v1): 403 Forbidden"), "{err}");
}

/// Serves `app` over HTTPS with a self-signed certificate for a name that is not the address
/// (a verifying client would refuse it twice over), as kube-scheduler's `/metrics` does.
async fn serve_self_signed(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    use std::sync::Arc;
    let generated = rcgen::generate_simple_self_signed(vec!["scheduler.example.invalid".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
    let server = axum_server::tls_rustls::from_tcp_rustls(listener, tls).unwrap();
    let task = tokio::spawn(async move {
        let _ = server.serve(app.into_make_service()).await;
    });
    (format!("https://{addr}/metrics"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_over_self_signed_https_with_a_bearer_token() {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|headers: http::HeaderMap| async move {
            match headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
                Some("Bearer s3cret") => (http::StatusCode::OK, "process_cpu_seconds_total 4.25\n"),
                _ => (http::StatusCode::UNAUTHORIZED, "Unauthorized"),
            }
        }),
    );
    let (url, task) = serve_self_signed(app).await;
    // The token file's trailing newline is not part of the token.
    assert_eq!(within(loadtest::scrape_cpu_seconds(&url, Some("s3cret\n"))).await.unwrap(), 4.25);
    let err = within(loadtest::scrape_cpu_seconds(&url, None)).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 401") && err.to_string().contains("--metrics-token-file"), "{err}");
    task.abort();
    let err = within(loadtest::scrape_cpu_seconds("not a url", None)).await.unwrap_err();
    assert!(err.to_string().starts_with("metrics not a url: not a URL"), "{err}");
}
