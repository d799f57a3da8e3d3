//! Victims in gangs: a pod of a group whose disruption mode is `all` (every gang's default)
//! leaves only with every placed member of its group, wherever they run — evicting part of a
//! gang wastes everything the rest still holds. Such a pod is a victim only if no member has
//! the preemptor's priority or more, and choosing it brings its fellows along.
//!
//! The members are found by one scan of the nodes that hold group members, made the first time
//! a candidate node has one, and kept for the rest of the search.

use std::collections::HashMap;
use std::sync::Arc;

use crate::framework::Victim;
use crate::model::{GroupKey, Pod};
use crate::snapshot::Snapshot;

/// Who leaves with whom; see the module docs.
#[derive(Debug)]
pub struct Gangs<'a> {
    snapshot: &'a Snapshot,
    members: Option<HashMap<GroupKey, Vec<Victim>>>,
}

impl<'a> Gangs<'a> {
    /// The gangs of `snapshot`, not yet looked at.
    pub fn new(snapshot: &'a Snapshot) -> Gangs<'a> {
        Gangs { snapshot, members: None }
    }

    /// The placed members that must leave with `pod` (itself included), or `None` when it may
    /// leave alone.
    pub fn fellows(&mut self, pod: &Pod) -> Option<&[Victim]> {
        let key = pod.group_key()?;
        if self.snapshot.disrupted_singly().contains(&key) {
            return None;
        }
        let snapshot = self.snapshot;
        let members = self.members.get_or_insert_with(|| index(snapshot));
        members.get(&key).map(Vec::as_slice)
    }

    /// Whether `pod` may be evicted for a preemptor of `priority`: it, and every member that
    /// must leave with it, rank below.
    pub fn evictable(&mut self, pod: &Pod, priority: i32) -> bool {
        pod.priority < priority && self.fellows(pod).is_none_or(|f| f.iter().all(|v| v.pod.priority < priority))
    }
}

/// Every placed pod of a group that leaves whole, by group.
fn index(snapshot: &Snapshot) -> HashMap<GroupKey, Vec<Victim>> {
    let mut members: HashMap<GroupKey, Vec<Victim>> = HashMap::new();
    for node in snapshot.nodes().filter(|n| n.pods_in_groups > 0) {
        for pod in &node.pods {
            let Some(key) = pod.group_key() else { continue };
            if !snapshot.disrupted_singly().contains(&key) {
                members.entry(key).or_default().push(Victim { node: node.id, pod: Arc::clone(pod) });
            }
        }
    }
    members
}
