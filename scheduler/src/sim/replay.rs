//! Replay mode: arrivals and departures in virtual time.
//!
//! Each step takes every event at the next instant (departures first, so their room is free),
//! then lets the engine schedule whatever is ready, exactly as the live scheduler would
//! between two watch events. Backoff expiries are instants too.
//!
//! A pod with scheduling gates is taken in like any other: the engine's PreEnqueue
//! (SchedulingGates) keeps it waiting, reported gated. Its gates are removed when
//! `tessera.io/scheduling-gates-removed-after` says, as an update to the pod, which PreEnqueue
//! then admits.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tessera_plugins::model::{GPU_MILLI, Pod, PodKey};
use tessera_plugins::plugins::scheduling_gates;

use super::devices::{DeviceSampler, DeviceUse};
use super::frag::{TypicalPod, cluster_fragmentation, typical_pods};
use super::input::SimInput;
use super::record::{ExplainedAttempt, FRAG_SAMPLES, PodRecord, RunResult, TimelinePoint, Usage};
use super::{NamedConfig, Preemption, Progress, build_engine, cluster_nodes};
use crate::engine::{Admission, Engine, Outcome};

/// Virtual time in microseconds: an exact, totally ordered event key.
type Tick = i64;

fn tick(t: f64) -> Tick {
    (t * 1e6).round() as Tick
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Record index of a pod leaving. Sorts before arrivals at the same instant.
    Depart(usize),
    /// Index into the input's pods.
    Arrive(usize),
    /// Index into the input's pods whose scheduling gates are removed. Sorts after arrivals,
    /// so that gates removed after `0s` are removed from a pod that has arrived.
    Ungate(usize),
}

struct Replay<'a> {
    input: &'a SimInput,
    engine: Engine,
    events: BinaryHeap<Reverse<(Tick, Event)>>,
    records: Vec<PodRecord>,
    /// Run time of each record's pod once bound.
    durations: Vec<Option<f64>>,
    index: HashMap<PodKey, usize>,
    usage: Usage,
    timeline: Vec<TimelinePoint>,
    /// The explained attempts so far (`--explain`).
    explained: BTreeMap<PodKey, Vec<ExplainedAttempt>>,
    /// GPU fragmentation and DRA device use as it went.
    curves: CurveSampler,
}

/// Samples GPU fragmentation (on a cluster with GPUs) and DRA device use (with DRA devices)
/// about [`FRAG_SAMPLES`] times over the input's span (arrival plus run time of its last pod),
/// never more than four times that.
struct CurveSampler {
    typical: Vec<TypicalPod>,
    every: f64,
    next: f64,
    /// When the last sample was taken, and how many were.
    last: Option<f64>,
    samples: usize,
    gpus: bool,
    frag: Vec<(f64, f64)>,
    devices: DeviceSampler,
}

impl CurveSampler {
    fn new(input: &SimInput, gpus: bool, engine: &Engine) -> CurveSampler {
        let span = input.pods.iter().map(|p| p.arrival + p.duration.unwrap_or(0.0)).fold(0.0, f64::max);
        let every = if span > 0.0 { span / FRAG_SAMPLES as f64 } else { 1.0 };
        let typical = typical_pods(input.pods.iter().map(|p| p.pod.as_ref()));
        let devices = DeviceSampler::new(cluster_nodes(engine));
        CurveSampler { typical, every, next: 0.0, last: None, samples: 0, gpus, frag: Vec::new(), devices }
    }

    /// Samples `engine`'s cluster at `now` when a sample is due.
    fn sample(&mut self, engine: &Engine, now: f64) {
        if now < self.next || self.samples >= 4 * FRAG_SAMPLES {
            return;
        }
        if self.gpus {
            let (amount, _) = cluster_fragmentation(cluster_nodes(engine), &self.typical);
            self.frag.push((now, amount));
        }
        self.devices.sample(now, cluster_nodes(engine));
        (self.last, self.samples, self.next) = (Some(now), self.samples + 1, now + self.every);
    }

    /// The final fragmentation, and both curves, ending with a sample at `end`.
    fn finish(mut self, engine: &Engine, end: f64) -> Curves {
        let fragmentation = cluster_fragmentation(cluster_nodes(engine), &self.typical);
        if self.last.is_none_or(|t| t < end) {
            if self.gpus {
                self.frag.push((end, fragmentation.0));
            }
            self.devices.sample(end, cluster_nodes(engine));
        }
        Curves { fragmentation, frag_curve: self.frag, device_curve: self.devices.finish() }
    }
}

/// What a [`CurveSampler`] leaves for the [`RunResult`], in its fields' names.
struct Curves {
    fragmentation: (f64, f64),
    frag_curve: Vec<(f64, f64)>,
    device_curve: Vec<(f64, DeviceUse)>,
}

/// Moves the explanations `engine` made in a step at `now` into `into`, each with what came
/// of its attempt among `outcomes`.
pub(super) fn keep_explanations(
    engine: &mut Engine,
    outcomes: &[Outcome],
    now: f64,
    into: &mut BTreeMap<PodKey, Vec<ExplainedAttempt>>,
) {
    for (key, explanation) in engine.take_explanations() {
        let result = outcomes
            .iter()
            .find_map(|o| match o {
                Outcome::Bound { pod, node, .. } if pod.key() == key => Some(format!("bound to {node}")),
                Outcome::Unschedulable { pods, message, .. } if pods.iter().any(|p| p.key() == key) => {
                    Some(message.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| "tried again at once (a conflict)".to_string());
        into.entry(key).or_default().push(ExplainedAttempt { at: now, result, explanation });
    }
}

/// Upstream's message for a pod with scheduling gates (`PodScheduled` False, `SchedulingGated`).
pub const GATED_MESSAGE: &str = scheduling_gates::GATED_MESSAGE;

/// Replays `input` under one profile set.
pub fn replay(input: &SimInput, config: &NamedConfig, seed: u64, threads: usize, progress: &Progress) -> RunResult {
    replay_explaining(input, config, seed, threads, progress, &HashSet::new())
}

/// As [`replay`], explaining every scheduling attempt of the pods `explain`
/// ([`RunResult::explained`]).
pub fn replay_explaining(
    input: &SimInput,
    config: &NamedConfig,
    seed: u64,
    threads: usize,
    progress: &Progress,
    explain: &HashSet<PodKey>,
) -> RunResult {
    let started = Instant::now();
    let mut engine = build_engine(input, config, seed, threads, Preemption::AsConfigured);
    if !explain.is_empty() {
        engine.explain_pods(explain.clone());
    }
    let usage = Usage::new(input.nodes.iter());
    let curves = CurveSampler::new(input, usage.gpu_capacity() > 0.0, &engine);
    let mut r = Replay {
        input,
        engine,
        curves,
        explained: BTreeMap::new(),
        events: input.pods.iter().enumerate().map(|(i, p)| Reverse((tick(p.arrival), Event::Arrive(i)))).collect(),
        records: Vec::with_capacity(input.pods.len() + input.running.len()),
        durations: Vec::with_capacity(input.pods.len() + input.running.len()),
        index: HashMap::with_capacity(input.pods.len()),
        usage,
        timeline: Vec::new(),
    };
    r.start_running();
    progress.set_length(input.pods.len() as u64);
    while let Some(t) = r.next_instant() {
        r.step(t, progress);
    }
    r.finish(&config.name, seed, started)
}

impl Replay<'_> {
    /// Marks record `r` as waiting behind a PreEnqueue plugin: never tried, so not
    /// unschedulable. Scheduling gates show upstream's `SchedulingGated` message; another
    /// plugin's rejection shows its own.
    fn record_gated(&mut self, r: usize, plugin: &str, message: &str) {
        let reason = if plugin == scheduling_gates::NAME { GATED_MESSAGE } else { message };
        let rec = &mut self.records[r];
        rec.gated = true;
        rec.reason = reason.to_string();
        rec.reasons = vec![reason.to_string()];
    }

    fn start_running(&mut self) {
        for pod in &self.input.running {
            let i = self.record(pod, 0.0, None);
            match self.engine.add_pod(pod.clone(), 0.0) {
                Ok(admission) => {
                    self.records[i].node = pod.node_name;
                    self.records[i].start = Some(0.0);
                    self.records[i].already_bound = true;
                    // A pod bound to a node the cluster lacks holds none of the cluster's room.
                    if admission != Admission::AwaitingNode {
                        self.usage.apply(pod, 1.0);
                    }
                }
                Err(e) => self.records[i].reason = e.to_string(),
            }
        }
    }

    fn record(&mut self, pod: &Pod, arrival: f64, duration: Option<f64>) -> usize {
        self.records.push(PodRecord::arrived(pod, arrival));
        self.durations.push(duration);
        self.index.insert(pod.key(), self.records.len() - 1);
        self.records.len() - 1
    }

    fn next_instant(&self) -> Option<Tick> {
        let event = self.events.peek().map(|Reverse((t, _))| *t);
        let backoff = self.engine.next_wakeup().map(tick);
        match (event, backoff) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn step(&mut self, t: Tick, progress: &Progress) {
        let now = t as f64 / 1e6;
        while let Some(Reverse((at, ev))) = self.events.peek().copied() {
            if at != t {
                break;
            }
            self.events.pop();
            match ev {
                Event::Depart(i) => self.depart(i, now),
                Event::Arrive(i) => {
                    progress.inc(1);
                    self.arrive(i, now);
                }
                Event::Ungate(i) => self.ungate(i, now),
            }
        }
        let outcomes = self.engine.schedule_pending(now);
        self.take_explanations(&outcomes, now);
        for o in outcomes {
            self.apply(o, now);
        }
        let [cpu, memory, gpu] = self.usage.percent();
        let running = self.engine.state().placed_count();
        let queue = self.engine.queue();
        let pending = queue.len() + queue.gangs.waiting_len() + queue.gated_len();
        self.timeline.push(TimelinePoint { t: now, pending, running, cpu, memory, gpu });
        self.curves.sample(&self.engine, now);
    }

    /// Keeps the attempts explained in this step, each with what came of it.
    fn take_explanations(&mut self, outcomes: &[Outcome], now: f64) {
        keep_explanations(&mut self.engine, outcomes, now, &mut self.explained);
    }

    fn arrive(&mut self, i: usize, now: f64) {
        let sp = &self.input.pods[i];
        let r = self.record(&sp.pod, now, sp.duration);
        match self.engine.add_pod(sp.pod.clone(), now) {
            Ok(Admission::Gated { plugin, message }) => self.record_gated(r, plugin, &message),
            Ok(_) => {}
            Err(e) => self.records[r].reason = e.to_string(),
        }
        if let Some(after) = sp.gates_removed_after.filter(|_| !sp.pod.scheduling_gates.is_empty()) {
            self.events.push(Reverse((tick(now + after), Event::Ungate(i))));
        }
    }

    /// The pod's scheduling gates are removed: the engine takes in the updated pod.
    fn ungate(&mut self, i: usize, now: f64) {
        let sp = &self.input.pods[i];
        let Some(&r) = self.index.get(&sp.pod.key()) else { return };
        if self.records[r].start.is_some() {
            // Placed already (its profile does not gate): nothing waits for the gates.
            return;
        }
        let pod = Arc::new(Pod { scheduling_gates: Vec::new(), ..Pod::clone(&sp.pod) });
        let rec = &mut self.records[r];
        (rec.gated, rec.reason, rec.reasons) = (false, String::new(), Vec::new());
        match self.engine.update_pod(pod, now) {
            Ok(Admission::Gated { plugin, message }) => self.record_gated(r, plugin, &message),
            Ok(_) => {}
            Err(e) => self.records[r].reason = e.to_string(),
        }
    }

    fn depart(&mut self, i: usize, now: f64) {
        if self.records[i].preempted_by.is_some() {
            // Evicted before its time: it left then.
            return;
        }
        let key = self.records[i].key.clone();
        if let Some(pod) = self.pod_of(i) {
            self.usage.apply(&pod, -1.0);
        }
        self.engine.delete_pod(&key, now);
        self.records[i].end = Some(now);
    }

    fn pod_of(&self, i: usize) -> Option<Arc<Pod>> {
        let key = &self.records[i].key;
        let id = self.engine.state().node_of(key)?;
        let node = self.engine.state().snapshot().node(id)?;
        node.pods.iter().find(|p| &p.key() == key).cloned()
    }

    fn apply(&mut self, outcome: Outcome, now: f64) {
        match outcome {
            Outcome::Bound { pod, node, attempts, gpus, claims, .. } => {
                let Some(&i) = self.index.get(&pod.key()) else { return };
                let rec = &mut self.records[i];
                (rec.node, rec.start, rec.attempts, rec.gpus) = (Some(node), Some(now), attempts, gpus);
                rec.devices = claims.iter().flat_map(|c| c.devices.iter().map(|d| d.device)).collect();
                rec.nominated = None;
                rec.reason.clear();
                rec.reasons.clear();
                self.usage.apply(&pod, 1.0);
                if let Some(d) = self.durations[i] {
                    self.events.push(Reverse((tick(now + d), Event::Depart(i))));
                }
            }
            Outcome::Unschedulable { pods, message, reasons, attempts, nominated, .. } => {
                for (k, pod) in pods.iter().enumerate() {
                    if let Some(&i) = self.index.get(&pod.key()) {
                        let rec = &mut self.records[i];
                        (rec.reason, rec.reasons, rec.attempts) = (message.clone(), reasons.clone(), attempts);
                        rec.nominated = nominated.get(k).copied().flatten();
                    }
                }
            }
            // The engine evicted the victim already (the simulator's API deletes at once).
            Outcome::Preempted { pod, by, .. } => {
                if let Some(&i) = self.index.get(&by) {
                    self.records[i].victims += 1;
                }
                let Some(&i) = self.index.get(&pod.key()) else { return };
                self.usage.apply(&pod, -1.0);
                let rec = &mut self.records[i];
                rec.end = Some(now);
                rec.reason = format!("preempted by {by}");
                rec.preempted_by = Some(by);
            }
        }
    }

    fn finish(mut self, config: &str, seed: u64, started: Instant) -> RunResult {
        // Gang members still held back never had a scheduling attempt: their reason is why
        // they were held.
        for (pod, why) in self.engine.waiting_gang_members() {
            if let Some(&i) = self.index.get(&pod.key()) {
                self.records[i].reasons = vec![why.clone()];
                self.records[i].reason = why;
            }
        }
        let end = self.timeline.last().map_or(0.0, |p| p.t);
        let Curves { fragmentation, frag_curve, device_curve } = self.curves.finish(&self.engine, end);
        RunResult {
            config: config.to_string(),
            seed,
            records: self.records,
            timeline: self.timeline,
            fill: None,
            fragmentation,
            frag_curve,
            device_curve,
            wall_s: started.elapsed().as_secs_f64(),
            final_allocation: self.usage.percent(),
            cluster_gpus: self.usage.gpu_capacity() / GPU_MILLI as f64,
            gangs: self.engine.gang_records(),
            explained: std::mem::take(&mut self.explained),
        }
    }
}
