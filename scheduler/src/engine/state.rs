//! `ClusterState`: the live truth inside the process, and the change log that lets every
//! worker refresh its snapshot in O(changed nodes).
//!
//! The state owns a [`Snapshot`] (the "master" copy that the binder reads and writes) plus a
//! generation counter. Every change to a node stamps it with the next generation and appends
//! `(generation, node)` to a log; a worker whose snapshot is at generation `g` copies exactly
//! the nodes logged after `g`. The log is compacted to one entry per node when it grows past
//! twice the node count, so it never outgrows the cluster.
//!
//! A pod bound to a node the cluster does not have (created with `spec.nodeName` of a missing
//! node) stays bound to that name, as on a real cluster: it waits in
//! [`ClusterState::awaiting_node`]'s table, holding nothing, and is accounted on the node when a
//! node of that name is added.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tessera_plugins::default_selector::SourceChange;
use tessera_plugins::disruption::{Allowance, Budgets, DisruptionBudget};
use tessera_plugins::dra::model::{ClaimAllocation, ClaimKey};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{DisruptionMode, GroupKey, Node, Pod, PodKey};
use tessera_plugins::nodeinfo::{DeviceChoice, NodeId, NodeInfo};
use tessera_plugins::plugins::volumes::index::VolumeObjects;
use tessera_plugins::snapshot::Snapshot;
use thiserror::Error;

/// Errors changing the cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// A pod names a node the state does not have.
    #[error("pod {pod}: node {node} does not exist")]
    NoSuchNode {
        /// The pod.
        pod: PodKey,
        /// The node it names.
        node: Sym,
    },
    /// A pod is already on a node; binding it again would count it twice.
    #[error("pod {pod} is already on node {node}")]
    AlreadyPlaced {
        /// The pod.
        pod: PodKey,
        /// Where it is.
        node: Sym,
    },
}

/// The live cluster: nodes with their pods, namespaces, and the change log.
#[derive(Debug, Default)]
pub struct ClusterState {
    master: Snapshot,
    generation: u64,
    log: Vec<(u64, NodeId)>,
    placed: HashMap<PodKey, NodeId>,
    free_ids: Vec<NodeId>,
    next_id: NodeId,
    /// How many pods with required anti-affinity are placed; while any are, every placement
    /// can be invalidated by a commit on another node.
    anti_affinity_pods: usize,
    /// Claims the API records allocated, by claim, with whether other pods may share them;
    /// pinned on their node once it exists ([`ClusterState::set_claim_allocation`]).
    pins: HashMap<ClaimKey, (Arc<ClaimAllocation>, bool)>,
    /// The pinned claims by the node their allocation names.
    pins_by_node: HashMap<Sym, Vec<ClaimKey>>,
    /// Pods nominated by preemption, and where ([`ClusterState::nominate`]).
    nominations: HashMap<PodKey, NodeId>,
    /// Pods bound to a node name no node has (yet), by that name.
    awaiting: HashMap<Sym, Vec<Arc<Pod>>>,
}

impl ClusterState {
    /// An empty cluster.
    pub fn new() -> ClusterState {
        ClusterState::default()
    }

    /// The live snapshot (read it, never hold it across a mutation).
    pub fn snapshot(&self) -> &Snapshot {
        &self.master
    }

    /// The current generation: bumped by every change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether placed pods carry required anti-affinity (see the field).
    pub fn has_anti_affinity_pods(&self) -> bool {
        self.anti_affinity_pods > 0
    }

    /// The node a pod is placed on.
    pub fn node_of(&self, key: &PodKey) -> Option<NodeId> {
        self.placed.get(key).copied()
    }

    /// Number of placed pods.
    pub fn placed_count(&self) -> usize {
        self.placed.len()
    }

    /// Adds a node, or replaces the node of the same name keeping its pods. Returns its id.
    ///
    /// A replaced node whose DRA inventory changed (its ResourceSlices were republished) has
    /// the devices its claims hold found again by identity in the new inventory: held devices
    /// are indices into the node's devices, which a new inventory renumbers.
    pub fn upsert_node(&mut self, node: Node) -> NodeId {
        let node = Arc::new(node);
        let new = self.master.node_by_name(node.name).is_none();
        let info = match self.master.node_by_name(node.name) {
            Some(old) => {
                let mut info = NodeInfo::clone(old);
                let inventory_changed = !Arc::ptr_eq(&info.node.devices, &node.devices);
                info.node = node;
                if inventory_changed {
                    info.rehold_devices();
                }
                info
            }
            None => NodeInfo::new(self.allocate_id(), node),
        };
        let (id, name) = (info.id, info.name());
        let since = self.master.version();
        self.master.set_node(Arc::new(info));
        if new {
            // Claims are listed before nodes: those already allocated here hold their devices.
            for key in self.pins_by_node.get(&name).cloned().unwrap_or_default() {
                let pin = self.pins.get(&key).cloned();
                self.master.pin_claim(id, &key, pin);
            }
        }
        self.touch_changed(since);
        if new {
            // Pods bound to this name before the node existed are accounted on it now.
            for pod in self.awaiting.remove(&name).unwrap_or_default() {
                if let Err(e) = self.place_on_named_node(pod) {
                    tracing::warn!("pod bound before its node was added not accounted: {e}");
                }
            }
        }
        id
    }

    /// Pods bound to node name `node`, which no node of the cluster has (yet).
    pub fn awaiting_node(&self, node: Sym) -> &[Arc<Pod>] {
        self.awaiting.get(&node).map_or(&[], Vec::as_slice)
    }

    /// Forgets pod `key` if it waits for its node to exist, returning it.
    pub fn forget_awaiting(&mut self, key: &PodKey) -> Option<Arc<Pod>> {
        let node = self.awaiting.iter().find(|(_, pods)| pods.iter().any(|p| &p.key() == key)).map(|(n, _)| *n)?;
        let pods = self.awaiting.get_mut(&node)?;
        let at = pods.iter().position(|p| &p.key() == key)?;
        let pod = pods.swap_remove(at);
        if pods.is_empty() {
            self.awaiting.remove(&node);
        }
        Some(pod)
    }

    /// Records what the API says of claim `key`: allocated (with whether other pods may share
    /// it) or not. An allocated claim holds its devices on its node whether or not a placed pod
    /// uses it, as upstream counts every allocated claim; one deallocated is freed once no
    /// placed pod uses it. Returns whether anything changed.
    pub fn set_claim_allocation(&mut self, key: ClaimKey, pin: Option<(Arc<ClaimAllocation>, bool)>) -> bool {
        if self.pins.get(&key) == pin.as_ref() {
            return false;
        }
        let since = self.master.version();
        if let Some((old, _)) = self.pins.remove(&key) {
            match old.node {
                Some(node) => {
                    if let Some(keys) = self.pins_by_node.get_mut(&node) {
                        keys.retain(|k| *k != key);
                    }
                    self.pin_on(node, &key, None);
                }
                None => self.master.pin_remote_claim(key, None),
            }
        }
        if let Some((allocation, shared)) = pin {
            self.pins.insert(key, (allocation.clone(), shared));
            match allocation.node {
                Some(node) => {
                    self.pins_by_node.entry(node).or_default().push(key);
                    self.pin_on(node, &key, Some((allocation, shared)));
                }
                // Its devices are reachable from many nodes: held wherever they are.
                None => self.master.pin_remote_claim(key, Some(allocation)),
            }
        }
        self.touch_changed(since);
        true
    }

    fn pin_on(&mut self, node: Sym, key: &ClaimKey, pin: Option<(Arc<ClaimAllocation>, bool)>) {
        if let Some(id) = self.master.node_id(node) {
            self.master.pin_claim(id, key, pin);
        }
    }

    /// Removes a node by name, returning the pods that were on it (now unplaced).
    pub fn remove_node(&mut self, name: Sym) -> Vec<Arc<Pod>> {
        let Some(id) = self.master.node_id(name) else { return Vec::new() };
        let since = self.master.version();
        let Some(old) = self.master.remove_node(id) else { return Vec::new() };
        for p in &old.pods {
            self.forget(p);
            self.count_in_budgets(p, -1);
            self.unmark_evicting(&p.key());
        }
        // The id is reused for the next node: nominations to this one end here.
        self.nominations.retain(|_, at| *at != id);
        self.free_ids.push(id);
        self.touch_changed(since);
        old.pods.clone()
    }

    /// Replaces the cluster's storage objects (PersistentVolumes, claims, classes,
    /// CSINodes), keeping the bindings assumed for placed pods. Counts as a change of every
    /// placement with claims: the generation moves, so the binder re-checks those.
    pub fn set_volume_objects(&mut self, objects: Arc<VolumeObjects>) {
        self.master.set_volume_objects(objects);
        self.generation += 1;
    }

    /// Changes the storage objects in place (a watch event), as
    /// [`ClusterState::set_volume_objects`].
    pub fn change_volume_objects(&mut self, f: impl FnOnce(&mut VolumeObjects)) {
        f(self.master.volume_objects_mut());
        self.generation += 1;
    }

    /// Replaces the namespace table.
    pub fn set_namespaces(&mut self, namespaces: HashMap<Sym, LabelSet>) {
        self.master.set_namespaces(Arc::new(namespaces));
    }

    /// Applies a change to the Services' and controllers' selectors (for default spreading);
    /// one that changes nothing (a controller's status update) copies nothing.
    pub fn apply_selector_source(&mut self, change: SourceChange) {
        if self.master.selector_sources().changes(&change) {
            self.master.selector_sources_mut().apply(change);
        }
    }

    /// Makes the topology index count domains of `key` (for spread and affinity).
    pub fn track_topology_key(&mut self, key: Sym) {
        self.master.track_topology_key(key);
    }

    /// Tracks every topology key `pod`'s constraints use.
    pub fn track_keys_of(&mut self, pod: &Pod) {
        for k in topology_keys(pod) {
            self.track_topology_key(k);
        }
    }

    /// Places `pod` on node `id` (assume or bind), its GPUs chosen by the node.
    pub fn place(&mut self, pod: Arc<Pod>, id: NodeId) -> Result<(), StateError> {
        self.place_with(pod, id, &DeviceChoice::default())
    }

    /// Places `pod` on node `id` holding the devices of `choice` (see
    /// [`NodeInfo::add_pod_with`]).
    pub fn place_with(&mut self, pod: Arc<Pod>, id: NodeId, choice: &DeviceChoice) -> Result<(), StateError> {
        let key = pod.key();
        if let Some(&at) = self.placed.get(&key) {
            let node = self.master.node(at).map_or_else(|| Sym::new("?"), |n| n.name());
            return Err(StateError::AlreadyPlaced { pod: key, node });
        }
        if self.master.node(id).is_none() {
            return Err(StateError::NoSuchNode { pod: key, node: Sym::new(&format!("#{id}")) });
        }
        self.track_keys_of(&pod);
        if !pod.pod_anti_affinity.required.is_empty() {
            self.anti_affinity_pods += 1;
        }
        let since = self.master.version();
        self.count_in_budgets(&pod, 1);
        self.master.add_pod_with(id, pod, choice);
        self.placed.insert(key, id);
        self.touch_changed(since);
        Ok(())
    }

    /// Nominates `pod` to node `id` (it preempted pods there and waits for them to leave),
    /// replacing any earlier nomination of it: the node holds the pod's room against pods of
    /// lower or equal priority, a change like any other.
    pub fn nominate(&mut self, pod: Arc<Pod>, id: NodeId) {
        let key = pod.key();
        self.unnominate(&key);
        let Some(node) = self.master.node(id) else { return };
        let mut info = NodeInfo::clone(node);
        info.nominate(pod);
        self.master.set_node(Arc::new(info));
        self.touch(id);
        self.nominations.insert(key, id);
    }

    /// Forgets the nomination of pod `key` (it was bound, deleted, or preemption gave up on
    /// it); whether it had one.
    pub fn unnominate(&mut self, key: &PodKey) -> bool {
        let Some(id) = self.nominations.remove(key) else { return false };
        if let Some(node) = self.master.node(id) {
            let mut info = NodeInfo::clone(node);
            if info.unnominate(key) {
                self.master.set_node(Arc::new(info));
                self.touch(id);
            }
        }
        true
    }

    /// Marks `pods` as being evicted by preemption (through the API), until they are gone or
    /// their eviction fails ([`ClusterState::eviction_failed`]).
    pub fn mark_evicting(&mut self, pods: impl IntoIterator<Item = PodKey>) {
        let mut set = HashSet::clone(self.master.evicting());
        set.extend(pods);
        self.master.set_evicting(Arc::new(set));
    }

    /// Whether pod `key` is being evicted.
    pub fn is_evicting(&self, key: &PodKey) -> bool {
        self.master.evicting().contains(key)
    }

    /// The API refused to evict pod `key`: it runs on, and is no longer waited for.
    pub fn eviction_failed(&mut self, key: &PodKey) {
        self.unmark_evicting(key);
    }

    fn unmark_evicting(&mut self, key: &PodKey) {
        if self.master.evicting().contains(key) {
            let mut set = HashSet::clone(self.master.evicting());
            set.remove(key);
            self.master.set_evicting(Arc::new(set));
        }
    }

    /// Counts `pod`, evicted by preemption, as disrupted in the budgets that cover it.
    pub fn disrupt(&mut self, pod: &Pod) {
        if self.master.budgets().counts(pod) {
            self.master.budgets_mut().disrupt(pod);
        }
    }

    /// The node pod `key` is nominated to, if any.
    pub fn nominated_node(&self, key: &PodKey) -> Option<NodeId> {
        self.nominations.get(key).copied()
    }

    /// Replaces the PodDisruptionBudgets; those with a rule count the pods placed now.
    pub fn set_budgets(&mut self, mut budgets: Budgets) {
        for b in &mut budgets.budgets {
            b.healthy = 0;
            b.disrupted = 0;
        }
        for node in self.master.nodes() {
            for pod in &node.pods {
                budgets.count(pod, 1);
            }
        }
        self.master.set_budgets(Arc::new(budgets));
    }

    /// Adds or replaces one budget (by namespace and name), counting the pods placed now when
    /// it has a rule.
    pub fn upsert_budget(&mut self, mut budget: DisruptionBudget) {
        if matches!(budget.allowance, Allowance::Rule { .. }) {
            budget.healthy =
                self.master.nodes().flat_map(|n| n.pods.iter()).filter(|p| budget.covers(p)).count() as i32;
            budget.disrupted = 0;
        }
        let all = self.master.budgets_mut();
        all.budgets.retain(|b| b.namespace != budget.namespace || b.name != budget.name);
        all.budgets.push(budget);
    }

    /// Records whether preemption may evict group `key`'s members one by one.
    pub fn set_disruption(&mut self, key: GroupKey, mode: DisruptionMode) {
        let single = mode == DisruptionMode::Single;
        if self.master.disrupted_singly().contains(&key) != single {
            let mut groups = HashSet::clone(self.master.disrupted_singly());
            if single {
                groups.insert(key);
            } else {
                groups.remove(&key);
            }
            self.master.set_disrupted_singly(Arc::new(groups));
        }
    }

    /// Forgets the budget `namespace/name`.
    pub fn remove_budget(&mut self, namespace: Sym, name: &str) {
        if self.master.budgets().budgets.iter().any(|b| b.namespace == namespace && &*b.name == name) {
            self.master.budgets_mut().budgets.retain(|b| b.namespace != namespace || &*b.name != name);
        }
    }

    /// Counts `pod` placed (`delta` 1) or gone (-1) in the budgets that cover it.
    fn count_in_budgets(&mut self, pod: &Pod, delta: i32) {
        if self.master.budgets().counts(pod) {
            self.master.budgets_mut().count(pod, delta);
        }
    }

    /// Places `pod` on the node it names in `spec.nodeName` (a pod already running), on the
    /// GPUs it records holding when the node has them, else on those the node chooses. A pod
    /// naming a node the cluster lacks stays bound to that name, accounted nowhere until the
    /// node is added: `Ok(None)`.
    pub fn place_on_named_node(&mut self, pod: Arc<Pod>) -> Result<Option<NodeId>, StateError> {
        let Some(name) = pod.node_name else {
            return Err(StateError::NoSuchNode { pod: pod.key(), node: Sym::new("") });
        };
        let Some(id) = self.master.node_id(name) else {
            self.forget_awaiting(&pod.key());
            self.awaiting.entry(name).or_default().push(pod);
            return Ok(None);
        };
        let gpus = self.master.node(id).map_or(0, |n| n.node.gpus.len());
        let recorded = pod.gpu_ids.filter(|mask| gpus < 64 && mask >> gpus == 0);
        self.place_with(pod, id, &DeviceChoice { gpus: recorded, claims: Vec::new() })?;
        Ok(Some(id))
    }

    /// Holds nodes `ids` for gang `gang` (`None` releases them). Each is a change like any
    /// other: workers see it on refresh and the binder re-checks proposals onto it.
    pub fn set_reservation(&mut self, ids: &[NodeId], gang: Option<GroupKey>) {
        for &id in ids {
            let Some(node) = self.master.node(id) else { continue };
            if node.reserved_for == gang {
                continue;
            }
            let mut info = NodeInfo::clone(node);
            info.reserved_for = gang;
            self.master.set_node(Arc::new(info));
            self.touch(id);
        }
    }

    /// Removes a placed pod (deleted, or an assumption undone). Returns it and its node.
    pub fn unplace(&mut self, key: &PodKey) -> Option<(NodeId, Arc<Pod>)> {
        let id = self.placed.remove(key)?;
        let since = self.master.version();
        let pod = self.master.remove_pod(id, key)?;
        if !pod.pod_anti_affinity.required.is_empty() {
            self.anti_affinity_pods -= 1;
        }
        self.count_in_budgets(&pod, -1);
        self.unmark_evicting(key);
        self.touch_changed(since);
        Some((id, pod))
    }

    /// Brings `snap` (last refreshed at `*at`) up to date: copies the nodes changed since.
    /// Returns the ids copied, so a worker can also re-apply its own pending picks.
    pub fn refresh(&self, snap: &mut Snapshot, at: &mut u64) -> Vec<NodeId> {
        if !Arc::ptr_eq(snap.namespaces(), self.master.namespaces()) {
            snap.set_namespaces(self.master.namespaces().clone());
        }
        if !Arc::ptr_eq(snap.selector_sources(), self.master.selector_sources()) {
            snap.set_selector_sources(self.master.selector_sources().clone());
        }
        if !Arc::ptr_eq(snap.remote_pins(), self.master.remote_pins()) {
            snap.set_remote_pins(self.master.remote_pins().clone());
        }
        if !Arc::ptr_eq(snap.budgets(), self.master.budgets()) {
            snap.set_budgets(self.master.budgets().clone());
        }
        if !Arc::ptr_eq(snap.disrupted_singly(), self.master.disrupted_singly()) {
            snap.set_disrupted_singly(self.master.disrupted_singly().clone());
        }
        if !Arc::ptr_eq(snap.evicting(), self.master.evicting()) {
            snap.set_evicting(self.master.evicting().clone());
        }
        let volumes = self.master.volumes();
        if !Arc::ptr_eq(snap.volumes().objects(), volumes.objects()) {
            snap.set_volume_objects(volumes.objects().clone());
        }
        if !Arc::ptr_eq(snap.volumes().assumed(), volumes.assumed()) {
            snap.set_volume_assumptions(volumes.assumed().clone());
        }
        for key in self.master.topology().tracked_keys() {
            snap.track_topology_key(key);
        }
        let start = self.log.partition_point(|(g, _)| *g <= *at);
        let mut changed: Vec<NodeId> = self.log[start..].iter().map(|(_, id)| *id).collect();
        changed.sort_unstable();
        changed.dedup();
        for &id in &changed {
            self.copy_node(snap, id);
        }
        *at = self.generation;
        changed
    }

    /// Resets node `id` of `snap` to the live version.
    pub fn copy_node(&self, snap: &mut Snapshot, id: NodeId) {
        match self.master.node(id) {
            Some(n) => snap.set_node(n.clone()),
            None => {
                snap.remove_node(id);
            }
        }
    }

    fn allocate_id(&mut self) -> NodeId {
        self.free_ids.pop().unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id - 1
        })
    }

    fn forget(&mut self, pod: &Pod) {
        self.placed.remove(&pod.key());
        if !pod.pod_anti_affinity.required.is_empty() {
            self.anti_affinity_pods -= 1;
        }
    }

    /// Stamps every node the live snapshot changed since its version `since` (the node an
    /// operation was on, and those whose non-local devices it took or freed) and logs them; a
    /// node no longer there is logged, so that refreshes drop it.
    fn touch_changed(&mut self, since: u64) {
        let mut ids: Vec<NodeId> = match self.master.changes_since(since) {
            Some(changed) => changed.to_vec(),
            None => (0..self.master.slots().len() as NodeId).collect(),
        };
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if self.master.node(id).is_some() {
                self.touch(id);
            } else {
                self.bump(id);
            }
        }
    }

    /// Stamps node `id` with a new generation and logs it.
    fn touch(&mut self, id: NodeId) {
        self.bump(id);
        self.master.set_generation(id, self.generation);
    }

    fn bump(&mut self, id: NodeId) {
        self.generation += 1;
        self.log.push((self.generation, id));
        if self.log.len() > 2 * self.master.num_nodes().max(1024) {
            self.compact_log();
        }
    }

    /// Keeps only each node's latest log entry; refresh results are unchanged because a
    /// refresh copies a node's latest version whichever entry names it.
    fn compact_log(&mut self) {
        let mut latest: HashMap<NodeId, u64> = HashMap::with_capacity(self.log.len());
        for &(g, id) in &self.log {
            latest.insert(id, g);
        }
        self.log = latest.into_iter().map(|(id, g)| (g, id)).collect();
        self.log.sort_unstable();
    }
}

/// Every topology key a pod's own constraints name.
pub fn topology_keys(pod: &Pod) -> impl Iterator<Item = Sym> + '_ {
    let spread = pod.spread_constraints.iter().map(|c| c.topology_key);
    let affinity =
        pod.pod_affinity.required.iter().chain(pod.pod_anti_affinity.required.iter()).map(|t| t.topology_key);
    let preferred =
        pod.pod_affinity.preferred.iter().chain(pod.pod_anti_affinity.preferred.iter()).map(|w| w.term.topology_key);
    spread.chain(affinity).chain(preferred)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_plugins::resources::ResourceVec;

    fn node(name: &str) -> Node {
        Node {
            name: Sym::new(name),
            labels: LabelSet::from_pairs([("kubernetes.io/hostname", name)]),
            taints: vec![],
            unschedulable: false,
            allocatable: ResourceVec::cpu_mem(4000, 8 << 30),
            allowed_pods: 110,
            images: vec![],
            gpus: Vec::new(),
            devices: Default::default(),
        }
    }

    #[test]
    fn refresh_copies_only_changed_nodes() {
        let mut st = ClusterState::new();
        for i in 0..10 {
            st.upsert_node(node(&format!("n{i}")));
        }
        let mut snap = Snapshot::new();
        let mut at = 0;
        assert_eq!(st.refresh(&mut snap, &mut at).len(), 10);
        assert_eq!(snap.num_nodes(), 10);
        let p = Arc::new(Pod::new("default", "p", ResourceVec::cpu_mem(100, 0)));
        st.place(p.clone(), 3).unwrap();
        assert_eq!(st.refresh(&mut snap, &mut at), vec![3]);
        assert_eq!(snap.node(3).unwrap().requested, ResourceVec::cpu_mem(100, 0));
        assert!(st.refresh(&mut snap, &mut at).is_empty());
        assert!(st.place(p.clone(), 4).is_err(), "a pod is never placed twice");
        st.unplace(&p.key());
        assert_eq!(st.refresh(&mut snap, &mut at), vec![3]);
        assert_eq!(snap.node(3).unwrap().requested, ResourceVec::ZERO);
    }

    #[test]
    fn compaction_keeps_refresh_correct() {
        let mut st = ClusterState::new();
        st.upsert_node(node("a"));
        st.upsert_node(node("b"));
        let mut snap = Snapshot::new();
        let mut at = 0;
        st.refresh(&mut snap, &mut at);
        for i in 0..5000 {
            let p = Arc::new(Pod::new("default", &format!("p{i}"), ResourceVec::ZERO));
            st.place(p.clone(), (i % 2) as NodeId).unwrap();
            st.unplace(&p.key());
        }
        st.place(Arc::new(Pod::new("default", "last", ResourceVec::cpu_mem(1, 0))), 1).unwrap();
        let changed = st.refresh(&mut snap, &mut at);
        assert_eq!(changed, vec![0, 1]);
        assert_eq!(snap.node(1).unwrap().pods.len(), 1);
        assert_eq!(snap.node(0).unwrap().pods.len(), 0);
    }

    /// A node whose inventory is one device of driver `d`, pool `p` per name.
    fn with_devices(name: &str, devices: &[&str]) -> Node {
        use tessera_plugins::dra::inventory::NodeDevices;
        use tessera_plugins::dra::model::Device;
        let device = |n: &&str| {
            Arc::new(Device {
                uid: Device::next_uid(),
                name: Sym::new(n),
                driver: Sym::new("d"),
                pool: Sym::new("p"),
                attributes: Default::default(),
                capacity: Default::default(),
                taints: Vec::new(),
                allow_multiple_allocations: false,
                consumes_counters: Vec::new(),
            })
        };
        let devices = NodeDevices { devices: devices.iter().map(device).collect(), ..Default::default() };
        Node { devices: Arc::new(devices), ..node(name) }
    }

    #[test]
    fn a_new_inventory_keeps_the_devices_claims_hold_by_identity() {
        use tessera_plugins::dra::model::{AllocatedDevice, ClaimAllocation, ClaimKey, DeviceId, PodClaim};
        let mut st = ClusterState::new();
        let id = st.upsert_node(with_devices("a", &["g1", "g2"]));
        let key = ClaimKey::new("default", "c");
        let device = DeviceId { driver: Sym::new("d"), pool: Sym::new("p"), device: Sym::new("g2") };
        let allocation = ClaimAllocation {
            claim: key,
            devices: vec![AllocatedDevice {
                request: Arc::from("r"),
                device,
                admin_access: false,
                consumed: Default::default(),
            }],
            node: Some(Sym::new("a")),
            config: Vec::new(),
        };
        let mut p = Pod::new("default", "p", ResourceVec::ZERO);
        p.claims.push(PodClaim {
            name: Sym::new("c"),
            key,
            spec: Err(Arc::from("unused")),
            shared: false,
            allocation: Some(Arc::new(allocation)),
            group: None,
        });
        st.place(Arc::new(p), id).unwrap();
        let held = |st: &ClusterState| {
            let n = st.snapshot().node(id).unwrap();
            (n.claims[0].devices.clone(), n.devices_used.iter().collect::<Vec<_>>())
        };
        assert_eq!(held(&st), (vec![1], vec![1]));
        // Republished with a device before it: g2 is now index 2.
        st.upsert_node(with_devices("a", &["g0", "g1", "g2"]));
        assert_eq!(held(&st), (vec![2], vec![2]));
        // The same inventory (shared Arc) changes nothing; a node object update keeps it.
        let same = st.snapshot().node(id).unwrap().node.devices.clone();
        st.upsert_node(Node { devices: same, ..node("a") });
        assert_eq!(held(&st), (vec![2], vec![2]));
        // Gone from the inventory: held by nothing, and nothing is counted in use.
        st.upsert_node(with_devices("a", &["g0"]));
        assert_eq!(held(&st), (vec![], vec![]));
        assert_eq!(st.snapshot().node(id).unwrap().claims.len(), 1, "the claim itself is still held");
    }

    #[test]
    fn removing_a_node_unplaces_its_pods() {
        let mut st = ClusterState::new();
        let id = st.upsert_node(node("a"));
        let p = Arc::new(Pod::new("default", "p", ResourceVec::ZERO));
        st.place(p.clone(), id).unwrap();
        assert_eq!(st.remove_node(Sym::new("a")).len(), 1);
        assert_eq!(st.node_of(&p.key()), None);
        let id2 = st.upsert_node(node("b"));
        assert_eq!(id2, id, "ids are reused");
    }
}
