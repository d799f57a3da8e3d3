//! A scheduling worker: its own snapshot, refreshed incrementally, plus an overlay of its own
//! picks that the binder has not yet answered, so it never double-books what it proposed.
//!
//! The overlay is applied *into* the worker's snapshot (the pods are added to private copies
//! of the nodes). On refresh, every node that changed upstream or that an answered pick
//! touched is reset to the live version, and picks still unanswered are applied again.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tessera_plugins::framework::Profile;
use tessera_plugins::model::Pod;
use tessera_plugins::nodeinfo::NodeId;
use tessera_plugins::snapshot::Snapshot;
use tessera_plugins::status::Diagnosis;

use super::algorithm::{CycleOptions, Placement, schedule_pod};
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
    },
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    /// Each pod, its node, and the GPUs a plugin chose for it there.
    picks: Vec<(Arc<Pod>, NodeId, Option<u64>)>,
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
}

impl Worker {
    /// Worker `id`, seeded for reproducible tie-breaking.
    pub fn new(id: usize, seed: u64, parallel_filter: bool) -> Worker {
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
        }
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
        let mut reset: HashSet<NodeId> = state.refresh(&mut self.snapshot, &mut self.at).into_iter().collect();
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
            for (pod, id, gpus) in &p.picks {
                if reset.contains(id) {
                    add_pod(&mut self.snapshot, *id, pod.clone(), *gpus);
                }
            }
        }
    }

    /// Schedules every pod of `unit` against the snapshot, each seeing the ones before it.
    /// On success the picks stay in the overlay until the binder answers.
    pub fn schedule(&mut self, profile: &Profile, unit: Unit) -> Attempt {
        let mut placements = Vec::with_capacity(unit.pods.len());
        for pod in &unit.pods {
            let opts = CycleOptions {
                next_start: &mut self.next_start,
                rng: &mut self.rng,
                parallel: self.parallel_filter,
                reuse: Some(&mut self.reuse),
            };
            match schedule_pod(profile, &self.snapshot, pod, opts) {
                Ok(p) => {
                    add_pod(&mut self.snapshot, p.node, pod.clone(), p.gpus);
                    placements.push(p);
                }
                Err(diagnosis) => {
                    self.undo(&unit.pods[..placements.len()], &placements);
                    return Attempt::Unschedulable { unit, diagnosis };
                }
            }
        }
        self.next_seq += 1;
        let picks = unit.pods.iter().cloned().zip(&placements).map(|(pod, p)| (pod, p.node, p.gpus)).collect();
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

/// Adds `pod` to node `id` of `snapshot` on the GPUs its placement names, if any, so that the
/// worker's view holds the devices the binder will commit.
fn add_pod(snapshot: &mut Snapshot, id: NodeId, pod: Arc<Pod>, gpus: Option<u64>) {
    match gpus {
        Some(mask) => snapshot.add_pod_on_gpus(id, pod, mask),
        None => snapshot.add_pod(id, pod),
    };
}
