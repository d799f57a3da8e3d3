//! The victims preemption would evict on one node (upstream's `SelectVictimsOnNode`).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use crate::disruption::Budgets;
use crate::framework::{CycleState, Profile, Victim};
use crate::model::{Pod, PodKey};
use crate::nodeinfo::{DeviceChoice, NodeInfo};
use crate::snapshot::Snapshot;
use crate::status::{Code, Status};

use super::NO_VICTIMS;
use super::gangs::Gangs;

/// The pods to evict for a node, most important first, and how many of them break a budget.
#[derive(Clone, Debug, PartialEq)]
pub struct Victims {
    /// The pods: on the node, and the fellow members of victims in gangs, wherever they run.
    pub pods: Vec<Victim>,
    /// How many of them a PodDisruptionBudget forbids disrupting.
    pub pdb_violations: usize,
}

/// The fewest, least important pods of lower priority than `pod` whose eviction lets it fit on
/// `node`, with the gang members that must leave with them, or why evicting cannot: no pod of
/// lower priority (unresolvable), or the Filter that still fails with all of them gone.
///
/// The pods set aside and put back go through the PreFilter extensions on a copy of `state`,
/// so that plugins counting pods across nodes (inter-pod affinity, topology spread) see the
/// node as it would be, as upstream's `SelectVictimsOnNode` does.
pub fn select_victims_on_node(
    profile: &Profile,
    state: &CycleState,
    pod: &Pod,
    node: &NodeInfo,
    snapshot: &Snapshot,
    gangs: &mut Gangs<'_>,
) -> Result<Victims, Status> {
    let budgets = snapshot.budgets();
    let mut lower: Vec<(Arc<Pod>, DeviceChoice)> = node
        .pods
        .iter()
        .filter(|p| if node.pods_in_groups > 0 { gangs.evictable(p, pod.priority) } else { p.priority < pod.priority })
        .map(|p| (p.clone(), devices_of(node, p)))
        .collect();
    if lower.is_empty() {
        return Err(Status::new(Code::UnschedulableAndUnresolvable, NO_VICTIMS));
    }
    let mut view = node.clone();
    let mut state = state.clone();
    for (p, _) in &lower {
        view.remove_pod(&p.key());
        profile.run_pre_filter_extensions(&mut state, pod, p, node, snapshot, false);
    }
    let status = profile.run_filter_with_nominated(&state, pod, &view);
    if !status.is_success() {
        return Err(status);
    }
    lower.sort_by(|a, b| more_important(&a.0, &b.0));
    let (violating, clean) = split_by_budgets(lower, budgets);
    let ordered: Vec<Held> = violating.into_iter().chain(clean).collect();
    let mut decided = vec![false; ordered.len()];
    let mut chosen = Vec::new();
    for i in 0..ordered.len() {
        if decided[i] {
            continue;
        }
        // A pod reprieved or evicted with the members of its gang here, which leave together.
        let whole = node.pods_in_groups > 0 && gangs.fellows(&ordered[i].0).is_some();
        let group = ordered[i].0.group_key();
        let unit: Vec<usize> = if whole {
            (i..ordered.len()).filter(|&j| !decided[j] && ordered[j].0.group_key() == group).collect()
        } else {
            vec![i]
        };
        for &j in &unit {
            decided[j] = true;
            let (p, devices) = &ordered[j];
            view.add_pod_with(p.clone(), devices);
            profile.run_pre_filter_extensions(&mut state, pod, p, node, snapshot, true);
        }
        // Reprieved if the preemptor still fits with them back.
        if !profile.run_filter_with_nominated(&state, pod, &view).is_success() {
            for &j in &unit {
                let p = &ordered[j].0;
                view.remove_pod(&p.key());
                profile.run_pre_filter_extensions(&mut state, pod, p, node, snapshot, false);
                chosen.push(Victim { node: node.id, pod: p.clone() });
            }
        }
    }
    if chosen.is_empty() {
        // It fits beside every pod of lower priority: whatever failed it on this node, it was
        // not them (upstream: "expected at least one victim pod on node").
        return Err(Status::new(Code::UnschedulableAndUnresolvable, NO_VICTIMS));
    }
    if node.pods_in_groups > 0 {
        chosen = with_fellows(chosen, gangs);
    }
    chosen.sort_by(|a, b| more_important(&a.pod, &b.pod));
    let pdb_violations = violations(&chosen, budgets);
    Ok(Victims { pods: chosen, pdb_violations })
}

/// `chosen`, with every fellow member of the gangs among them added once.
fn with_fellows(chosen: Vec<Victim>, gangs: &mut Gangs<'_>) -> Vec<Victim> {
    let mut seen: HashSet<PodKey> = HashSet::with_capacity(chosen.len());
    let mut out: Vec<Victim> = Vec::with_capacity(chosen.len());
    for v in chosen {
        if let Some(fellows) = gangs.fellows(&v.pod) {
            out.extend(fellows.iter().filter(|f| seen.insert(f.pod.key())).cloned());
        }
        if seen.insert(v.pod.key()) {
            out.push(v);
        }
    }
    out
}

/// How many of `victims` (most important first) a budget forbids disrupting.
fn violations(victims: &[Victim], budgets: &Budgets) -> usize {
    let mut spend = Allowances::new(budgets);
    victims.iter().filter(|v| spend.breaks(&v.pod)).count()
}

/// The budgets' allowances, spent pod by pod along a list most important first, as upstream's
/// `filterPodsWithPDBViolation` spends them.
struct Allowances<'b> {
    budgets: &'b Budgets,
    left: Vec<i32>,
}

impl<'b> Allowances<'b> {
    fn new(budgets: &'b Budgets) -> Allowances<'b> {
        Allowances { budgets, left: budgets.budgets.iter().map(|b| b.allowed()).collect() }
    }

    /// Spends one disruption of every budget covering `pod`; whether one was already spent.
    fn breaks(&mut self, pod: &Pod) -> bool {
        let mut breaks = false;
        for (b, left) in self.budgets.budgets.iter().zip(self.left.iter_mut()) {
            if b.covers(pod) {
                *left -= 1;
                breaks |= *left < 0;
            }
        }
        breaks
    }
}

/// A pod on the node and the devices it holds there.
type Held = (Arc<Pod>, DeviceChoice);

/// The devices `pod` holds on `node`, so that a reprieved pod gets exactly them back.
fn devices_of(node: &NodeInfo, pod: &Pod) -> DeviceChoice {
    DeviceChoice { gpus: node.gpus_of(&pod.key()), claims: node.claims_of(pod) }
}

/// Upstream's `MoreImportantPod`: higher priority first, then the earlier started (Tessera
/// knows a pod's creation time, which for a running pod is when it was made to start).
pub fn more_important(a: &Pod, b: &Pod) -> Ordering {
    b.priority.cmp(&a.priority).then_with(|| a.creation_s.total_cmp(&b.creation_s))
}

/// Splits `pods` (most important first) into those whose eviction would break a budget and
/// the others, both in the same order (upstream's `filterPodsWithPDBViolation`): each budget's
/// allowance is spent pod by pod along the list.
fn split_by_budgets(pods: Vec<Held>, budgets: &Budgets) -> (Vec<Held>, Vec<Held>) {
    if budgets.is_empty() {
        return (Vec::new(), pods);
    }
    let mut spend = Allowances::new(budgets);
    pods.into_iter().partition(|(p, _)| spend.breaks(p))
}
