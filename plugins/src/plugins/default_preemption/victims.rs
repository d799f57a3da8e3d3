//! The victims preemption would evict on one node (upstream's `SelectVictimsOnNode`).

use std::cmp::Ordering;
use std::sync::Arc;

use crate::disruption::Budgets;
use crate::framework::{CycleState, Profile};
use crate::model::Pod;
use crate::nodeinfo::{DeviceChoice, NodeInfo};
use crate::status::{Code, Status};

use super::NO_VICTIMS;

/// The pods to evict on a node, most important first, and how many of them break a budget.
#[derive(Clone, Debug, PartialEq)]
pub struct Victims {
    /// The pods.
    pub pods: Vec<Arc<Pod>>,
    /// How many of them a PodDisruptionBudget forbids disrupting.
    pub pdb_violations: usize,
}

/// The fewest, least important pods of lower priority than `pod` whose eviction lets it fit on
/// `node`, or why evicting cannot: no pod of lower priority (unresolvable), or the Filter that
/// still fails with all of them gone.
pub fn select_victims_on_node(
    profile: &Profile,
    state: &CycleState,
    pod: &Pod,
    node: &NodeInfo,
    budgets: &Budgets,
) -> Result<Victims, Status> {
    let mut lower: Vec<(Arc<Pod>, DeviceChoice)> =
        node.pods.iter().filter(|p| p.priority < pod.priority).map(|p| (p.clone(), devices_of(node, p))).collect();
    if lower.is_empty() {
        return Err(Status::new(Code::UnschedulableAndUnresolvable, NO_VICTIMS));
    }
    let mut view = node.clone();
    for (p, _) in &lower {
        view.remove_pod(&p.key());
    }
    let fits = |view: &NodeInfo| profile.run_filter_with_nominated(state, pod, view);
    let status = fits(&view);
    if !status.is_success() {
        return Err(status);
    }
    lower.sort_by(|a, b| more_important(&a.0, &b.0));
    let (violating, clean) = split_by_budgets(lower, budgets);
    let mut victims = Victims { pods: Vec::new(), pdb_violations: 0 };
    for (group, breaks_budget) in [(violating, true), (clean, false)] {
        for (p, devices) in group {
            // Reprieve the pod if the preemptor still fits with it back.
            view.add_pod_with(p.clone(), &devices);
            if !fits(&view).is_success() {
                view.remove_pod(&p.key());
                victims.pdb_violations += usize::from(breaks_budget);
                victims.pods.push(p);
            }
        }
    }
    victims.pods.sort_by(|a, b| more_important(a, b));
    Ok(victims)
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
    let mut allowed: Vec<i32> = budgets.budgets.iter().map(|b| b.allowed()).collect();
    let (mut violating, mut clean) = (Vec::new(), Vec::new());
    for entry in pods {
        let mut breaks = false;
        for (b, left) in budgets.budgets.iter().zip(allowed.iter_mut()) {
            if b.covers(&entry.0) {
                *left -= 1;
                breaks |= *left < 0;
            }
        }
        if breaks { violating.push(entry) } else { clean.push(entry) }
    }
    (violating, clean)
}
