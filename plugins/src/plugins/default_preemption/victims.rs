//! The victims preemption would evict on one node (upstream's `SelectVictimsOnNode`).

use std::cmp::Ordering;
use std::sync::Arc;

use crate::disruption::Budgets;
use crate::framework::{CycleState, Profile, Victim};
use crate::model::Pod;
use crate::nodeinfo::{DeviceChoice, NodeInfo};
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
pub fn select_victims_on_node(
    profile: &Profile,
    state: &CycleState,
    pod: &Pod,
    node: &NodeInfo,
    budgets: &Budgets,
    gangs: &mut Gangs<'_>,
) -> Result<Victims, Status> {
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
    let mut chosen = Vec::new();
    for (p, devices) in violating.into_iter().chain(clean) {
        // Reprieve the pod if the preemptor still fits with it back.
        view.add_pod_with(p.clone(), &devices);
        if !fits(&view).is_success() {
            view.remove_pod(&p.key());
            chosen.push(Victim { node: node.id, pod: p });
        }
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
    let mut out: Vec<Victim> = Vec::with_capacity(chosen.len());
    let has = |out: &[Victim], p: &Pod| out.iter().any(|v| v.pod.namespace == p.namespace && v.pod.name == p.name);
    for v in chosen {
        if let Some(fellows) = gangs.fellows(&v.pod) {
            for f in fellows {
                if !has(&out, &f.pod) {
                    out.push(f.clone());
                }
            }
        }
        if !has(&out, &v.pod) {
            out.push(v);
        }
    }
    out
}

/// How many of `victims` (most important first) a budget forbids disrupting, each budget's
/// allowance spent along the list as upstream's `filterPodsWithPDBViolation` spends it.
fn violations(victims: &[Victim], budgets: &Budgets) -> usize {
    if budgets.is_empty() {
        return 0;
    }
    let mut allowed: Vec<i32> = budgets.budgets.iter().map(|b| b.allowed()).collect();
    let mut n = 0;
    for v in victims {
        let mut breaks = false;
        for (b, left) in budgets.budgets.iter().zip(allowed.iter_mut()) {
            if b.covers(&v.pod) {
                *left -= 1;
                breaks |= *left < 0;
            }
        }
        n += usize::from(breaks);
    }
    n
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
