//! A lower bound on the victims a node needs, from resources alone: what lets the candidate
//! search stop once it holds a candidate no other node could beat.
//!
//! Evicting pods must free at least the pod's shortage of each resource it requests, and a
//! pod slot when the node is full. For each short resource, the fewest pods that could free
//! it are its largest users of lower priority; the bound is the most such pods any one
//! resource needs. It ignores every other Filter, which can only call for more victims, so it
//! never exceeds the true count — provided NodeResourcesFit is among the Filters that run.

use crate::model::Pod;
use crate::nodeinfo::NodeInfo;

/// At least how many pods of lower priority than `pod` must leave `node` before it fits;
/// `None` when even all of them cannot free enough. Never below 1 for a node `pod` failed on.
pub fn min_victims(pod: &Pod, node: &NodeInfo, scratch: &mut Vec<i64>) -> Option<usize> {
    let free = node.free();
    let mut need = 1;
    let lower = || node.pods.iter().filter(|p| p.priority < pod.priority);
    for (id, amount) in pod.requests.iter_nonzero() {
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
