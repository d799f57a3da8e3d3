//! The engine's mutable side, borrowed by whichever thread owns it: the caller of the step
//! drive, or the binder thread of the parallel and continuous drives. Every change to the
//! cluster (a node, a pod, a PodGroup arriving or leaving, an assumption undone) and every
//! answer to a worker's attempt goes through [`Core`], so the drives cannot disagree on what an
//! event means.

use std::collections::HashMap;
use std::sync::Arc;

use tessera_plugins::default_selector::SourceChange;
use tessera_plugins::disruption::DisruptionBudget;
use tessera_plugins::dra::model::{ClaimAllocation, ClaimKey};
use tessera_plugins::framework::{PostFilterResult, Profile};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{GroupKey, Node, Pod, PodGroup, PodKey};
use tessera_plugins::nodeinfo::NodeId;
use tessera_plugins::plugins::volumes::index::{Binding as VolumeBinding, VolumeObjects};
use tessera_plugins::plugins::volumes::model::{PodVolume, PvcKey};
use tessera_plugins::snapshot::Snapshot;

use super::algorithm::Placement;
use super::binder::{Binder, Verdict};
use super::gang::GangOptions;
use super::gang::reservation::{self, Reservation};
use super::hints::Departure;
use super::queue::{Gated, SchedulingQueue, Unit, Wake};
use super::state::{ClusterState, StateError};
use super::worker::{Attempt, Preemption};
use super::{Admission, Outcome};

/// The engine's mutable parts for one stretch of work. See the module docs.
#[derive(Debug)]
pub struct Core<'a> {
    pub(super) binder: &'a mut Binder,
    pub(super) state: &'a mut ClusterState,
    pub(super) profiles: &'a [Arc<Profile>],
    pub(super) by_scheduler: &'a HashMap<Sym, usize>,
    pub(super) queue: &'a mut SchedulingQueue,
    pub(super) reservation: &'a mut Option<Reservation>,
    pub(super) gang: &'a GangOptions,
    /// How preemption's victims leave.
    pub(super) eviction: super::Eviction,
    /// Units that events or a released reservation sent to the active queue since the last
    /// [`Core::take_released`] (the parallel drive counts them as work still to do).
    pub(super) released: usize,
}

/// What resolving one attempt did.
pub(super) struct Resolved {
    pub outcomes: Vec<Outcome>,
    /// Units that reached a final state for this run (placed, parked, or timed out).
    pub finished: usize,
    /// Units this attempt added to the queue (an admitted gang's other members).
    pub spawned: usize,
}

impl Resolved {
    pub(super) fn requeued() -> Resolved {
        Resolved { outcomes: Vec::new(), finished: 0, spawned: 0 }
    }
}

impl Core<'_> {
    /// The live cluster state.
    pub fn state(&self) -> &ClusterState {
        self.state
    }

    /// The queue.
    pub fn queue(&self) -> &SchedulingQueue {
        self.queue
    }

    /// Whether a profile schedules pods naming `scheduler`.
    pub fn schedules_for(&self, scheduler: Sym) -> bool {
        self.by_scheduler.contains_key(&scheduler)
    }

    /// Adds or updates a node; parked pods get another chance. A node whose model did not
    /// change (a status heartbeat) changes nothing: no generation bump, no requeue.
    pub fn upsert_node(&mut self, node: Node, now: f64) {
        if self.state.snapshot().node_by_name(node.name).is_some_and(|n| *n.node == node) {
            return;
        }
        self.state.upsert_node(node);
        self.released += self.queue.move_all_to_active_or_backoff(now);
    }

    /// Removes a node. Pods that were on it are returned (their controllers would recreate
    /// them; the engine does not requeue them itself).
    pub fn remove_node(&mut self, name: Sym) -> Vec<Arc<Pod>> {
        self.state.remove_node(name)
    }

    /// Replaces the storage objects the volume plugins read; parked pods are retried, since
    /// a new volume or class may let them fit.
    pub fn set_volume_objects(&mut self, objects: Arc<VolumeObjects>, now: f64) {
        self.state.set_volume_objects(objects);
        self.released += self.queue.move_all_to_active_or_backoff(now);
    }

    /// Changes the storage objects in place (a watch event). Parked pods with claims are
    /// retried: a volume, claim, class or CSINode they wait for may have changed (upstream's
    /// queueing hints of the volume plugins, coarsened to "any storage event").
    pub fn change_volume_objects(&mut self, f: impl FnOnce(&mut VolumeObjects), now: f64) {
        self.state.change_volume_objects(f);
        let wake = |unit: &Unit| if unit.pods.iter().any(|p| p.has_claims()) { Wake::Yes } else { Wake::No };
        self.released += self.queue.move_to_active_or_backoff_if(now, wake);
    }

    /// Replaces the namespace table (for namespace selectors).
    pub fn set_namespaces(&mut self, namespaces: HashMap<Sym, LabelSet>) {
        self.state.set_namespaces(namespaces);
    }

    /// Applies a change to a Service's or controller's selector (for default spreading). Default
    /// constraints only score, so no parked pod needs a retry.
    pub fn apply_selector_source(&mut self, change: SourceChange) {
        self.state.apply_selector_source(change);
    }

    /// Adds or replaces a PodDisruptionBudget (by namespace and name).
    pub fn upsert_budget(&mut self, budget: DisruptionBudget) {
        self.state.upsert_budget(budget);
    }

    /// Forgets a PodDisruptionBudget.
    pub fn remove_budget(&mut self, namespace: Sym, name: &str) {
        self.state.remove_budget(namespace, name);
    }

    /// Records what the API says of a claim's allocation (see
    /// [`ClusterState::set_claim_allocation`]); a deallocation gives parked pods another
    /// chance, as the devices it held may be free now.
    pub fn set_claim_allocation(&mut self, key: ClaimKey, pin: Option<(Arc<ClaimAllocation>, bool)>, now: f64) {
        let freeing = pin.is_none();
        if self.state.set_claim_allocation(key, pin) && freeing {
            self.released += self.queue.move_all_to_active_or_backoff(now);
        }
    }

    /// Takes in a pod: queues it, or accounts it where it already runs.
    pub fn add_pod(&mut self, pod: Arc<Pod>, now: f64) -> Result<Admission, StateError> {
        if pod.node_name.is_some() {
            let placed = self.state.place_on_named_node(pod.clone())?;
            self.queue.gangs.add_running(&pod, now);
            return Ok(if placed.is_some() { Admission::Running } else { Admission::AwaitingNode });
        }
        let Some(&profile) = self.by_scheduler.get(&pod.scheduler_name) else {
            return Ok(Admission::NotOurs);
        };
        // PreEnqueue (scheduling gates): a pod turned away waits outside the queue, untried.
        let status = self.profiles[profile].run_pre_enqueue(&pod);
        if !status.is_success() {
            let admission = Admission::Gated { plugin: status.plugin, message: status.to_string() };
            self.queue.hold_gated(Gated { pod, profile, status, since: now });
            return Ok(admission);
        }
        self.state.track_keys_of(&pod);
        match self.queue.gangs.add_member(pod, profile, now) {
            Ok(pod) => {
                let seq = self.queue.next_seq();
                self.queue.push_active(Unit::single(pod, profile, now, seq));
                self.released += 1;
                Ok(Admission::Queued)
            }
            Err(gang) => Ok(if self.form_gang(gang, now) { Admission::Queued } else { Admission::Waiting }),
        }
    }

    /// A pending pod changed (say, its scheduling gates were removed): it leaves wherever it
    /// waits and is taken in again, so that PreEnqueue judges the new version. A placed pod is
    /// left alone (an error: updating it would count it twice).
    pub fn update_pod(&mut self, pod: Arc<Pod>, now: f64) -> Result<Admission, StateError> {
        let key = pod.key();
        if let Some(node) = self.state.node_of(&key).and_then(|id| self.state.snapshot().node(id)) {
            return Err(StateError::AlreadyPlaced { pod: key, node: node.name() });
        }
        self.delete_pod(&key, now);
        self.add_pod(pod, now)
    }

    /// A pod is gone (finished or deleted): frees its node or drops it from the queue, and
    /// gives the parked pods it could help another chance ([`super::hints`]).
    pub fn delete_pod(&mut self, key: &PodKey, now: f64) -> bool {
        self.state.unnominate(key);
        if let Some(pod) = self.state.forget_awaiting(key) {
            if let Some(gang) = pod.group_key() {
                self.queue.gangs.member_gone(gang);
            }
            return true;
        }
        if let Some((id, pod)) = self.state.unplace(key) {
            if let Some(gang) = pod.group_key() {
                self.queue.gangs.member_gone(gang);
            }
            self.offer_room(id, Some(&pod), now);
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

    /// Undoes the assumption that pods `keys` run where the binder put them (their binding
    /// failed) and queues them again after a backoff. Members of a gang that, without them,
    /// has fewer than `minCount` bound go back to wait for their gang, all or nothing again.
    /// Returns the pods found assumed.
    pub fn forget_assumed(&mut self, keys: &[PodKey], now: f64) -> Vec<Arc<Pod>> {
        let pods: Vec<Arc<Pod>> = keys.iter().filter_map(|k| self.state.unplace(k)).map(|(_, p)| p).collect();
        let mut gangs = Vec::new();
        for pod in &pods {
            if let Some(gang) = pod.group_key() {
                self.queue.gangs.member_gone(gang);
                gangs.push(gang);
            }
        }
        for gang in gangs {
            self.queue.gangs.revoke_if_short(gang);
        }
        for pod in &pods {
            let Some(&profile) = self.by_scheduler.get(&pod.scheduler_name) else { continue };
            match self.queue.gangs.add_member(pod.clone(), profile, now) {
                Ok(pod) => {
                    let seq = self.queue.next_seq();
                    let mut unit = Unit::single(pod, profile, now, seq);
                    unit.attempts = 1;
                    self.queue.push_backoff(unit, now);
                }
                Err(gang) => {
                    self.form_gang(gang, now);
                }
            }
        }
        // The nodes they held are free again.
        self.released += self.queue.move_all_to_active_or_backoff(now);
        pods
    }

    /// Adds or replaces a PodGroup. Its waiting members enter the queue as one unit once
    /// `minCount` of them exist; a queued gang whose `minCount` changed is formed anew.
    pub fn upsert_pod_group(&mut self, group: PodGroup, now: f64) {
        self.state.set_disruption(group.key, group.disruption);
        let update = self.queue.gangs.upsert_group(group, now);
        if update.requeue {
            self.take_back_gang(update.key);
            self.release_held_for(update.key, now);
        }
        self.form_gang(update.key, now);
    }

    /// Forgets a PodGroup: its members not yet placed wait for it again.
    pub fn remove_pod_group(&mut self, key: GroupKey, now: f64) {
        self.state.set_disruption(key, tessera_plugins::model::DisruptionMode::All);
        if self.queue.gangs.remove_group(key) {
            self.take_back_gang(key);
        }
        self.release_held_for(key, now);
    }

    /// Moves units whose backoff ended to the active queue and lets a lapsed reservation go: what the passing of time does, for a drive that never pops through [`SchedulingQueue::pop`].
    pub fn tick(&mut self, now: f64) {
        self.expire_reservation(now);
        self.released += self.queue.flush_backoff(now);
    }

    /// Units sent to the active queue since the last call.
    pub fn take_released(&mut self) -> usize {
        std::mem::take(&mut self.released)
    }

    fn take_back_gang(&mut self, key: GroupKey) {
        if let Some(mut unit) = self.queue.take_gang_unit(key) {
            // Waiting for its members again, the gang holds no room.
            self.clear_nomination(&mut unit);
            self.queue.gangs.take_back(key, unit);
        }
    }

    /// PreEnqueue for gang `key`: queues its unit if it may enter now.
    fn form_gang(&mut self, key: GroupKey, now: f64) -> bool {
        let seq = self.queue.next_seq();
        match self.queue.gangs.form(key, seq, now) {
            Some(unit) => {
                self.queue.push_active(unit);
                self.released += 1;
                true
            }
            None => false,
        }
    }

    /// Lets a reservation lapse once its time is up.
    pub(super) fn expire_reservation(&mut self, now: f64) {
        if self.reservation.as_ref().is_some_and(|r| r.until <= now) {
            self.release(now);
        }
    }

    /// Releases the reservation if gang `key` holds it.
    fn release_held_for(&mut self, key: GroupKey, now: f64) {
        if self.reservation.as_ref().is_some_and(|r| r.gang == key) {
            self.release(now);
        }
    }

    /// Applies a worker's attempt: commit (or requeue on conflict), or park as unschedulable.
    /// `cycle_s` is how long the worker took over it.
    pub(super) fn resolve(&mut self, attempt: Attempt, now: f64, cycle_s: f64) -> Resolved {
        match attempt {
            Attempt::Proposed(p) => match self.binder.commit(self.state, &self.profiles[p.unit.profile], &p) {
                Verdict::Accepted => self.accepted(&p.unit, &p.placements, now, cycle_s),
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
                    self.clear_nomination(&mut unit);
                    unit.attempts += 1;
                    let outcome = Outcome::Unschedulable {
                        pods: unit.pods,
                        message: reason.clone(),
                        reasons: vec![reason],
                        attempts: unit.attempts,
                        at: now,
                        cycle_s,
                        nominated: Vec::new(),
                    };
                    Resolved { outcomes: vec![outcome], finished: 1, spawned: 0 }
                }
            },
            Attempt::Unschedulable { mut unit, diagnosis, shortfall, preemption } => {
                let message = match (&unit.gang, &shortfall) {
                    (Some(g), Some(s)) => s.message(g.key),
                    _ => diagnosis.message(),
                };
                let reasons = match &shortfall {
                    Some(s) => most_first(s.reasons.clone()),
                    None => diagnosis.pre_filter_message.iter().cloned().chain(most_first(diagnosis.reasons)).collect(),
                };
                match preemption.map(|p| *p) {
                    Some(Preemption::Gang(g)) => self.preempt_gang(unit, g, (message, reasons), now, cycle_s),
                    Some(Preemption::PostFilter(PostFilterResult::Nominate(n))) => {
                        self.preempt(unit, n, (message, reasons), now, cycle_s)
                    }
                    Some(Preemption::PostFilter(PostFilterResult::Keep(_))) => {
                        self.keep_waiting(unit, (message, reasons), now, cycle_s)
                    }
                    Some(Preemption::PostFilter(PostFilterResult::Clear(_))) | None => {
                        self.clear_nomination(&mut unit);
                        self.unschedulable(unit, (message, reasons), now, cycle_s)
                    }
                }
            }
        }
    }

    /// Offers the room on node `id` to the parked units it can take ([`super::hints`]): room a
    /// pod `gone` left, or room a unit it was offered to did not take (`None`).
    fn offer_room(&mut self, id: NodeId, gone: Option<&Pod>, now: f64) {
        let snapshot = self.state.snapshot();
        let mut departure = Departure::new(snapshot, snapshot.node(id).map(|n| n.as_ref()), gone);
        let profiles = self.profiles;
        self.released += self.queue.move_to_active_or_backoff_if(now, |unit| match profiles.get(unit.profile) {
            Some(profile) => departure.could_help(unit, profile),
            None => Wake::Yes,
        });
    }

    fn accepted(&mut self, unit: &Unit, placements: &[Placement], now: f64, cycle_s: f64) -> Resolved {
        if let Some(offered) = unit.offered
            && placements.iter().all(|p| p.node != offered)
        {
            self.offer_room(offered, None, now);
        }
        for pod in &unit.pods {
            self.state.unnominate(&pod.key());
        }
        let attempts = unit.attempts + 1;
        let snapshot = self.state.snapshot();
        let outcomes = unit
            .pods
            .iter()
            .zip(placements)
            .map(|(pod, pl)| {
                let node = snapshot.node(pl.node);
                Outcome::Bound {
                    pod: pod.clone(),
                    node: node.map_or_else(|| Sym::new(""), |n| n.name()),
                    gpus: node.and_then(|n| n.gpus_of(&pod.key())).unwrap_or(0),
                    claims: node.map(|n| n.claims_of(pod)).unwrap_or_default(),
                    volumes: volume_bindings(snapshot, pod),
                    attempts,
                    queued_at: unit.queued_at,
                    at: now,
                    cycle_s,
                    // The step drive commits at once; the parallel drives add the wait.
                    attempt_s: cycle_s,
                }
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

    /// Parks (or backs off) a unit that fit nowhere; `why` is its message and reasons.
    pub(super) fn unschedulable(
        &mut self,
        mut unit: Unit,
        why: (String, Vec<String>),
        now: f64,
        cycle_s: f64,
    ) -> Resolved {
        let (message, reasons) = why;
        unit.attempts += 1;
        unit.last_failure = Some(message.clone());
        let outcome = Outcome::Unschedulable {
            pods: unit.pods.clone(),
            message,
            reasons,
            attempts: unit.attempts,
            at: now,
            cycle_s,
            nominated: self.nominated_names(&unit),
        };
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
            None => {
                // The room it was woken for, it did not take: someone else may.
                let offered = unit.offered.take();
                self.queue.park_unschedulable(unit, now);
                if let Some(id) = offered {
                    self.offer_room(id, None, now);
                }
            }
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

    /// Lets go of the reservation; pods it kept off its nodes get another chance.
    fn release(&mut self, now: f64) {
        if let Some(r) = self.reservation.take() {
            self.state.set_reservation(&r.nodes, None);
            self.released += self.queue.move_all_to_active_or_backoff(now);
        }
    }
}

/// Reasons ordered by how many nodes (or gang members) each kept out, most first, ties by
/// name: the first is the pod's main reason.
fn most_first(counts: std::collections::BTreeMap<String, usize>) -> Vec<String> {
    let mut reasons: Vec<(String, usize)> = counts.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    reasons.into_iter().map(|(r, _)| r).collect()
}

/// The bindings `pod`'s placement made for its claims (see
/// [`tessera_plugins::plugins::volumes::index`]), by claim.
fn volume_bindings(snapshot: &Snapshot, pod: &Pod) -> Vec<(PvcKey, VolumeBinding)> {
    if !pod.has_claims() {
        return Vec::new();
    }
    let (assumed, key) = (snapshot.volumes().assumed(), pod.key());
    let mut out: Vec<(PvcKey, VolumeBinding)> = Vec::new();
    for name in pod.volumes.iter().filter_map(PodVolume::claim) {
        let claim = PvcKey { namespace: pod.namespace, name };
        if let Some(a) = assumed.get(&claim).filter(|a| a.pod == key)
            && !out.iter().any(|(c, _)| *c == claim)
        {
            out.push((claim, a.binding));
        }
    }
    out
}
