//! The watches' memory of DRA objects (`resource.k8s.io/v1`): what pods with claims are
//! resolved against, and what each node's devices are built from.
//!
//! The catalog pods resolve against lives in the pod context
//! ([`crate::ingest::PodContext::dra`]); this keeps what the catalog cannot rebuild itself:
//! the objects as the API server sent them (a DeviceClass that changes re-resolves every
//! claim), every ResourceSlice by node, and the pods with claims, indexed by the claims they
//! name (directly, or through `status.resourceClaimStatuses` for a template entry). A pod is
//! converted once when it arrives; when a claim it names arrives, changes or goes, the pod is
//! converted again and passed on as an update, so a pod waiting for its claim is queued again
//! the moment the claim exists (the resourceclaim controller's status update of a pod is a pod
//! event like any), and a bound pod converted before its claim's allocation was listed is
//! accounted with it.
//!
//! A slice published for a `nodeSelector` or for `allNodes` is in the inventory of every node
//! that reaches it, so the cache keeps every node's labels and each node's inventory as last
//! sent: a change of such a slice (or of a node's labels) sends the new inventory of exactly
//! the nodes whose devices it changed. With no such slice, a node's labels are only kept.
//! PreBind reads here where an allocated device can be used from ([`DraObjects::reach_of`]),
//! to restrict the allocation to the nodes that reach it, and the device itself
//! ([`DraObjects::device_of`]), to tell whether it allows multiple allocations.
//!
//! Every watch task that touches this takes its lock first and converts and sends under it,
//! so a pod never reaches the engine thread resolved against an older catalog than a
//! conversion sent before it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::resource::v1 as api;
use tessera_plugins::dra::inventory::NodeDevices;
use tessera_plugins::dra::model::{Device, DeviceId, ResourceSlice, SliceNodes};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;

/// See the module docs.
#[derive(Debug, Default)]
pub struct DraObjects {
    classes: HashMap<String, api::DeviceClass>,
    claims: HashMap<String, api::ResourceClaim>,
    /// Every slice by name, and the names of those local to each node.
    slices: HashMap<String, Arc<ResourceSlice>>,
    by_node: HashMap<Sym, BTreeMap<String, Arc<ResourceSlice>>>,
    /// The slices not local to one node (`nodeSelector`, `allNodes`), which every node's
    /// inventory considers, with the `nodeSelector` as written (what an allocation from them
    /// is restricted by).
    shared: BTreeMap<String, Shared>,
    /// The names of the shared slices of each pool (`driver`, `pool`).
    shared_pools: HashMap<(Sym, Sym), BTreeSet<String>>,
    /// Every node's labels, which decide the `nodeSelector` slices it reaches.
    labels: HashMap<Sym, LabelSet>,
    /// Each node's devices as last handed out (nodes with none are left out): what a change
    /// is compared with, so that only the nodes whose devices changed are told.
    inventories: HashMap<Sym, Arc<NodeDevices>>,
    /// Pods with `spec.resourceClaims`, by `namespace/name`, and who names what.
    pods: HashMap<String, core::Pod>,
    /// Pod keys by the claims (`namespace/name`) they name.
    named_by: HashMap<String, HashSet<String>>,
}

/// A slice not local to one node.
#[derive(Debug)]
struct Shared {
    slice: Arc<ResourceSlice>,
    /// `spec.nodeSelector` as written; `None` for `allNodes` (and `perDeviceNodeSelection`).
    selector: Option<core::NodeSelector>,
}

/// Where the slice a device is published in makes it usable, as the API wrote it.
#[derive(Clone, Debug, PartialEq)]
pub enum Reach {
    /// `nodeName`: local to that node.
    Node(Sym),
    /// `nodeSelector` (validation allows one term only).
    Selector(core::NodeSelector),
    /// `allNodes`.
    All,
}

/// The devices of node `node` changed: its new inventory, to send as
/// [`super::watch::Change::NodeDevices`].
pub type DevicesChanged = (Sym, Arc<NodeDevices>);

impl DraObjects {
    /// Remembers DeviceClass `name` as sent.
    pub fn put_class(&mut self, name: &str, class: api::DeviceClass) {
        self.classes.insert(name.to_string(), class);
    }

    /// Forgets DeviceClass `name`.
    pub fn drop_class(&mut self, name: &str) {
        self.classes.remove(name);
    }

    /// Remembers the claim `key` (`namespace/name`) as sent.
    pub fn put_claim(&mut self, key: &str, claim: api::ResourceClaim) {
        self.claims.insert(key.to_string(), claim);
    }

    /// Forgets the claim `key`.
    pub fn drop_claim(&mut self, key: &str) {
        self.claims.remove(key);
    }

    /// Every claim as sent, to resolve again after a class changed.
    pub fn claims(&self) -> impl Iterator<Item = &api::ResourceClaim> {
        self.claims.values()
    }

    /// Adds or replaces slice `name`, converted from `object`. Returns the nodes whose
    /// devices changed, each with its new inventory.
    pub fn put_slice(
        &mut self,
        name: &str,
        slice: Arc<ResourceSlice>,
        object: &api::ResourceSlice,
    ) -> Vec<DevicesChanged> {
        let mut touched = self.forget_slice(name);
        match slice.nodes {
            SliceNodes::Node(node) => {
                self.by_node.entry(node).or_default().insert(name.to_string(), slice.clone());
                touched.push(Touched::Node(node));
            }
            SliceNodes::Selector(_) | SliceNodes::All => {
                self.shared_pools.entry((slice.driver, slice.pool)).or_default().insert(name.to_string());
                let selector = object.spec.node_selector.clone();
                self.shared.insert(name.to_string(), Shared { slice: slice.clone(), selector });
                touched.push(Touched::Pool(slice.clone()));
            }
        }
        self.slices.insert(name.to_string(), slice);
        self.refresh(&touched)
    }

    /// Forgets slice `name`. Returns the nodes whose devices changed, each with its new
    /// inventory.
    pub fn drop_slice(&mut self, name: &str) -> Vec<DevicesChanged> {
        let touched = self.forget_slice(name);
        self.refresh(&touched)
    }

    /// Removes slice `name` from every index; what it touched.
    fn forget_slice(&mut self, name: &str) -> Vec<Touched> {
        let Some(old) = self.slices.remove(name) else { return Vec::new() };
        match old.nodes {
            SliceNodes::Node(node) => {
                if let Some(local) = self.by_node.get_mut(&node) {
                    local.remove(name);
                    if local.is_empty() {
                        self.by_node.remove(&node);
                    }
                }
                vec![Touched::Node(node)]
            }
            SliceNodes::Selector(_) | SliceNodes::All => {
                self.shared.remove(name);
                let pool = (old.driver, old.pool);
                if let Some(names) = self.shared_pools.get_mut(&pool) {
                    names.remove(name);
                    if names.is_empty() {
                        self.shared_pools.remove(&pool);
                    }
                }
                vec![Touched::Pool(old)]
            }
        }
    }

    /// Node `node` has `labels` now. Returns its new inventory when that changed: a
    /// `nodeSelector` slice may match it now or no longer, and a node seen for the first time
    /// reaches the `allNodes` slices. Cheap when no slice is shared: the labels are compared
    /// and kept, nothing is computed.
    pub fn put_node(&mut self, node: Sym, labels: &LabelSet) -> Option<Arc<NodeDevices>> {
        if self.labels.get(&node) == Some(labels) {
            return None;
        }
        self.labels.insert(node, labels.clone());
        if self.shared.is_empty() {
            return None;
        }
        self.refresh(&[Touched::Node(node)]).pop().map(|(_, devices)| devices)
    }

    /// Forgets node `node`'s labels (its own slices, if any, stay for when it is back).
    pub fn drop_node(&mut self, node: Sym) {
        self.labels.remove(&node);
        if !self.by_node.contains_key(&node) {
            self.inventories.remove(&node);
        }
    }

    /// Computes again the devices of every node `touched` may have changed, and returns
    /// those that did change.
    fn refresh(&mut self, touched: &[Touched]) -> Vec<DevicesChanged> {
        let mut nodes: Vec<Sym> = Vec::new();
        for t in touched {
            match t {
                Touched::Node(node) => nodes.push(*node),
                Touched::Pool(slice) => nodes.extend(self.nodes_reaching_pool(slice)),
            }
        }
        nodes.sort_unstable_by_key(|n| n.as_str());
        nodes.dedup();
        let mut changed = Vec::new();
        for node in nodes {
            let devices = self.devices_of(node);
            let same = match self.inventories.get(&node) {
                Some(old) => **old == devices,
                None => devices == NodeDevices::default(),
            };
            if same {
                continue;
            }
            let devices = Arc::new(devices);
            if *devices == NodeDevices::default() {
                self.inventories.remove(&node);
            } else {
                self.inventories.insert(node, devices.clone());
            }
            changed.push((node, devices));
        }
        changed
    }

    /// The nodes known (by their labels or their own slices) that reach `slice` (a version
    /// gone or current) or a shared slice of its pool now: those whose devices a change of
    /// `slice` can change, the pool's completeness included.
    fn nodes_reaching_pool(&self, slice: &ResourceSlice) -> Vec<Sym> {
        let none = LabelSet::default();
        let mates: Vec<&ResourceSlice> = self
            .shared_pools
            .get(&(slice.driver, slice.pool))
            .into_iter()
            .flatten()
            .filter_map(|name| self.shared.get(name))
            .map(|s| &*s.slice)
            .chain([slice])
            .collect();
        let known = self.labels.keys().chain(self.by_node.keys().filter(|n| !self.labels.contains_key(n)));
        known
            .copied()
            .filter(|&node| {
                let labels = self.labels.get(&node).unwrap_or(&none);
                mates.iter().any(|s| reaches(s, node, labels))
            })
            .collect()
    }

    /// Node `node`'s devices: from the slices local to it, and from the shared slices it
    /// reaches with its labels (none known yet: only `allNodes` slices and selectors by name).
    pub fn devices_of(&self, node: Sym) -> NodeDevices {
        let local = self.by_node.get(&node);
        if local.is_none() && self.shared.is_empty() {
            return NodeDevices::default();
        }
        let slices: Vec<Arc<ResourceSlice>> = local
            .into_iter()
            .flat_map(BTreeMap::values)
            .chain(self.shared.values().map(|s| &s.slice))
            .cloned()
            .collect();
        let none = LabelSet::default();
        NodeDevices::for_node(node, self.labels.get(&node).unwrap_or(&none), &slices)
    }

    /// Where device `id` can be used from, as its slice says; `None` when no slice publishes
    /// it. Only shared slices are looked at unless `node` is given, whose own slices are then
    /// looked at first.
    pub fn reach_of(&self, id: &DeviceId, node: Option<Sym>) -> Option<Reach> {
        let publishes = |s: &ResourceSlice| {
            s.driver == id.driver && s.pool == id.pool && s.devices.iter().any(|d| d.name == id.device)
        };
        if let Some(node) = node
            && self.by_node.get(&node).is_some_and(|local| local.values().any(|s| publishes(s)))
        {
            return Some(Reach::Node(node));
        }
        let names = self.shared_pools.get(&(id.driver, id.pool))?;
        let newest = names
            .iter()
            .filter_map(|name| self.shared.get(name))
            .filter(|s| publishes(&s.slice))
            .max_by_key(|s| s.slice.generation)?;
        match (&newest.slice.nodes, &newest.selector) {
            (SliceNodes::All, _) => Some(Reach::All),
            (_, Some(selector)) => Some(Reach::Selector(selector.clone())),
            // perDeviceNodeSelection: its devices reach no node here, so none is allocated.
            _ => None,
        }
    }

    /// Device `id` as the newest slice publishing it says, looked for among node `node`'s own
    /// slices first, then among the shared ones; `None` when no slice publishes it.
    pub fn device_of(&self, id: &DeviceId, node: Option<Sym>) -> Option<Arc<Device>> {
        let find = |s: &ResourceSlice| {
            let ours = s.driver == id.driver && s.pool == id.pool;
            ours.then(|| s.devices.iter().find(|d| d.name == id.device)).flatten().map(|d| (s.generation, d.clone()))
        };
        let local = node.and_then(|n| self.by_node.get(&n)).into_iter().flat_map(BTreeMap::values);
        if let Some((_, d)) = local.filter_map(|s| find(s)).max_by_key(|(generation, _)| *generation) {
            return Some(d);
        }
        let names = self.shared_pools.get(&(id.driver, id.pool))?;
        let shared = names.iter().filter_map(|name| self.shared.get(name)).filter_map(|s| find(&s.slice));
        shared.max_by_key(|(generation, _)| *generation).map(|(_, d)| d)
    }

    /// Remembers pod `key` if it has claim entries (forgets it otherwise). Returns whether it
    /// has.
    pub fn put_pod(&mut self, key: &str, pod: &core::Pod) -> bool {
        self.drop_pod(key);
        if pod.spec.as_ref().and_then(|s| s.resource_claims.as_ref()).is_none_or(Vec::is_empty) {
            return false;
        }
        let names = names_of(pod);
        for n in names {
            self.named_by.entry(n).or_default().insert(key.to_string());
        }
        self.pods.insert(key.to_string(), pod.clone());
        true
    }

    /// Forgets pod `key`.
    pub fn drop_pod(&mut self, key: &str) {
        let Some(old) = self.pods.remove(key) else { return };
        for n in names_of(&old) {
            if let Some(keys) = self.named_by.get_mut(&n) {
                keys.remove(key);
                if keys.is_empty() {
                    self.named_by.remove(&n);
                }
            }
        }
    }

    /// The pods naming the claim `key` (`namespace/name`), by name or through their status.
    pub fn pods_naming_claim(&self, key: &str) -> Vec<(&str, &core::Pod)> {
        let Some(keys) = self.named_by.get(key) else { return Vec::new() };
        keys.iter().filter_map(|k| self.pods.get_key_value(k)).map(|(k, p)| (k.as_str(), p)).collect()
    }

    /// Every pod with claims.
    pub fn all_pods(&self) -> Vec<(&str, &core::Pod)> {
        self.pods.iter().map(|(k, p)| (k.as_str(), p)).collect()
    }
}

/// The claims `pod` names: its entries', and those its status says were made for its template
/// entries (`namespace/name`).
fn names_of(pod: &core::Pod) -> HashSet<String> {
    let namespace = pod.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
    let key = |name: &str| format!("{namespace}/{name}");
    let entries = pod.spec.as_ref().and_then(|s| s.resource_claims.as_deref()).unwrap_or_default();
    let statuses = pod.status.as_ref().and_then(|s| s.resource_claim_statuses.as_deref()).unwrap_or_default();
    let mut out = HashSet::new();
    for e in entries {
        if let Some(c) = e.resource_claim_name.as_deref().filter(|c| !c.is_empty()) {
            out.insert(key(c));
        }
    }
    for s in statuses {
        if let Some(c) = s.resource_claim_name.as_deref().filter(|c| !c.is_empty()) {
            out.insert(key(c));
        }
    }
    out
}

/// What a slice change may have changed the devices of.
#[derive(Debug)]
enum Touched {
    /// One node, whose own slice it is.
    Node(Sym),
    /// Every node reaching this shared slice (the version gone or the current one) or
    /// another shared slice of its pool.
    Pool(Arc<ResourceSlice>),
}

/// Whether node `node`, with `labels`, reaches the devices of `slice`.
fn reaches(slice: &ResourceSlice, node: Sym, labels: &LabelSet) -> bool {
    match &slice.nodes {
        SliceNodes::Node(n) => *n == node,
        SliceNodes::Selector(selector) => selector.matches(labels, node),
        SliceNodes::All => true,
    }
}

#[cfg(test)]
#[path = "dra_tests.rs"]
mod tests;
