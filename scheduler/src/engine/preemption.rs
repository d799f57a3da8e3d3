//! Committing what PostFilter decided: the engine's side of preemption.
//!
//! A worker's PostFilter chooses victims on its own snapshot, as it chooses nodes; the commit
//! is optimistic in the same way. A preemption whose node changed since the victims were
//! chosen is dropped and the pod tried again at once, as the binder rejects a placement onto a
//! node that moved. A committed preemption nominates the pod to the node (its room there is
//! held against pods of lower or equal priority), parks the pod until the victims are gone,
//! and reports each victim ([`Outcome::Preempted`]); how the victims leave is
//! [`Eviction`]'s choice. Their departure wakes the pod through the usual queueing hints.

use std::collections::HashSet;
use std::sync::Arc;

use tessera_plugins::framework::{Nomination, Victim};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::PodKey;
use tessera_plugins::plugins::default_preemption::{Gangs, still_running};

use super::core::{Core, Resolved};
use super::gang::preemption::GangPreemption;
use super::queue::Unit;
use super::{Eviction, Outcome};

impl Core<'_> {
    /// Commits preemption `n` for the single-pod `unit` that fit nowhere (`why` is its
    /// message and reasons), or tries the unit again if the node moved or a victim is no longer
    /// where it was chosen.
    pub(super) fn preempt(
        &mut self,
        mut unit: Unit,
        n: Nomination,
        why: (String, Vec<String>),
        now: f64,
        cycle_s: f64,
    ) -> Resolved {
        let Some(pod) = unit.pods.first().cloned() else {
            debug_assert!(false, "a preempting unit has a pod");
            return self.unschedulable(unit, why, now, cycle_s);
        };
        let live = self.state.snapshot();
        let fresh = live.node(n.node).is_some_and(|node| node.generation == n.seen_generation);
        if !fresh || !self.victims_still_there(&n.victims) {
            return self.preemption_conflict(unit);
        }
        self.binder.stats.preemptions += 1;
        self.state.nominate(pod.clone(), n.node);
        let evict = self.start_evicting(&n.victims, &pod.key(), now);
        unit.nominated = Some(Arc::new(n));
        self.park_and_evict(unit, why, evict, now, cycle_s)
    }

    /// Commits gang preemption `g` for the gang `unit`, whole, or tries the gang again if any
    /// node involved moved or a victim is no longer where it was chosen (see
    /// [`super::gang::preemption`]). Every member is nominated where the plan put it.
    pub(super) fn preempt_gang(
        &mut self,
        mut unit: Unit,
        g: GangPreemption,
        why: (String, Vec<String>),
        now: f64,
        cycle_s: f64,
    ) -> Resolved {
        let live = self.state.snapshot();
        let fresh = g.members.iter().all(|(_, n)| live.node(n.node).is_some_and(|x| x.generation == n.seen_generation));
        let victims: Vec<Victim> = g.members.iter().flat_map(|(_, n)| n.victims.iter().cloned()).collect();
        let Some(first) = g.members.first().map(|(_, n)| n.clone()).filter(|_| fresh) else {
            return self.preemption_conflict(unit);
        };
        if !self.victims_still_there(&victims) {
            return self.preemption_conflict(unit);
        }
        self.binder.stats.preemptions += 1;
        self.clear_nomination(&mut unit);
        let mut evict = (Vec::new(), Vec::new());
        for (pod, n) in &g.members {
            self.state.nominate(pod.clone(), n.node);
            let (outcomes, keys) = self.start_evicting(&n.victims, &pod.key(), now);
            evict.0.extend(outcomes);
            evict.1.extend(keys);
        }
        let pdb_violations = g.members.iter().map(|(_, n)| n.pdb_violations).sum();
        unit.nominated = Some(Arc::new(Nomination { victims, pdb_violations, ..first }));
        self.park_and_evict(unit, why, evict, now, cycle_s)
    }

    /// A preemption chosen on a view that has moved on: the unit is tried again at once, as
    /// the binder answers a stale placement.
    fn preemption_conflict(&mut self, mut unit: Unit) -> Resolved {
        self.binder.stats.preemption_conflicts += 1;
        unit.attempts += 1;
        self.queue.push_active(unit);
        Resolved::requeued()
    }

    /// Whether every victim is still placed where it was chosen, and no victim's gang that
    /// leaves whole has a member the victims leave out (one placed since they were chosen).
    fn victims_still_there(&self, victims: &[Victim]) -> bool {
        if !victims.iter().all(|v| self.state.node_of(&v.pod.key()) == Some(v.node)) {
            return false;
        }
        if victims.iter().all(|v| v.pod.pod_group.is_none()) {
            return true;
        }
        let chosen: HashSet<PodKey> = victims.iter().map(|v| v.pod.key()).collect();
        let mut gangs = Gangs::new(self.state.snapshot());
        victims
            .iter()
            .all(|v| gangs.fellows(&v.pod).is_none_or(|fellows| fellows.iter().all(|f| chosen.contains(&f.pod.key()))))
    }

    /// Starts evicting `victims` for preemptor `by`: each is reported once, however many
    /// preemptors chose it while it was leaving, and counted as disrupted by the budgets that
    /// cover it. Returns the outcomes and the pods to delete.
    fn start_evicting(&mut self, victims: &[Victim], by: &PodKey, now: f64) -> (Vec<Outcome>, Vec<PodKey>) {
        let fresh: Vec<Victim> = victims.iter().filter(|v| !self.state.is_evicting(&v.pod.key())).cloned().collect();
        for v in &fresh {
            self.state.disrupt(&v.pod);
        }
        let keys: Vec<PodKey> = fresh.iter().map(|v| v.pod.key()).collect();
        if self.eviction == Eviction::ByApi {
            self.state.mark_evicting(keys.iter().cloned());
        }
        (self.victim_outcomes(&fresh, by, now), keys)
    }

    /// Parks the preempting `unit` and lets its victims go: parked first, so that their
    /// departure offers it their room.
    fn park_and_evict(
        &mut self,
        unit: Unit,
        why: (String, Vec<String>),
        victims: (Vec<Outcome>, Vec<PodKey>),
        now: f64,
        cycle_s: f64,
    ) -> Resolved {
        let (outcomes, evict) = victims;
        let mut resolved = self.unschedulable(unit, why, now, cycle_s);
        resolved.outcomes.extend(outcomes);
        if self.eviction == Eviction::AtOnce {
            for key in &evict {
                self.delete_pod(key, now);
            }
        }
        resolved
    }

    /// A unit that waits for its victims (PostFilter said `Keep`): parked, unless the last of
    /// them left while it was being tried, when no departure would wake it any more.
    pub(super) fn keep_waiting(
        &mut self,
        mut unit: Unit,
        why: (String, Vec<String>),
        now: f64,
        cycle_s: f64,
    ) -> Resolved {
        let gone = unit.nominated.as_ref().is_some_and(|n| !still_running(self.state.snapshot(), &n.victims));
        if gone {
            unit.attempts += 1;
            self.queue.push_active(unit);
            return Resolved::requeued();
        }
        self.unschedulable(unit, why, now, cycle_s)
    }

    /// The API refused to evict `victim`: it runs on, so the pods waiting for it may preempt
    /// again.
    pub fn eviction_failed(&mut self, victim: &PodKey, now: f64) {
        self.state.eviction_failed(victim);
        self.released += self.queue.move_all_to_active_or_backoff(now);
    }

    /// One [`Outcome::Preempted`] per victim, each naming the node it runs on.
    fn victim_outcomes(&self, victims: &[Victim], by: &PodKey, now: f64) -> Vec<Outcome> {
        let snapshot = self.state.snapshot();
        victims
            .iter()
            .map(|v| Outcome::Preempted {
                pod: v.pod.clone(),
                node: snapshot.node(v.node).map_or_else(|| Sym::new(""), |n| n.name()),
                by: by.clone(),
                at: now,
            })
            .collect()
    }

    /// Drops the unit's nomination: preemption found nothing for it this time.
    pub(super) fn clear_nomination(&mut self, unit: &mut Unit) {
        if unit.nominated.take().is_some() {
            for pod in &unit.pods {
                self.state.unnominate(&pod.key());
            }
        }
    }

    /// The name of the node the unit is nominated to, for its outcome.
    /// The node each pod of the unit is nominated to, for its outcome (empty when the unit
    /// holds no nomination).
    pub(super) fn nominated_names(&self, unit: &Unit) -> Vec<Option<Sym>> {
        if unit.nominated.is_none() {
            return Vec::new();
        }
        let snapshot = self.state.snapshot();
        unit.pods
            .iter()
            .map(|p| self.state.nominated_node(&p.key()).and_then(|id| snapshot.node(id)).map(|n| n.name()))
            .collect()
    }
}
