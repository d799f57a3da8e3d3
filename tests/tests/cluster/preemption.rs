//! Preemption in `tessera run` against the in-process API server: the victim gets its
//! `DisruptionTarget` condition and a graceful delete, the preemptor its `nominatedNodeName`,
//! and the preemptor is bound only once the victim is really gone (the test plays the kubelet
//! that finishes the graceful deletion).

use std::time::Duration;

use serde_json::json;
use tessera_tests::apiserver::TestApiServer;

use super::live::{Scheduler, WAIT, create, node, pod, until};

const DEFAULT: &str = "profiles:\n- schedulerName: default-scheduler\n";

fn class(name: &str, value: i64) -> serde_json::Value {
    json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value})
}

/// A server with node `n0` (4 CPUs) running `victim` (3 CPUs, class `low`), and classes `low`
/// and `high`.
async fn one_node_full_of_a_low_pod() -> TestApiServer {
    let server = TestApiServer::start().await;
    create(&server, class("low", 10));
    create(&server, class("high", 1000));
    create(&server, node("n0", "4"));
    let mut victim = pod("victim", "default-scheduler", "3");
    victim["spec"]["priorityClassName"] = json!("low");
    victim["spec"]["nodeName"] = json!("n0");
    create(&server, victim);
    server
}

/// The preemptor: 2 CPUs of class `high`.
fn vip() -> serde_json::Value {
    let mut vip = pod("vip", "default-scheduler", "2");
    vip["spec"]["priorityClassName"] = json!("high");
    vip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preemptor_evicts_its_victim_gracefully_and_binds_once_it_is_gone() {
    let server = one_node_full_of_a_low_pod().await;
    let s = Scheduler::start(&server, DEFAULT, false).await;
    create(&server, vip());
    // The victim is marked for deletion (graceful) and told why; the preemptor is nominated.
    let start = std::time::Instant::now();
    loop {
        let v = server.store().get("v1", "Pod", Some("default"), "victim").unwrap();
        let p = server.store().get("v1", "Pod", Some("default"), "vip").unwrap();
        if v["metadata"]["deletionTimestamp"].is_string() && p["status"]["nominatedNodeName"] == json!("n0") {
            let conditions = v["status"]["conditions"].as_array().cloned().unwrap_or_default();
            assert!(
                conditions.iter().any(|c| c["type"] == "DisruptionTarget" && c["reason"] == "PreemptionByScheduler"),
                "{v}"
            );
            break;
        }
        assert!(start.elapsed() < WAIT, "no eviction: victim {v}, preemptor {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // While the victim terminates, the preemptor waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(server.store().get("v1", "Pod", Some("default"), "vip").unwrap()["spec"]["nodeName"].is_null());
    // The kubelet finishes the deletion: now the preemptor binds to the node it made room on.
    assert!(server.store().delete("v1", "Pod", Some("default"), "victim"));
    until(&server, "the preemptor bound", |p| p.get("vip").cloned().flatten().as_deref() == Some("n0")).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_budget_allows_no_disruption_is_spared_when_another_victim_exists() {
    let server = TestApiServer::start().await;
    create(&server, class("low", 10));
    create(&server, class("mid", 100));
    create(&server, class("high", 1000));
    for (name, node_name, class_name) in [("guarded", "n0", "low"), ("other", "n1", "mid")] {
        create(&server, node(node_name, "4"));
        let mut p = pod(name, "default-scheduler", "3");
        p["metadata"]["labels"] = json!({"app": name});
        p["spec"]["priorityClassName"] = json!(class_name);
        p["spec"]["nodeName"] = json!(node_name);
        create(&server, p);
    }
    // As the disruption controller would keep it: nothing more may go.
    create(
        &server,
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": "guarded", "namespace": "default"},
               "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
               "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}}),
    );
    let s = Scheduler::start(&server, DEFAULT, false).await;
    create(&server, vip());
    let start = std::time::Instant::now();
    loop {
        let marked = |name: &str| {
            server.store().get("v1", "Pod", Some("default"), name).unwrap()["metadata"]["deletionTimestamp"].is_string()
        };
        if marked("other") {
            assert!(!marked("guarded"), "the budget's pod was evicted though another choice existed");
            break;
        }
        assert!(!marked("guarded"), "the budget's pod was evicted though another choice existed");
        assert!(start.elapsed() < WAIT, "no eviction");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.store().delete("v1", "Pod", Some("default"), "other"));
    until(&server, "the preemptor bound", |p| p.get("vip").cloned().flatten().as_deref() == Some("n1")).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_eviction_is_not_waited_for_and_the_preemptor_tries_again() {
    let server = one_node_full_of_a_low_pod().await;
    // The first DELETE is refused (a webhook, say); the preemptor must not wait for ever.
    server.faults().fail_named("delete", "pods", "", "victim", 403, 1);
    let s = Scheduler::start(&server, DEFAULT, false).await;
    create(&server, vip());
    let start = std::time::Instant::now();
    loop {
        let v = server.store().get("v1", "Pod", Some("default"), "victim").unwrap();
        if v["metadata"]["deletionTimestamp"].is_string() {
            break;
        }
        assert!(start.elapsed() < WAIT, "the preemptor never evicted again after the refusal: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.store().delete("v1", "Pod", Some("default"), "victim"));
    until(&server, "the preemptor bound", |p| p.get("vip").cloned().flatten().as_deref() == Some("n0")).await;
    s.stop().await;
}
