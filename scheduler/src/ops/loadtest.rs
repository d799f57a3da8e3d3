//! `tessera loadtest`: how fast a scheduler binds pods on a real API server.
//!
//! What clusterloader2 does with kubemark or kwok nodes, in one command: register `N` fake
//! nodes (Node objects with a Ready condition and no kubelet behind them), create `M` pause
//! pods for the scheduler under test, and watch the pods until each has `spec.nodeName`. The
//! nodes cost the cluster nothing but API objects, so a laptop cluster measures a scheduler
//! at thousands of nodes; the pods select the fake nodes by label, so none lands on a real
//! node, and tolerate the taints a node controller puts on nodes that never heartbeat.
//!
//! Timing comes from one watch opened before the first create: a pod's bind latency runs
//! from the moment its create request was sent to the first watch event showing it bound,
//! and `pods_per_sec` from the first binding to the last, so neither the tool's own create
//! rate nor a slow start of the scheduler hides in the throughput. With `--metrics-url` the
//! scheduler's `process_cpu_seconds_total` is read before and after, for CPU per pod.
//!
//! `--cleanup` deletes exactly what this run created (recorded in [`Made`]): pods by name,
//! nodes it registered (not fake nodes from an earlier run that it reused), and the namespace
//! only if it created it.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use k8s_openapi::api::core::v1::{
    Container, Namespace, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
    ServiceAccount, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Serialize;
use tessera_plugins::quantity::{parse_milli, parse_value};
use tokio::sync::mpsc;

use super::{OpsError, object_name, status_code};
use crate::live::metrics::parse_sample;

/// Label on every fake node; `--cleanup` and reruns only ever touch nodes that carry it.
pub const FAKE_NODE_LABEL: &str = "tessera.io/fake-node";
/// Label on every load-test pod; the watch selects on it.
pub const LOADTEST_LABEL: &str = "tessera.io/loadtest";
/// Fake node `i` is named this followed by `i`.
pub const FAKE_NODE_PREFIX: &str = "tessera-fake-node-";
/// Load-test pod `i` is named this followed by `i`.
pub const POD_PREFIX: &str = "loadtest-";
/// The pods' only container image; never pulled, since no kubelet runs them.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// The metric `--metrics-url` reads: CPU the scheduler process has used, in seconds.
pub const CPU_METRIC: &str = "process_cpu_seconds_total";

/// Taint the TaintNodesByCondition admission puts on every new node until a node controller
/// sees it Ready; a cluster without one (or with fake nodes) would keep it forever.
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// Taint a node controller adds once a node's heartbeats stop, which for a fake node is
/// about 40 seconds after it registers.
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
const GI: i64 = 1 << 30;
const MI: i64 = 1 << 20;

/// What to create and measure.
#[derive(Clone, Debug)]
pub struct LoadtestOptions {
    /// Fake nodes to register (`tessera-fake-node-0` ..).
    pub nodes: usize,
    /// Pods to create (`loadtest-0` ..).
    pub pods: usize,
    /// `spec.schedulerName` of the pods: the scheduler being measured.
    pub scheduler_name: String,
    /// Namespace for the pods; created when missing.
    pub namespace: String,
    /// CPU request of each pod, a Kubernetes quantity.
    pub pod_cpu: String,
    /// Memory request of each pod, a Kubernetes quantity.
    pub pod_memory: String,
    /// The scheduler's `/metrics` (http or https, any certificate) for CPU per pod.
    pub metrics_url: Option<String>,
    /// Bearer token sent to `metrics_url` (kube-scheduler's `/metrics` wants one).
    pub metrics_token: Option<String>,
    /// How long to wait, from the first create, for every pod to be bound.
    pub timeout: Duration,
    /// Delete what this run created once it is measured.
    pub cleanup: bool,
    /// Requests in flight at once while creating and deleting.
    pub concurrency: usize,
}

impl Default for LoadtestOptions {
    fn default() -> Self {
        LoadtestOptions {
            nodes: 100,
            pods: 1000,
            scheduler_name: "tessera".to_string(),
            namespace: "tessera-loadtest".to_string(),
            pod_cpu: "100m".to_string(),
            pod_memory: "128Mi".to_string(),
            metrics_url: None,
            metrics_token: None,
            timeout: Duration::from_secs(600),
            cleanup: false,
            concurrency: 64,
        }
    }
}

/// The measurement, with the field names users' scripts read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadtestReport {
    /// The scheduler measured.
    pub scheduler_name: String,
    /// Fake nodes asked for.
    pub nodes: usize,
    /// Pods asked for.
    pub pods: usize,
    /// Pods whose create succeeded.
    pub created: usize,
    /// Created pods seen bound before the timeout, each counted once.
    pub bound: usize,
    /// Pods seen bound to one node and later to another (a scheduler bug; should be 0).
    pub rebound: usize,
    /// Bound pods over the time from the first binding seen to the last; 0 with fewer than
    /// two bindings, where no interval exists.
    pub pods_per_sec: f64,
    /// Created pods over the time from the first create sent to the last one answered.
    pub create_per_sec: f64,
    /// From a pod's create request to the first watch event showing it bound.
    pub bind_latency_ms: Latency,
    /// Whether the timeout passed before every created pod was bound.
    pub timed_out: bool,
    /// Scheduler CPU per bound pod, from `process_cpu_seconds_total` (with `--metrics-url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_cpu_ms_per_pod: Option<f64>,
    /// What `--cleanup` deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<Cleanup>,
}

/// Percentiles of bind latency, in milliseconds (0 when nothing was bound).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
}

/// What `--cleanup` deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cleanup {
    /// Pods deleted (or already gone).
    pub pods: usize,
    /// Fake nodes this run registered and deleted; reused ones stay.
    pub nodes: usize,
    /// Whether the namespace was deleted (only when this run created it).
    pub namespace: bool,
}

/// What this run created, so that cleanup deletes exactly that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Made {
    /// Names of the nodes registered by this run.
    pub nodes: Vec<String>,
    /// Whether this run created the namespace.
    pub namespace: bool,
    /// Names of the pods created.
    pub pods: Vec<String>,
}

/// Capacity each fake node reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSize {
    /// CPU in millicores.
    pub cpu_milli: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
    /// Maximum pods.
    pub pods: i64,
}

impl NodeSize {
    /// A node like a kubemark one (32 CPUs, 128Gi, 110 pods), grown so that the nodes together
    /// hold twice the pods: a scheduler that spreads unevenly must still find room for all.
    pub fn for_load(opts: &LoadtestOptions) -> Result<NodeSize, OpsError> {
        if opts.nodes == 0 {
            return Err(OpsError::Option { option: "nodes", message: "must be at least 1".to_string() });
        }
        if opts.concurrency == 0 {
            return Err(OpsError::Option { option: "concurrency", message: "must be at least 1".to_string() });
        }
        let cpu = pod_request(&opts.pod_cpu, "pod-cpu", parse_milli)?;
        let memory = pod_request(&opts.pod_memory, "pod-memory", parse_value)?;
        let per_node = i64::try_from(opts.pods.saturating_mul(2).div_ceil(opts.nodes)).unwrap_or(i64::MAX);
        Ok(NodeSize {
            cpu_milli: per_node.saturating_mul(cpu).max(32_000),
            memory_bytes: per_node.saturating_mul(memory).max(128 * GI),
            pods: per_node.max(110),
        })
    }
}

/// A pod request option as a number (`parse` picks the unit), refusing garbage and negatives.
fn pod_request<E: ToString>(
    text: &str,
    option: &'static str,
    parse: fn(&str) -> Result<i64, E>,
) -> Result<i64, OpsError> {
    match parse(text) {
        Ok(v) if v >= 0 => Ok(v),
        Ok(_) => Err(OpsError::Option { option, message: format!("{text:?} is negative") }),
        Err(e) => Err(OpsError::Option { option, message: format!("{text:?}: {}", e.to_string()) }),
    }
}

/// Millicores as kubectl would write them (`32`, `1500m`).
fn cpu_quantity(milli: i64) -> Quantity {
    Quantity(if milli % 1000 == 0 { (milli / 1000).to_string() } else { format!("{milli}m") })
}

/// Bytes in the largest binary unit that divides them (`128Gi`, `512Mi`).
fn memory_quantity(bytes: i64) -> Quantity {
    Quantity(match bytes {
        b if b % GI == 0 => format!("{}Gi", b / GI),
        b if b % MI == 0 => format!("{}Mi", b / MI),
        b => b.to_string(),
    })
}

/// The name of fake node `i`.
pub fn fake_node_name(i: usize) -> String {
    format!("{FAKE_NODE_PREFIX}{i}")
}

/// A fake node as kubemark and kwok register theirs: labelled (`type: fake` and
/// [`FAKE_NODE_LABEL`]), Ready, untainted, with `size` as capacity and allocatable.
pub fn fake_node(name: &str, size: NodeSize, now: Time) -> Node {
    let labels = [
        (FAKE_NODE_LABEL, "true"),
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("type", "fake"),
    ];
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(fake_node_status(size, now)),
    }
}

fn fake_node_status(size: NodeSize, now: Time) -> NodeStatus {
    let resources: std::collections::BTreeMap<String, Quantity> = [
        ("cpu".to_string(), cpu_quantity(size.cpu_milli)),
        ("memory".to_string(), memory_quantity(size.memory_bytes)),
        ("pods".to_string(), Quantity(size.pods.to_string())),
    ]
    .into();
    let ready = NodeCondition {
        type_: "Ready".to_string(),
        status: "True".to_string(),
        reason: Some("TesseraFakeNode".to_string()),
        message: Some("registered by tessera loadtest; no kubelet runs here".to_string()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now),
    };
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![ready]),
        ..NodeStatus::default()
    }
}

/// The node's taints without the not-ready one, or `None` when it has none to remove.
pub fn without_not_ready_taint(node: &Node) -> Option<Vec<Taint>> {
    let taints = node.spec.as_ref()?.taints.as_ref()?;
    let kept: Vec<Taint> = taints.iter().filter(|t| t.key != NOT_READY_TAINT).cloned().collect();
    (kept.len() < taints.len()).then_some(kept)
}

/// Whether the node was registered as a fake node (by this tool, now or earlier).
pub fn is_fake_node(node: &Node) -> bool {
    node.metadata.labels.as_ref().and_then(|l| l.get(FAKE_NODE_LABEL)).is_some_and(|v| v == "true")
}

/// The name of load-test pod `i`.
pub fn pod_name(i: usize) -> String {
    format!("{POD_PREFIX}{i}")
}

/// Load-test pod `i`: one pause container with the requested CPU and memory, for
/// `opts.scheduler_name`, allowed only onto fake nodes.
pub fn loadtest_pod(i: usize, opts: &LoadtestOptions) -> Pod {
    let requests = [
        ("cpu".to_string(), Quantity(opts.pod_cpu.clone())),
        ("memory".to_string(), Quantity(opts.pod_memory.clone())),
    ];
    let tolerate = |key: &str| Toleration {
        key: Some(key.to_string()),
        operator: Some("Exists".to_string()),
        ..Toleration::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(i)),
            namespace: Some(opts.namespace.clone()),
            labels: Some([(LOADTEST_LABEL.to_string(), "true".to_string())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            scheduler_name: Some(opts.scheduler_name.clone()),
            containers: vec![Container {
                name: "pause".to_string(),
                image: Some(PAUSE_IMAGE.to_string()),
                resources: Some(ResourceRequirements { requests: Some(requests.into()), ..Default::default() }),
                ..Container::default()
            }],
            node_selector: Some([(FAKE_NODE_LABEL.to_string(), "true".to_string())].into()),
            // No effect given: tolerates NoSchedule and NoExecute, so a node controller that
            // finds the fake nodes silent neither blocks nor evicts the pods.
            tolerations: Some(vec![tolerate(NOT_READY_TAINT), tolerate(UNREACHABLE_TAINT)]),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(0),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// Creation and binding times, and the report computed from them.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Pod name to when its create request was sent.
    created: HashMap<String, Instant>,
    /// Pod name to the node and time it was first seen bound.
    bound: HashMap<String, (String, Instant)>,
    /// Pods later seen on another node than first.
    rebound: HashSet<String>,
    first_create: Option<Instant>,
    last_create_done: Option<Instant>,
}

impl Tally {
    /// Records that pod `name`'s create request was sent at `sent` and answered at `done`.
    pub fn created(&mut self, name: &str, sent: Instant, done: Instant) {
        self.created.insert(name.to_string(), sent);
        self.first_create = Some(self.first_create.map_or(sent, |t| t.min(sent)));
        self.last_create_done = Some(self.last_create_done.map_or(done, |t| t.max(done)));
    }

    /// Records a watch event showing pod `name` on `node` at `at`; only the first counts
    /// for timing, a different node later counts as a rebind.
    pub fn observe(&mut self, name: &str, node: &str, at: Instant) {
        match self.bound.get(name) {
            None => {
                self.bound.insert(name.to_string(), (node.to_string(), at));
            }
            Some((first, _)) if first != node => {
                self.rebound.insert(name.to_string());
            }
            Some(_) => {}
        }
    }

    /// Whether every created pod has been seen bound.
    pub fn all_bound(&self) -> bool {
        self.created.keys().all(|name| self.bound.contains_key(name))
    }

    /// Created pods seen bound, with their latency in milliseconds and when they were bound.
    fn bound_created(&self) -> Vec<(f64, Instant)> {
        let bound = self.created.iter().filter_map(|(name, sent)| Some((sent, self.bound.get(name)?.1)));
        bound.map(|(sent, at)| (at.saturating_duration_since(*sent).as_secs_f64() * 1000.0, at)).collect()
    }

    /// The report's numbers (scheduler CPU and cleanup are filled in by the caller).
    pub fn report(&self, opts: &LoadtestOptions, timed_out: bool) -> LoadtestReport {
        let bound = self.bound_created();
        let mut latencies: Vec<f64> = bound.iter().map(|(ms, _)| *ms).collect();
        latencies.sort_by(f64::total_cmp);
        let first = bound.iter().map(|(_, at)| *at).min();
        let last = bound.iter().map(|(_, at)| *at).max();
        LoadtestReport {
            scheduler_name: opts.scheduler_name.clone(),
            nodes: opts.nodes,
            pods: opts.pods,
            created: self.created.len(),
            bound: bound.len(),
            rebound: self.rebound.iter().filter(|name| self.created.contains_key(*name)).count(),
            pods_per_sec: rate(bound.len(), first, last),
            create_per_sec: rate(self.created.len(), self.first_create, self.last_create_done),
            bind_latency_ms: Latency { p50: percentile(&latencies, 50.0), p99: percentile(&latencies, 99.0) },
            timed_out,
            scheduler_cpu_ms_per_pod: None,
            cleanup: None,
        }
    }
}

/// `n` events over the interval from `first` to `last`; 0 when there is no interval (fewer
/// than two events, or all at one instant), rather than an infinite rate.
pub fn rate(n: usize, first: Option<Instant>, last: Option<Instant>) -> f64 {
    let (Some(first), Some(last)) = (first, last) else { return 0.0 };
    let secs = last.saturating_duration_since(first).as_secs_f64();
    if n < 2 || secs <= 0.0 { 0.0 } else { n as f64 / secs }
}

/// The nearest-rank percentile `q` (0-100) of ascending `sorted`; 0 for no values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl LoadtestReport {
    /// The report as an aligned two-column table for a terminal.
    pub fn table(&self) -> String {
        let mut rows = vec![
            ("scheduler_name", self.scheduler_name.clone()),
            ("nodes", self.nodes.to_string()),
            ("pods", self.pods.to_string()),
            ("created", self.created.to_string()),
            ("bound", self.bound.to_string()),
            ("rebound", self.rebound.to_string()),
            ("timed_out", self.timed_out.to_string()),
            ("pods_per_sec", format!("{:.1}", self.pods_per_sec)),
            ("create_per_sec", format!("{:.1}", self.create_per_sec)),
            ("bind_latency_ms.p50", format!("{:.1}", self.bind_latency_ms.p50)),
            ("bind_latency_ms.p99", format!("{:.1}", self.bind_latency_ms.p99)),
        ];
        if let Some(cpu) = self.scheduler_cpu_ms_per_pod {
            rows.push(("scheduler_cpu_ms_per_pod", format!("{cpu:.3}")));
        }
        if let Some(c) = &self.cleanup {
            rows.push(("cleanup", format!("{} pods, {} nodes, namespace: {}", c.pods, c.nodes, c.namespace)));
        }
        let mut out = String::new();
        for (name, value) in rows {
            let _ = writeln!(out, "{name:<26}{value}");
        }
        out
    }
}

/// Runs the load test: registers nodes, creates pods, waits for them to be bound, reports,
/// and with `opts.cleanup` deletes what it created, also when the run failed midway.
pub async fn run(client: Client, opts: &LoadtestOptions) -> Result<LoadtestReport, OpsError> {
    let size = NodeSize::for_load(opts)?;
    let mut made = Made::default();
    let outcome = measure(&client, opts, size, &mut made).await;
    if !opts.cleanup {
        return outcome;
    }
    let cleaned = clean_up(&client, opts, &made).await;
    match (outcome, cleaned) {
        (Ok(mut report), Ok(cleanup)) => {
            report.cleanup = Some(cleanup);
            Ok(report)
        }
        (Ok(_), Err(e)) => Err(e),
        (Err(e), cleaned) => {
            if let Err(also) = cleaned {
                tracing::warn!("cleanup after the failed run also failed: {also}");
            }
            Err(e)
        }
    }
}

async fn measure(
    client: &Client,
    opts: &LoadtestOptions,
    size: NodeSize,
    made: &mut Made,
) -> Result<LoadtestReport, OpsError> {
    let token = opts.metrics_token.as_deref();
    // Scraped first to fail before creating anything, and again as the baseline once the
    // nodes exist, so the CPU spent taking in the nodes does not count against the pods.
    if let Some(url) = &opts.metrics_url {
        scrape_cpu_seconds(url, token).await?;
    }
    ensure_nodes(client, opts, size, &mut made.nodes).await?;
    made.namespace = ensure_namespace(client, &opts.namespace).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &opts.namespace);
    refuse_leftovers(&pods, &opts.namespace).await?;
    let cpu_before = match &opts.metrics_url {
        Some(url) => Some(scrape_cpu_seconds(url, token).await?),
        None => None,
    };
    let mut watch = start_watch(pods.clone(), &opts.namespace, opts.timeout).await?;
    let mut tally = Tally::default();
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let created = create_pods(&pods, opts, &mut tally, &mut watch.rx).await;
    made.pods = created.names;
    if let Some(e) = created.error {
        return Err(e);
    }
    let timed_out = wait_bound(&mut watch.rx, &mut tally, deadline).await?;
    drop(watch);
    let mut report = tally.report(opts, timed_out);
    if let (Some(url), Some(before)) = (&opts.metrics_url, cpu_before) {
        report.scheduler_cpu_ms_per_pod = cpu_per_pod(url, token, before, report.bound).await;
    }
    Ok(report)
}

/// CPU milliseconds per bound pod since `before`; a failed second scrape loses only this
/// number, not the run, so it is a warning.
async fn cpu_per_pod(url: &str, token: Option<&str>, before: f64, bound: usize) -> Option<f64> {
    match scrape_cpu_seconds(url, token).await {
        Ok(after) if bound > 0 => Some((after - before) * 1000.0 / bound as f64),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

/// Registers the fake nodes that are missing and refreshes reused ones, adding the names of
/// those it registered to `created` even when another node fails, so cleanup finds them.
async fn ensure_nodes(
    client: &Client,
    opts: &LoadtestOptions,
    size: NodeSize,
    created: &mut Vec<String>,
) -> Result<(), OpsError> {
    let api: Api<Node> = Api::all(client.clone());
    let results: Vec<Result<Option<String>, OpsError>> = futures::stream::iter(0..opts.nodes)
        .map(|i| ensure_node(&api, fake_node_name(i), size))
        .buffer_unordered(opts.concurrency)
        .collect()
        .await;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(Some(name)) => created.push(name),
            Ok(None) => {}
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `Some(name)` when this call registered the node, `None` when it reused one.
async fn ensure_node(api: &Api<Node>, name: String, size: NodeSize) -> Result<Option<String>, OpsError> {
    let now = Time(jiff::Timestamp::now());
    let existing = api.get_opt(&name).await.map_err(|e| OpsError::api("get (GET) Node", &name, &e))?;
    let (node, created) = match existing {
        Some(node) if is_fake_node(&node) => {
            let status = serde_json::json!({ "status": fake_node_status(size, now) });
            let node = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map_err(|e| OpsError::api("patch (PATCH) Node status", &name, &e))?;
            (node, false)
        }
        Some(_) => {
            let message = format!(
                "a Node of this name exists without the label {FAKE_NODE_LABEL}=true; refusing to use a real node (delete it or use fewer --nodes)"
            );
            return Err(OpsError::Conflict { object: format!("Node {name}"), message });
        }
        None => {
            let node = api
                .create(&PostParams::default(), &fake_node(&name, size, now))
                .await
                .map_err(|e| OpsError::api("create (POST) Node", &name, &e))?;
            (node, true)
        }
    };
    if let Some(taints) = without_not_ready_taint(&node) {
        let patch = serde_json::json!({ "spec": { "taints": taints } });
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| OpsError::api("patch (PATCH) Node taints", &name, &e))?;
    }
    Ok(created.then_some(name))
}

/// Creates the namespace and its `default` ServiceAccount when missing (ServiceAccount
/// admission refuses pods until it exists, and the controller that makes it may be absent);
/// returns whether the namespace was created.
async fn ensure_namespace(client: &Client, namespace: &str) -> Result<bool, OpsError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let existing = api.get_opt(namespace).await.map_err(|e| OpsError::api("get (GET) Namespace", namespace, &e))?;
    let created = match existing {
        Some(ns) if ns.metadata.deletion_timestamp.is_some() => {
            let message = "is being deleted (an earlier --cleanup?): wait until it is gone, or use --namespace";
            return Err(OpsError::Conflict { object: format!("Namespace {namespace}"), message: message.to_string() });
        }
        Some(_) => false,
        None => {
            let ns = Namespace {
                metadata: ObjectMeta { name: Some(namespace.to_string()), ..ObjectMeta::default() },
                ..Namespace::default()
            };
            api.create(&PostParams::default(), &ns)
                .await
                .map_err(|e| OpsError::api("create (POST) Namespace", namespace, &e))?;
            true
        }
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let object = object_name(Some(namespace), "default");
    let existing =
        accounts.get_opt("default").await.map_err(|e| OpsError::api("get (GET) ServiceAccount", &object, &e))?;
    if existing.is_none() {
        let account = ServiceAccount {
            metadata: ObjectMeta { name: Some("default".to_string()), ..ObjectMeta::default() },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            // The ServiceAccount controller may have made it meanwhile.
            Err(e) if status_code(&e) != Some(409) => {
                return Err(OpsError::api("create (POST) ServiceAccount", &object, &e));
            }
            _ => {}
        }
    }
    Ok(created)
}

/// Pods of an earlier run would collide by name and blur the numbers: stop before creating.
async fn refuse_leftovers(pods: &Api<Pod>, namespace: &str) -> Result<(), OpsError> {
    let selector = format!("{LOADTEST_LABEL}=true");
    let list = pods
        .list(&ListParams::default().labels(&selector).limit(1))
        .await
        .map_err(|e| OpsError::api("list (GET) Pods", format!("{namespace} -l {selector}"), &e))?;
    match list.items.first() {
        None => Ok(()),
        Some(pod) => Err(OpsError::Conflict {
            object: format!("Pod {}", object_name(Some(namespace), pod.metadata.name.as_deref().unwrap_or(""))),
            message: format!(
                "pods labelled {selector} are left from an earlier run: delete them first (kubectl delete pods -n {namespace} -l {selector} --grace-period=0 --force); a run with --cleanup removes its own"
            ),
        }),
    }
}

/// A watch event showing a load-test pod bound.
#[derive(Debug)]
struct Binding {
    name: String,
    node: String,
    at: Instant,
}

/// The running watch: its task and what it saw. Dropping it stops the task.
#[derive(Debug)]
struct Watch {
    task: tokio::task::JoinHandle<()>,
    rx: mpsc::UnboundedReceiver<Binding>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const WATCH_CALL: &str = "watch (GET ?watch) Pods";

/// Starts watching the load-test pods and returns once the initial list is done, so that no
/// binding can happen unseen; an initial list that fails (403, unreachable) is the error.
async fn start_watch(pods: Api<Pod>, namespace: &str, timeout: Duration) -> Result<Watch, OpsError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let object = format!("{namespace} -l {LOADTEST_LABEL}=true");
    let config = watcher::Config::default().labels(&format!("{LOADTEST_LABEL}=true"));
    let task = tokio::spawn(watch_pods(pods, config, object.clone(), tx, ready_tx));
    match tokio::time::timeout(timeout, ready_rx).await {
        Ok(Ok(Ok(()))) => Ok(Watch { task, rx }),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) | Err(_) => {
            task.abort();
            let reason = format!("the watch did not start within {}s", timeout.as_secs());
            Err(OpsError::Api { call: WATCH_CALL.to_string(), object, code: None, reason })
        }
    }
}

async fn watch_pods(
    pods: Api<Pod>,
    config: watcher::Config,
    object: String,
    tx: mpsc::UnboundedSender<Binding>,
    ready: tokio::sync::oneshot::Sender<Result<(), OpsError>>,
) {
    let mut ready = Some(ready);
    let mut stream = std::pin::pin!(watcher(pods, config).default_backoff());
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
            Ok(watcher::Event::InitDone) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
                continue;
            }
            Ok(watcher::Event::Delete(_) | watcher::Event::Init) => continue,
            // Before the first list completes, a failure is the caller's error; after, the
            // watcher re-lists with backoff and the caller's deadline bounds the wait.
            Err(e) => match ready.take() {
                Some(ready) => {
                    let _ = ready.send(Err(watch_error(&object, e)));
                    return;
                }
                None => {
                    tracing::warn!("{}", watch_error(&object, e));
                    continue;
                }
            },
        };
        let at = Instant::now();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if let (Some(name), Some(node)) = (pod.metadata.name, node)
            && tx.send(Binding { name, node, at }).is_err()
        {
            return;
        }
    }
}

fn watch_error(object: &str, error: watcher::Error) -> OpsError {
    match error {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            OpsError::api(WATCH_CALL, object, &e)
        }
        watcher::Error::WatchError(status) => OpsError::api(WATCH_CALL, object, &kube::Error::Api(status)),
        other => OpsError::Api {
            call: WATCH_CALL.to_string(),
            object: object.to_string(),
            code: None,
            reason: other.to_string(),
        },
    }
}

/// The outcome of creating the pods: those created, and the first failure, after which no
/// more creates were started.
#[derive(Debug)]
struct Created {
    names: Vec<String>,
    error: Option<OpsError>,
}

async fn create_pods(
    pods: &Api<Pod>,
    opts: &LoadtestOptions,
    tally: &mut Tally,
    seen: &mut mpsc::UnboundedReceiver<Binding>,
) -> Created {
    let stop = Arc::new(AtomicBool::new(false));
    let mut results = futures::stream::iter(0..opts.pods)
        .map(|i| {
            let stop = Arc::clone(&stop);
            async move {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let pod = loadtest_pod(i, opts);
                let name = pod_name(i);
                let sent = Instant::now();
                let result = pods.create(&PostParams::default(), &pod).await;
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                Some((name, sent, Instant::now(), result))
            }
        })
        .buffer_unordered(opts.concurrency);
    let mut out = Created { names: Vec::new(), error: None };
    while let Some(result) = results.next().await {
        match result {
            Some((name, sent, done, Ok(_))) => {
                tally.created(&name, sent, done);
                out.names.push(name);
            }
            Some((name, _, _, Err(e))) => {
                let object = object_name(Some(&opts.namespace), &name);
                out.error = out.error.or(Some(OpsError::api("create (POST) Pod", object, &e)));
            }
            None => {}
        }
        // Draining as we go keeps the watch's buffer small on large runs.
        while let Ok(Binding { name, node, at }) = seen.try_recv() {
            tally.observe(&name, &node, at);
        }
    }
    out
}

/// Applies watch events until every created pod is bound (`Ok(false)`) or `deadline`
/// passes (`Ok(true)`: timed out).
async fn wait_bound(
    seen: &mut mpsc::UnboundedReceiver<Binding>,
    tally: &mut Tally,
    deadline: tokio::time::Instant,
) -> Result<bool, OpsError> {
    loop {
        if tally.all_bound() {
            return Ok(false);
        }
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Some(Binding { name, node, at })) => tally.observe(&name, &node, at),
            Ok(None) => {
                let reason = "the watch ended unexpectedly".to_string();
                return Err(OpsError::Api { call: WATCH_CALL.to_string(), object: String::new(), code: None, reason });
            }
            Err(_) => return Ok(true),
        }
    }
}

/// Deletes what `made` lists, carrying on past failures so one bad call leaves as little
/// behind as possible; the first failure is returned.
pub async fn clean_up(client: &Client, opts: &LoadtestOptions, made: &Made) -> Result<Cleanup, OpsError> {
    let now = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &opts.namespace);
    let nodes: Api<Node> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = opts.namespace.as_str();
    let pod_results = delete_all(&made.pods, opts.concurrency, |name| {
        let (pods, now) = (&pods, &now);
        async move {
            forget_not_found(
                pods.delete(&name, now).await.map(drop),
                "delete (DELETE) Pod",
                object_name(Some(ns), &name),
            )
        }
    })
    .await;
    let node_results = delete_all(&made.nodes, opts.concurrency, |name| {
        let (nodes, now) = (&nodes, &now);
        async move { forget_not_found(nodes.delete(&name, now).await.map(drop), "delete (DELETE) Node", name) }
    })
    .await;
    let mut first_error = pod_results.err().or(node_results.err());
    if made.namespace {
        let deleted = namespaces.delete(ns, &DeleteParams::default()).await.map(drop);
        if let Err(e) = forget_not_found(deleted, "delete (DELETE) Namespace", ns.to_string()) {
            first_error = first_error.or(Some(e));
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(Cleanup { pods: made.pods.len(), nodes: made.nodes.len(), namespace: made.namespace }),
    }
}

async fn delete_all<F, Fut>(names: &[String], concurrency: usize, delete: F) -> Result<(), OpsError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), OpsError>>,
{
    let results: Vec<Result<(), OpsError>> =
        futures::stream::iter(names.iter().cloned()).map(delete).buffer_unordered(concurrency.max(1)).collect().await;
    results.into_iter().collect()
}

/// A 404 on delete means it is already gone, which is what cleanup wants.
fn forget_not_found(result: Result<(), kube::Error>, call: &str, object: String) -> Result<(), OpsError> {
    match result {
        Err(e) if status_code(&e) != Some(404) => Err(OpsError::api(call, object, &e)),
        _ => Ok(()),
    }
}

/// Reads `process_cpu_seconds_total` from a scheduler's `/metrics`.
pub async fn scrape_cpu_seconds(url: &str, token: Option<&str>) -> Result<f64, OpsError> {
    let bad = |message: String| OpsError::Metrics { url: url.to_string(), message };
    let text = tokio::time::timeout(Duration::from_secs(30), fetch(url, token))
        .await
        .map_err(|_| bad("no answer within 30s".to_string()))?
        .map_err(bad)?;
    parse_sample(&text, CPU_METRIC).ok_or_else(|| bad(format!("no unlabelled {CPU_METRIC} sample in the response")))
}

async fn fetch(url: &str, token: Option<&str>) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(accept_any_certificate()?)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(connector);
    let mut request = http::Request::get(uri).header(http::header::ACCEPT, "text/plain");
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {}", token.trim()));
    }
    let request = request.body(Empty::new()).map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| format!("reading the body: {e}"))?.to_bytes();
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => " (the endpoint wants a token allowed to GET /metrics: --metrics-token-file)",
            _ => "",
        };
        return Err(format!("HTTP {status}{hint}"));
    }
    String::from_utf8(body.to_vec()).map_err(|e| format!("the body is not UTF-8: {e}"))
}

/// TLS that accepts any server certificate (still checking the handshake signatures):
/// schedulers serve `/metrics` with self-signed certificates, and this reads a CPU counter,
/// nothing secret.
fn accept_any_certificate() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(config)
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
