//! The scale figures, against the in-process API test server: `tessera loadtest` with
//! 5,000 nodes and 50,000 pods bound by `tessera run` (in this process, on the same two cores as
//! the server and the load generator). Ignored by default: a measurement, not a test of
//! behaviour. Run it with
//! `cargo test --release -p tessera-tests --test live_scale -- --ignored --nocapture`;
//! `TESSERA_SCALE=NODES:PODS` changes the size.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tessera_plugins::registry::Registry;
use tessera_scheduler::config;
use tessera_scheduler::live::{self, RunOptions};
use tessera_scheduler::ops::loadtest::{self, LoadtestOptions};
use tessera_tests::apiserver::TestApiServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn loadtest_against_the_test_server() {
    let (nodes, pods) = std::env::var("TESSERA_SCALE")
        .ok()
        .and_then(|v| v.split_once(':').map(|(n, p)| (n.parse().unwrap(), p.parse().unwrap())))
        .unwrap_or((5_000usize, 50_000usize));
    let server = TestApiServer::start().await;
    let yaml = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n\
                clientConnection: {qps: 0, burst: 1}\nprofiles:\n- schedulerName: tessera\n";
    let config = config::parse_config("scale.yaml", yaml, &Registry::builtin()).unwrap();
    let opts = RunOptions {
        config,
        client: server.client(),
        leader_elect: Some(false),
        serve: None,
        workers: 2,
        bind_concurrency: 256,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (started, handles) = tokio::sync::oneshot::channel();
    let scheduler = tokio::spawn(live::run(
        opts,
        async move {
            let _ = stopped.await;
        },
        Some(started),
    ));
    let handles = handles.await.unwrap();
    let cpu_before = tessera_scheduler::live::metrics::process_cpu_seconds();
    let lt = LoadtestOptions {
        nodes,
        pods,
        scheduler_name: "tessera".into(),
        namespace: "tessera-loadtest".into(),
        pod_cpu: "100m".into(),
        pod_memory: "128Mi".into(),
        metrics_url: None,
        metrics_token: None,
        timeout: Duration::from_secs(600),
        cleanup: false,
        concurrency: 64,
    };
    let report = loadtest::run(server.client(), &lt).await.unwrap();
    let cpu_after = tessera_scheduler::live::metrics::process_cpu_seconds();
    println!("{}", serde_json::to_string(&report).unwrap());
    let text = handles.metrics.encode();
    let rss = tessera_scheduler::live::metrics::parse_sample(&text, "process_resident_memory_bytes");
    println!(
        "whole process (API server + load generator + scheduler): cpu_s {:?}, rss_mb {:?}",
        cpu_before.zip(cpu_after).map(|(a, b)| b - a),
        rss.map(|r| r / 1e6)
    );
    assert_eq!(report.bound, pods, "every pod bound");
    let mut seen = std::collections::HashSet::new();
    for (ns, name, _) in server.bindings() {
        assert!(seen.insert((ns, name)), "a pod was bound twice");
    }
    drop(stop);
    scheduler.await.unwrap().unwrap();
}

/// Starts the release `tessera` binary against `server` and returns the child.
fn spawn_tessera(server: &TestApiServer, dir: &std::path::Path, port: u16) -> std::process::Child {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/tessera");
    assert!(bin.exists(), "build it first: cargo build --release --bin tessera");
    let kubeconfig = server.write_kubeconfig(dir);
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n\
         clientConnection: {qps: 0, burst: 1}\nprofiles:\n- schedulerName: tessera\n",
    )
    .unwrap();
    std::process::Command::new(bin)
        .args(["run", "--leader-elect=false", "--insecure-http", "--bind-address", "127.0.0.1"])
        .arg("--secure-port")
        .arg(port.to_string())
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap()
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// A cluster already full of bound pods, and a few pending ones: how long a (re)started
/// scheduler takes to its first binding, and its memory once synced. `TESSERA_SYNC=NODES:PODS`
/// (default 5000:150000; the memory figure is 50000:500000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo build --release --bin tessera, then run with --ignored --nocapture"]
async fn restart_into_a_full_cluster() {
    let (nodes, pods) = std::env::var("TESSERA_SYNC")
        .ok()
        .and_then(|v| v.split_once(':').map(|(n, p)| (n.parse().unwrap(), p.parse().unwrap())))
        .unwrap_or((5_000usize, 150_000usize));
    let server = TestApiServer::start().await;
    let store = server.store();
    for i in 0..nodes {
        let name = format!("n{i}");
        store
            .create(serde_json::json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "200"},
                           "capacity": {"cpu": "64", "memory": "256Gi", "pods": "200"}}}))
            .unwrap();
    }
    let pod = |name: String, node: Option<String>| {
        let mut p = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "bulk"}},
            "spec": {"schedulerName": "tessera", "containers": [{"name": "c", "image": "pause",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}});
        if let Some(n) = node {
            p["spec"]["nodeName"] = serde_json::json!(n);
        }
        p
    };
    for i in 0..pods {
        store.create(pod(format!("bound-{i}"), Some(format!("n{}", i % nodes)))).unwrap();
    }
    for i in 0..100 {
        store.create(pod(format!("pending-{i}"), None)).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("tessera-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let started = std::time::Instant::now();
    let mut child = spawn_tessera(&server, &dir, 0);
    let first = loop {
        if !server.bindings().is_empty() {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no binding within 300 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    while server.bindings().len() < 100 {
        assert!(started.elapsed() < Duration::from_secs(300), "pending pods not bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_mb(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        serde_json::json!({"nodes": nodes, "bound_pods": pods, "pending": 100,
            "first_binding_s": first.as_secs_f64(), "all_pending_bound_s": all.as_secs_f64(),
            "scheduler_rss_mb": rss})
    );
}
