//! Fill mode: the GPU-fragmentation literature's method (FGD, USENIX ATC'23).
//!
//! Pods never leave. They are sorted by name, shuffled with the seed, and the workload is
//! inflated by sampling pods (with replacement, from the name-sorted list) until its GPU
//! request reaches `fill_to` × cluster GPU capacity. Each pod then gets exactly one attempt; a
//! pod that fits nowhere is dropped. After each pod, the allocation ratio is recorded against
//! the arrived demand.
//!
//! Differences from the FGD tooling, both deliberate: the shuffle uses Tessera's seeded
//! generator, not Go's `math/rand`, so seed 42 here is not seed 42 there (means over seeds
//! compare, single seeds do not); and inflation stops when the *total* request of the next
//! clone would pass the target (the FGD code compares the per-GPU share, a quirk).
//!
//! The method places pods one at a time, so gang membership is set aside here: a gang
//! member is tried as a lone pod. Replay mode honours gangs.

use std::sync::Arc;
use std::time::Instant;

use tessera_plugins::model::Pod;

use super::frag::{cluster_fragmentation, typical_pods};
use super::input::SimInput;
use super::record::{FillTrace, PodRecord, RunResult, TimelinePoint, Usage};
use super::{NamedConfig, build_engine};
use crate::engine::Outcome;
use crate::engine::rng::Rng;

/// Arrived-demand percentages at which fragmentation is measured (Fig. 7 of the paper).
pub const FRAG_CHECKPOINTS: [u32; 5] = [50, 70, 80, 90, 100];

/// The pods of a fill run: shuffled originals, then inflation clones.
pub fn workload(input: &SimInput, fill_to: f64, seed: u64) -> Vec<Arc<Pod>> {
    let mut sorted: Vec<Arc<Pod>> = input.pods.iter().map(|p| p.pod.clone()).collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rng = Rng::new(seed);
    let mut pods = sorted.clone();
    for i in (1..pods.len()).rev() {
        pods.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let capacity = Usage::new(input.nodes.iter()).gpu_capacity();
    let target = fill_to * capacity;
    let demand = |p: &Pod| p.gpu.as_ref().map_or(0, |g| g.total_milli()) as f64;
    let mut total: f64 = pods.iter().map(|p| demand(p)).sum();
    if total > target {
        while total > target && !pods.is_empty() {
            let gone = pods.remove(rng.below(pods.len() as u64) as usize);
            total -= demand(&gone);
        }
        return pods;
    }
    // Pods that request no GPU never move the total: without a GPU pod to sample, inflation
    // could not end.
    if !sorted.iter().any(|p| demand(p) > 0.0) {
        return pods;
    }
    let mut i = 0;
    while !sorted.is_empty() {
        let pick = &sorted[rng.below(sorted.len() as u64) as usize];
        if total + demand(pick) > target {
            break;
        }
        total += demand(pick);
        let mut clone = Pod::clone(pick);
        clone.name = Arc::from(format!("{}-tuned-{i}", pick.name));
        pods.push(Arc::new(clone));
        i += 1;
    }
    pods
}

/// `pod` outside any gang (see the module docs).
fn alone(pod: &Arc<Pod>) -> Arc<Pod> {
    if pod.pod_group.is_none() {
        return pod.clone();
    }
    let mut p = Pod::clone(pod);
    p.pod_group = None;
    Arc::new(p)
}

/// One fill run.
pub fn fill(
    input: &SimInput,
    config: &NamedConfig,
    seed: u64,
    fill_to: f64,
    threads: usize,
    progress: &super::Progress,
) -> RunResult {
    let started = Instant::now();
    let pods = workload(input, fill_to, seed);
    let typical = typical_pods(pods.iter().map(|p| p.as_ref()));
    let mut engine = build_engine(input, config, seed, threads);
    let mut usage = Usage::new(input.nodes.iter());
    let capacity = usage.gpu_capacity().max(1.0);
    let mut trace = FillTrace::default();
    let mut records = Vec::with_capacity(pods.len());
    let mut timeline = Vec::with_capacity(pods.len());
    let mut arrived = 0.0;
    let mut checkpoints = FRAG_CHECKPOINTS.iter().peekable();
    progress.set_length(pods.len() as u64);
    for (i, pod) in pods.iter().enumerate() {
        progress.inc(1);
        let now = i as f64;
        let mut rec = PodRecord::arrived(pod, now);
        arrived += pod.gpu.as_ref().map_or(0, |g| g.total_milli()) as f64;
        let _ = engine.add_pod(alone(pod), now);
        for o in engine.schedule_pending(now) {
            match o {
                Outcome::Bound { node, attempts, .. } => {
                    (rec.node, rec.start, rec.attempts) = (Some(node), Some(now), attempts);
                    usage.apply(pod, 1.0);
                }
                Outcome::Unschedulable { message, reasons, attempts, .. } => {
                    // One attempt only: the pod is dropped, as in the FGD experiments.
                    engine.delete_pod(&pod.key(), now);
                    (rec.reason, rec.reasons, rec.attempts) = (message, reasons, attempts);
                }
            }
        }
        let [cpu, memory, gpu] = usage.percent();
        let arrived_pct = 100.0 * arrived / capacity;
        trace.points.push((arrived_pct, gpu));
        while let Some(&&c) = checkpoints.peek() {
            if arrived_pct < f64::from(c) {
                break;
            }
            let (amount, ratio) =
                cluster_fragmentation(engine.state().snapshot().nodes().map(|n| n.as_ref()), &typical);
            trace.fragmentation.push((c, amount, ratio));
            checkpoints.next();
        }
        timeline.push(TimelinePoint { t: now, pending: 0, running: engine.state().placed_count(), cpu, memory, gpu });
        records.push(rec);
    }
    let fragmentation = cluster_fragmentation(engine.state().snapshot().nodes().map(|n| n.as_ref()), &typical);
    RunResult {
        config: config.name.clone(),
        seed,
        records,
        gangs: Default::default(),
        timeline,
        fill: Some(trace),
        fragmentation,
        wall_s: started.elapsed().as_secs_f64(),
        final_allocation: usage.percent(),
    }
}
