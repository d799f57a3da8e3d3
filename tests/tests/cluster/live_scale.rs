//! The scale figures, against the in-process API test server: `tessera loadtest` with
//! 5,000 nodes and 50,000 pods bound by `tessera run` (the release binary in its own process, so
//! its CPU and memory are its own; on the same two cores as the server and the load generator). Ignored by default: a measurement, not a test of
//! behaviour. Run it with
//! `cargo test --release -p tessera-tests --test cluster live_scale -- --ignored --nocapture`;
//! `TESSERA_SCALE=NODES:PODS` changes the size.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tessera_scheduler::ops::loadtest::{self, LoadtestOptions};
use tessera_tests::apiserver::TestApiServer;

/// A free port on 127.0.0.1 for the scheduler's metrics.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo build --release --bin tessera, then run with --ignored --nocapture"]
async fn loadtest_against_the_test_server() {
    let (nodes, pods) = std::env::var("TESSERA_SCALE")
        .ok()
        .and_then(|v| v.split_once(':').map(|(n, p)| (n.parse().unwrap(), p.parse().unwrap())))
        .unwrap_or((5_000usize, 50_000usize));
    let server = TestApiServer::start().await;
    let dir = std::env::temp_dir().join(format!("tessera-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let mut scheduler = spawn_tessera(&server, &dir, port);
    let lt = LoadtestOptions {
        nodes,
        pods,
        scheduler_name: "tessera".into(),
        namespace: "tessera-loadtest".into(),
        pod_cpu: "100m".into(),
        pod_memory: "128Mi".into(),
        metrics_url: Some(format!("http://127.0.0.1:{port}/metrics")),
        metrics_token: None,
        timeout: Duration::from_secs(600),
        cleanup: false,
        concurrency: 64,
    };
    // The scheduler's port opens once it is up.
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "the scheduler never served its port");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = loadtest::run(server.client(), &lt).await.unwrap();
    let rss = rss_mb(scheduler.id());
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::to_string(&report).unwrap());
    println!("{}", serde_json::json!({"scheduler_rss_mb": rss}));
    assert_eq!(report.bound, pods, "every pod bound");
    let mut seen = std::collections::HashSet::new();
    for (ns, name, _) in server.bindings() {
        assert!(seen.insert((ns, name)), "a pod was bound twice");
    }
}

/// The `tessera` binary of the profile this test binary was built with (`target/<profile>/`,
/// beside `deps/`); `cargo test --workspace` builds it for the scheduler's own CLI tests.
pub fn tessera_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|deps| deps.parent()).unwrap().join("tessera");
    assert!(
        bin.exists(),
        "{} is missing: build it (cargo build --bin tessera, with --release for a release run)",
        bin.display()
    );
    bin
}

/// Starts the `tessera` binary against `server`, serving plain HTTP on `port`.
pub fn spawn_tessera(server: &TestApiServer, dir: &std::path::Path, port: u16) -> std::process::Child {
    let bin = tessera_binary();
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

/// Resident memory of process `pid`, in MB.
pub fn rss_mb(pid: u32) -> f64 {
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
