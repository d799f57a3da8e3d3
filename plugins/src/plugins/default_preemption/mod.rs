//! DefaultPreemption: when a pod fits nowhere, find a node where evicting pods of lower
//! priority makes it fit, and nominate the pod there (upstream's PostFilter plugin of the same
//! name, with its semantics).
//!
//! The steps are upstream's:
//! 1. **Eligibility.** A pod with `preemptionPolicy: Never` never preempts; a pod already
//!    nominated waits while the victims it chose are still on their way out.
//! 2. **Candidates.** Only nodes whose Filter verdict was [`Code::Unschedulable`] (not
//!    unresolvable) are tried ([`Diagnosis::resolvable`]), from an offset that differs per pod,
//!    until `max(minCandidateNodesPercentage % of them, minCandidateNodesAbsolute)` candidates
//!    are found, at least one of them breaking no PodDisruptionBudget.
//! 3. **Victims on a node** ([`victims`]): remove every pod of lower priority; if the pod then
//!    fits, put them back most important first (budget-breaking ones first), keeping out only
//!    those without which it no longer fits.
//! 4. **The node** ([`pick`]): fewest budget violations, then the lowest highest-priority
//!    victim, the lowest sum of priorities, the fewest victims, the latest-started
//!    highest-priority victims.
//!
//! Where Tessera is faster: a node whose pods all have at least the pod's priority is passed
//! over without looking at its pods (each node keeps its lowest pod priority), and the search
//! stops early at a candidate none can beat on the first four criteria — one victim, of the
//! lowest priority any node has, breaking no budget. Upstream would keep sampling for the
//! fifth criterion only.
//!
//! Evicting the victims and waiting for them is the engine's part: the plugin only decides.
//! The pods set aside and put back on a node go through the PreFilter extensions
//! ([`crate::framework::PreFilterPlugin::remove_pod`]) on a copy of the cycle state, so that
//! PodTopologySpread and InterPodAffinity, which count pods across nodes in PreFilter, see the
//! node as it would be.

mod bound;
mod gangs;
mod pick;
mod victims;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::Deserialize;

use crate::framework::{Nomination, Plugin, PostFilterInput, PostFilterPlugin, PostFilterResult, Victim};
use crate::model::{Pod, PreemptionPolicy};
use crate::registry::{PluginArgs, PluginError, decode_args};
use crate::snapshot::Snapshot;
use crate::status::{Code, Diagnosis, Status};

use self::bound::Floor;
pub use self::gangs::Gangs;
use self::pick::Candidate;
pub use self::victims::select_victims_on_node;

/// The plugin's name.
pub const NAME: &str = "DefaultPreemption";
/// Upstream's reason for a node with no pod of lower priority.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// Upstream's reason for a node that failed a Filter no eviction can change.
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Upstream's message for a pod that may not preempt.
pub const NEVER: &str = "not eligible due to preemptionPolicy=Never";
/// Upstream's message for a nominated pod whose victims are still leaving.
pub const TERMINATING: &str = "not eligible due to a terminating pod on the nominated node";

/// `DefaultPreemptionArgs`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Args {
    /// Candidates to find, as a percentage of the nodes where preemption might help.
    #[serde(default = "default_percentage")]
    pub min_candidate_nodes_percentage: i32,
    /// Candidates to find at least, whatever the percentage gives.
    #[serde(default = "default_absolute")]
    pub min_candidate_nodes_absolute: i32,
}

fn default_percentage() -> i32 {
    10
}

fn default_absolute() -> i32 {
    100
}

impl Default for Args {
    fn default() -> Args {
        Args { min_candidate_nodes_percentage: default_percentage(), min_candidate_nodes_absolute: default_absolute() }
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct DefaultPreemption {
    args: Args,
}

/// Makes the plugin from `DefaultPreemptionArgs`, validated as upstream does.
pub fn new(args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    let args: Args = decode_args(NAME, args)?;
    if !(0..=100).contains(&args.min_candidate_nodes_percentage) {
        return Err(PluginError::bad_args(NAME, "minCandidateNodesPercentage: must be in the range [0, 100]"));
    }
    if args.min_candidate_nodes_absolute < 0 {
        return Err(PluginError::bad_args(NAME, "minCandidateNodesAbsolute: must be non-negative"));
    }
    if args.min_candidate_nodes_percentage == 0 && args.min_candidate_nodes_absolute == 0 {
        return Err(PluginError::bad_args(
            NAME,
            "minCandidateNodesPercentage and minCandidateNodesAbsolute: cannot both be zero",
        ));
    }
    Ok(Arc::new(DefaultPreemption { args }))
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(&self, input: &PostFilterInput<'_>) -> PostFilterResult {
        let pod = input.pod;
        // Upstream's plugin prefixes every message with what it is about.
        if pod.preemption_policy == PreemptionPolicy::Never {
            return PostFilterResult::Keep(Status::unschedulable(format!("preemption: {NEVER}")));
        }
        if waits_for_victims(input) {
            return PostFilterResult::Keep(Status::unschedulable(format!("preemption: {TERMINATING}")));
        }
        match self.find_candidate(input) {
            Ok(c) => PostFilterResult::Nominate(c.into_nomination()),
            Err(why) => PostFilterResult::Clear(Status::unschedulable(format!("preemption: {}", why.message()))),
        }
    }
}

impl DefaultPreemption {
    /// How many candidates to find among `potential` nodes (upstream's `calculateNumCandidates`).
    fn num_candidates(&self, potential: usize) -> usize {
        let pct = self.args.min_candidate_nodes_percentage.max(0) as usize;
        let abs = self.args.min_candidate_nodes_absolute.max(0) as usize;
        (potential * pct / 100).max(abs).min(potential)
    }

    /// The best candidate node, or why there is none (upstream's `FitError` of the dry run).
    fn find_candidate(&self, input: &PostFilterInput<'_>) -> Result<Candidate, Box<Diagnosis>> {
        let (pod, snapshot) = (input.pod, input.snapshot);
        let potential = &input.diagnosis.resolvable;
        let mut why = Diagnosis { num_all_nodes: input.diagnosis.num_all_nodes, ..Diagnosis::default() };
        let unhelpful = why.num_all_nodes.saturating_sub(potential.len());
        if unhelpful > 0 {
            why.reasons.insert(NOT_HELPFUL.to_string(), unhelpful);
        }
        if potential.is_empty() {
            return Err(Box::new(why));
        }
        let mut floor = Floor::new(input);
        let want = self.num_candidates(potential.len());
        let offset = start_offset(pod, potential.len());
        let (mut best, mut found, mut clean): (Option<Candidate>, usize, usize) = (None, 0, 0);
        let mut gangs = Gangs::new(snapshot);
        for i in 0..potential.len() {
            let id = potential[(offset + i) % potential.len()];
            let Some(node) = snapshot.node(id) else { continue };
            if node.reservation_status(pod).is_some() {
                why.add_node_status(&Status::new(Code::UnschedulableAndUnresolvable, NOT_HELPFUL));
                continue;
            }
            if node.lowest_priority >= pod.priority {
                why.add_node_status(&Status::new(Code::UnschedulableAndUnresolvable, NO_VICTIMS));
                continue;
            }
            match select_victims_on_node(input.profile, input.state, pod, node, snapshot, &mut gangs) {
                Ok(v) => {
                    found += 1;
                    clean += usize::from(v.pdb_violations == 0);
                    let c = Candidate::new(node, v);
                    let unbeatable = c.unbeatable(&mut floor);
                    best = Some(match best {
                        Some(b) => pick::better(b, c),
                        None => c,
                    });
                    if unbeatable || (clean > 0 && found >= want) {
                        break;
                    }
                }
                Err(s) => why.add_node_status(&s),
            }
        }
        best.ok_or_else(|| Box::new(why))
    }
}

/// Whether the pod's standing nomination still waits for victims it chose: they are on the
/// nominated node, on their way out (upstream: a terminating pod of lower priority there).
fn waits_for_victims(input: &PostFilterInput<'_>) -> bool {
    input.nominated.is_some_and(|n| still_running(input.snapshot, &n.victims))
}

/// Whether any of `victims` is still being evicted: marked so, and still where it was chosen.
/// A victim whose eviction the API refused is no longer marked, and its preemptor may preempt
/// again.
pub fn still_running(snapshot: &Snapshot, victims: &[Victim]) -> bool {
    victims.iter().any(|v| {
        snapshot.evicting().contains(&v.pod.key())
            && snapshot
                .node(v.node)
                .is_some_and(|n| n.pods.iter().any(|p| p.namespace == v.pod.namespace && p.name == v.pod.name))
    })
}

/// Where the walk over candidate nodes starts: upstream draws it at random; a hash of the pod
/// keeps runs reproducible while spreading preemptors, so that parallel workers rarely pick
/// the same node.
fn start_offset(pod: &Pod, n: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = crate::topology::FxHasher::default();
    pod.namespace.hash(&mut h);
    pod.name.hash(&mut h);
    (h.finish() % n as u64) as usize
}

impl Candidate {
    fn into_nomination(self) -> Nomination {
        Nomination {
            node: self.node,
            seen_generation: self.generation,
            victims: self.victims,
            pdb_violations: self.pdb_violations,
        }
    }
}
