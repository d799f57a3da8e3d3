//! A lower bound on the victims a node needs, from resources alone: what lets the candidate
//! search stop once it holds a candidate no other node could beat.
//!
//! Evicting pods must free at least the pod's shortage of CPU, memory and ephemeral storage,
//! and a pod slot when the node is full. For each short resource, the fewest pods that could
//! free it are its largest users of lower priority; the bound is the most such pods any one
//! resource needs. It ignores every other Filter, which can only call for more victims, so it
//! never exceeds the true count — provided NodeResourcesFit is among the Filters that run.
//! Extended resources are left out: NodeResourcesFit may be told to ignore them
//! (`ignoredResources`), and then a shortage of one calls for no victim at all.
//!
//! [`Floor`] works the bound out lazily: a candidate with one victim needs no scan at all,
//! and a scan for more stops at the first node that could do with fewer.

use crate::framework::PostFilterInput;
use crate::model::Pod;
use crate::nodeinfo::NodeInfo;
use crate::plugins::node_resources_fit;
use crate::resources::ResourceId;

/// What no candidate can go below on the first four criteria, for one preemptor.
#[derive(Debug)]
pub struct Floor<'a> {
    input: &'a PostFilterInput<'a>,
    /// The lowest priority any victim could have.
    pub priority: i32,
    /// Whether NodeResourcesFit filters the pod, without which resources bound nothing.
    checks_resources: bool,
    /// The fewest victims any node needs, once a scan has gone through every node.
    fewest: Option<usize>,
    /// A count some node is known to do with (a scan that stopped early found it).
    known: Option<usize>,
}

impl<'a> Floor<'a> {
    /// The floor for `input`'s pod: the priority part at once (a pass over the failed nodes'
    /// lowest priorities), the victim count when asked.
    pub fn new(input: &'a PostFilterInput<'a>) -> Floor<'a> {
        let snapshot = input.snapshot;
        let priority = input
            .diagnosis
            .resolvable
            .iter()
            .filter_map(|id| snapshot.node(*id))
            .map(|n| n.lowest_priority)
            .min()
            .unwrap_or(i32::MAX);
        let checks_resources = input
            .profile
            .filter
            .iter()
            .enumerate()
            .any(|(i, p)| p.name() == node_resources_fit::NAME && !input.state.skips_filter(i));
        Floor { input, priority, checks_resources, fewest: None, known: None }
    }

    /// Whether every node needs at least `k` victims.
    pub fn no_node_needs_fewer_than(&mut self, k: usize) -> bool {
        if k <= 1 {
            return true;
        }
        if !self.checks_resources {
            return false;
        }
        if let Some(fewest) = self.fewest {
            return fewest >= k;
        }
        if self.known.is_some_and(|n| n < k) {
            return false;
        }
        let (pod, snapshot) = (self.input.pod, self.input.snapshot);
        let mut scratch = Vec::new();
        let mut fewest = usize::MAX;
        for node in self.input.diagnosis.resolvable.iter().filter_map(|id| snapshot.node(*id)) {
            if node.lowest_priority >= pod.priority {
                continue;
            }
            if let Some(n) = min_victims(pod, node, &mut scratch) {
                if n < k {
                    self.known = Some(n);
                    return false;
                }
                fewest = fewest.min(n);
            }
        }
        self.fewest = Some(fewest);
        true
    }
}

/// The resources NodeResourcesFit always checks (upstream accepts only extended resources in
/// `ignoredResources` and `ignoredResourceGroups`).
const NEVER_IGNORED: [ResourceId; 3] = [ResourceId::CPU, ResourceId::MEMORY, ResourceId::EPHEMERAL_STORAGE];

/// At least how many pods of lower priority than `pod` must leave `node` before it fits;
/// `None` when even all of them cannot free enough. Never below 1 for a node `pod` failed on.
pub fn min_victims(pod: &Pod, node: &NodeInfo, scratch: &mut Vec<i64>) -> Option<usize> {
    let free = node.free();
    let mut need = 1;
    let lower = || node.pods.iter().filter(|p| p.priority < pod.priority);
    for (id, amount) in pod.requests.iter_nonzero().filter(|(id, _)| NEVER_IGNORED.contains(id)) {
        let mut short = amount - free.get(id);
        if short <= 0 {
            continue;
        }
        scratch.clear();
        scratch.extend(lower().map(|p| p.requests.get(id)).filter(|a| *a > 0));
        scratch.sort_unstable_by(|a, b| b.cmp(a));
        let mut k = 0;
        for a in scratch.iter() {
            if short <= 0 {
                break;
            }
            short -= a;
            k += 1;
        }
        if short > 0 {
            return None;
        }
        need = need.max(k);
    }
    let over = (node.pods.len() + 1).saturating_sub(node.node.allowed_pods as usize);
    if over > lower().count() {
        return None;
    }
    Some(need.max(over))
}
