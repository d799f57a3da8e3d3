//! The engine: cluster state, queue, workers and binder, driven either step by step (the
//! simulator, deterministic whatever the thread count) or by K worker threads racing over
//! their own snapshots (the live scheduler and `tessera bench`).
//!
//! Both drives share every piece — [`worker::Worker::schedule`] proposes, [`binder::Binder::commit`]
//! decides — and differ only in who calls them and on which clock.

pub mod algorithm;
pub mod binder;
pub mod gang;
pub mod gang_placement;
pub mod gang_status;
pub mod queue;
pub mod reservation;
pub mod reuse;
pub mod rng;
pub mod state;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use tessera_plugins::framework::Profile;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GroupKey, Node, Pod, PodGroup, PodKey};

use self::binder::{Binder, BinderStats, Verdict};
use self::gang::{GangOptions, GangRecord, GangTable};
use self::queue::{BackoffPolicy, SchedulingQueue, Unit};
use self::reservation::Reservation;
use self::reuse::ReuseStats;
use self::state::{ClusterState, StateError};
use self::worker::{Attempt, Worker};

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Worker count for the parallel drive (the step drive uses one worker).
    pub workers: usize,
    /// Seed for tie-breaking.
    pub seed: u64,
    /// Evaluate Filter over chunks of nodes in parallel within one pod.
    pub parallel_filter: bool,
    /// Queue backoff.
    pub backoff: BackoffPolicy,
    /// Gang scheduling.
    pub gang: GangOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            workers: 1,
            seed: 0,
            parallel_filter: false,
            backoff: BackoffPolicy::default(),
            gang: GangOptions::default(),
        }
    }
}

/// What became of a unit in one scheduling attempt.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A pod was placed (assumed; the driver writes the binding).
    Bound {
        /// The pod.
        pod: Arc<Pod>,
        /// Its node.
        node: Sym,
        /// Attempts it took.
        attempts: u32,
        /// When it was first queued.
        queued_at: f64,
        /// When it was placed.
        at: f64,
    },
    /// A unit fit nowhere; it is parked until a cluster event.
    Unschedulable {
        /// Its pods.
        pods: Vec<Arc<Pod>>,
        /// The message a pending pod's `PodScheduled` condition shows.
        message: String,
        /// The distinct reasons inside the message ("Insufficient cpu"), for tallies.
        reasons: Vec<String>,
        /// Attempts so far.
        attempts: u32,
        /// When.
        at: f64,
    },
}

/// What happened to a pod given to [`Engine::add_pod`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Queued for scheduling.
    Queued,
    /// Already running on its `spec.nodeName`; accounted on that node.
    Running,
    /// Its `schedulerName` belongs to no profile: not ours.
    NotOurs,
    /// A gang member held back until its gang may enter the queue.
    Waiting,
}

/// Counters for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Binder counters.
    pub binder: BinderStats,
    /// Scheduling attempts (proposals and failures).
    pub attempts: u64,
    /// Node-local work the workers reused across pods of one signature, summed.
    pub reuse: ReuseStats,
}

/// The scheduling engine. See the module docs.
#[derive(Debug)]
pub struct Engine {
    state: ClusterState,
    queue: SchedulingQueue,
    profiles: Vec<Arc<Profile>>,
    by_scheduler: HashMap<Sym, usize>,
    binder: Binder,
    workers: Vec<Worker>,
    answered: Vec<u64>,
    attempts: u64,
    gang: GangOptions,
    reservation: Option<Reservation>,
}

impl Engine {
    /// An engine with `profiles` (at least one) and `opts`.
    pub fn new(profiles: Vec<Profile>, opts: EngineOptions) -> Engine {
        let profiles: Vec<Arc<Profile>> = profiles.into_iter().map(Arc::new).collect();
        let by_scheduler = profiles.iter().enumerate().map(|(i, p)| (Sym::new(&p.scheduler_name), i)).collect();
        let k = opts.workers.max(1);
        let mut state = ClusterState::new();
        for key in profiles.iter().flat_map(|p| p.plugins()).flat_map(|p| p.topology_keys()) {
            state.track_topology_key(key);
        }
        Engine {
            state,
            queue: SchedulingQueue::with_gangs(opts.backoff, GangTable::new(opts.gang.default_timeout_s)),
            profiles,
            by_scheduler,
            binder: Binder::new(),
            workers: (0..k)
                .map(|i| Worker::new(i, opts.seed, opts.parallel_filter, opts.gang.topology_hierarchy.clone()))
                .collect(),
            answered: vec![0; k],
            attempts: 0,
            gang: opts.gang,
            reservation: None,
        }
    }

    /// The live cluster state.
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// The queue.
    pub fn queue(&self) -> &SchedulingQueue {
        &self.queue
    }

    /// The profiles.
    pub fn profiles(&self) -> &[Arc<Profile>] {
        &self.profiles
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        let reuse = self.workers.iter().map(Worker::reuse_stats).fold(ReuseStats::default(), |a, b| ReuseStats {
            filter_hits: a.filter_hits + b.filter_hits,
            filter_misses: a.filter_misses + b.filter_misses,
            score_hits: a.score_hits + b.score_hits,
            score_misses: a.score_misses + b.score_misses,
        });
        EngineStats { binder: self.binder.stats, attempts: self.attempts, reuse }
    }

    /// Adds or updates a node; parked pods get another chance.
    pub fn upsert_node(&mut self, node: Node, now: f64) {
        self.state.upsert_node(node);
        self.queue.move_all_to_active_or_backoff(now);
    }

    /// Removes a node. Pods that were on it are returned (their controllers would recreate
    /// them; the engine does not requeue them itself).
    pub fn remove_node(&mut self, name: Sym) -> Vec<Arc<Pod>> {
        self.state.remove_node(name)
    }

    /// Replaces the namespace table (for namespace selectors).
    pub fn set_namespaces(&mut self, namespaces: HashMap<Sym, tessera_plugins::labels::LabelSet>) {
        self.state.set_namespaces(namespaces);
    }

    /// Takes in a pod: queues it, or accounts it where it already runs.
    pub fn add_pod(&mut self, pod: Arc<Pod>, now: f64) -> Result<Admission, StateError> {
        if pod.node_name.is_some() {
            self.state.place_on_named_node(pod.clone())?;
            self.queue.gangs.add_running(&pod, now);
            return Ok(Admission::Running);
        }
        let Some(&profile) = self.by_scheduler.get(&pod.scheduler_name) else {
            return Ok(Admission::NotOurs);
        };
        self.state.track_keys_of(&pod);
        match self.queue.gangs.add_member(pod, profile, now) {
            Ok(pod) => {
                let seq = self.queue.next_seq();
                self.queue.push_active(Unit::single(pod, profile, now, seq));
                Ok(Admission::Queued)
            }
            Err(gang) => Ok(if self.form_gang(gang, now) { Admission::Queued } else { Admission::Waiting }),
        }
    }

    /// Adds or replaces a PodGroup. Its waiting members enter the queue as one unit once
    /// `minCount` of them exist; a queued gang whose `minCount` changed is formed anew.
    pub fn upsert_pod_group(&mut self, group: PodGroup, now: f64) {
        let update = self.queue.gangs.upsert_group(group, now);
        if update.requeue {
            self.take_back_gang(update.key);
            self.release_held_for(update.key, now);
        }
        self.form_gang(update.key, now);
    }

    /// Forgets a PodGroup: its members not yet placed wait for it again.
    pub fn remove_pod_group(&mut self, key: GroupKey, now: f64) {
        if self.queue.gangs.remove_group(key) {
            self.take_back_gang(key);
        }
        self.release_held_for(key, now);
    }

    /// Every gang with a PodGroup and what became of it.
    pub fn gang_records(&self) -> std::collections::BTreeMap<String, GangRecord> {
        self.queue.gangs.records()
    }

    /// Gang members held outside the queue, with the message their `PodScheduled` condition
    /// shows.
    pub fn waiting_gang_members(&self) -> impl Iterator<Item = (&Arc<Pod>, String)> + '_ {
        self.queue.gangs.waiting()
    }

    /// The reservation in force, if any.
    pub fn reservation(&self) -> Option<&Reservation> {
        self.reservation.as_ref()
    }

    /// When the engine next has something to do without any new event: a backoff ending or a
    /// reservation lapsing.
    pub fn next_wakeup(&self) -> Option<f64> {
        let lapse = self.reservation.as_ref().map(|r| r.until);
        match (self.queue.next_backoff_ready(), lapse) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn take_back_gang(&mut self, key: GroupKey) {
        if let Some(unit) = self.queue.take_gang_unit(key) {
            self.queue.gangs.take_back(key, unit);
        }
    }

    /// PreEnqueue for gang `key`: queues its unit if it may enter now.
    fn form_gang(&mut self, key: GroupKey, now: f64) -> bool {
        let seq = self.queue.next_seq();
        match self.queue.gangs.form(key, seq, now) {
            Some(unit) => {
                self.queue.push_active(unit);
                true
            }
            None => false,
        }
    }

    /// Lets a reservation lapse once its time is up.
    fn expire_reservation(&mut self, now: f64) {
        if self.reservation.as_ref().is_some_and(|r| r.until <= now) {
            release(&mut self.state, &mut self.queue, &mut self.reservation, now);
        }
    }

    /// Releases the reservation if gang `key` holds it.
    fn release_held_for(&mut self, key: GroupKey, now: f64) {
        if self.reservation.as_ref().is_some_and(|r| r.gang == key) {
            release(&mut self.state, &mut self.queue, &mut self.reservation, now);
        }
    }

    /// A pod is gone (finished or deleted): frees its node or drops it from the queue, and
    /// gives parked pods another chance.
    pub fn delete_pod(&mut self, key: &PodKey, now: f64) -> bool {
        if let Some((_, pod)) = self.state.unplace(key) {
            if let Some(gang) = pod.group_key() {
                self.queue.gangs.member_gone(gang);
            }
            self.queue.move_all_to_active_or_backoff(now);
            return true;
        }
        let (queued, gang) = self.queue.remove_pod(key);
        if let Some(gang) = gang {
            // The gang is one short of what it held nodes for: let go, and form it anew.
            self.release_held_for(gang, now);
            self.form_gang(gang, now);
        }
        queued
    }

    /// Step drive: schedules active units one at a time until none is ready at `now`.
    /// Deterministic: the placements do not depend on thread count.
    pub fn schedule_pending(&mut self, now: f64) -> Vec<Outcome> {
        self.expire_reservation(now);
        let mut out = Vec::new();
        while let Some(unit) = self.queue.pop(now) {
            self.workers[0].refresh(&self.state, self.answered[0]);
            let profile = self.profiles[unit.profile].clone();
            let attempt = self.workers[0].schedule(&profile, unit);
            self.attempts += 1;
            if let Attempt::Proposed(p) = &attempt {
                self.answered[0] = p.seq;
            }
            let mut cx = Resolver {
                binder: &mut self.binder,
                state: &mut self.state,
                profiles: &self.profiles,
                queue: &mut self.queue,
                reservation: &mut self.reservation,
                gang: &self.gang,
                released: 0,
            };
            out.extend(cx.resolve(attempt, now).outcomes);
        }
        out
    }

    /// Parallel drive: K worker threads race over their own snapshots while this thread
    /// binds, until every unit active at the start is placed or found unschedulable.
    /// `clock` gives the time for latencies.
    pub fn run_parallel(&mut self, clock: &(dyn Fn() -> f64 + Sync)) -> Vec<Outcome> {
        self.expire_reservation(clock());
        let k = self.workers.len();
        let shared = RwLock::new(Shared { state: std::mem::take(&mut self.state), answered: self.answered.clone() });
        let queue = Mutex::new(std::mem::take(&mut self.queue));
        let outstanding = AtomicUsize::new(queue.lock().active_len());
        let (tx, rx) = crossbeam_channel::bounded::<Attempt>(k * 64);
        let profiles = &self.profiles;
        let (gang, reservation) = (&self.gang, &mut self.reservation);
        let mut outcomes = Vec::new();
        std::thread::scope(|s| {
            for w in self.workers.iter_mut() {
                let tx = tx.clone();
                let lanes = Lanes { shared: &shared, queue: &queue, outstanding: &outstanding };
                s.spawn(move || worker_loop(w, profiles, lanes, tx));
            }
            drop(tx);
            let lanes = Lanes { shared: &shared, queue: &queue, outstanding: &outstanding };
            let fixed = Fixed { profiles, gang, clock };
            outcomes = binder_loop(&mut self.binder, fixed, lanes, rx, reservation, &mut self.attempts);
        });
        let shared = shared.into_inner();
        self.state = shared.state;
        self.answered = shared.answered;
        self.queue = queue.into_inner();
        outcomes
    }
}

struct Shared {
    state: ClusterState,
    answered: Vec<u64>,
}

#[derive(Clone, Copy)]
struct Lanes<'a> {
    shared: &'a RwLock<Shared>,
    queue: &'a Mutex<SchedulingQueue>,
    outstanding: &'a AtomicUsize,
}

fn worker_loop(w: &mut Worker, profiles: &[Arc<Profile>], lanes: Lanes<'_>, tx: Sender<Attempt>) {
    while lanes.outstanding.load(Ordering::Acquire) > 0 {
        let Some(unit) = lanes.queue.lock().pop_active() else {
            std::thread::yield_now();
            continue;
        };
        {
            let sh = lanes.shared.read();
            w.refresh(&sh.state, sh.answered[w.id()]);
        }
        let attempt = w.schedule(&profiles[unit.profile], unit);
        if tx.send(attempt).is_err() {
            return;
        }
    }
}

/// Proposals answered per write-lock hold: enough to amortise the lock, few enough that
/// workers refreshing do not wait long.
const BIND_BATCH: usize = 64;

/// How long the binder naps when no proposal is waiting.
const BINDER_IDLE: std::time::Duration = std::time::Duration::from_micros(200);

/// What the binder loop reads and never changes.
#[derive(Clone, Copy)]
struct Fixed<'a> {
    profiles: &'a [Arc<Profile>],
    gang: &'a GangOptions,
    clock: &'a (dyn Fn() -> f64 + Sync),
}

fn binder_loop(
    binder: &mut Binder,
    fixed: Fixed<'_>,
    lanes: Lanes<'_>,
    rx: Receiver<Attempt>,
    reservation: &mut Option<Reservation>,
    attempts: &mut u64,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut batch = Vec::with_capacity(BIND_BATCH);
    while lanes.outstanding.load(Ordering::Acquire) > 0 {
        while batch.len() < BIND_BATCH {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return outcomes,
            }
        }
        if batch.is_empty() {
            // Polling rather than blocking: a binder blocked in `recv` is woken (a futex call
            // and a context switch) by every single proposal, which on few cores costs more
            // than scheduling the pod; a short nap lets proposals gather into one batch.
            std::thread::sleep(BINDER_IDLE);
            continue;
        }
        let now = (fixed.clock)();
        let mut sh = lanes.shared.write();
        let mut queue = lanes.queue.lock();
        for attempt in batch.drain(..) {
            *attempts += 1;
            if let Attempt::Proposed(p) = &attempt {
                sh.answered[p.worker] = p.seq;
            }
            let mut cx = Resolver {
                binder: &mut *binder,
                state: &mut sh.state,
                profiles: fixed.profiles,
                queue: &mut queue,
                reservation: &mut *reservation,
                gang: fixed.gang,
                released: 0,
            };
            let resolved = cx.resolve(attempt, now);
            // New units (a gang's other members) count before finished ones leave, so the
            // count never touches zero while work remains.
            lanes.outstanding.fetch_add(resolved.spawned, Ordering::AcqRel);
            lanes.outstanding.fetch_sub(resolved.finished, Ordering::AcqRel);
            outcomes.extend(resolved.outcomes);
        }
    }
    outcomes
}

struct Resolved {
    outcomes: Vec<Outcome>,
    /// Units that reached a final state for this run (placed, parked, or timed out).
    finished: usize,
    /// Units this attempt added to the queue (an admitted gang's other members).
    spawned: usize,
}

impl Resolved {
    fn requeued() -> Resolved {
        Resolved { outcomes: Vec::new(), finished: 0, spawned: 0 }
    }
}

/// What resolving an attempt may change: the binder's side of the engine.
struct Resolver<'a> {
    binder: &'a mut Binder,
    state: &'a mut ClusterState,
    profiles: &'a [Arc<Profile>],
    queue: &'a mut SchedulingQueue,
    reservation: &'a mut Option<Reservation>,
    gang: &'a GangOptions,
    /// Units a released reservation sent back to active (the parallel drive counts them).
    released: usize,
}

impl Resolver<'_> {
    /// Applies a worker's attempt: commit (or requeue on conflict), or park as unschedulable.
    fn resolve(&mut self, attempt: Attempt, now: f64) -> Resolved {
        let mut resolved = self.apply(attempt, now);
        resolved.spawned += std::mem::take(&mut self.released);
        resolved
    }

    fn apply(&mut self, attempt: Attempt, now: f64) -> Resolved {
        match attempt {
            Attempt::Proposed(p) => match self.binder.commit(self.state, &self.profiles[p.unit.profile], &p) {
                Verdict::Accepted => self.accepted(&p.unit, &p.placements, now),
                Verdict::Rejected { .. } => {
                    // A conflict is not the unit's fault: straight back to the active queue.
                    let mut unit = p.unit;
                    unit.attempts += 1;
                    self.queue.push_active(unit);
                    Resolved::requeued()
                }
                // Trying again could only fail again (a pod given twice): report it, drop it.
                Verdict::Invalid { reason } => {
                    let mut unit = p.unit;
                    unit.attempts += 1;
                    let outcome = Outcome::Unschedulable {
                        pods: unit.pods,
                        message: reason.clone(),
                        reasons: vec![reason],
                        attempts: unit.attempts,
                        at: now,
                    };
                    Resolved { outcomes: vec![outcome], finished: 1, spawned: 0 }
                }
            },
            Attempt::Unschedulable { unit, diagnosis, shortfall } => {
                let message = match (&unit.gang, &shortfall) {
                    (Some(g), Some(s)) => s.message(g.key),
                    _ => diagnosis.message(),
                };
                let reasons = match &shortfall {
                    Some(s) => s.reasons.keys().cloned().collect(),
                    None => diagnosis.pre_filter_message.iter().cloned().chain(diagnosis.reasons.into_keys()).collect(),
                };
                self.unschedulable(unit, message, reasons, now)
            }
        }
    }

    fn accepted(&mut self, unit: &Unit, placements: &[algorithm::Placement], now: f64) -> Resolved {
        let attempts = unit.attempts + 1;
        let snapshot = self.state.snapshot();
        let outcomes = unit
            .pods
            .iter()
            .zip(placements)
            .map(|(pod, pl)| Outcome::Bound {
                pod: pod.clone(),
                node: snapshot.node(pl.node).map_or_else(|| Sym::new(""), |n| n.name()),
                attempts,
                queued_at: unit.queued_at,
                at: now,
            })
            .collect();
        let mut spawned = 0;
        if let Some(g) = &unit.gang {
            if self.reservation.as_ref().is_some_and(|r| r.gang == g.key) {
                self.release(now);
            }
            for (pod, profile) in self.queue.gangs.admit(g.key, unit.pods.len(), now) {
                let seq = self.queue.next_seq();
                self.queue.push_active(Unit::single(pod, profile, now, seq));
                spawned += 1;
            }
        } else if let Some(key) = unit.pods.first().and_then(|p| p.group_key()) {
            self.queue.gangs.member_bound(key);
        }
        Resolved { outcomes, finished: 1, spawned }
    }

    fn unschedulable(&mut self, mut unit: Unit, message: String, reasons: Vec<String>, now: f64) -> Resolved {
        unit.attempts += 1;
        unit.last_failure = Some(message.clone());
        let outcome =
            Outcome::Unschedulable { pods: unit.pods.clone(), message, reasons, attempts: unit.attempts, at: now };
        if let Some(g) = &unit.gang {
            self.queue.gangs.failed(g.key, unit.last_failure.as_deref().unwrap_or_default());
        }
        match unit.gang.clone() {
            Some(g) if g.timeout_s.is_some_and(|t| now - g.formed_at >= t) => {
                // Timed out: back off, then a full timeout period afresh from when it is back
                // (from now, a timeout shorter than the backoff would fire on every try). A
                // hold stays: letting go would undo the draining it waited for.
                self.queue.gangs.timed_out(g.key);
                let ready = self.queue.backoff_ready(unit.attempts, now);
                if let Some(spec) = unit.gang.as_mut() {
                    spec.formed_at = ready;
                }
                self.queue.push_backoff(unit, now);
            }
            Some(g) => {
                self.reserve_for(&unit, g.key, g.topology_key, now);
                self.queue.park_unschedulable(unit, now);
            }
            None => self.queue.park_unschedulable(unit, now),
        }
        Resolved { outcomes: vec![outcome], finished: 1, spawned: 0 }
    }

    /// Holds nodes for a gang that did not fit, when reservations are on and none is held.
    fn reserve_for(&mut self, unit: &Unit, key: GroupKey, topology_key: Option<Sym>, now: f64) {
        if !self.gang.reservation || self.reservation.is_some() || !self.queue.gangs.may_reserve(key) {
            return;
        }
        let nodes = reservation::choose(self.state.snapshot(), &unit.pods, key, topology_key);
        if nodes.is_empty() {
            return;
        }
        self.state.set_reservation(&nodes, Some(key));
        *self.reservation = Some(Reservation { gang: key, nodes, until: now + self.gang.reservation_s });
    }

    fn release(&mut self, now: f64) {
        self.released += release(self.state, self.queue, self.reservation, now);
    }
}

/// Lets go of a reservation; pods it kept off its nodes get another chance. Returns how many
/// units went back to active.
fn release(
    state: &mut ClusterState,
    queue: &mut SchedulingQueue,
    reservation: &mut Option<Reservation>,
    now: f64,
) -> usize {
    match reservation.take() {
        Some(r) => {
            state.set_reservation(&r.nodes, None);
            queue.move_all_to_active_or_backoff(now)
        }
        None => 0,
    }
}

#[cfg(test)]
mod gang_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
