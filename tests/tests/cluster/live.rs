//! `tessera run` end to end against the in-process API test server, through the real kube-rs
//! client: every pending pod bound exactly once, through dropped watches, API errors, restarts
//! and malformed objects; other schedulers' pods left alone but counted; gated pods wait; a
//! gang bound whole even when one member's binding is refused.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_plugins::registry::Registry;
use tessera_scheduler::config;
use tessera_scheduler::live::{self, Handles, RunOptions};
use tessera_tests::apiserver::TestApiServer;
use tokio::sync::oneshot;

pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) fn node(name: &str, cpu: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "64Gi", "pods": "110"},
            "capacity": {"cpu": cpu, "memory": "64Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

pub(crate) fn pod(name: &str, scheduler: &str, cpu: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "t"}},
        "spec": {
            "schedulerName": scheduler,
            "containers": [{"name": "c", "image": "pause", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]
        }
    })
}

/// A node with 64 CPUs and `gpus` whole GPUs (`nvidia.com/gpu`).
fn gpu_node(name: &str, gpus: u32) -> Value {
    let mut n = node(name, "64");
    n["status"]["allocatable"]["nvidia.com/gpu"] = json!(gpus.to_string());
    n["status"]["capacity"]["nvidia.com/gpu"] = json!(gpus.to_string());
    n
}

/// A pod for `tessera` asking one CPU and `gpus` whole GPUs.
fn gpu_pod(name: &str, gpus: u32) -> Value {
    let mut p = pod(name, "tessera", "1");
    p["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = json!(gpus.to_string());
    p["spec"]["containers"][0]["resources"]["limits"] = json!({"nvidia.com/gpu": gpus.to_string()});
    p
}

/// A scheduler-plugins PodGroup `g` of `min_member`, in `default`.
pub(crate) fn pod_group_g(min_member: u32) -> Value {
    json!({"apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
           "metadata": {"name": "g", "namespace": "default"}, "spec": {"minMember": min_member}})
}

/// `p`, made a member of PodGroup `g` by its label.
pub(crate) fn in_group_g(mut p: Value) -> Value {
    p["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"] = json!("g");
    p
}

/// A running scheduler on `server`; dropping the sender stops it.
pub(crate) struct Scheduler {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), live::LiveError>>,
    handles: Handles,
}

impl Scheduler {
    pub(crate) async fn start(server: &TestApiServer, config_yaml: &str, leader_elect: bool) -> Scheduler {
        // RUST_LOG=info shows what the scheduler did when a test fails.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let yaml =
            format!("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n{config_yaml}");
        let config = config::parse_config("test.yaml", &yaml, &Registry::builtin()).unwrap();
        let opts = RunOptions {
            config,
            client: server.client(),
            leader_elect: Some(leader_elect),
            serve: None,
            workers: 2,
            bind_concurrency: 32,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, handles) = oneshot::channel();
        let task = tokio::spawn(live::run(
            opts,
            async move {
                let _ = stopped.await;
            },
            Some(started),
        ));
        let handles = handles.await.unwrap();
        Scheduler { stop: Some(stop), task, handles }
    }

    pub(crate) async fn stop(mut self) {
        drop(self.stop.take());
        tokio::time::timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }
}

pub(crate) const SECONDARY: &str = "profiles:\n- schedulerName: tessera\n";

/// Node of every pod in the store (`None` while pending).
pub(crate) fn placements(server: &TestApiServer) -> HashMap<String, Option<String>> {
    server
        .store()
        .list("v1", "Pod")
        .into_iter()
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap().to_string();
            (name, p["spec"]["nodeName"].as_str().map(str::to_string))
        })
        .collect()
}

/// Waits until `done` holds for the store, or fails the test after [`WAIT`].
pub(crate) async fn until(server: &TestApiServer, what: &str, done: impl Fn(&HashMap<String, Option<String>>) -> bool) {
    let start = std::time::Instant::now();
    loop {
        let now = placements(server);
        if done(&now) {
            return;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn bound_count(p: &HashMap<String, Option<String>>, prefix: &str) -> usize {
    p.iter().filter(|(n, node)| n.starts_with(prefix) && node.is_some()).count()
}

/// Each pod appears at most once among the accepted bindings.
pub(crate) fn assert_bound_once(server: &TestApiServer) {
    let mut seen = HashMap::new();
    for (ns, name, node) in server.bindings() {
        if let Some(first) = seen.insert(format!("{ns}/{name}"), node.clone()) {
            panic!("{ns}/{name} bound twice: {first} and {node}");
        }
    }
}

pub(crate) fn create(server: &TestApiServer, obj: Value) {
    server.store().create(obj).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pending_pod_is_bound_exactly_once_and_other_schedulers_pods_count() {
    let server = TestApiServer::start().await;
    for i in 0..4 {
        create(&server, node(&format!("n{i}"), "4"));
    }
    // Another scheduler's pod, bound already: it holds 3 of n0's 4 CPUs.
    let mut theirs = pod("theirs", "default-scheduler", "3");
    theirs["spec"]["nodeName"] = json!("n0");
    create(&server, theirs);
    // And one of its pending pods: not ours to bind.
    create(&server, pod("theirs-pending", "default-scheduler", "100m"));
    let s = Scheduler::start(&server, SECONDARY, false).await;
    for i in 0..40 {
        create(&server, pod(&format!("p{i}"), "tessera", "300m"));
    }
    until(&server, "40 pods bound", |p| bound_count(p, "p") == 40).await;
    assert_bound_once(&server);
    let p = placements(&server);
    assert_eq!(p["theirs-pending"], None, "another scheduler's pod is left alone");
    let on_n0 = p.iter().filter(|(n, node)| n.starts_with('p') && node.as_deref() == Some("n0")).count();
    assert!(on_n0 <= 3, "n0 has 1 CPU left beside the other scheduler's pod: {on_n0} pods of 300m landed there");
    // A pod that fits nowhere is told why, as kube-scheduler tells it.
    create(&server, pod("huge", "tessera", "64"));
    let start = std::time::Instant::now();
    let why = loop {
        let obj = server.store().get("v1", "Pod", Some("default"), "huge").unwrap();
        let cond = obj["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
            .cloned();
        if let Some(c) = cond {
            break c;
        }
        assert!(start.elapsed() < WAIT, "no PodScheduled condition on the unschedulable pod");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((why["status"].as_str(), why["reason"].as_str()), (Some("False"), Some("Unschedulable")));
    assert!(why["message"].as_str().unwrap().starts_with("0/4 nodes are available: 4 Insufficient cpu."), "{why}");
    // The event follows the condition.
    let failed = |e: &Value| e["reason"] == "FailedScheduling" && e["regarding"]["name"] == "huge";
    while !server.store().list("events.k8s.io/v1", "Event").iter().any(failed) {
        assert!(start.elapsed() < WAIT, "no FailedScheduling event for the unschedulable pod");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = server.store().list("events.k8s.io/v1", "Event");
    let failed_note = events.iter().find(|e| failed(e)).map(|e| e["note"].clone());
    assert_eq!(failed_note, Some(why["message"].clone()), "the event says what the condition says");
    assert!(events.iter().any(|e| e["reason"] == "Scheduled"
        && e["note"].as_str().is_some_and(|n| n.starts_with("Successfully assigned default/p"))));
    let text = s.handles.metrics.encode();
    assert!(text.contains("scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"tessera\"} 40"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_and_api_errors_mid_bind_lose_and_double_nothing() {
    let server = TestApiServer::start().await;
    for i in 0..4 {
        create(&server, node(&format!("n{i}"), "32"));
    }
    // The first bindings fail: 500s, then 429s asking to wait a second.
    server.faults().fail("create", "pods", "binding", 500, 5, None);
    let s = Scheduler::start(&server, SECONDARY, false).await;
    for i in 0..30 {
        create(&server, pod(&format!("a{i}"), "tessera", "100m"));
    }
    server.faults().drop_watches();
    server.faults().fail("create", "pods", "binding", 429, 3, Some(1));
    for i in 0..30 {
        create(&server, pod(&format!("b{i}"), "tessera", "100m"));
    }
    server.faults().drop_watches();
    server.store().compact();
    until(&server, "60 pods bound", |p| bound_count(p, "a") == 30 && bound_count(p, "b") == 30).await;
    assert_bound_once(&server);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_bindings_in_flight_binds_nothing_twice() {
    let server = TestApiServer::start().await;
    for i in 0..4 {
        create(&server, node(&format!("n{i}"), "32"));
    }
    // Slow bindings: the scheduler stops with pods assumed but not yet bound.
    server.faults().delay("create", "pods", "binding", Duration::from_millis(300));
    let first = Scheduler::start(&server, SECONDARY, false).await;
    for i in 0..40 {
        create(&server, pod(&format!("r{i}"), "tessera", "500m"));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    first.stop().await;
    let before = bound_count(&placements(&server), "r");
    assert!(before < 40, "the restart must happen mid-run ({before} of 40 bound already)");
    server.faults().clear();
    let second = Scheduler::start(&server, SECONDARY, false).await;
    until(&server, "40 pods bound after the restart", |p| bound_count(p, "r") == 40).await;
    assert_bound_once(&server);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_pods_wait_until_ungated_and_a_malformed_pod_is_skipped() {
    let server = TestApiServer::start().await;
    create(&server, node("n0", "8"));
    let s = Scheduler::start(&server, SECONDARY, false).await;
    let mut gated = pod("gated", "tessera", "100m");
    gated["spec"]["schedulingGates"] = json!([{"name": "example.com/wait"}]);
    create(&server, gated);
    // Wrong types: no Pod decodes from this; the watch must skip it and go on.
    server
        .store()
        .create_raw(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "default"}, "spec": {"containers": "oops"}}))
        .unwrap();
    let mut bad_quantity = pod("bad-quantity", "tessera", "100m");
    bad_quantity["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("abc");
    create(&server, bad_quantity);
    create(&server, pod("fine", "tessera", "100m"));
    until(&server, "the good pod bound", |p| p["fine"].is_some()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = placements(&server);
    assert_eq!(p["gated"], None, "a gated pod is not scheduled");
    let text = s.handles.metrics.encode();
    assert!(text.contains("tessera_malformed_objects_total{kind=\"Pod\"} 2"), "{text}");
    assert!(text.contains("scheduler_pending_pods{queue=\"gated\"} 1"), "{text}");
    let mut ungated = server.store().get("v1", "Pod", Some("default"), "gated").unwrap();
    ungated["spec"]["schedulingGates"] = json!([]);
    server.store().update(ungated).unwrap();
    until(&server, "the ungated pod bound", |p| p["gated"].is_some()).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gang_whose_last_binding_is_refused_is_bound_whole() {
    let server = TestApiServer::start().await;
    for i in 0..2 {
        create(&server, node(&format!("n{i}"), "8"));
    }
    create(&server, pod_group_g(4));
    // The last member's first binding is refused outright.
    server.faults().fail_named("create", "pods", "binding", "g-3", 403, 1);
    let s = Scheduler::start(&server, SECONDARY, false).await;
    for i in 0..4 {
        create(&server, in_group_g(pod(&format!("g-{i}"), "tessera", "1")));
    }
    until(&server, "the gang bound", |p| bound_count(p, "g-") == 4).await;
    assert_bound_once(&server);
    let refused = server.requests().iter().filter(|r| r.subresource == "binding").count();
    assert!(refused >= 5, "the refused member was bound on a second try ({refused} binding requests)");
    // The PodGroup says so in its own API's terms.
    let start = std::time::Instant::now();
    loop {
        let pg = server.store().get("scheduling.x-k8s.io/v1alpha1", "PodGroup", Some("default"), "g").unwrap();
        if pg["status"]["phase"] == "Scheduled" {
            assert_eq!(pg["status"]["scheduled"], 4, "{pg}");
            break;
        }
        assert!(start.elapsed() < WAIT, "PodGroup status never written: {pg}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gang_member_refused_at_prebind_leaves_the_whole_gang_unbound() {
    let server = TestApiServer::start().await;
    create(&server, gpu_node("g0", 8));
    create(&server, pod_group_g(4));
    // Writing the last member's GPUs (its PreBind) is refused once.
    server.faults().fail_named("patch", "pods", "", "g-3", 403, 1);
    let s = Scheduler::start(&server, SECONDARY, false).await;
    for i in 0..4 {
        create(&server, in_group_g(gpu_pod(&format!("g-{i}"), 1)));
    }
    until(&server, "the gang bound", |p| bound_count(p, "g-") == 4).await;
    assert_bound_once(&server);
    let log = server.requests();
    let first_binding = log.iter().position(|r| r.subresource == "binding").unwrap();
    let annotations = |r: &&tessera_tests::apiserver::RequestRecord| {
        r.verb == "patch" && r.resource == "pods" && r.subresource.is_empty()
    };
    let written_before = log[..first_binding].iter().filter(annotations).count();
    assert!(
        written_before >= 5,
        "the refused PreBind took the whole gang back before any member was bound, and all four were \
         prepared again ({written_before} annotation patches before the first binding)"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_and_fail_over() {
    let server = TestApiServer::start().await;
    create(&server, node("n0", "32"));
    let fast = "leaderElection:\n  leaseDuration: 2s\n  renewDeadline: 1500ms\n  retryPeriod: 300ms\n  resourceNamespace: default\nprofiles:\n- schedulerName: tessera\n";
    let a = Scheduler::start(&server, fast, true).await;
    let b = Scheduler::start(&server, fast, true).await;
    let start = std::time::Instant::now();
    while a.handles.health.is_leader() == b.handles.health.is_leader() {
        assert!(start.elapsed() < WAIT, "never exactly one leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..10 {
        create(&server, pod(&format!("l{i}"), "tessera", "100m"));
    }
    until(&server, "pods bound by the leader", |p| bound_count(p, "l") == 10).await;
    let (leader, standby) = if a.handles.health.is_leader() { (a, b) } else { (b, a) };
    // The leader goes away without releasing its lease (a crash): the standby takes over
    // once the lease has run out.
    leader.task.abort();
    let lost = std::time::Instant::now();
    while !standby.handles.health.is_leader() {
        assert!(lost.elapsed() < Duration::from_secs(10), "the standby did not take over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Lease 2 s, retries every 0.3 s with up to 120% jitter: about 2.7 s at worst, plus slack
    // for a loaded CI machine.
    assert!(lost.elapsed() < Duration::from_secs(5), "took {:?} to fail over with a 2 s lease", lost.elapsed());
    for i in 10..20 {
        create(&server, pod(&format!("l{i}"), "tessera", "100m"));
    }
    until(&server, "pods bound by the new leader", |p| bound_count(p, "l") == 20).await;
    assert_bound_once(&server);
    standby.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpus_recorded_on_bound_pods_are_read_back_after_a_restart() {
    let server = TestApiServer::start().await;
    create(&server, gpu_node("g0", 8));
    // Bound before this scheduler started, on the last two GPUs.
    create(&server, gpu_pod("old", 2));
    let mut old = server.store().get("v1", "Pod", Some("default"), "old").unwrap();
    old["spec"]["nodeName"] = json!("g0");
    old["metadata"]["annotations"] = json!({"tessera.io/gpu-ids": "6,7"});
    server.store().update(old).unwrap();
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, gpu_pod("new", 6));
    until(&server, "the new GPU pod bound", |p| p["new"].is_some()).await;
    let new = server.store().get("v1", "Pod", Some("default"), "new").unwrap();
    assert_eq!(
        new["metadata"]["annotations"]["tessera.io/gpu-ids"], "0,1,2,3,4,5",
        "the GPUs the bound pod holds are not given again"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_gpu_topology_keeps_the_node_by_count_and_is_reported_on_it() {
    let server = TestApiServer::start().await;
    let mut g0 = gpu_node("g0", 8);
    // GPU 0 claims 2 links to GPU 1, which claims 4 back: not a wiring.
    let wiring = r#"{"gpus": [{"nvlink": {"1": 2}}, {"nvlink": {"0": 4}}]}"#;
    g0["metadata"]["annotations"] = json!({"tessera.io/gpu-topology": wiring});
    create(&server, g0);
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, gpu_pod("train", 4));
    until(&server, "the GPU pod bound to the node by count", |p| p["train"].as_deref() == Some("g0")).await;
    let warned = |e: &Value| e["reason"] == "InvalidGPUTopology" && e["regarding"]["kind"] == "Node";
    let start = std::time::Instant::now();
    while !server.store().list("events.k8s.io/v1", "Event").iter().any(warned) {
        assert!(start.elapsed() < WAIT, "no InvalidGPUTopology event on the node");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The node's later updates do not repeat the warning.
    let mut g0 = server.store().get("v1", "Node", None, "g0").unwrap();
    g0["metadata"]["labels"]["touched"] = json!("yes");
    server.store().update(g0).unwrap();
    create(&server, gpu_pod("after", 1));
    until(&server, "a pod after the node's update bound", |p| p["after"].is_some()).await;
    let events = server.store().list("events.k8s.io/v1", "Event");
    let warnings: Vec<&Value> = events.iter().filter(|e| warned(e)).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["regarding"]["name"], "g0");
    let note = warnings[0]["note"].as_str().unwrap_or_default();
    assert!(note.contains("tessera.io/gpu-topology") && note.contains("by count only"), "{note}");
    assert!(s.handles.metrics.encode().contains("tessera_malformed_objects_total{kind=\"Node\"}"));
    s.stop().await;
}

/// `GET path` over plain HTTP/1.1; the status code, or `None` when nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_serves_its_probes_binds_and_stops_on_sigterm() {
    let server = TestApiServer::start().await;
    create(&server, node("n0", "8"));
    let dir = std::env::temp_dir().join(format!("tessera-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = crate::live_scale::free_port();
    let mut child = crate::live_scale::spawn_tessera(&server, &dir, port);
    let start = std::time::Instant::now();
    while http_status(port, "/readyz") != Some(200) {
        assert!(start.elapsed() < WAIT, "never ready: /readyz {:?}", http_status(port, "/readyz"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http_status(port, "/healthz"), Some(200));
    assert_eq!(http_status(port, "/livez"), Some(200));
    create(&server, pod("cli", "tessera", "100m"));
    until(&server, "the pod bound by the binary", |p| p["cli"].is_some()).await;
    assert_eq!(http_status(port, "/metrics"), Some(200));
    let killed = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(killed.success());
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < WAIT, "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "a SIGTERM is a clean stop: {status:?}");
}
