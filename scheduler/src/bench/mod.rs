//! `tessera bench`: the engine alone on a synthetic cluster and workload, in memory.
//!
//! Building the cluster and workload is not timed; the clock runs from the first pop to the
//! last commit. `--verify` re-checks the result independently ([`crate::verify`]).
//!
//! The gang mix ([`Mix::Gang`]) registers a PodGroup per gang before its pods and reports what
//! became of the gangs, counted from the bound pods alone ([`GangReport`]) so that the engine's
//! own bookkeeping is not what checks it.

pub mod dra;
pub mod preemption;
pub mod synth;
pub mod table;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tessera_plugins::dra::cel::CelError;
use tessera_plugins::framework::Profile;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GPU_MILLI, GroupKey, Node, Pod, PodGroup, PodKey};

use self::synth::Mix;
use crate::engine::gang::GangOptions;
use crate::engine::queue::BackoffPolicy;
use crate::engine::rng::Rng;
use crate::engine::{Engine, EngineOptions, Outcome};

/// How the gang mix uses the rack label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GangTopology {
    /// No topology: gangs go wherever the scorers put each pod.
    None,
    /// The engine's topology hierarchy is the rack label: a gang is tried within one rack
    /// first, then anywhere.
    #[default]
    Hierarchy,
    /// Every PodGroup requires one rack: a gang bigger than a rack never fits.
    Required,
}

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
    /// How the gang mix uses the rack label (other mixes ignore it).
    pub gang_topology: GangTopology,
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
    /// Pods decided (bound or found unschedulable) per second of wall time: the engine's
    /// throughput when much of the workload cannot fit, as in the gang mix.
    pub decisions_per_sec: f64,
    /// Enqueue-to-commit latency: time in the queue included.
    pub latency_ms: Latency,
    /// Scheduling latency: from the start of the attempt that placed a pod to its commit (the
    /// worker's cycle and the wait for the binder), time in the queue left out.
    pub scheduling_latency_ms: Latency,
    /// Proposals the binder rejected.
    pub conflicts: u64,
    /// Rejected proposals over all proposals.
    pub conflict_rate: f64,
    /// Placements the binder re-checked on live state (node moved, or cross-node constraints).
    pub rechecked: u64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mb: f64,
    /// With `--verify`: bound pods the independent check finds infeasible. For the gang mix
    /// this also counts the bound pods of partial gangs and of gangs that require one rack
    /// but span several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<usize>,
    /// FNV-1a hash of the sorted (pod, node) pairs: equal hashes, equal placements.
    pub placement_hash: String,
    /// The gang mix only: what became of the gangs.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub gang: Option<GangReport>,
    /// The preemption mix only: what preemption did.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub preemption: Option<PreemptionReport>,
}

/// What preemption did in the preemption mix.
#[derive(Clone, Debug, Serialize)]
pub struct PreemptionReport {
    /// Preemptions decided and committed (victims chosen, preemptor nominated).
    pub preemptions: u64,
    /// Preemptions decided per second of wall time (the whole run: failed cycles, victim
    /// choice, eviction and the preemptors' second cycles).
    pub preemptions_per_sec: f64,
    /// Pods evicted.
    pub victims: usize,
    /// Preemptions dropped because their node changed after the victims were chosen.
    pub preemption_conflicts: u64,
}

/// What became of the gang mix's gangs, counted from the bound pods and node labels alone.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GangReport {
    /// The topology setting.
    pub gang_topology: GangTopology,
    /// Gangs (PodGroups) in the workload.
    pub gangs: usize,
    /// Gangs with at least `minCount` members bound.
    pub gangs_scheduled: usize,
    /// Gangs with some but fewer than `minCount` members bound: all-or-nothing broken. Must
    /// be 0.
    pub partial_gangs: usize,
    /// Among scheduled gangs whose GPU demand fits in one rack's GPUs, the share whose pods
    /// all landed in one rack; `null` when there is no such gang.
    pub gang_locality: Option<f64>,
    /// Gangs that require one rack but whose bound pods span several (their pods count in
    /// `violations`; reported apart so that a failure says which rule broke). Must be 0.
    pub split_gangs: usize,
    /// Share of the cluster's GPUs the bound pods hold, percent: how full the run left the
    /// cluster (the workload asks for several times what there is).
    pub gpu_allocated_pct: f64,
}

/// The gang mix's PodGroups, as the bench gives them to the engine.
fn gang_groups(groups: Vec<PodGroup>, topology: GangTopology) -> Vec<PodGroup> {
    let rack = Sym::new(synth::RACK);
    groups
        .into_iter()
        .map(|mut g| {
            if topology == GangTopology::Required {
                g.topology_key = Some(rack);
            }
            g
        })
        .collect()
}

/// Runs the benchmark with `profiles` (pods use scheduler name `default-scheduler`).
pub fn run(opts: &BenchOptions, profiles: Vec<Profile>) -> Result<BenchReport, CelError> {
    let mut rng = Rng::new(opts.seed);
    let (nodes, pods, groups) = match opts.mix {
        Mix::Gang => {
            let nodes = synth::cluster(opts.nodes, opts.mix, &mut rng);
            let w = synth::gang_workload(opts.pods, &mut rng);
            (nodes, w.pods, gang_groups(w.groups, opts.gang_topology))
        }
        Mix::Dra => {
            let world = dra::DraWorld::new()?;
            let nodes = dra::cluster(opts.nodes, &world, &mut rng);
            (nodes, dra::workload(opts.pods, &world, &mut rng), Vec::new())
        }
        Mix::Preemption => return Ok(run_preemption(opts, profiles, &mut rng)),
        _ => {
            let nodes = synth::cluster(opts.nodes, opts.mix, &mut rng);
            (nodes, synth::workload(opts.pods, opts.mix, &mut rng), Vec::new())
        }
    };
    let hierarchy = match (opts.mix, opts.gang_topology) {
        (Mix::Gang, GangTopology::Hierarchy) => vec![Sym::new(synth::RACK)],
        _ => Vec::new(),
    };
    let engine_opts = EngineOptions {
        workers: opts.workers.max(1),
        seed: opts.seed,
        gang: GangOptions { topology_hierarchy: hierarchy, ..GangOptions::default() },
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(profiles, engine_opts);
    for n in &nodes {
        engine.upsert_node(n.clone(), 0.0);
    }
    // Groups before pods: each gang then enters the queue as its last member arrives.
    for g in &groups {
        engine.upsert_pod_group(g.clone(), 0.0);
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
    let workload = Workload { nodes: &nodes, pods: &pods, groups: &groups };
    Ok(report(opts, &engine, workload, &outcomes, wall_s))
}

/// The preemption mix: the running pods are accounted on their nodes before the clock starts;
/// a preemptor whose victims left is tried again at once (no backoff), so the run measures
/// decisions, not the queue's timers.
fn run_preemption(opts: &BenchOptions, profiles: Vec<Profile>, rng: &mut Rng) -> BenchReport {
    let world = preemption::world(opts.nodes, opts.pods, rng);
    let engine_opts = EngineOptions {
        workers: opts.workers.max(1),
        seed: opts.seed,
        backoff: BackoffPolicy { initial_s: 0.0, max_s: 0.0 },
        ..EngineOptions::default()
    };
    let mut engine = Engine::new(profiles, engine_opts);
    for n in &world.nodes {
        engine.upsert_node(n.clone(), 0.0);
    }
    for p in &world.running {
        let _ = engine.add_pod(p.clone(), 0.0);
    }
    engine.set_budgets(world.budgets.clone());
    for p in &world.pods {
        let _ = engine.add_pod(p.clone(), 0.0);
    }
    let start = Instant::now();
    let clock = move || start.elapsed().as_secs_f64();
    let outcomes = engine.run_parallel(&clock);
    let wall_s = start.elapsed().as_secs_f64();
    let workload = Workload { nodes: &world.nodes, pods: &world.pods, groups: &[] };
    let mut r = report(opts, &engine, workload, &outcomes, wall_s);
    let stats = engine.stats().binder;
    let victims = outcomes.iter().filter(|o| matches!(o, Outcome::Preempted { .. })).count();
    r.preemption = Some(PreemptionReport {
        preemptions: stats.preemptions,
        preemptions_per_sec: if wall_s > 0.0 { stats.preemptions as f64 / wall_s } else { 0.0 },
        victims,
        preemption_conflicts: stats.preemption_conflicts,
    });
    if opts.verify {
        r.violations = Some(preemption::violations(&world, &outcomes, engine.profiles()));
    }
    r
}

/// What the bench gave the engine.
#[derive(Clone, Copy)]
struct Workload<'a> {
    nodes: &'a [Node],
    pods: &'a [Arc<Pod>],
    groups: &'a [PodGroup],
}

fn report(
    opts: &BenchOptions,
    engine: &Engine,
    workload: Workload<'_>,
    outcomes: &[Outcome],
    wall_s: f64,
) -> BenchReport {
    let nodes = workload.nodes;
    let mut bound: Vec<(Arc<Pod>, Sym)> = Vec::new();
    let mut latencies = Vec::new();
    let mut scheduling = Vec::new();
    // A pod may fail before it binds (a preemptor waits for its victims): count each pod once,
    // as it ended.
    let mut failed: HashSet<PodKey> = HashSet::new();
    for o in outcomes {
        match o {
            Outcome::Bound { pod, node, queued_at, at, attempt_s, .. } => {
                bound.push((pod.clone(), *node));
                latencies.push((at - queued_at) * 1000.0);
                scheduling.push(attempt_s * 1000.0);
            }
            Outcome::Unschedulable { pods, .. } => failed.extend(pods.iter().map(|p| p.key())),
            Outcome::Preempted { .. } => {}
        }
    }
    for (p, _) in &bound {
        failed.remove(&p.key());
    }
    let unschedulable = failed.len();
    let with_claims: Vec<_> = outcomes.iter().filter_map(Outcome::bound).collect();
    let stats = engine.stats();
    let proposals = stats.binder.accepted + stats.binder.rejected;
    let gang = (opts.mix == Mix::Gang).then(|| gang_report(opts.gang_topology, workload, &bound));
    let violations = opts.verify.then(|| {
        let by_name: HashMap<Sym, &Profile> =
            engine.profiles().iter().map(|p| (Sym::new(&p.scheduler_name), p.as_ref())).collect();
        let infeasible = crate::verify::verify(nodes, &with_claims, |p| by_name.get(&p.scheduler_name).copied()).len();
        infeasible + gang_violations(workload, &bound)
    });
    let decided = bound.len() + unschedulable;
    let per_sec = |n: usize| if wall_s > 0.0 { n as f64 / wall_s } else { 0.0 };
    BenchReport {
        nodes: opts.nodes,
        pods: opts.pods,
        workers: opts.workers,
        mix: opts.mix,
        seed: opts.seed,
        scheduled: bound.len(),
        unschedulable,
        wall_s,
        pods_per_sec: per_sec(bound.len()),
        decisions_per_sec: per_sec(decided),
        latency_ms: percentiles(&mut latencies),
        scheduling_latency_ms: percentiles(&mut scheduling),
        conflicts: stats.binder.rejected,
        conflict_rate: if proposals > 0 { stats.binder.rejected as f64 / proposals as f64 } else { 0.0 },
        rechecked: stats.binder.rechecked,
        peak_rss_mb: peak_rss_mb(),
        violations,
        placement_hash: placement_hash(&bound),
        gang,
        preemption: None,
    }
}

/// One gang as its bound pods show it.
#[derive(Debug, Default)]
struct GangTally {
    min_count: usize,
    /// Milli-GPU the gang asks for in total (every member in the workload).
    gpu_milli: u64,
    bound: usize,
    /// Racks its bound pods landed in (nodes without the label count as "").
    racks: BTreeSet<Sym>,
    required_key: Option<Sym>,
    /// Domains of `required_key` its bound pods landed in.
    domains: BTreeSet<Option<Sym>>,
}

impl GangTally {
    fn partial(&self) -> bool {
        self.bound > 0 && self.bound < self.min_count
    }

    fn scheduled(&self) -> bool {
        self.bound > 0 && self.bound >= self.min_count
    }

    /// Whether its bound pods left the one domain its group requires (or landed on nodes
    /// without the label).
    fn split(&self) -> bool {
        self.required_key.is_some() && (self.domains.len() > 1 || self.domains.contains(&None))
    }
}

/// Tallies every gang of `workload` from `bound` (pod, node name) and the node labels.
fn tally_gangs(workload: Workload<'_>, bound: &[(Arc<Pod>, Sym)]) -> BTreeMap<GroupKey, GangTally> {
    let labels: HashMap<Sym, &Node> = workload.nodes.iter().map(|n| (n.name, n)).collect();
    let rack = Sym::new(synth::RACK);
    let empty = Sym::new("");
    let mut gangs: BTreeMap<GroupKey, GangTally> = workload
        .groups
        .iter()
        .map(|g| {
            let t = GangTally { min_count: g.min_count as usize, required_key: g.topology_key, ..GangTally::default() };
            (g.key, t)
        })
        .collect();
    for p in workload.pods {
        if let Some(t) = p.group_key().and_then(|k| gangs.get_mut(&k)) {
            t.gpu_milli += pod_gpu_milli(p);
        }
    }
    for (pod, node) in bound {
        let Some(t) = pod.group_key().and_then(|k| gangs.get_mut(&k)) else { continue };
        let n = labels.get(node);
        t.bound += 1;
        t.racks.insert(n.and_then(|n| n.labels.get(rack)).unwrap_or(empty));
        if let Some(key) = t.required_key {
            t.domains.insert(n.and_then(|n| n.labels.get(key)));
        }
    }
    gangs
}

/// Milli-GPU of a node.
fn node_gpu_milli(n: &Node) -> u64 {
    n.gpus.len() as u64 * u64::from(GPU_MILLI)
}

/// Milli-GPU a pod holds.
fn pod_gpu_milli(p: &Pod) -> u64 {
    p.gpu.as_ref().map_or(0, |g| g.total_milli())
}

/// The most milli-GPU any one rack has.
fn rack_gpu_milli(nodes: &[Node]) -> u64 {
    let rack = Sym::new(synth::RACK);
    let mut per_rack: HashMap<Sym, u64> = HashMap::new();
    for n in nodes {
        if let Some(r) = n.labels.get(rack) {
            *per_rack.entry(r).or_insert(0) += node_gpu_milli(n);
        }
    }
    per_rack.into_values().max().unwrap_or(0)
}

fn gang_report(topology: GangTopology, workload: Workload<'_>, bound: &[(Arc<Pod>, Sym)]) -> GangReport {
    let gangs = tally_gangs(workload, bound);
    let rack_room = rack_gpu_milli(workload.nodes);
    let could_be_local: Vec<&GangTally> =
        gangs.values().filter(|t| t.scheduled() && t.gpu_milli <= rack_room).collect();
    let local = could_be_local.iter().filter(|t| t.racks.len() == 1).count();
    let capacity: u64 = workload.nodes.iter().map(node_gpu_milli).sum();
    let held: u64 = bound.iter().map(|(p, _)| pod_gpu_milli(p)).sum();
    GangReport {
        gang_topology: topology,
        gangs: gangs.len(),
        gangs_scheduled: gangs.values().filter(|t| t.scheduled()).count(),
        partial_gangs: gangs.values().filter(|t| t.partial()).count(),
        gang_locality: (!could_be_local.is_empty()).then(|| local as f64 / could_be_local.len() as f64),
        split_gangs: gangs.values().filter(|t| t.split()).count(),
        gpu_allocated_pct: if capacity > 0 { held as f64 * 100.0 / capacity as f64 } else { 0.0 },
    }
}

/// Bound pods of gangs that broke a gang rule: fewer than `minCount` bound, or spread over
/// several domains of the label their group requires. 0 for a workload without gangs.
fn gang_violations(workload: Workload<'_>, bound: &[(Arc<Pod>, Sym)]) -> usize {
    tally_gangs(workload, bound).values().filter(|t| t.partial() || t.split()).map(|t| t.bound).sum()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two racks of 16 nodes and three gangs: `gang-00000` of 2 pods, `gang-00001` of 3,
    /// `gang-00002` of 1, each pod wanting 8 GPUs; the groups require one rack when `required`.
    fn world(required: bool) -> (Vec<Node>, Vec<Arc<Pod>>, Vec<PodGroup>) {
        let nodes = synth::cluster(32, Mix::Gang, &mut Rng::new(1));
        let mut pods = Vec::new();
        let mut groups = Vec::new();
        for (g, size) in [2, 3, 1].into_iter().enumerate() {
            let name = format!("gang-{g:05}");
            for i in 0..size {
                let mut p = Pod::new(synth::GANG_NAMESPACE, &format!("{name}-{i}"), Default::default());
                p.gpu = Some(tessera_plugins::model::GpuRequest { count: 8, milli: GPU_MILLI, models: Vec::new() });
                p.pod_group = Some(Sym::new(&name));
                pods.push(Arc::new(p));
            }
            groups.push(PodGroup::new(synth::GANG_NAMESPACE, &name, size));
        }
        let topology = if required { GangTopology::Required } else { GangTopology::None };
        (nodes, pods, gang_groups(groups, topology))
    }

    fn on(pods: &[Arc<Pod>], picks: &[(usize, usize)]) -> Vec<(Arc<Pod>, Sym)> {
        picks.iter().map(|&(p, n)| (pods[p].clone(), Sym::new(&format!("node-{n:06}")))).collect()
    }

    #[test]
    fn the_gang_tally_counts_partial_split_and_local_gangs_from_the_bound_pods() {
        let (nodes, pods, groups) = world(false);
        let w = Workload { nodes: &nodes, pods: &pods, groups: &groups };
        // gang 0 whole in rack 0; gang 1 whole across racks 0 and 1; gang 2 not placed.
        let bound = on(&pods, &[(0, 0), (1, 1), (2, 2), (3, 3), (4, 16)]);
        let r = gang_report(GangTopology::None, w, &bound);
        assert_eq!((r.gangs, r.gangs_scheduled, r.partial_gangs, r.split_gangs), (3, 2, 0, 0));
        assert_eq!(r.gang_locality, Some(0.5));
        assert_eq!(gang_violations(w, &bound), 0);
        assert!((r.gpu_allocated_pct - 5.0 * 8.0 * 100.0 / 256.0).abs() < 1e-9);

        // gang 1 with one of its three pods: partial, and its pods are violations.
        let partial = on(&pods, &[(0, 0), (1, 1), (2, 2)]);
        let r = gang_report(GangTopology::None, w, &partial);
        assert_eq!((r.gangs_scheduled, r.partial_gangs), (1, 1));
        assert_eq!(gang_violations(w, &partial), 1);
    }

    #[test]
    fn a_gang_that_requires_one_rack_but_spans_two_is_a_violation() {
        let (nodes, pods, groups) = world(true);
        assert!(groups.iter().all(|g| g.topology_key == Some(Sym::new(synth::RACK))));
        let w = Workload { nodes: &nodes, pods: &pods, groups: &groups };
        let bound = on(&pods, &[(0, 0), (1, 1), (2, 2), (3, 3), (4, 16)]);
        let r = gang_report(GangTopology::Required, w, &bound);
        assert_eq!((r.gangs_scheduled, r.partial_gangs, r.split_gangs), (2, 0, 1));
        assert_eq!(gang_violations(w, &bound), 3);
    }

    #[test]
    fn verify_catches_gpus_booked_twice() {
        let (nodes, pods, _) = world(false);
        let profiles = crate::config::default_config(&tessera_plugins::registry::Registry::builtin()).unwrap().profiles;
        let profile = &profiles[0];
        let fine = on(&pods, &[(0, 0), (1, 1)]);
        let check = |bound: &[(Arc<Pod>, Sym)]| {
            let bound: Vec<_> = bound.iter().map(|(p, n)| (p.clone(), *n, Vec::new())).collect();
            crate::verify::verify(&nodes, &bound, |_| Some(profile)).len()
        };
        assert_eq!(check(&fine), 0);
        // Two pods of 8 GPUs on one node of 8: both are flagged.
        let twice = on(&pods, &[(0, 0), (1, 0)]);
        assert_eq!(check(&twice), 2);
    }

    #[test]
    fn percentiles_and_hash_of_nothing_are_defined() {
        assert_eq!(percentiles(&mut []), Latency { p50: 0.0, p99: 0.0 });
        assert_eq!(placement_hash(&[]), format!("{:016x}", 0xcbf2_9ce4_8422_2325_u64));
    }
}
