//! The cluster as plugins see it: every node's [`NodeInfo`], namespaces, and the topology
//! index that lets spread and inter-pod affinity count pods per domain instead of per pod.
//!
//! A snapshot is cheap to copy-on-write: nodes are `Arc`s, so replacing one node costs one
//! pointer and that node's index contributions. The engine keeps one snapshot as the live
//! truth and one per worker, refreshed from it in O(changed nodes).

use std::collections::HashMap;
use std::sync::Arc;

use crate::intern::Sym;
use crate::labels::LabelSet;
use crate::model::{Pod, PodKey};
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::topology::TopologyIndex;

/// An immutable-by-convention view of the cluster; mutated only by its owner.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    slots: Vec<Option<Arc<NodeInfo>>>,
    by_name: HashMap<Sym, NodeId>,
    num_nodes: usize,
    namespaces: Arc<HashMap<Sym, LabelSet>>,
    topology: TopologyIndex,
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// Node slots, indexed by [`NodeId`]; `None` where a node was removed.
    pub fn slots(&self) -> &[Option<Arc<NodeInfo>>] {
        &self.slots
    }

    /// Every live node, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<NodeInfo>> + '_ {
        self.slots.iter().flatten()
    }

    /// Number of live nodes.
    pub fn num_nodes(&self) -> usize {
        self.num_nodes
    }

    /// The node in slot `id`.
    pub fn node(&self, id: NodeId) -> Option<&Arc<NodeInfo>> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// The node named `name`.
    pub fn node_by_name(&self, name: Sym) -> Option<&Arc<NodeInfo>> {
        self.by_name.get(&name).and_then(|id| self.node(*id))
    }

    /// The id of the node named `name`.
    pub fn node_id(&self, name: Sym) -> Option<NodeId> {
        self.by_name.get(&name).copied()
    }

    /// Labels of namespace `ns`, if known.
    pub fn namespace_labels(&self, ns: Sym) -> Option<&LabelSet> {
        self.namespaces.get(&ns)
    }

    /// All known namespaces.
    pub fn namespaces(&self) -> &Arc<HashMap<Sym, LabelSet>> {
        &self.namespaces
    }

    /// The per-domain pod counts.
    pub fn topology(&self) -> &TopologyIndex {
        &self.topology
    }

    /// Replaces the namespace table.
    pub fn set_namespaces(&mut self, namespaces: Arc<HashMap<Sym, LabelSet>>) {
        self.namespaces = namespaces;
    }

    /// Makes the index count pods per domain of `key` from now on.
    pub fn track_topology_key(&mut self, key: Sym) {
        if self.topology.is_tracked(key) {
            return;
        }
        self.topology.track(key, self.slots.iter().flatten().map(|n| n.as_ref()));
    }

    /// Puts `info` in its slot, replacing what was there (a node added or refreshed).
    pub fn set_node(&mut self, info: Arc<NodeInfo>) {
        let id = info.id as usize;
        if self.slots.len() <= id {
            self.slots.resize(id + 1, None);
        }
        match self.slots[id].take() {
            Some(old) => {
                self.topology.remove_node(&old);
                if old.name() != info.name() {
                    self.by_name.remove(&old.name());
                }
            }
            None => self.num_nodes += 1,
        }
        self.topology.add_node(&info);
        self.by_name.insert(info.name(), info.id);
        self.slots[id] = Some(info);
    }

    /// Empties slot `id` (a node deleted).
    pub fn remove_node(&mut self, id: NodeId) -> Option<Arc<NodeInfo>> {
        let old = self.slots.get_mut(id as usize)?.take()?;
        self.topology.remove_node(&old);
        self.by_name.remove(&old.name());
        self.num_nodes -= 1;
        Some(old)
    }

    /// Accounts for `pod` on node `id`, copying the node if a reader shares it. Returns the
    /// updated node, or `None` if the slot is empty.
    pub fn add_pod(&mut self, id: NodeId, pod: Arc<Pod>) -> Option<&NodeInfo> {
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        self.topology.add_pod(&slot.node, &pod);
        let info = Arc::make_mut(slot);
        info.add_pod(pod);
        Some(info)
    }

    /// Removes the pod `key` from node `id`, returning it if it was there.
    pub fn remove_pod(&mut self, id: NodeId, key: &PodKey) -> Option<Arc<Pod>> {
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        if !slot.pods.iter().any(|p| p.namespace == key.namespace && p.name == key.name) {
            return None;
        }
        let pod = Arc::make_mut(slot).remove_pod(key)?;
        self.topology.remove_pod(&slot.node, &pod);
        Some(pod)
    }

    /// Sets the generation stamp of node `id`.
    pub fn set_generation(&mut self, id: NodeId, generation: u64) {
        if let Some(Some(slot)) = self.slots.get_mut(id as usize) {
            Arc::make_mut(slot).generation = generation;
        }
    }
}
