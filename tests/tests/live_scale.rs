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
