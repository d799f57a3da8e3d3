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

use tessera_plugins::framework::Nomination;
use tessera_plugins::intern::Sym;

use super::core::{Core, Resolved};
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
        let node_name = node.name();
        self.binder.stats.preemptions += 1;
        self.state.nominate(pod.clone(), n.node);
        let victims: Vec<Outcome> = n
            .victims
            .iter()
            .map(|v| Outcome::Preempted { pod: v.clone(), node: node_name, by: pod.key(), at: now })
            .collect();
        let evict: Vec<_> = n.victims.iter().map(|v| v.key()).collect();
        unit.nominated = Some(Arc::new(n));
        // Parked before the victims leave, so that their departure offers it their room.
        let mut resolved = self.unschedulable(unit, why, now, cycle_s);
        resolved.outcomes.extend(victims);
        if self.eviction == Eviction::AtOnce {
            for key in &evict {
                self.delete_pod(key, now);
            }
        }
        resolved
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
    pub(super) fn nominated_name(&self, unit: &Unit) -> Option<Sym> {
        let n = unit.nominated.as_ref()?;
        self.state.snapshot().node(n.node).map(|node| node.name())
    }
}
