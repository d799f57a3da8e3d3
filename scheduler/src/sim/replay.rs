//! Replay mode: arrivals and departures in virtual time.
//!
//! Each step takes every event at the next instant (departures first, so their room is free),
//! then lets the engine schedule whatever is ready, exactly as the live scheduler would
//! between two watch events. Backoff expiries are instants too.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use tessera_plugins::model::{GPU_MILLI, Pod, PodKey};

use super::frag::{cluster_fragmentation, typical_pods};
use super::input::SimInput;
use super::record::{PodRecord, RunResult, TimelinePoint, Usage};
use super::{NamedConfig, Preemption, Progress, build_engine};
use crate::engine::{Engine, Outcome};

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
}

/// Upstream's message for a pod with scheduling gates (`PodScheduled` False, `SchedulingGated`).
pub const GATED_MESSAGE: &str = "Scheduling is blocked due to non-empty scheduling gates";

/// Replays `input` under one profile set.
pub fn replay(input: &SimInput, config: &NamedConfig, seed: u64, threads: usize, progress: &Progress) -> RunResult {
    let started = Instant::now();
    let mut r = Replay {
        input,
        engine: build_engine(input, config, seed, threads, Preemption::AsConfigured),
        events: input.pods.iter().enumerate().map(|(i, p)| Reverse((tick(p.arrival), Event::Arrive(i)))).collect(),
        records: Vec::with_capacity(input.pods.len() + input.running.len()),
        durations: Vec::with_capacity(input.pods.len() + input.running.len()),
        index: HashMap::with_capacity(input.pods.len()),
        usage: Usage::new(input.nodes.iter()),
        timeline: Vec::new(),
    };
    r.start_running();
    r.record_gated();
    progress.set_length(input.pods.len() as u64);
    while let Some(t) = r.next_instant() {
        r.step(t, progress);
    }
    r.finish(&config.name, seed, started)
}

impl Replay<'_> {
    /// Records the gated pods, which wait (upstream's `SchedulingGated` condition).
    fn record_gated(&mut self) {
        for pod in &self.input.gated {
            let i = self.record(pod, 0.0, None);
            self.records[i].gated = true;
            self.records[i].reason = GATED_MESSAGE.to_string();
            self.records[i].reasons = vec![GATED_MESSAGE.to_string()];
        }
    }

    fn start_running(&mut self) {
        for pod in &self.input.running {
            let i = self.record(pod, 0.0, None);
            if self.engine.add_pod(pod.clone(), 0.0).is_ok() {
                self.records[i].node = pod.node_name;
                self.records[i].start = Some(0.0);
                self.records[i].already_bound = true;
                self.usage.apply(pod, 1.0);
            } else {
                self.records[i].reason =
                    format!("spec.nodeName {} is not a node of the cluster", pod.node_name.map_or("", |n| n.as_str()));
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
            }
        }
        let outcomes = self.engine.schedule_pending(now);
        for o in outcomes {
            self.apply(o, now);
        }
        let [cpu, memory, gpu] = self.usage.percent();
        let running = self.engine.state().placed_count();
        let pending = self.engine.queue().len() + self.engine.queue().gangs.waiting_len();
        self.timeline.push(TimelinePoint { t: now, pending, running, cpu, memory, gpu });
    }

    fn arrive(&mut self, i: usize, now: f64) {
        let sp = &self.input.pods[i];
        let r = self.record(&sp.pod, now, sp.duration);
        if let Err(e) = self.engine.add_pod(sp.pod.clone(), now) {
            self.records[r].reason = e.to_string();
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
                rec.reason.clear();
                rec.reasons.clear();
                self.usage.apply(&pod, 1.0);
                if let Some(d) = self.durations[i] {
                    self.events.push(Reverse((tick(now + d), Event::Depart(i))));
                }
            }
            Outcome::Unschedulable { pods, message, reasons, attempts, .. } => {
                for pod in pods {
                    if let Some(&i) = self.index.get(&pod.key()) {
                        let rec = &mut self.records[i];
                        (rec.reason, rec.reasons, rec.attempts) = (message.clone(), reasons.clone(), attempts);
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
        let typical = typical_pods(self.input.pods.iter().map(|p| p.pod.as_ref()));
        let fragmentation = cluster_fragmentation(self.engine.state().snapshot().nodes().map(|n| n.as_ref()), &typical);
        RunResult {
            config: config.to_string(),
            seed,
            records: self.records,
            timeline: self.timeline,
            fill: None,
            fragmentation,
            wall_s: started.elapsed().as_secs_f64(),
            final_allocation: self.usage.percent(),
            cluster_gpus: self.usage.gpu_capacity() / GPU_MILLI as f64,
            gangs: self.engine.gang_records(),
        }
    }
}
