//! `tessera bench`: the engine alone on a synthetic cluster and workload, in memory.
//!
//! Building the cluster and workload is not timed; the clock runs from the first pop to the
//! last commit. `--verify` re-checks the result independently ([`crate::verify`]).

pub mod synth;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tessera_plugins::framework::Profile;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::Pod;

use self::synth::Mix;
use crate::engine::rng::Rng;
use crate::engine::{Engine, EngineOptions, Outcome};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Nodes in the synthetic cluster.
    pub nodes: usize,
    /// Pods in the workload.
    pub pods: usize,
    /// Scheduling workers.
    pub workers: usize,
    /// The workload's constraints.
    pub mix: Mix,
    /// Seed for the cluster, the workload and tie-breaking.
    pub seed: u64,
    /// Re-check the final assignment independently.
    pub verify: bool,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// The JSON `tessera bench --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Nodes.
    pub nodes: usize,
    /// Pods.
    pub pods: usize,
    /// Workers.
    pub workers: usize,
    /// The mix.
    pub mix: Mix,
    /// The seed.
    pub seed: u64,
    /// Pods bound.
    pub scheduled: usize,
    /// Pods found unschedulable.
    pub unschedulable: usize,
    /// Wall time of the scheduling run, seconds.
    pub wall_s: f64,
    /// Pods bound per second of wall time.
    pub pods_per_sec: f64,
    /// Enqueue-to-commit latency.
    pub latency_ms: Latency,
    /// Proposals the binder rejected.
    pub conflicts: u64,
    /// Rejected proposals over all proposals.
    pub conflict_rate: f64,
    /// Placements the binder re-checked on live state (node moved, or cross-node constraints).
    pub rechecked: u64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mb: f64,
    /// With `--verify`: bound pods the independent check finds infeasible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<usize>,
    /// FNV-1a hash of the sorted (pod, node) pairs: equal hashes, equal placements.
    pub placement_hash: String,
}

/// Runs the benchmark with `profiles` (pods use scheduler name `default-scheduler`).
pub fn run(opts: &BenchOptions, profiles: Vec<Profile>) -> BenchReport {
    let mut rng = Rng::new(opts.seed);
    let nodes = synth::cluster(opts.nodes, opts.mix, &mut rng);
    let pods = synth::workload(opts.pods, opts.mix, &mut rng);
    let engine_opts = EngineOptions { workers: opts.workers.max(1), seed: opts.seed, ..EngineOptions::default() };
    let mut engine = Engine::new(profiles, engine_opts);
    for n in &nodes {
        engine.upsert_node(n.clone(), 0.0);
    }
    let start = Instant::now();
    let clock = move || start.elapsed().as_secs_f64();
    for p in &pods {
        // Pods are queued before the clock matters: every pod's latency counts from t≈0.
        let _ = engine.add_pod(p.clone(), 0.0);
    }
    let start_run = Instant::now();
    let outcomes = engine.run_parallel(&clock);
    let wall_s = start_run.elapsed().as_secs_f64();
    report(opts, &engine, &nodes, &outcomes, wall_s)
}

fn report(
    opts: &BenchOptions,
    engine: &Engine,
    nodes: &[tessera_plugins::model::Node],
    outcomes: &[Outcome],
    wall_s: f64,
) -> BenchReport {
    let mut bound: Vec<(Arc<Pod>, Sym)> = Vec::new();
    let mut latencies = Vec::new();
    let mut unschedulable = 0;
    for o in outcomes {
        match o {
            Outcome::Bound { pod, node, queued_at, at, .. } => {
                bound.push((pod.clone(), *node));
                latencies.push((at - queued_at) * 1000.0);
            }
            Outcome::Unschedulable { pods, .. } => unschedulable += pods.len(),
        }
    }
    let stats = engine.stats();
    let proposals = stats.binder.accepted + stats.binder.rejected;
    let violations = opts.verify.then(|| {
        let by_name: HashMap<Sym, &Profile> =
            engine.profiles().iter().map(|p| (Sym::new(&p.scheduler_name), p.as_ref())).collect();
        crate::verify::verify(nodes, &bound, |p| by_name.get(&p.scheduler_name).copied()).len()
    });
    BenchReport {
        nodes: opts.nodes,
        pods: opts.pods,
        workers: opts.workers,
        mix: opts.mix,
        seed: opts.seed,
        scheduled: bound.len(),
        unschedulable,
        wall_s,
        pods_per_sec: if wall_s > 0.0 { bound.len() as f64 / wall_s } else { 0.0 },
        latency_ms: percentiles(&mut latencies),
        conflicts: stats.binder.rejected,
        conflict_rate: if proposals > 0 { stats.binder.rejected as f64 / proposals as f64 } else { 0.0 },
        rechecked: stats.binder.rechecked,
        peak_rss_mb: peak_rss_mb(),
        violations,
        placement_hash: placement_hash(&bound),
    }
}

/// p50 and p99 of `values` (sorted in place).
pub fn percentiles(values: &mut [f64]) -> Latency {
    if values.is_empty() {
        return Latency { p50: 0.0, p99: 0.0 };
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Latency { p50: at(0.50), p99: at(0.99) }
}

/// FNV-1a over the sorted `namespace/name=node` lines.
pub fn placement_hash(bound: &[(Arc<Pod>, Sym)]) -> String {
    let mut lines: Vec<String> = bound.iter().map(|(p, n)| format!("{}={n}", p.key())).collect();
    lines.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lines.iter().flat_map(|l| l.bytes().chain(std::iter::once(b'\n'))) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Peak resident set size (VmHWM) in MiB, or 0 where /proc is unavailable.
pub fn peak_rss_mb() -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return 0.0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
