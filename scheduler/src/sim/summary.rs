//! `summary.json`: the figures a platform team reads first, per configuration.

use std::collections::BTreeMap;

use serde::Serialize;
use tessera_plugins::model::PodKey;

use super::Mode;
use super::record::{RunResult, TimelinePoint};
use crate::bench::{Latency, percentiles};

/// Allocation of one resource.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Allocation {
    /// At the end of the run, % of capacity.
    pub final_pct: f64,
    /// Averaged over (virtual) time, % of capacity.
    pub time_weighted_mean_pct: f64,
    /// The highest it reached, % of capacity.
    pub peak_pct: f64,
}

/// GPU fragmentation (FGD's measure).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Fragmentation {
    /// Fragmented GPU as % of all cluster GPU.
    pub amount_pct: f64,
    /// Fragmented GPU as % of idle GPU.
    pub ratio_pct: f64,
}

/// Mean and standard deviation over seeds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
}

/// One point of the fill curve.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FillPoint {
    /// Arrived GPU request, % of capacity.
    pub arrived_pct: u32,
    /// GPU allocation, % of capacity, over seeds.
    pub gpu_alloc_pct: MeanStd,
}

/// Fragmentation at an arrived-demand checkpoint.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FragPoint {
    /// Arrived GPU request, % of capacity.
    pub arrived_pct: u32,
    /// Fragmentation amount, % of cluster GPU, over seeds.
    pub amount_pct: MeanStd,
    /// Fragmentation ratio, % of idle GPU, over seeds.
    pub ratio_pct: MeanStd,
}

/// Fill mode's figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FillSummary {
    /// The inflation target.
    pub fill_to: f64,
    /// Seeds run.
    pub repeat: usize,
    /// 100 − GPU allocation when arrived demand is 100% of capacity (FGD's headline).
    pub unallocated_gpu_pct: MeanStd,
    /// GPU allocation per arrived %.
    pub curve: Vec<FillPoint>,
    /// Fragmentation at 50/70/80/90/100% arrived.
    pub fragmentation: Vec<FragPoint>,
}

/// One configuration's summary.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// The configuration.
    pub config: String,
    /// Replay or fill.
    pub mode: Mode,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// Pods in the (first seed's) run.
    pub pods_total: usize,
    /// GPUs in the cluster (whole GPUs); the GPU figures mean something only where it is not 0.
    pub cluster_gpus: f64,
    /// Pods that got a node: `already_bound` plus `placed`.
    pub scheduled: usize,
    /// Pods bound in the input (`spec.nodeName`), running from the start.
    pub already_bound: usize,
    /// Pods the simulation placed.
    pub placed: usize,
    /// Pods that were tried and never got a node (left pending).
    pub unschedulable: usize,
    /// Pods that waited for their scheduling gates, never tried.
    pub gated: usize,
    /// For the pods that never got a node: how many were held back by each reason. A pod
    /// counts once under every reason its message gives, so this counts (pod, reason) pairs
    /// and may sum to more than `unschedulable`.
    pub unschedulable_by_reason: BTreeMap<String, usize>,
    /// For the pods that never got a node: how many had each reason as their main one (the
    /// reason that kept the pod off the most nodes); sums to `unschedulable`.
    pub unschedulable_by_main_reason: BTreeMap<String, usize>,
    /// Allocation per resource (`cpu`, `memory`, `gpu`).
    pub allocation: BTreeMap<&'static str, Allocation>,
    /// GPU fragmentation at the end.
    pub gpu_fragmentation: Fragmentation,
    /// Arrival-to-bind wait of scheduled pods, virtual seconds.
    pub queue_wait_s: Latency,
    /// Virtual time from the start to the last bind or departure.
    pub makespan_s: f64,
    /// Wall time of the run(s), seconds (varies run to run).
    pub engine_wall_s: f64,
    /// Pods the simulation placed per wall second of its runs (varies run to run); pods bound
    /// in the input are not counted.
    pub pods_per_sec: f64,
    /// Fill mode's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill: Option<FillSummary>,
    /// Gang outcomes, when the workload has PodGroups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gangs: Option<GangSummary>,
    /// What preemption did (DefaultPreemption; never in fill mode).
    pub preemptions: PreemptionSummary,
}

/// What preemption did in a replay: who was evicted, and for whom, per priority class.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PreemptionSummary {
    /// Pods evicted to make room for pods of higher priority.
    pub victims: usize,
    /// Pods that evicted others to make room for themselves.
    pub preemptors: usize,
    /// Victims by the priority class of the pod they made room for (`""`: none).
    pub by_priority_class: BTreeMap<String, usize>,
    /// Victims by their own priority class.
    pub victims_by_priority_class: BTreeMap<String, usize>,
}

/// What became of the gangs (PodGroups of any API).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GangSummary {
    /// PodGroups in the input.
    pub total: usize,
    /// Gangs whose first `minCount` members were placed together.
    pub scheduled: usize,
    /// Gangs never admitted by the end.
    pub waiting: usize,
    /// Gangs that timed out at least once (`scheduleTimeoutSeconds`).
    pub timed_out: usize,
    /// Gangs with some but fewer than `minCount` members placed: always 0, here as the check.
    pub partial: usize,
    /// From the first member's arrival to admission, virtual seconds, over admitted gangs.
    pub time_to_admit_s: Latency,
}

/// Summarises the runs of one configuration (several seeds in fill mode).
pub fn summarize(runs: &[RunResult], mode: Mode, fill_to: f64) -> Option<Summary> {
    let first = runs.first()?;
    let scheduled = first.records.iter().filter(|r| r.start.is_some()).count();
    let already_bound = first.records.iter().filter(|r| r.already_bound).count();
    let gated = first.records.iter().filter(|r| r.gated).count();
    let mut by_reason = BTreeMap::new();
    let mut by_main_reason = BTreeMap::new();
    for r in first.records.iter().filter(|r| r.start.is_none() && !r.gated) {
        for reason in &r.reasons {
            *by_reason.entry(reason.clone()).or_insert(0) += 1;
        }
        let main = r.reasons.first().unwrap_or(&r.reason);
        *by_main_reason.entry(main.clone()).or_insert(0) += 1;
    }
    let mut waits: Vec<f64> = first.records.iter().filter_map(|r| r.start.map(|s| s - r.arrival)).collect();
    let wall: f64 = runs.iter().map(|r| r.wall_s).sum();
    let makespan = first.records.iter().filter_map(|r| r.end.or(r.start)).fold(0.0, f64::max);
    let means = time_weighted(&first.timeline);
    let peaks = peaks(&first.timeline);
    let allocation = ["cpu", "memory", "gpu"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let final_pct = round(first.final_allocation[i]);
            let peak_pct = round(peaks[i].max(first.final_allocation[i]));
            (*name, Allocation { final_pct, time_weighted_mean_pct: round(means[i]), peak_pct })
        })
        .collect();
    Some(Summary {
        config: first.config.clone(),
        mode,
        seeds: runs.iter().map(|r| r.seed).collect(),
        pods_total: first.records.len(),
        cluster_gpus: first.cluster_gpus,
        scheduled,
        already_bound,
        placed: scheduled - already_bound,
        unschedulable: first.records.len() - scheduled - gated,
        gated,
        unschedulable_by_reason: by_reason,
        unschedulable_by_main_reason: by_main_reason,
        allocation,
        gpu_fragmentation: Fragmentation {
            amount_pct: round(first.fragmentation.0),
            ratio_pct: round(first.fragmentation.1),
        },
        queue_wait_s: rounded(percentiles(&mut waits)),
        makespan_s: round(makespan),
        engine_wall_s: wall,
        pods_per_sec: if wall > 0.0 {
            let placed = |r: &RunResult| r.records.iter().filter(|x| x.start.is_some() && !x.already_bound).count();
            runs.iter().map(placed).sum::<usize>() as f64 / wall
        } else {
            0.0
        },
        fill: (mode == Mode::Fill).then(|| fill_summary(runs, fill_to)),
        gangs: gang_summary(first),
        preemptions: preemption_summary(first),
    })
}

fn preemption_summary(run: &RunResult) -> PreemptionSummary {
    let class: BTreeMap<&PodKey, &str> = run.records.iter().map(|r| (&r.key, r.priority_class.as_str())).collect();
    let mut s = PreemptionSummary::default();
    for r in &run.records {
        s.preemptors += usize::from(r.victims > 0);
        let Some(by) = &r.preempted_by else { continue };
        s.victims += 1;
        let preemptor = class.get(by).copied().unwrap_or_default();
        *s.by_priority_class.entry(preemptor.to_string()).or_insert(0) += 1;
        *s.victims_by_priority_class.entry(r.priority_class.as_str().to_string()).or_insert(0) += 1;
    }
    s
}

fn gang_summary(run: &RunResult) -> Option<GangSummary> {
    if run.gangs.is_empty() {
        return None;
    }
    let gangs = run.gangs.values();
    let mut admit: Vec<f64> = gangs.clone().filter_map(|g| g.admitted_at.map(|t| t - g.first_seen)).collect();
    let scheduled = admit.len();
    Some(GangSummary {
        total: run.gangs.len(),
        scheduled,
        waiting: run.gangs.len() - scheduled,
        timed_out: gangs.clone().filter(|g| g.timeouts > 0).count(),
        partial: gangs.filter(|g| g.admitted_at.is_none() && g.bound > 0).count(),
        time_to_admit_s: rounded(percentiles(&mut admit)),
    })
}

fn fill_summary(runs: &[RunResult], fill_to: f64) -> FillSummary {
    let curves: Vec<BTreeMap<u32, f64>> = runs.iter().filter_map(|r| r.fill.as_ref()).map(|f| f.curve()).collect();
    let max = curves.iter().filter_map(|c| c.keys().next_back().copied()).min().unwrap_or(0);
    let curve: Vec<FillPoint> = (0..=max)
        .filter_map(|k| {
            let vals: Vec<f64> = curves.iter().filter_map(|c| c.get(&k).copied()).collect();
            (vals.len() == curves.len() && !vals.is_empty())
                .then(|| FillPoint { arrived_pct: k, gpu_alloc_pct: mean_std(&vals) })
        })
        .collect();
    let at_100: Vec<f64> = curves.iter().filter_map(|c| c.get(&100).map(|a| 100.0 - a)).collect();
    let fragmentation = super::fill::FRAG_CHECKPOINTS
        .iter()
        .filter_map(|&k| {
            let at: Vec<(f64, f64)> = runs
                .iter()
                .filter_map(|r| r.fill.as_ref())
                .filter_map(|f| f.fragmentation.iter().find(|(c, _, _)| *c == k).map(|(_, a, r)| (*a, *r)))
                .collect();
            (!at.is_empty()).then(|| FragPoint {
                arrived_pct: k,
                amount_pct: mean_std(&at.iter().map(|p| p.0).collect::<Vec<_>>()),
                ratio_pct: mean_std(&at.iter().map(|p| p.1).collect::<Vec<_>>()),
            })
        })
        .collect();
    FillSummary { fill_to, repeat: runs.len(), unallocated_gpu_pct: mean_std(&at_100), curve, fragmentation }
}

/// Mean and population standard deviation, rounded.
pub fn mean_std(values: &[f64]) -> MeanStd {
    if values.is_empty() {
        return MeanStd { mean: 0.0, std: 0.0 };
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    MeanStd { mean: round(mean), std: round(var.sqrt()) }
}

/// Time-weighted means of (cpu, memory, gpu) over the timeline.
fn time_weighted(timeline: &[TimelinePoint]) -> [f64; 3] {
    let (Some(first), Some(last)) = (timeline.first(), timeline.last()) else { return [0.0; 3] };
    let span = last.t - first.t;
    if span <= 0.0 {
        return [last.cpu, last.memory, last.gpu];
    }
    let mut acc = [0.0; 3];
    for w in timeline.windows(2) {
        let dt = w[1].t - w[0].t;
        acc[0] += w[0].cpu * dt;
        acc[1] += w[0].memory * dt;
        acc[2] += w[0].gpu * dt;
    }
    acc.map(|a| a / span)
}

/// The highest (cpu, memory, gpu) allocation over the timeline.
fn peaks(timeline: &[TimelinePoint]) -> [f64; 3] {
    timeline.iter().fold([0.0; 3], |m, p| [m[0].max(p.cpu), m[1].max(p.memory), m[2].max(p.gpu)])
}

/// Four decimals: stable output, no float noise in diffs.
pub fn round(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn rounded(l: Latency) -> Latency {
    Latency { p50: round(l.p50), p99: round(l.p99) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_is_population_std() {
        assert_eq!(mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), MeanStd { mean: 5.0, std: 2.0 });
        assert_eq!(mean_std(&[]), MeanStd { mean: 0.0, std: 0.0 });
    }

    #[test]
    fn time_weighting_holds_each_value_until_the_next_step() {
        let p = |t, v| TimelinePoint { t, pending: 0, running: 0, cpu: v, memory: v, gpu: v };
        let m = time_weighted(&[p(0.0, 10.0), p(1.0, 50.0), p(4.0, 0.0)]);
        assert_eq!(m[0], (10.0 * 1.0 + 50.0 * 3.0) / 4.0);
        assert_eq!(peaks(&[p(0.0, 10.0), p(1.0, 50.0), p(4.0, 0.0)]), [50.0; 3], "the peak, not the end");
    }

    #[test]
    fn each_pending_pod_counts_once_under_its_main_reason_and_under_every_reason() {
        use tessera_plugins::model::Pod;
        use tessera_plugins::resources::ResourceVec;
        let pending = |name: &str, reasons: &[&str]| {
            let mut r = super::super::record::PodRecord::arrived(&Pod::new("default", name, ResourceVec::ZERO), 0.0);
            r.reasons = reasons.iter().map(|s| s.to_string()).collect();
            r
        };
        let run = RunResult {
            config: "default".into(),
            seed: 1,
            records: vec![
                pending("a", &["Insufficient cpu", "node(s) had untolerated taint(s)"]),
                pending("b", &["node(s) had untolerated taint(s)"]),
            ],
            wall_s: 1.0,
            ..RunResult::default()
        };
        let s = summarize(&[run], Mode::Replay, 1.3).unwrap();
        assert_eq!(s.unschedulable, 2);
        let pairs: usize = s.unschedulable_by_reason.values().sum();
        let pods: usize = s.unschedulable_by_main_reason.values().sum();
        assert_eq!((pairs, pods), (3, 2));
        assert_eq!(s.unschedulable_by_main_reason["Insufficient cpu"], 1);
    }
}
