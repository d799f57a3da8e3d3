//! The cluster as plugins see it: every node's [`NodeInfo`], namespaces, and the topology
//! index that lets spread and inter-pod affinity count pods per domain instead of per pod.
//!
//! A snapshot is cheap to copy-on-write: nodes are `Arc`s, so replacing one node costs one
//! pointer and that node's index contributions. The engine keeps one snapshot as the live
//! truth and one per worker, refreshed from it in O(changed nodes).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::default_selector::SelectorSources;
use crate::disruption::Budgets;
use crate::dra::held::{ClaimIndex, Holding};
use crate::dra::model::{ClaimAllocation, ClaimKey, DeviceId};
use crate::intern::Sym;
use crate::labels::LabelSet;
use crate::model::{GroupKey, Pod, PodKey};
use crate::nodeinfo::{DeviceChoice, NodeId, NodeInfo};
use crate::plugins::volumes::index::{Assumed, VolumeIndex, VolumeObjects};
use crate::plugins::volumes::model::PvcKey;
use crate::topology::{FxMap, TopologyIndex};

/// An immutable-by-convention view of the cluster; mutated only by its owner.
#[derive(Debug)]
pub struct Snapshot {
    slots: Vec<Option<Arc<NodeInfo>>>,
    /// Interned keys need no protection from collisions, and are looked up per node.
    by_name: FxMap<Sym, NodeId>,
    num_nodes: usize,
    namespaces: Arc<HashMap<Sym, LabelSet>>,
    selector_sources: Arc<SelectorSources>,
    topology: TopologyIndex,
    /// Changes to slots so far: bumped whenever anything in a slot changes.
    version: u64,
    /// The slots changed by changes `journal_base + 1 ..= version`, in order.
    journal: Vec<NodeId>,
    journal_base: u64,
    /// Process-unique, so that a version is only ever compared with versions of the same
    /// snapshot.
    uid: u64,
    /// How many nodes list each image name (each node counted once per name).
    image_nodes: HashMap<Arc<str>, u32>,
    /// How many nodes are held for a gang: while none is, Filter need not look.
    reserved_nodes: usize,
    /// Where shared DRA claims are held, and the use of devices not local to one node.
    claims: ClaimIndex,
    /// Claims the API records allocated on devices not local to one node: shared with
    /// copies refreshed from this snapshot, which pin them too.
    remote_pins: RemotePins,
    /// The PodDisruptionBudgets preemption respects: shared with copies refreshed from this
    /// snapshot.
    budgets: Arc<Budgets>,
    /// Groups whose members preemption may evict one by one (`disruptionMode.single`); every
    /// other group's members go together or not at all.
    disrupted_singly: Arc<HashSet<GroupKey>>,
    /// Pods preemption is evicting through the API, until they are gone: their preemptors
    /// wait for them rather than preempt again.
    evicting: Arc<HashSet<PodKey>>,
    /// PersistentVolumes, claims, classes, CSINodes, and the bindings assumed for placed
    /// pods' claims (see [`VolumeIndex`]).
    volumes: VolumeIndex,
    /// How many placed pods use each PersistentVolumeClaim (upstream's `IsPVCUsedByPods`),
    /// kept in step with the nodes' pods.
    claim_users: FxMap<PvcKey, u32>,
}

/// Allocations of claims with no node, by claim.
pub type RemotePins = Arc<FxMap<ClaimKey, Arc<ClaimAllocation>>>;

/// Changes the journal keeps (at least half of them at any time).
const JOURNAL_CAPACITY: usize = 1 << 16;

/// Source of [`Snapshot::uid`]s.
static NEXT_UID: AtomicU64 = AtomicU64::new(1);

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            slots: Vec::new(),
            by_name: FxMap::default(),
            num_nodes: 0,
            namespaces: Arc::default(),
            selector_sources: Arc::default(),
            topology: TopologyIndex::default(),
            version: 0,
            journal: Vec::new(),
            journal_base: 0,
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            image_nodes: HashMap::new(),
            reserved_nodes: 0,
            claims: ClaimIndex::default(),
            remote_pins: RemotePins::default(),
            budgets: Arc::default(),
            disrupted_singly: Arc::default(),
            evicting: Arc::default(),
            volumes: VolumeIndex::default(),
            claim_users: FxMap::default(),
        }
    }
}

// A copy evolves on its own from here: it gets its own uid, so that caches that follow the
// original's journal never trust the copy's.
impl Clone for Snapshot {
    fn clone(&self) -> Self {
        Snapshot {
            slots: self.slots.clone(),
            by_name: self.by_name.clone(),
            num_nodes: self.num_nodes,
            namespaces: self.namespaces.clone(),
            selector_sources: self.selector_sources.clone(),
            topology: self.topology.clone(),
            version: self.version,
            journal: self.journal.clone(),
            journal_base: self.journal_base,
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            image_nodes: self.image_nodes.clone(),
            reserved_nodes: self.reserved_nodes,
            claims: self.claims.clone(),
            remote_pins: self.remote_pins.clone(),
            budgets: self.budgets.clone(),
            disrupted_singly: self.disrupted_singly.clone(),
            evicting: self.evicting.clone(),
            volumes: self.volumes.clone(),
            claim_users: self.claim_users.clone(),
        }
    }
}

impl Snapshot {
    /// The PodDisruptionBudgets.
    pub fn budgets(&self) -> &Arc<Budgets> {
        &self.budgets
    }

    /// Replaces the budgets with those of another snapshot (a refresh).
    pub fn set_budgets(&mut self, budgets: Arc<Budgets>) {
        self.budgets = budgets;
    }

    /// The budgets to change (copied first when a refreshed snapshot shares them).
    pub fn budgets_mut(&mut self) -> &mut Budgets {
        Arc::make_mut(&mut self.budgets)
    }

    /// The groups whose members may be evicted one by one.
    pub fn disrupted_singly(&self) -> &Arc<HashSet<GroupKey>> {
        &self.disrupted_singly
    }

    /// Replaces the groups whose members may be evicted one by one.
    pub fn set_disrupted_singly(&mut self, groups: Arc<HashSet<GroupKey>>) {
        self.disrupted_singly = groups;
    }

    /// The pods being evicted by preemption.
    pub fn evicting(&self) -> &Arc<HashSet<PodKey>> {
        &self.evicting
    }

    /// Replaces the pods being evicted by preemption.
    pub fn set_evicting(&mut self, pods: Arc<HashSet<PodKey>>) {
        self.evicting = pods;
    }

    /// An empty snapshot.
    pub fn new() -> Snapshot {
        Snapshot::default()
    }

    /// A process-unique id of this snapshot (a clone gets a new one).
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// How many slot changes this snapshot has seen: any change in a slot (the node, its pods,
    /// its generation), including changes its owner makes locally that do not move the node's
    /// cluster generation.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The slots changed since the snapshot was at `version` (in order, with repeats), or
    /// `None` if the journal no longer reaches back that far. A cache of per-node results
    /// that remembers the version it is valid at drops exactly these nodes.
    pub fn changes_since(&self, version: u64) -> Option<&[NodeId]> {
        let from = version.checked_sub(self.journal_base)?;
        self.journal.get(usize::try_from(from).ok()?..)
    }

    /// How many nodes list image `name` (upstream `ImageStateSummary.NumNodes`).
    pub fn nodes_with_image(&self, name: &str) -> usize {
        self.image_nodes.get(name).map_or(0, |n| *n as usize)
    }

    /// Whether any node lists any image.
    pub fn has_images(&self) -> bool {
        !self.image_nodes.is_empty()
    }

    /// Records a change to slot `id`.
    fn restamp(&mut self, id: NodeId) {
        self.version += 1;
        self.journal.push(id);
        if self.journal.len() >= JOURNAL_CAPACITY {
            // Readers a whole capacity behind rebuild instead; keep the recent half.
            let drop = JOURNAL_CAPACITY / 2;
            self.journal.drain(..drop);
            self.journal_base += drop as u64;
        }
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

    /// The Services' and controllers' selectors that default spreading reads.
    pub fn selector_sources(&self) -> &Arc<SelectorSources> {
        &self.selector_sources
    }

    /// Replaces the selector sources.
    pub fn set_selector_sources(&mut self, sources: Arc<SelectorSources>) {
        self.selector_sources = sources;
    }

    /// The selector sources to change, copied first if a refreshed snapshot shares them.
    pub fn selector_sources_mut(&mut self) -> &mut SelectorSources {
        Arc::make_mut(&mut self.selector_sources)
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
        let was_reserved = self.slots[id].as_ref().is_some_and(|o| o.reserved_for.is_some());
        self.reserved_nodes =
            self.reserved_nodes + usize::from(info.reserved_for.is_some()) - usize::from(was_reserved);
        let flips = self.reindex(self.slots[id].clone().as_deref(), Some(&info));
        if let Some(old) = self.slots[id].clone() {
            self.count_claim_users(&old, -1);
        }
        self.count_claim_users(&info, 1);
        match self.slots[id].take() {
            // Same node object: only pods moved, so recount only the pods that differ.
            Some(old) if Arc::ptr_eq(&old.node, &info.node) && old.id == info.id => {
                self.topology.replace_pods(&info.node, &old.pods, &info.pods);
                self.slots[id] = Some(info);
                self.restamp(id as NodeId);
                self.mark_remote(Some(id as NodeId), &flips);
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
        self.mark_remote(Some(id as NodeId), &flips);
    }

    /// Whether some node is held for a gang (see [`NodeInfo::reservation_status`]).
    pub fn has_reservations(&self) -> bool {
        self.reserved_nodes > 0
    }

    /// Empties slot `id` (a node deleted).
    pub fn remove_node(&mut self, id: NodeId) -> Option<Arc<NodeInfo>> {
        let old = self.slots.get_mut(id as usize)?.take()?;
        let flips = self.reindex(Some(&old), None);
        self.count_claim_users(&old, -1);
        for pod in old.pods.iter().filter(|p| p.has_claims()) {
            self.volumes.forget(pod);
        }
        self.reserved_nodes -= usize::from(old.reserved_for.is_some());
        self.topology.remove_node(&old);
        self.by_name.remove(&old.name());
        self.count_images(&old.node, -1);
        self.num_nodes -= 1;
        self.restamp(id);
        self.mark_remote(None, &flips);
        Some(old)
    }

    /// Accounts for `pod` on node `id`, copying the node if a reader shares it. Returns the
    /// updated node, or `None` if the slot is empty.
    pub fn add_pod(&mut self, id: NodeId, pod: Arc<Pod>) -> Option<&NodeInfo> {
        self.add_pod_with(id, pod, &DeviceChoice::default())
    }

    /// As [`Snapshot::add_pod`], the pod holding the devices of `choice` (see
    /// [`NodeInfo::add_pod_with`]).
    pub fn add_pod_with(&mut self, id: NodeId, pod: Arc<Pod>, choice: &DeviceChoice) -> Option<&NodeInfo> {
        let choice = self.with_claims_held_elsewhere(id, &pod, choice);
        if pod.has_claims() && self.node(id).is_some() {
            self.count_pod_claims(&pod, 1);
            self.assume_volumes(id, &pod);
        }
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        self.topology.add_pod(&slot.node, &pod);
        if pod.claims.is_empty() {
            Arc::make_mut(slot).add_pod_with(pod, &choice);
            self.restamp(id);
        } else {
            self.change_claims(id, |info| info.add_pod_with(pod, &choice));
        }
        self.node(id).map(|n| n.as_ref())
    }

    /// Pins (`Some`) or unpins (`None`) claim `key` on node `id` (see
    /// [`NodeInfo::pin_claim`]), keeping the shared-claim index.
    pub fn pin_claim(&mut self, id: NodeId, key: &ClaimKey, pin: Option<(Arc<ClaimAllocation>, bool)>) {
        self.change_claims(id, |info| match pin {
            Some((allocation, shared)) => info.pin_claim(allocation, shared),
            None => info.unpin_claim(key),
        });
    }

    /// Pins (`Some`) or unpins (`None`) claim `key` whose allocation has no node (all its
    /// devices are reachable from many nodes): it holds them wherever they are reachable.
    pub fn pin_remote_claim(&mut self, key: ClaimKey, allocation: Option<Arc<ClaimAllocation>>) {
        let mut pins = FxMap::clone(&self.remote_pins);
        match allocation {
            Some(a) => pins.insert(key, a),
            None => pins.remove(&key),
        };
        self.set_remote_pins(Arc::new(pins));
    }

    /// The claims pinned with no node ([`Snapshot::pin_remote_claim`]).
    pub fn remote_pins(&self) -> &RemotePins {
        &self.remote_pins
    }

    /// Pins exactly `pins` (a refresh from the snapshot that has them), unpinning the rest.
    pub fn set_remote_pins(&mut self, pins: RemotePins) {
        let old = std::mem::replace(&mut self.remote_pins, pins.clone());
        let mut flips = Vec::new();
        for (key, a) in old.iter() {
            if pins.get(key) != Some(a) {
                self.claims.pin(*key, None, &mut flips);
            }
        }
        for (key, a) in pins.iter() {
            if old.get(key) != Some(a) {
                self.claims.pin(*key, Some(a.clone()), &mut flips);
            }
        }
        self.mark_remote(None, &flips);
    }

    /// The node holding shared claim `key` (one that several pods may use) on devices local to
    /// it, if it is allocated so.
    pub fn shared_claim_node(&self, key: &ClaimKey) -> Option<NodeId> {
        self.claims.get(key).filter(|h| h.allocation.node.is_some()).and_then(|h| h.nodes.first().copied())
    }

    /// Claim `key`, if it is shared or holds devices not local to one node, and is held.
    pub fn held_claim(&self, key: &ClaimKey) -> Option<&Holding> {
        self.claims.get(key)
    }

    /// The nodes that reach device `id`, which is not local to one node.
    pub fn nodes_reaching(&self, id: &DeviceId) -> &[NodeId] {
        self.claims.nodes_reaching(id)
    }

    /// Removes the pod `key` from node `id`, returning it if it was there.
    pub fn remove_pod(&mut self, id: NodeId, key: &PodKey) -> Option<Arc<Pod>> {
        let slot = self.slots.get(id as usize)?.as_ref()?;
        if !slot.pods.iter().any(|p| p.namespace == key.namespace && p.name == key.name) {
            return None;
        }
        // Removing the last user frees a claim.
        let pod = self.change_claims(id, |info| info.remove_pod(key))??;
        let node = self.slots.get(id as usize)?.as_ref()?.node.clone();
        self.topology.remove_pod(&node, &pod);
        if pod.has_claims() {
            self.count_pod_claims(&pod, -1);
            self.volumes.forget(&pod);
        }
        Some(pod)
    }

    /// The volume index: storage objects and assumed bindings.
    pub fn volumes(&self) -> &VolumeIndex {
        &self.volumes
    }

    /// Replaces the storage objects (keeping the assumed bindings).
    pub fn set_volume_objects(&mut self, objects: Arc<VolumeObjects>) {
        self.volumes.set_objects(objects);
    }

    /// The storage objects to change, copied first if a refreshed snapshot shares them.
    pub fn volume_objects_mut(&mut self) -> &mut VolumeObjects {
        self.volumes.objects_mut()
    }

    /// Replaces the assumed bindings (a refresh from the snapshot that made them).
    pub fn set_volume_assumptions(&mut self, assumed: Arc<Assumed>) {
        self.volumes.set_assumed(assumed);
    }

    /// Binds `pod`'s unbound `WaitForFirstConsumer` claims on node `id` (see
    /// [`VolumeIndex::assume`]); claims bound already are left as they are, so doing it
    /// again for a pod is harmless.
    pub fn assume_volumes(&mut self, id: NodeId, pod: &Pod) {
        let Some(node) = self.slots.get(id as usize).and_then(Option::as_ref).map(|n| n.node.clone()) else {
            return;
        };
        self.volumes.assume(pod, &node.labels, node.name);
    }

    /// How many placed pods use claim `key`.
    pub fn claim_users(&self, key: &PvcKey) -> u32 {
        self.claim_users.get(key).copied().unwrap_or(0)
    }

    /// Counts (`delta` 1) or uncounts (-1) the claims of the pods on `info`.
    fn count_claim_users(&mut self, info: &NodeInfo, delta: i32) {
        if info.pods_with_claims == 0 {
            return;
        }
        for pod in info.pods.iter().filter(|p| p.has_claims()) {
            self.count_pod_claims(pod, delta);
        }
    }

    /// Counts (`delta` 1) or uncounts (-1) `pod` as a user of each of its claims, once each.
    fn count_pod_claims(&mut self, pod: &Pod, delta: i32) {
        for (i, claim) in pod.volumes.iter().enumerate() {
            let Some(name) = claim.claim() else { continue };
            if pod.volumes[..i].iter().any(|v| v.claim() == Some(name)) {
                continue;
            }
            let key = PvcKey { namespace: pod.namespace, name };
            if delta > 0 {
                *self.claim_users.entry(key).or_insert(0) += 1;
            } else if let Some(n) = self.claim_users.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.claim_users.remove(&key);
                }
            }
        }
    }

    /// Runs `f` on node `id` (copied if shared), keeping the claim index and the use of
    /// non-local devices in step with what the node holds afterwards.
    fn change_claims<R>(&mut self, id: NodeId, f: impl FnOnce(&mut NodeInfo) -> R) -> Option<R> {
        let slot = self.slots.get_mut(id as usize)?.as_mut()?;
        let mut flips = Vec::new();
        self.claims.index_node(slot, false, &mut flips);
        let info = Arc::make_mut(slot);
        let out = f(info);
        self.claims.index_node(info, true, &mut flips);
        self.restamp(id);
        self.mark_remote(Some(id), &flips);
        Some(out)
    }

    /// Moves the claim index from node `old` to node `new` (either absent), returning the
    /// non-local devices whose use changed.
    fn reindex(&mut self, old: Option<&NodeInfo>, new: Option<&NodeInfo>) -> Vec<DeviceId> {
        let same_inventory = matches!((old, new), (Some(o), Some(n)) if Arc::ptr_eq(&o.node.devices, &n.node.devices));
        let mut flips = Vec::new();
        if let Some(old) = old {
            self.claims.index_node(old, false, &mut flips);
            if !same_inventory {
                self.claims.reach(old, false);
            }
        }
        if let Some(new) = new {
            if !same_inventory {
                self.claims.reach(new, true);
            }
            self.claims.index_node(new, true, &mut flips);
        }
        flips
    }

    /// Marks the use of non-local devices on the nodes that reach them: every device of
    /// `flips` on each of its nodes, and every non-local device of node `id`.
    fn mark_remote(&mut self, id: Option<NodeId>, flips: &[DeviceId]) {
        if let Some(id) = id {
            let devices: Vec<DeviceId> = match self.node(id) {
                Some(n) => n.node.devices.remote_devices().map(|(_, d)| d.id()).collect(),
                None => Vec::new(),
            };
            for device in &devices {
                self.mark_device(id, device);
            }
        }
        for device in flips {
            for node in self.claims.nodes_reaching(device).to_vec() {
                self.mark_device(node, device);
            }
        }
    }

    /// Sets node `id`'s bit for non-local `device` to whether some claim takes it.
    fn mark_device(&mut self, id: NodeId, device: &DeviceId) {
        let taken = self.claims.is_taken(device);
        let Some(Some(slot)) = self.slots.get_mut(id as usize) else { return };
        let inventory = &slot.node.devices;
        let Some(i) = inventory.index_of(device).filter(|&i| inventory.exclusive(i)) else { return };
        if slot.devices_used.contains(i) == taken {
            return;
        }
        let info = Arc::make_mut(slot);
        if taken {
            info.devices_used.insert(i);
        } else {
            info.devices_used.remove(i);
        }
        self.restamp(id);
    }

    /// `choice`, plus the allocations of the pod's claims held on other nodes only (a
    /// PodGroup's claim on non-local devices): the node holds them for the pod too.
    fn with_claims_held_elsewhere<'c>(&self, id: NodeId, pod: &Pod, choice: &'c DeviceChoice) -> Cow<'c, DeviceChoice> {
        let Some(info) = self.node(id) else { return Cow::Borrowed(choice) };
        let elsewhere: Vec<Arc<ClaimAllocation>> = pod
            .claims
            .iter()
            .filter(|pc| pc.allocation.is_none() && info.held_claim(&pc.key).is_none())
            .filter(|pc| !choice.claims.iter().any(|a| a.claim == pc.key))
            .filter_map(|pc| self.claims.get(&pc.key))
            .filter(|h| h.allocation.node.is_none())
            .map(|h| h.allocation.clone())
            .collect();
        if elsewhere.is_empty() {
            return Cow::Borrowed(choice);
        }
        let mut out = choice.clone();
        out.claims.extend(elsewhere);
        Cow::Owned(out)
    }

    /// Sets the generation stamp of node `id`.
    pub fn set_generation(&mut self, id: NodeId, generation: u64) {
        if let Some(Some(slot)) = self.slots.get_mut(id as usize) {
            Arc::make_mut(slot).generation = generation;
            self.restamp(id);
        }
    }
}
