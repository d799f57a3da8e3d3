//! The cluster as plugins see it: every node's [`NodeInfo`], namespaces, and the topology
//! index that lets spread and inter-pod affinity count pods per domain instead of per pod.
//!
//! A snapshot is cheap to copy-on-write: nodes are `Arc`s, so replacing one node costs one
//! pointer and that node's index contributions. The engine keeps one snapshot as the live
//! truth and one per worker, refreshed from it in O(changed nodes).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::intern::Sym;
use crate::labels::LabelSet;
use crate::model::{Pod, PodKey};
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::topology::TopologyIndex;

/// An immutable-by-convention view of the cluster; mutated only by its owner.
#[derive(Debug)]
pub struct Snapshot {
    slots: Vec<Option<Arc<NodeInfo>>>,
    by_name: HashMap<Sym, NodeId>,
    num_nodes: usize,
    namespaces: Arc<HashMap<Sym, LabelSet>>,
    topology: TopologyIndex,
    /// Per slot, the value of `last_stamp` when the slot last changed (0: never filled).
    stamps: Vec<u64>,
    last_stamp: u64,
    /// Process-unique, so that a stamp is only ever compared with stamps of the same snapshot.
    uid: u64,
    /// How many nodes list each image name (each node counted once per name).
    image_nodes: HashMap<Arc<str>, u32>,
}

/// Source of [`Snapshot::uid`]s.
static NEXT_UID: AtomicU64 = AtomicU64::new(1);

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            slots: Vec::new(),
            by_name: HashMap::new(),
            num_nodes: 0,
            namespaces: Arc::default(),
            topology: TopologyIndex::default(),
            stamps: Vec::new(),
            last_stamp: 0,
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            image_nodes: HashMap::new(),
        }
    }
}

// A copy evolves on its own from here: it gets its own uid, so that caches keyed by the
// original's stamps never trust the copy's.
impl Clone for Snapshot {
    fn clone(&self) -> Self {
        Snapshot {
            slots: self.slots.clone(),
            by_name: self.by_name.clone(),
            num_nodes: self.num_nodes,
            namespaces: self.namespaces.clone(),
            topology: self.topology.clone(),
            stamps: self.stamps.clone(),
            last_stamp: self.last_stamp,
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            image_nodes: self.image_nodes.clone(),
        }
    }
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// A process-unique id of this snapshot (a clone gets a new one).
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// Per slot, a stamp that changes whenever anything in the slot changes (the node, its
    /// pods, its generation) in *this* snapshot, including changes its owner makes locally
    /// that do not move the node's cluster generation. Equal stamps of one snapshot (same
    /// [`Snapshot::uid`]) mean the node is unchanged; 0 never matches a filled slot.
    pub fn stamps(&self) -> &[u64] {
        &self.stamps
    }

    /// How many nodes list image `name` (upstream `ImageStateSummary.NumNodes`).
    pub fn nodes_with_image(&self, name: &str) -> usize {
        self.image_nodes.get(name).map_or(0, |n| *n as usize)
    }

    /// Whether any node lists any image.
    pub fn has_images(&self) -> bool {
        !self.image_nodes.is_empty()
    }

    fn restamp(&mut self, id: NodeId) {
        let i = id as usize;
        if self.stamps.len() <= i {
            self.stamps.resize(i + 1, 0);
        }
        self.last_stamp += 1;
        self.stamps[i] = self.last_stamp;
    }

    /// Counts (`delta` 1) or uncounts (-1) the distinct image names of `node`.
    fn count_images(&mut self, node: &crate::model::Node, delta: i64) {
        for (i, (name, _)) in node.images.iter().enumerate() {
            if node.images[..i].iter().any(|(seen, _)| seen == name) {
                continue;
            }
            if delta > 0 {
                *self.image_nodes.entry(name.clone()).or_insert(0) += 1;
            } else if let Some(n) = self.image_nodes.get_mut(name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.image_nodes.remove(name);
                }
            }
        }
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
            // Same node object: only pods moved, so recount only the pods that differ.
            Some(old) if Arc::ptr_eq(&old.node, &info.node) && old.id == info.id => {
                self.topology.replace_pods(&info.node, &old.pods, &info.pods);
                self.slots[id] = Some(info);
                self.restamp(id as NodeId);
                return;
            }
            Some(old) => {
                self.topology.remove_node(&old);
                if old.name() != info.name() {
                    self.by_name.remove(&old.name());
                }
                // Most refreshes only move pods: the node object, and so its images, is shared.
                if !Arc::ptr_eq(&old.node, &info.node) {
                    self.count_images(&old.node, -1);
                    self.count_images(&info.node, 1);
                }
            }
            None => {
                self.num_nodes += 1;
                self.count_images(&info.node, 1);
            }
        }
        self.topology.add_node(&info);
        self.by_name.insert(info.name(), info.id);
        self.slots[id] = Some(info);
        self.restamp(id as NodeId);
    }

    /// Empties slot `id` (a node deleted).
    pub fn remove_node(&mut self, id: NodeId) -> Option<Arc<NodeInfo>> {
        let old = self.slots.get_mut(id as usize)?.take()?;
        self.topology.remove_node(&old);
        self.by_name.remove(&old.name());
        self.count_images(&old.node, -1);
        self.num_nodes -= 1;
        self.restamp(id);
        Some(old)
    }

    /// Accounts for `pod` on node `id`, copying the node if a reader shares it. Returns the
    /// updated node, or `None` if the slot is empty.
    pub fn add_pod(&mut self, id: NodeId, pod: Arc<Pod>) -> Option<&NodeInfo> {
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        self.topology.add_pod(&slot.node, &pod);
        Arc::make_mut(slot).add_pod(pod);
        self.restamp(id);
        self.node(id).map(|n| n.as_ref())
    }

    /// Removes the pod `key` from node `id`, returning it if it was there.
    pub fn remove_pod(&mut self, id: NodeId, key: &PodKey) -> Option<Arc<Pod>> {
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        if !slot.pods.iter().any(|p| p.namespace == key.namespace && p.name == key.name) {
            return None;
        }
        let pod = Arc::make_mut(slot).remove_pod(key)?;
        self.topology.remove_pod(&slot.node, &pod);
        self.restamp(id);
        Some(pod)
    }

    /// Sets the generation stamp of node `id`.
    pub fn set_generation(&mut self, id: NodeId, generation: u64) {
        if let Some(Some(slot)) = self.slots.get_mut(id as usize) {
            Arc::make_mut(slot).generation = generation;
            self.restamp(id);
        }
    }
}
