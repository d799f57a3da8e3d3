//! The engine: cluster state, queue, workers and binder, driven either step by step (the
//! simulator, deterministic whatever the thread count) or by K worker threads racing over
//! their own snapshots (the live scheduler and `tessera bench`).
//!
//! Both drives share every piece — [`worker::Worker::schedule`] proposes, [`binder::Binder::commit`]
//! decides, [`core::Core`] applies every event and answer — and differ only in who calls them
//! and on which clock. [`drive`] holds the threaded drives: the batch one (`tessera bench`) and
//! the continuous one the live scheduler runs for as long as the process lives.

pub mod algorithm;
pub mod binder;
pub mod core;
pub mod drive;
pub mod gang;
mod hints;
mod preemption;
pub mod queue;
pub mod reuse;
pub mod rng;
pub mod state;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use tessera_plugins::dra::model::ClaimAllocation;
use tessera_plugins::framework::Profile;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GroupKey, Node, Pod, PodGroup, PodKey};
use tessera_plugins::plugins::volumes::index::{Binding as VolumeBinding, VolumeObjects};
use tessera_plugins::plugins::volumes::model::PvcKey;

pub use self::core::Core;
pub use self::drive::Feed;

use self::binder::{Binder, BinderStats};
use self::gang::reservation::Reservation;
use self::gang::{GangOptions, GangRecord, GangTable};
use self::queue::{BackoffPolicy, SchedulingQueue};
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
    /// How preemption's victims leave.
    pub eviction: Eviction,
}

/// How the victims of a preemption leave the cluster state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Eviction {
    /// At once, when the preemption is decided: the simulator's and the bench's in-memory
    /// "API" deletes a pod the moment it is asked to.
    #[default]
    AtOnce,
    /// When the API says they are gone: the live scheduler deletes them through the API and
    /// they hold their room until their deletion event (graceful termination).
    ByApi,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            workers: 1,
            seed: 0,
            parallel_filter: false,
            backoff: BackoffPolicy::default(),
            gang: GangOptions::default(),
            eviction: Eviction::default(),
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
        /// The GPUs it holds there, as a bit set of device indices (0 when none).
        gpus: u64,
        /// The allocations of its DRA claims (the PreBind writes them to the claims' status).
        claims: Vec<Arc<ClaimAllocation>>,
        /// The bindings its placement made for its unbound `WaitForFirstConsumer`
        /// PersistentVolumeClaims (the PreBind writes them to the volumes and claims).
        volumes: Vec<(PvcKey, VolumeBinding)>,
        /// Attempts it took.
        attempts: u32,
        /// When it was first queued.
        queued_at: f64,
        /// When it was placed.
        at: f64,
        /// Seconds the worker's scheduling cycle for its unit took (Filter, Score, selection).
        cycle_s: f64,
        /// Seconds from the start of the attempt that placed it to its commit: the cycle, plus
        /// the wait for the binder in the parallel drives.
        attempt_s: f64,
    },
    /// A unit fit nowhere; it is parked until a cluster event.
    Unschedulable {
        /// Its pods.
        pods: Vec<Arc<Pod>>,
        /// The message a pending pod's `PodScheduled` condition shows.
        message: String,
        /// The distinct reasons inside the message ("Insufficient cpu"), for tallies; the one
        /// that kept the pod off the most nodes first.
        reasons: Vec<String>,
        /// Attempts so far.
        attempts: u32,
        /// When.
        at: f64,
        /// Seconds the worker's scheduling cycle took.
        cycle_s: f64,
        /// For each pod of `pods` (in order; empty when none is), the node it is nominated to:
        /// it preempted pods there and waits for them (upstream's `status.nominatedNodeName`).
        nominated: Vec<Option<Sym>>,
    },
    /// A pod is evicted to make room for a preemptor of higher priority (upstream's
    /// `Preempted` event). With [`Eviction::AtOnce`] it is already gone from the state; with
    /// [`Eviction::ByApi`] the driver deletes it.
    Preempted {
        /// The victim.
        pod: Arc<Pod>,
        /// Its node.
        node: Sym,
        /// The preemptor.
        by: PodKey,
        /// When.
        at: f64,
    },
}

impl Outcome {
    /// A placed pod with its node and its claims' allocations, as [`crate::verify`] checks
    /// them; `None` for a unit that fit nowhere.
    pub fn bound(&self) -> Option<crate::verify::BoundWithClaims> {
        match self {
            Outcome::Bound { pod, node, claims, .. } => Some((pod.clone(), *node, claims.clone())),
            Outcome::Unschedulable { .. } | Outcome::Preempted { .. } => None,
        }
    }
}

/// What happened to a pod given to [`Engine::add_pod`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Queued for scheduling.
    Queued,
    /// Already running on its `spec.nodeName`; accounted on that node.
    Running,
    /// Bound (`spec.nodeName`) to a node the cluster does not have: it stays bound to that
    /// name, as on a real cluster, and is accounted on the node once one of that name is added.
    AwaitingNode,
    /// Its `schedulerName` belongs to no profile: not ours.
    NotOurs,
    /// A gang member held back until its gang may enter the queue.
    Waiting,
    /// Turned away by a PreEnqueue plugin (scheduling gates): kept outside the queue, never
    /// tried, until an update lets it in ([`Engine::update_pod`]).
    Gated {
        /// The plugin that turned it away.
        plugin: &'static str,
        /// Its status message.
        message: String,
    },
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
    eviction: Eviction,
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
            eviction: opts.eviction,
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

    /// The engine's mutable side (see [`core::Core`]): what every event goes through.
    pub fn core(&mut self) -> Core<'_> {
        Core {
            binder: &mut self.binder,
            state: &mut self.state,
            profiles: &self.profiles,
            by_scheduler: &self.by_scheduler,
            queue: &mut self.queue,
            reservation: &mut self.reservation,
            gang: &self.gang,
            eviction: self.eviction,
            released: 0,
        }
    }

    /// Adds or updates a node; parked pods get another chance (see [`Core::upsert_node`]).
    pub fn upsert_node(&mut self, node: Node, now: f64) {
        self.core().upsert_node(node, now);
    }

    /// Removes a node. Pods that were on it are returned (their controllers would recreate
    /// them; the engine does not requeue them itself).
    pub fn remove_node(&mut self, name: Sym) -> Vec<Arc<Pod>> {
        self.core().remove_node(name)
    }

    /// Replaces the storage objects the volume plugins read (PersistentVolumes, claims,
    /// StorageClasses, CSINodes).
    pub fn set_volume_objects(&mut self, objects: Arc<VolumeObjects>, now: f64) {
        self.core().set_volume_objects(objects, now);
    }

    /// Replaces the namespace table (for namespace selectors).
    pub fn set_namespaces(&mut self, namespaces: HashMap<Sym, tessera_plugins::labels::LabelSet>) {
        self.core().set_namespaces(namespaces);
    }

    /// Applies a change to a Service's or controller's selector (for default spreading).
    pub fn apply_selector_source(&mut self, change: tessera_plugins::default_selector::SourceChange) {
        self.core().apply_selector_source(change);
    }

    /// Takes in a pod: queues it, or accounts it where it already runs.
    pub fn add_pod(&mut self, pod: Arc<Pod>, now: f64) -> Result<Admission, StateError> {
        self.core().add_pod(pod, now)
    }

    /// Takes in a new version of a pending pod (see [`Core::update_pod`]).
    pub fn update_pod(&mut self, pod: Arc<Pod>, now: f64) -> Result<Admission, StateError> {
        self.core().update_pod(pod, now)
    }

    /// Pods PreEnqueue plugins keep out of the queue, with the status that keeps each out.
    pub fn gated_pods(&self) -> impl Iterator<Item = &queue::Gated> + '_ {
        self.queue.gated()
    }

    /// Adds or replaces a PodGroup (see [`Core::upsert_pod_group`]).
    pub fn upsert_pod_group(&mut self, group: PodGroup, now: f64) {
        self.core().upsert_pod_group(group, now);
    }

    /// Forgets a PodGroup: its members not yet placed wait for it again.
    pub fn remove_pod_group(&mut self, key: GroupKey, now: f64) {
        self.core().remove_pod_group(key, now);
    }

    /// A pod is gone (finished or deleted): frees its node or drops it from the queue.
    pub fn delete_pod(&mut self, key: &PodKey, now: f64) -> bool {
        self.core().delete_pod(key, now)
    }

    /// Explains every scheduling cycle of the pods `keys` from now on (see
    /// [`tessera_plugins::explain`]); [`Engine::take_explanations`] hands them out.
    pub fn explain_pods(&mut self, keys: std::collections::HashSet<PodKey>) {
        let keys = Arc::new(keys);
        for w in &mut self.workers {
            w.explain(keys.clone());
        }
    }

    /// The explanations made since the last call, in the order the cycles ran (per worker).
    pub fn take_explanations(&mut self) -> Vec<(PodKey, tessera_plugins::explain::Explanation)> {
        self.workers.iter_mut().flat_map(Worker::take_explained).collect()
    }

    /// Replaces the PodDisruptionBudgets (see [`ClusterState::set_budgets`]).
    pub fn set_budgets(&mut self, budgets: tessera_plugins::disruption::Budgets) {
        self.state.set_budgets(budgets);
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

    /// Step drive: schedules active units one at a time until none is ready at `now`.
    /// Deterministic: the placements do not depend on thread count.
    pub fn schedule_pending(&mut self, now: f64) -> Vec<Outcome> {
        self.core().expire_reservation(now);
        let mut out = Vec::new();
        while let Some(unit) = self.queue.pop(now) {
            self.workers[0].refresh(&self.state, self.answered[0]);
            let profile = self.profiles[unit.profile].clone();
            let started = std::time::Instant::now();
            let attempt = self.workers[0].schedule(&profile, unit);
            let cycle_s = started.elapsed().as_secs_f64();
            self.attempts += 1;
            if let Attempt::Proposed(p) = &attempt {
                self.answered[0] = p.seq;
            }
            out.extend(self.core().resolve(attempt, now, cycle_s).outcomes);
        }
        out
    }
}

#[cfg(test)]
mod admission_tests;
#[cfg(test)]
mod dra_tests;
#[cfg(test)]
mod preemption_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod volume_tests;
#[cfg(test)]
mod wiring_tests;
