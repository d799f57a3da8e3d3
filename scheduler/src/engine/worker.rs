//! A scheduling worker: its own snapshot, refreshed incrementally, plus an overlay of its own
//! picks that the binder has not yet answered, so it never double-books what it proposed.
//!
//! The overlay is applied *into* the worker's snapshot (the pods are added to private copies
//! of the nodes). On refresh, every node that changed upstream or that an answered pick
//! touched is reset to the live version, and picks still unanswered are applied again.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tessera_plugins::explain::{Explanation, explain};
use tessera_plugins::framework::{PostFilterResult, Profile, same_node_local_signature};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{Pod, PodKey};
use tessera_plugins::nodeinfo::{DeviceChoice, NodeId};
use tessera_plugins::plugins::default_preemption::{TERMINATING, still_running};
use tessera_plugins::snapshot::Snapshot;
use tessera_plugins::status::{Diagnosis, Status};

use super::algorithm::{self, CycleOptions, Placement, schedule_pod};
use super::gang::Shortfall;
use super::gang::placement::{self as gang_placement, Try};
use super::gang::preemption::{self as gang_preemption, GangPreemption};
use super::queue::Unit;
use super::reuse::{DEFAULT_BUDGET_BYTES, ReuseCache, ReuseStats};
use super::rng::Rng;
use super::state::ClusterState;

/// A worker's proposal: where each pod of a unit should go.
#[derive(Clone, Debug)]
pub struct Proposal {
    /// The worker that made it.
    pub worker: usize,
    /// The worker's sequence number for it (answered in order).
    pub seq: u64,
    /// The unit.
    pub unit: Unit,
    /// One placement per pod of the unit, in order.
    pub placements: Vec<Placement>,
    /// The cluster generation the worker's snapshot reflected.
    pub snapshot_generation: u64,
}

/// What a worker made of a unit.
#[derive(Clone, Debug)]
pub enum Attempt {
    /// A placement for every pod.
    Proposed(Proposal),
    /// Some pod fits nowhere: why (for the first pod that did not fit).
    Unschedulable {
        /// The unit.
        unit: Unit,
        /// The failing pod's diagnosis.
        diagnosis: Diagnosis,
        /// For a gang: how many of its pods fit and why the others did not.
        shortfall: Option<Shortfall>,
        /// What preemption made of the failure (boxed: most failures have none).
        preemption: Option<Box<Preemption>>,
    },
}

/// What preemption made of a unit that fit nowhere.
#[derive(Clone, Debug)]
pub enum Preemption {
    /// PostFilter's answer for a single pod, or `Keep` for a gang still waiting for the
    /// victims it chose.
    PostFilter(PostFilterResult),
    /// For a gang: the victims whose eviction lets every member fit.
    Gang(GangPreemption),
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    /// Each pod, its node, and the devices plugins chose for it there.
    picks: Vec<(Arc<Pod>, NodeId, DeviceChoice)>,
}

/// One worker. Owns its snapshot; shares nothing mutable with other workers.
#[derive(Debug)]
pub struct Worker {
    id: usize,
    snapshot: Snapshot,
    at: u64,
    next_start: usize,
    rng: Rng,
    pending: VecDeque<Pending>,
    next_seq: u64,
    parallel_filter: bool,
    reuse: ReuseCache,
    /// Topology labels gangs prefer to keep within, widest first.
    hierarchy: Vec<Sym>,
    /// Pods whose every cycle is explained ([`tessera_plugins::explain`]), and the
    /// explanations made since they were last taken.
    explain: Arc<HashSet<PodKey>>,
    explained: Vec<(PodKey, Explanation)>,
}

impl Worker {
    /// Worker `id`, seeded for reproducible tie-breaking.
    pub fn new(id: usize, seed: u64, parallel_filter: bool, hierarchy: Vec<Sym>) -> Worker {
        Worker {
            id,
            snapshot: Snapshot::new(),
            at: 0,
            next_start: 0,
            rng: Rng::new(seed.wrapping_add(id as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)),
            pending: VecDeque::new(),
            next_seq: 0,
            parallel_filter,
            reuse: ReuseCache::new(DEFAULT_BUDGET_BYTES),
            hierarchy,
            explain: Arc::default(),
            explained: Vec::new(),
        }
    }

    /// Explains every cycle of the pods `keys` from now on.
    pub fn explain(&mut self, keys: Arc<HashSet<PodKey>>) {
        self.explain = keys;
    }

    /// The explanations made since the last call.
    pub fn take_explained(&mut self) -> Vec<(PodKey, Explanation)> {
        std::mem::take(&mut self.explained)
    }

    /// How much node-local work the worker reused across pods of one signature.
    pub fn reuse_stats(&self) -> ReuseStats {
        self.reuse.stats
    }

    /// The worker's id.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The worker's current view.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Brings the snapshot up to date with `state`, given that the binder has answered every
    /// proposal of this worker up to `answered` (read under the same lock as `state`).
    pub fn refresh(&mut self, state: &ClusterState, answered: u64) {
        let assumed = self.snapshot.volumes().assumed().clone();
        let mut reset: HashSet<NodeId> = state.refresh(&mut self.snapshot, &mut self.at).into_iter().collect();
        // The live bindings replaced this view's, which had this worker's own pending picks'.
        let rebind = !Arc::ptr_eq(&assumed, self.snapshot.volumes().assumed());
        while self.pending.front().is_some_and(|p| p.seq <= answered) {
            if let Some(done) = self.pending.pop_front() {
                for (_, id, _) in done.picks {
                    if reset.insert(id) {
                        state.copy_node(&mut self.snapshot, id);
                    }
                }
            }
        }
        for p in &self.pending {
            for (pod, id, devices) in &p.picks {
                if reset.contains(id) {
                    self.snapshot.add_pod_with(*id, pod.clone(), devices);
                } else if rebind && pod.has_claims() {
                    self.snapshot.assume_volumes(*id, pod);
                }
            }
        }
    }

    /// Schedules every pod of `unit` against the snapshot, each seeing the ones before it
    /// (a gang is tried domain by domain, see [`gang_placement`]). On success the picks stay
    /// in the overlay until the binder answers.
    pub fn schedule(&mut self, profile: &Profile, unit: Unit) -> Attempt {
        let Some(spec) = unit.gang.clone() else {
            // A pod that preempted tries its nominated node first, and takes it when it fits
            // (upstream's `evaluateNominatedNode`): the room it made is there.
            if let Some(n) = unit.nominated.clone()
                && let Ok(placements) = self.place_all(profile, &unit.pods, Some(&[n.node]))
            {
                return self.propose(unit, placements);
            }
            return match self.place_all(profile, &unit.pods, None) {
                Ok(placements) => self.propose(unit, placements),
                Err(diagnosis) => self.post_filter(profile, unit, diagnosis),
            };
        };
        if let Some(min) = &spec.min_resources {
            let missing = gang_placement::missing_min_resources(&self.snapshot, spec.key, min);
            if !missing.is_empty() {
                let why = format!("Insufficient {} for minResources", missing.join(", "));
                let reasons = [(why, unit.pods.len())].into_iter().collect();
                let shortfall = Shortfall { needed: unit.pods.len(), fit: 0, reasons, domain: None };
                return Attempt::Unschedulable {
                    unit,
                    diagnosis: Diagnosis::default(),
                    shortfall: Some(shortfall),
                    preemption: None,
                };
            }
        }
        let plan = gang_placement::plan(&self.snapshot, &unit.pods, &spec, &self.hierarchy, self.id);
        let mut first_failure = None;
        for t in &plan.tries {
            match self.place_all(profile, &unit.pods, t.nodes.as_deref()) {
                Ok(placements) => return self.propose(unit, placements),
                Err(d) => {
                    first_failure.get_or_insert(d);
                }
            }
        }
        let (shortfall, diagnosis) = self.count_fit(profile, &unit.pods, &plan.fallback);
        let diagnosis = first_failure.or(diagnosis).unwrap_or_default();
        // A gang whose victims are still leaving waits for them; otherwise it may preempt.
        let preemption = if unit.nominated.as_ref().is_some_and(|n| still_running(&self.snapshot, &n.victims)) {
            Some(Preemption::PostFilter(PostFilterResult::Keep(Status::unschedulable(format!(
                "preemption: {TERMINATING}"
            )))))
        } else {
            gang_preemption::plan(profile, &self.snapshot, &unit.pods, &spec, &mut self.next_start, &mut self.rng)
                .map(Preemption::Gang)
        };
        Attempt::Unschedulable { unit, diagnosis, shortfall: Some(shortfall), preemption: preemption.map(Box::new) }
    }

    /// A lone pod fit nowhere: PostFilter may find victims to evict for it. Its message gains
    /// what PostFilter said, as upstream's does.
    fn post_filter(&mut self, profile: &Profile, unit: Unit, mut diagnosis: Diagnosis) -> Attempt {
        let post_filter = unit.pods.first().and_then(|pod| {
            algorithm::post_filter(profile, &self.snapshot, pod, &diagnosis, unit.nominated.as_deref())
        });
        if let Some(PostFilterResult::Keep(s) | PostFilterResult::Clear(s)) = &post_filter {
            diagnosis.post_filter_message = Some(s.to_string().into());
        }
        let preemption = post_filter.map(|r| Box::new(Preemption::PostFilter(r)));
        Attempt::Unschedulable { unit, diagnosis, shortfall: None, preemption }
    }

    /// Places `pods` one after another, each seeing the ones before, within `within` when
    /// given; all of them, or none (the overlay is left as it was) and the first failure.
    fn place_all(
        &mut self,
        profile: &Profile,
        pods: &[Arc<Pod>],
        within: Option<&[NodeId]>,
    ) -> Result<Vec<Placement>, Diagnosis> {
        let mut placements = Vec::with_capacity(pods.len());
        for pod in pods {
            match self.place_one(profile, pod, within) {
                Ok(p) => placements.push(p),
                Err(diagnosis) => {
                    self.undo(&pods[..placements.len()], &placements);
                    return Err(diagnosis);
                }
            }
        }
        Ok(placements)
    }

    /// How many of a gang's `pods` fit in `at`, each seeing the ones before, and each misfit's
    /// main reason; the overlay is left as it was. Also the first misfit's diagnosis.
    fn count_fit(&mut self, profile: &Profile, pods: &[Arc<Pod>], at: &Try) -> (Shortfall, Option<Diagnosis>) {
        let mut shortfall = Shortfall { needed: pods.len(), domain: at.domain.clone(), ..Shortfall::default() };
        let (mut placed, mut placements, mut first) = (Vec::new(), Vec::new(), None);
        let mut last_misfit: Option<(&Arc<Pod>, String)> = None;
        for pod in pods {
            // A pod that asks exactly what the last misfit asked, on a view that did not change
            // since (misfits are not added), fails the same way: count it without a cycle. A
            // gang's members are usually alike, so a gang that does not fit costs one failed
            // cycle instead of one per missing member.
            if let Some((m, reason)) = &last_misfit
                && same_needs(m, pod)
            {
                *shortfall.reasons.entry(reason.clone()).or_insert(0) += 1;
                continue;
            }
            match self.place_one(profile, pod, at.nodes.as_deref()) {
                Ok(p) => {
                    placed.push(pod.clone());
                    placements.push(p);
                    // The view changed: a later twin of the last misfit gets its own cycle.
                    last_misfit = None;
                }
                Err(d) => {
                    let reason = main_reason(&d);
                    *shortfall.reasons.entry(reason.clone()).or_insert(0) += 1;
                    last_misfit = Some((pod, reason));
                    first.get_or_insert(d);
                }
            }
        }
        shortfall.fit = placements.len();
        self.undo(&placed, &placements);
        (shortfall, first)
    }

    /// One pod's cycle; on success the pod is added to the overlay.
    fn place_one(
        &mut self,
        profile: &Profile,
        pod: &Arc<Pod>,
        within: Option<&[NodeId]>,
    ) -> Result<Placement, Diagnosis> {
        if !self.explain.is_empty() && self.explain.contains(&pod.key()) {
            self.explained.push((pod.key(), explain(profile, &self.snapshot, pod)));
        }
        let opts = CycleOptions {
            next_start: &mut self.next_start,
            rng: &mut self.rng,
            parallel: self.parallel_filter,
            reuse: Some(&mut self.reuse),
            within,
        };
        let p = schedule_pod(profile, &self.snapshot, pod, opts)?;
        self.snapshot.add_pod_with(p.node, pod.clone(), &p.devices);
        Ok(p)
    }

    fn propose(&mut self, unit: Unit, placements: Vec<Placement>) -> Attempt {
        self.next_seq += 1;
        let picks =
            unit.pods.iter().cloned().zip(&placements).map(|(pod, p)| (pod, p.node, p.devices.clone())).collect();
        self.pending.push_back(Pending { seq: self.next_seq, picks });
        Attempt::Proposed(Proposal {
            worker: self.id,
            seq: self.next_seq,
            unit,
            placements,
            snapshot_generation: self.at,
        })
    }

    fn undo(&mut self, pods: &[Arc<Pod>], placements: &[Placement]) {
        for (pod, p) in pods.iter().zip(placements) {
            self.snapshot.remove_pod(p.node, &pod.key());
        }
    }
}

/// Whether `a` and `b` ask the same of a node: the node-local signature plus every field the
/// other plugins read (labels, spread, inter-pod affinity, images, gang, volumes) — all but the name,
/// uid and creation time, which no Filter looks at.
fn same_needs(a: &Pod, b: &Pod) -> bool {
    same_node_local_signature(a, b)
        && a.namespace == b.namespace
        && a.labels == b.labels
        && a.priority == b.priority
        && a.scheduler_name == b.scheduler_name
        && a.spread_constraints == b.spread_constraints
        && a.pod_affinity == b.pod_affinity
        && a.pod_anti_affinity == b.pod_anti_affinity
        && a.images == b.images
        && a.pod_group == b.pod_group
        && a.volumes == b.volumes
}

/// The reason that kept a pod off the most nodes (or its PreFilter's message).
fn main_reason(d: &Diagnosis) -> String {
    if let Some(m) = &d.pre_filter_message {
        return m.clone();
    }
    let best = d.reasons.iter().max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)));
    best.map_or_else(|| "no nodes available".to_string(), |(r, _)| r.clone())
}
