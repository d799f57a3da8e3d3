//! Choosing among candidate nodes (upstream's `pickOneNodeForPreemption`).

use std::cmp::Ordering;

use crate::framework::Victim;
use crate::nodeinfo::{NodeId, NodeInfo};

use super::bound::Floor;
use super::victims::Victims;

/// A node where preemption works, with what it would cost.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The node.
    pub node: NodeId,
    /// Its generation when the victims were chosen.
    pub generation: u64,
    /// The victims, most important first.
    pub victims: Vec<Victim>,
    /// How many victims break a budget.
    pub pdb_violations: usize,
}

impl Candidate {
    /// The candidate `node` with `victims`.
    pub fn new(node: &NodeInfo, victims: Victims) -> Candidate {
        Candidate {
            node: node.id,
            generation: node.generation,
            victims: victims.pods,
            pdb_violations: victims.pdb_violations,
        }
    }

    /// Whether no candidate can beat this one on the first four criteria: no budget broken,
    /// and as few victims as any node needs, each of the lowest priority any victim has.
    pub fn unbeatable(&self, floor: &mut Floor<'_>) -> bool {
        self.pdb_violations == 0
            && self.victims.iter().all(|v| v.pod.priority <= floor.priority)
            && floor.no_node_needs_fewer_than(self.victims.len())
    }

    /// The highest priority among the victims.
    fn highest(&self) -> i32 {
        self.victims.first().map_or(i32::MIN, |v| v.pod.priority)
    }

    /// The sum of the victims' priorities, each shifted by 2³¹ to be non-negative, as
    /// upstream sums them.
    fn priority_sum(&self) -> i64 {
        self.victims.iter().map(|v| i64::from(v.pod.priority) + i64::from(i32::MAX) + 1).sum()
    }

    /// The earliest start among the victims of the highest priority.
    fn earliest_start_of_highest(&self) -> f64 {
        let top = self.highest();
        self.victims.iter().filter(|v| v.pod.priority == top).map(|v| v.pod.creation_s).fold(f64::INFINITY, f64::min)
    }
}

/// The better of two candidates, `a` (found first) on a tie.
pub fn better(a: Candidate, b: Candidate) -> Candidate {
    let order = a
        .pdb_violations
        .cmp(&b.pdb_violations)
        .then_with(|| a.highest().cmp(&b.highest()))
        .then_with(|| a.priority_sum().cmp(&b.priority_sum()))
        .then_with(|| a.victims.len().cmp(&b.victims.len()))
        // The node whose most important victims started last loses the least work.
        .then_with(|| b.earliest_start_of_highest().total_cmp(&a.earliest_start_of_highest()));
    if order == Ordering::Greater { b } else { a }
}
