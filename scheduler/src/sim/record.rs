//! What a simulation run records: per pod, per time step, and the running totals behind the
//! allocation ratios.

use std::collections::BTreeMap;

use tessera_plugins::dra::model::DeviceId;
use tessera_plugins::explain::Explanation;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GPU_MILLI, Node, Pod, PodKey};
use tessera_plugins::resources::ResourceId;

use super::devices::DeviceUse;
use crate::engine::gang::GangRecord;

/// One pod's fate.
#[derive(Clone, Debug, PartialEq)]
pub struct PodRecord {
    /// The pod.
    pub key: PodKey,
    /// Where it ran.
    pub node: Option<Sym>,
    /// When it arrived.
    pub arrival: f64,
    /// When it was bound.
    pub start: Option<f64>,
    /// When it left.
    pub end: Option<f64>,
    /// Scheduling attempts.
    pub attempts: u32,
    /// For a pod that never got a node: the message its `PodScheduled` condition would show.
    pub reason: String,
    /// The distinct reasons behind `reason`.
    pub reasons: Vec<String>,
    /// GPU device indices it held, as a bit set.
    pub gpus: u64,
    /// The DRA devices its claims hold, in claim order.
    pub devices: Vec<DeviceId>,
    /// It was bound in the input (`spec.nodeName`): the simulation did not place it.
    pub already_bound: bool,
    /// It waits for its scheduling gates to be removed: never tried, not unschedulable.
    pub gated: bool,
    /// Its priority class (empty when none), for preemptions per class.
    pub priority_class: Sym,
    /// It was evicted to make room for this pod (its `end` is when).
    pub preempted_by: Option<PodKey>,
    /// The node preemption nominated it to, while it waited for its victims to leave (upstream's
    /// `status.nominatedNodeName`); cleared when it was bound.
    pub nominated: Option<Sym>,
    /// How many pods it evicted to make room for itself.
    pub victims: u32,
    /// Its CPU request, milli-CPU (the report's allocation per node group).
    pub cpu_request: f64,
    /// Its GPU request, milli-GPU.
    pub gpu_request: f64,
}

impl PodRecord {
    /// A pod that has just arrived.
    pub fn arrived(pod: &Pod, arrival: f64) -> PodRecord {
        PodRecord {
            key: pod.key(),
            node: None,
            arrival,
            start: None,
            end: None,
            attempts: 0,
            reason: String::new(),
            reasons: Vec::new(),
            gpus: 0,
            devices: Vec::new(),
            already_bound: false,
            gated: false,
            priority_class: pod.priority_class,
            preempted_by: None,
            nominated: None,
            victims: 0,
            cpu_request: pod.requests.get(ResourceId::CPU) as f64,
            gpu_request: pod.gpu.as_ref().map_or(0, |g| g.total_milli()) as f64,
        }
    }
}

/// The cluster at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimelinePoint {
    /// Virtual time, seconds.
    pub t: f64,
    /// Pods waiting.
    pub pending: usize,
    /// Pods running.
    pub running: usize,
    /// CPU requested / allocatable, %.
    pub cpu: f64,
    /// Memory requested / allocatable, %.
    pub memory: f64,
    /// GPU milli in use / GPU milli in the cluster, %.
    pub gpu: f64,
}

/// Running totals of what is allocatable and what placed pods request.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    capacity: [f64; 3],
    used: [f64; 3],
}

impl Usage {
    /// Capacity of `nodes`.
    pub fn new<'a>(nodes: impl Iterator<Item = &'a Node>) -> Usage {
        let mut u = Usage::default();
        for n in nodes {
            u.capacity[0] += n.allocatable.get(ResourceId::CPU) as f64;
            u.capacity[1] += n.allocatable.get(ResourceId::MEMORY) as f64;
            u.capacity[2] += (n.gpus.len() as u64 * u64::from(GPU_MILLI)) as f64;
        }
        u
    }

    /// A pod started (`sign` 1) or left (`sign` -1).
    pub fn apply(&mut self, pod: &Pod, sign: f64) {
        self.used[0] += sign * pod.requests.get(ResourceId::CPU) as f64;
        self.used[1] += sign * pod.requests.get(ResourceId::MEMORY) as f64;
        self.used[2] += sign * pod.gpu.as_ref().map_or(0, |g| g.total_milli()) as f64;
    }

    /// (cpu, memory, gpu) in % of capacity.
    pub fn percent(&self) -> [f64; 3] {
        let pct = |i: usize| if self.capacity[i] > 0.0 { 100.0 * self.used[i] / self.capacity[i] } else { 0.0 };
        [pct(0), pct(1), pct(2)]
    }

    /// GPU milli in the cluster.
    pub fn gpu_capacity(&self) -> f64 {
        self.capacity[2]
    }
}

/// Fill mode samples fragmentation each time the arrived GPU request passes a multiple of
/// this (% of capacity).
pub const FRAG_STEP_PCT: u32 = 5;

/// Replay samples fragmentation about this many times over the input's span.
pub const FRAG_SAMPLES: usize = 60;

/// Allocation against arrived demand in fill mode: one point per pod submitted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FillTrace {
    /// (arrived GPU request as % of capacity, GPU allocation %).
    pub points: Vec<(f64, f64)>,
    /// (arrived %, fragmentation amount %, fragmentation ratio %) at 50/70/80/90/100%.
    pub fragmentation: Vec<(u32, f64, f64)>,
}

impl FillTrace {
    /// Mean allocation for each whole arrived percentage, as FGD's analysis does: points whose
    /// arrived % rounds to k; where none do, those within ±1.
    pub fn curve(&self) -> BTreeMap<u32, f64> {
        let mut by: BTreeMap<u32, (f64, usize)> = BTreeMap::new();
        for &(arrived, alloc) in &self.points {
            let e = by.entry(arrived.round().max(0.0) as u32).or_insert((0.0, 0));
            e.0 += alloc;
            e.1 += 1;
        }
        let max = by.keys().next_back().copied().unwrap_or(0);
        (0..=max)
            .filter_map(|k| {
                let exact = by.get(&k).map(|(s, n)| s / *n as f64);
                exact
                    .or_else(|| {
                        let near: Vec<f64> = [k.wrapping_sub(1), k + 1]
                            .iter()
                            .filter_map(|j| by.get(j).map(|(s, n)| s / *n as f64))
                            .collect();
                        (!near.is_empty()).then(|| near.iter().sum::<f64>() / near.len() as f64)
                    })
                    .map(|v| (k, v))
            })
            .collect()
    }
}

/// One explained scheduling attempt (`tessera simulate --explain`).
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct ExplainedAttempt {
    /// When, in virtual seconds.
    pub at: f64,
    /// What came of it: `bound to NODE`, or the pod's message.
    pub result: String,
    /// Every node's verdict and scores.
    #[serde(flatten)]
    pub explanation: Explanation,
}

/// Everything one run under one configuration produced.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// The configuration's name.
    pub config: String,
    /// The seed.
    pub seed: u64,
    /// Per pod, in arrival order.
    pub records: Vec<PodRecord>,
    /// Per time step.
    pub timeline: Vec<TimelinePoint>,
    /// Fill mode's trace.
    pub fill: Option<FillTrace>,
    /// Final GPU fragmentation (amount %, ratio %).
    pub fragmentation: (f64, f64),
    /// GPU fragmentation amount (% of all GPU) as it went, as (x, amount): x is virtual time
    /// in replay, the arrived GPU request (% of capacity, every [`FRAG_STEP_PCT`]) in fill
    /// mode. Empty on a cluster without GPUs.
    pub frag_curve: Vec<(f64, f64)>,
    /// DRA devices per driver and those claims hold, as it went, as (x, use): x as in
    /// [`RunResult::timeline`] (virtual time in replay, pods submitted in fill mode). Empty on a
    /// cluster without DRA devices.
    pub device_curve: Vec<(f64, DeviceUse)>,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// Final allocation (cpu, memory, gpu) %.
    pub final_allocation: [f64; 3],
    /// GPUs in the cluster (whole GPUs; 0 on a cluster without them).
    pub cluster_gpus: f64,
    /// Every gang's fate, by `namespace/name`.
    pub gangs: BTreeMap<String, GangRecord>,
    /// The attempts of the pods asked about with `--explain`, by pod, in time order.
    pub explained: BTreeMap<PodKey, Vec<ExplainedAttempt>>,
}
