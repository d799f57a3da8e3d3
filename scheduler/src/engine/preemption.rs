//! Committing what PostFilter decided: the engine's side of preemption.
//!
//! A worker's PostFilter chooses victims on its own snapshot, as it chooses nodes; the commit
//! is optimistic in the same way. A preemption whose node changed since the victims were
//! chosen is dropped and the pod tried again at once, as the binder rejects a placement onto a
//! node that moved. A committed preemption nominates the pod to the node (its room there is
//! held against pods of lower or equal priority), parks the pod until the victims are gone,
//! and reports each victim ([`Outcome::Preempted`]); how the victims leave is
//! [`Eviction`]'s choice. Their departure wakes the pod through the usual queueing hints.

use std::sync::Arc;

use tessera_plugins::framework::{Nomination, Victim};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::PodKey;

use super::core::{Core, Resolved};
use super::gang::preemption::GangPreemption;
use super::queue::Unit;
use super::{Eviction, Outcome};

impl Core<'_> {
    /// Commits preemption `n` for the single-pod `unit` that fit nowhere (`why` is its
    /// message and reasons), or tries the unit again if the node moved.
    pub(super) fn preempt(
        &mut self,
        mut unit: Unit,
        n: Nomination,
        why: (String, Vec<String>),
        now: f64,
        cycle_s: f64,
    ) -> Resolved {
        let (Some(pod), Some(node)) = (unit.pods.first().cloned(), self.state.snapshot().node(n.node)) else {
            return self.unschedulable(unit, why, now, cycle_s);
        };
        if node.generation != n.seen_generation {
            self.binder.stats.preemption_conflicts += 1;
            unit.attempts += 1;
            self.queue.push_active(unit);
            return Resolved::requeued();
        }
        self.binder.stats.preemptions += 1;
        self.state.nominate(pod.clone(), n.node);
        let victims = self.victim_outcomes(&n.victims, &pod.key(), now);
        let evict: Vec<PodKey> = n.victims.iter().map(|v| v.pod.key()).collect();
        unit.nominated = Some(Arc::new(n));
        self.park_and_evict(unit, why, (victims, evict), now, cycle_s)
    }

    /// Commits gang preemption `g` for the gang `unit`, whole, or tries the gang again if any
    /// node involved moved (see [`super::gang::preemption`]).
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
        let Some(first) = g.members.first().map(|(_, n)| n.clone()).filter(|_| fresh) else {
            self.binder.stats.preemption_conflicts += 1;
            unit.attempts += 1;
            self.queue.push_active(unit);
            return Resolved::requeued();
        };
        self.binder.stats.preemptions += 1;
        let (mut victims, mut evict, mut outcomes) = (Vec::new(), Vec::new(), Vec::new());
        for (pod, n) in &g.members {
            self.state.nominate(pod.clone(), n.node);
            let fresh: Vec<Victim> = n.victims.iter().filter(|v| !evict.contains(&v.pod.key())).cloned().collect();
            outcomes.extend(self.victim_outcomes(&fresh, &pod.key(), now));
            evict.extend(fresh.iter().map(|v| v.pod.key()));
            victims.extend(fresh);
        }
        let pdb_violations = g.members.iter().map(|(_, n)| n.pdb_violations).sum();
        unit.nominated = Some(Arc::new(Nomination { victims, pdb_violations, ..first }));
        self.park_and_evict(unit, why, (outcomes, evict), now, cycle_s)
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
    /// A gang's members each have their own node, which one name cannot tell: `None` for them.
    pub(super) fn nominated_name(&self, unit: &Unit) -> Option<Sym> {
        let n = unit.nominated.as_ref().filter(|_| unit.gang.is_none())?;
        self.state.snapshot().node(n.node).map(|node| node.name())
    }
}
