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
//! member is tried as a lone pod. Replay mode honours gangs. A pod a PreEnqueue plugin keeps
//! out (scheduling gates, which fill mode never removes) is reported gated and dropped.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tessera_plugins::model::{GPU_MILLI, Pod, PodKey};
use tessera_plugins::plugins::scheduling_gates;
use thiserror::Error;

use super::devices::DeviceSampler;
use super::frag::{cluster_fragmentation, typical_pods};
use super::input::SimInput;
use super::record::{FRAG_SAMPLES, FRAG_STEP_PCT, FillTrace, PodRecord, RunResult, TimelinePoint, Usage};
use super::replay::keep_explanations;
use super::{NamedConfig, Preemption, build_engine, cluster_nodes};
use crate::engine::rng::Rng;
use crate::engine::{Admission, Outcome};

/// Arrived-demand percentages at which fragmentation is measured (Fig. 7 of the paper).
pub const FRAG_CHECKPOINTS: [u32; 5] = [50, 70, 80, 90, 100];

/// Most clones inflation may add to a fill run. Each pod costs a Filter pass over the cluster
/// and about 1.5 KB of records; the FGD trace at 1.3 adds under 3,000, so this is room for a
/// far larger experiment, while a workload of tiny GPU shares (1 milli-GPU) or a huge
/// `--fill-to` would otherwise clone until memory runs out.
pub const MAX_FILL_CLONES: usize = 1_000_000;

/// Why a fill run cannot be played.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FillError {
    /// Reaching the target would take more than [`MAX_FILL_CLONES`] clones.
    #[error(
        "fill mode: inflating the workload to {fill_to} x the cluster's {gpus} GPUs would take more than \
         {MAX_FILL_CLONES} clones of its pods (seed {seed}; its pods ask for {mean_milli:.1} milli-GPU each on \
         average): lower --fill-to, or give a workload whose pods ask for more GPU"
    )]
    TooManyClones {
        /// `--fill-to`.
        fill_to: f64,
        /// Whole GPUs in the cluster.
        gpus: f64,
        /// The seed whose inflation passed the limit.
        seed: u64,
        /// Mean GPU request per pod, in thousandths of a GPU.
        mean_milli: f64,
    },
}

/// A fill run's pods as indices into the name-sorted pods, in play order: the shuffled
/// originals (thinned when they alone pass the target), then the sampled clones.
#[derive(Debug)]
struct Plan {
    /// Indices into the sorted pods.
    order: Vec<usize>,
    /// How many leading entries of `order` are originals; the rest are clones.
    originals: usize,
    /// Inflation stopped at [`MAX_FILL_CLONES`] short of the target.
    capped: bool,
}

/// Plans a run over pods asking `demands` milli-GPU (in name order) up to `target` milli-GPU.
/// Only indices move here, so [`check`] can plan every seed before anything is cloned.
fn plan(demands: &[f64], target: f64, seed: u64) -> Plan {
    let mut rng = Rng::new(seed);
    let mut order: Vec<usize> = (0..demands.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut total: f64 = order.iter().map(|&i| demands[i]).sum();
    if total > target {
        while total > target && !order.is_empty() {
            let gone = order.remove(rng.below(order.len() as u64) as usize);
            total -= demands[gone];
        }
        return Plan { originals: order.len(), order, capped: false };
    }
    let originals = order.len();
    // Pods that request no GPU never move the total: without a GPU pod to sample, inflation
    // could not end.
    if !demands.iter().any(|d| *d > 0.0) {
        return Plan { order, originals, capped: false };
    }
    let mut capped = false;
    while !demands.is_empty() {
        if order.len() - originals >= MAX_FILL_CLONES {
            capped = true;
            break;
        }
        let pick = rng.below(demands.len() as u64) as usize;
        if total + demands[pick] > target {
            break;
        }
        total += demands[pick];
        order.push(pick);
    }
    Plan { order, originals, capped }
}

/// The input's pods sorted by name, with their GPU request in milli-GPU.
fn sorted_demands(input: &SimInput) -> (Vec<Arc<Pod>>, Vec<f64>) {
    let mut sorted: Vec<Arc<Pod>> = input.pods.iter().map(|p| p.pod.clone()).collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let demands = sorted.iter().map(|p| p.gpu.as_ref().map_or(0, |g| g.total_milli()) as f64).collect();
    (sorted, demands)
}

/// Fails when a seed of `seeds` would inflate past [`MAX_FILL_CLONES`]: run before any
/// simulation, so a run that cannot finish is refused up front rather than cut short.
pub fn check(input: &SimInput, fill_to: f64, seeds: impl IntoIterator<Item = u64>) -> Result<(), FillError> {
    let (_, demands) = sorted_demands(input);
    let capacity = Usage::new(input.nodes.iter()).gpu_capacity();
    for seed in seeds {
        if plan(&demands, fill_to * capacity, seed).capped {
            let mean_milli = demands.iter().sum::<f64>() / demands.len().max(1) as f64;
            return Err(FillError::TooManyClones { fill_to, gpus: capacity / 1000.0, seed, mean_milli });
        }
    }
    Ok(())
}

/// The pods of a fill run: shuffled originals, then inflation clones (at most
/// [`MAX_FILL_CLONES`]; [`check`] refuses a run that would need more).
pub fn workload(input: &SimInput, fill_to: f64, seed: u64) -> Vec<Arc<Pod>> {
    let (sorted, demands) = sorted_demands(input);
    let capacity = Usage::new(input.nodes.iter()).gpu_capacity();
    let plan = plan(&demands, fill_to * capacity, seed);
    if plan.capped {
        tracing::warn!(
            "fill mode, seed {seed}: inflation stopped at {MAX_FILL_CLONES} clones, short of --fill-to {fill_to}"
        );
    }
    let mut taken: HashSet<PodKey> = sorted.iter().map(|p| p.key()).collect();
    let (originals, clones) = plan.order.split_at(plan.originals);
    let mut pods: Vec<Arc<Pod>> = originals.iter().map(|&i| sorted[i].clone()).collect();
    pods.reserve(clones.len());
    for (n, &i) in clones.iter().enumerate() {
        pods.push(Arc::new(clone_of(&sorted[i], n, &mut taken)));
    }
    pods
}

/// Clone number `n` of `pod`, named `<name>-tuned-<n>` as the FGD tooling names them, or with
/// a further `-<k>` when an input pod already has that name: pods are told apart by
/// `namespace/name`, and two with one key would be accounted on top of each other.
fn clone_of(pod: &Pod, n: usize, taken: &mut HashSet<PodKey>) -> Pod {
    let base = format!("{}-tuned-{n}", pod.name);
    let mut key = PodKey { namespace: pod.namespace, name: Arc::from(base.as_str()) };
    let mut k = 1;
    while taken.contains(&key) {
        key.name = Arc::from(format!("{base}-{k}"));
        k += 1;
    }
    taken.insert(key.clone());
    Pod { name: key.name, ..pod.clone() }
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
    fill_explaining(input, config, seed, fill_to, threads, progress, &HashSet::new())
}

/// As [`fill`], explaining the attempt of each pod of `explain` ([`RunResult::explained`]).
pub fn fill_explaining(
    input: &SimInput,
    config: &NamedConfig,
    seed: u64,
    fill_to: f64,
    threads: usize,
    progress: &super::Progress,
    explain: &HashSet<PodKey>,
) -> RunResult {
    let started = Instant::now();
    let pods = workload(input, fill_to, seed);
    let typical = typical_pods(pods.iter().map(|p| p.as_ref()));
    let mut engine = build_engine(input, config, seed, threads, Preemption::Off);
    if !explain.is_empty() {
        engine.explain_pods(explain.clone());
    }
    let mut explained = BTreeMap::new();
    let mut usage = Usage::new(input.nodes.iter());
    let capacity = usage.gpu_capacity().max(1.0);
    let mut trace = FillTrace::default();
    let mut records = Vec::with_capacity(pods.len());
    let mut timeline = Vec::with_capacity(pods.len());
    let mut arrived = 0.0;
    let mut checkpoints = FRAG_CHECKPOINTS.iter().peekable();
    let gpus = usage.gpu_capacity() > 0.0;
    let mut frag_curve = Vec::new();
    let mut next_frag = 0u32;
    let mut devices = DeviceSampler::new(cluster_nodes(&engine));
    let device_every = (pods.len() / FRAG_SAMPLES).max(1);
    progress.set_length(pods.len() as u64);
    for (i, pod) in pods.iter().enumerate() {
        progress.inc(1);
        let now = i as f64;
        let mut rec = PodRecord::arrived(pod, now);
        arrived += pod.gpu.as_ref().map_or(0, |g| g.total_milli()) as f64;
        if let Ok(Admission::Gated { plugin, message }) = engine.add_pod(alone(pod), now) {
            // Never tried and never ungated in fill mode: reported gated, then dropped.
            engine.delete_pod(&pod.key(), now);
            let reason =
                if plugin == scheduling_gates::NAME { scheduling_gates::GATED_MESSAGE.to_string() } else { message };
            (rec.gated, rec.reasons, rec.reason) = (true, vec![reason.clone()], reason);
        }
        let outcomes = engine.schedule_pending(now);
        keep_explanations(&mut engine, &outcomes, now, &mut explained);
        for o in outcomes {
            match o {
                Outcome::Bound { node, attempts, gpus, claims, .. } => {
                    (rec.node, rec.start, rec.attempts, rec.gpus) = (Some(node), Some(now), attempts, gpus);
                    rec.devices = claims.iter().flat_map(|c| c.devices.iter().map(|d| d.device)).collect();
                    usage.apply(pod, 1.0);
                }
                Outcome::Unschedulable { message, reasons, attempts, .. } => {
                    // One attempt only: the pod is dropped, as in the FGD experiments.
                    engine.delete_pod(&pod.key(), now);
                    (rec.reason, rec.reasons, rec.attempts) = (message, reasons, attempts);
                }
                // The engine is built without preemption for fill mode: pods never leave.
                Outcome::Preempted { .. } => {}
            }
        }
        let [cpu, memory, gpu] = usage.percent();
        let arrived_pct = 100.0 * arrived / capacity;
        trace.points.push((arrived_pct, gpu));
        while let Some(&&c) = checkpoints.peek() {
            if arrived_pct < f64::from(c) {
                break;
            }
            let (amount, ratio) = cluster_fragmentation(cluster_nodes(&engine), &typical);
            trace.fragmentation.push((c, amount, ratio));
            checkpoints.next();
        }
        if gpus && arrived_pct >= f64::from(next_frag) {
            let (amount, _) = cluster_fragmentation(cluster_nodes(&engine), &typical);
            while arrived_pct >= f64::from(next_frag) {
                frag_curve.push((f64::from(next_frag), amount));
                next_frag += FRAG_STEP_PCT;
            }
        }
        if i % device_every == 0 || i + 1 == pods.len() {
            devices.sample(now, cluster_nodes(&engine));
        }
        timeline.push(TimelinePoint { t: now, pending: 0, running: engine.state().placed_count(), cpu, memory, gpu });
        records.push(rec);
    }
    let fragmentation = cluster_fragmentation(cluster_nodes(&engine), &typical);
    RunResult {
        config: config.name.clone(),
        seed,
        records,
        gangs: Default::default(),
        timeline,
        fill: Some(trace),
        fragmentation,
        frag_curve,
        device_curve: devices.finish(),
        wall_s: started.elapsed().as_secs_f64(),
        final_allocation: usage.percent(),
        cluster_gpus: usage.gpu_capacity() / GPU_MILLI as f64,
        explained,
    }
}

#[cfg(test)]
mod tests {
    use tessera_plugins::intern::Sym;
    use tessera_plugins::labels::LabelSet;
    use tessera_plugins::model::{Gpu, GpuRequest, Node};
    use tessera_plugins::resources::ResourceVec;

    use super::*;
    use crate::sim::input::SimPod;

    /// `count` nodes of 64 GPUs each.
    fn nodes(count: usize) -> Vec<Node> {
        let gpu = Gpu::new(Sym::new("G"), 0);
        (0..count)
            .map(|i| Node {
                name: Sym::new(&format!("n{i}")),
                labels: LabelSet::default(),
                taints: Vec::new(),
                unschedulable: false,
                allocatable: ResourceVec::cpu_mem(64_000, 1 << 40),
                allowed_pods: 110,
                images: Vec::new(),
                gpus: vec![gpu.clone(); 64],
                devices: Default::default(),
            })
            .collect()
    }

    /// A pod named `name` asking `milli` of one GPU.
    fn pod(name: &str, milli: u32) -> SimPod {
        let mut pod = Pod::new("default", name, ResourceVec::cpu_mem(100, 1 << 20));
        pod.gpu = Some(GpuRequest { count: 1, milli, models: Vec::new() });
        SimPod { pod: Arc::new(pod), arrival: 0.0, duration: None, gates_removed_after: None }
    }

    #[test]
    fn inflation_that_would_pass_the_clone_limit_is_refused_before_any_run() {
        // 13 x 64 GPUs at 1.3, one milli-GPU a pod: 1,081,600 clones.
        let input = SimInput { nodes: nodes(13), pods: vec![pod("tiny", 1)], ..SimInput::default() };
        let e = check(&input, 1.3, [42]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "fill mode: inflating the workload to 1.3 x the cluster's 832 GPUs would take more than 1000000 \
             clones of its pods (seed 42; its pods ask for 1.0 milli-GPU each on average): lower --fill-to, or \
             give a workload whose pods ask for more GPU"
        );
        // 12 nodes need 998,400: allowed.
        let input = SimInput { nodes: nodes(12), ..input };
        check(&input, 1.3, 42..52).unwrap();
    }

    #[test]
    fn inflation_stops_at_the_clone_limit_whatever_the_target() {
        let plan = plan(&[1.0, 0.0], 1e308, 1);
        assert!(plan.capped);
        assert_eq!((plan.originals, plan.order.len()), (2, 2 + MAX_FILL_CLONES));
        let plan = super::plan(&[1.0, 0.0], 10.0, 1);
        assert!(!plan.capped);
        assert_eq!(plan.order.iter().filter(|&&i| i == 0).count(), 10);
    }

    #[test]
    fn clones_never_take_the_name_of_an_input_pod() {
        // Input pods named as clones of `a` would be: some clone of `a` must step aside.
        let mut pods = vec![pod("a", 500)];
        pods.extend((0..300).map(|n| pod(&format!("a-tuned-{n}"), 0)));
        let input = SimInput { nodes: nodes(1), pods, ..SimInput::default() };
        let played = workload(&input, 1.3, 42);
        let keys: HashSet<PodKey> = played.iter().map(|p| p.key()).collect();
        assert_eq!(keys.len(), played.len(), "two pods of the fill run share a name");
        let stepped_aside = |p: &&Arc<Pod>| p.name.strip_prefix("a-tuned-").is_some_and(|n| n.contains('-'));
        assert!(played.iter().any(|p| stepped_aside(&p)), "no clone met an input pod's name: the test tests nothing");

        let mut taken = HashSet::from([PodKey::new("default", "b-tuned-3"), PodKey::new("default", "b-tuned-3-1")]);
        let clone = clone_of(&pod("b", 1).pod, 3, &mut taken);
        assert_eq!(&*clone.name, "b-tuned-3-2");
        assert!(taken.contains(&clone.key()));
    }
}
