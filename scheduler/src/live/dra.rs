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
//! Every watch task that touches this takes its lock first and converts and sends under it,
//! so a pod never reaches the engine thread resolved against an older catalog than a
//! conversion sent before it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::resource::v1 as api;
use tessera_plugins::dra::inventory::NodeDevices;
use tessera_plugins::dra::model::{ResourceSlice, SliceNodes};
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
    /// Pods with `spec.resourceClaims`, by `namespace/name`, and who names what.
    pods: HashMap<String, core::Pod>,
    /// Pod keys by the claims (`namespace/name`) they name.
    named_by: HashMap<String, HashSet<String>>,
}

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

    /// Adds or replaces slice `name` (`None` removes it). Returns the nodes whose devices
    /// changed, each with its new inventory.
    pub fn put_slice(&mut self, name: &str, slice: Option<Arc<ResourceSlice>>) -> Vec<(Sym, Arc<NodeDevices>)> {
        let mut nodes: Vec<Sym> = Vec::new();
        if let Some(old) = self.slices.remove(name)
            && let SliceNodes::Node(node) = old.nodes
        {
            if let Some(local) = self.by_node.get_mut(&node) {
                local.remove(name);
                if local.is_empty() {
                    self.by_node.remove(&node);
                }
            }
            nodes.push(node);
        }
        if let Some(slice) = slice {
            match slice.nodes {
                SliceNodes::Node(node) => {
                    self.by_node.entry(node).or_default().insert(name.to_string(), slice.clone());
                    if !nodes.contains(&node) {
                        nodes.push(node);
                    }
                }
                _ => tracing::debug!(
                    slice = name,
                    "ResourceSlice not local to one node (nodeSelector, allNodes or perDeviceNodeSelection): \
                     its devices are not used"
                ),
            }
            self.slices.insert(name.to_string(), slice);
        }
        nodes.into_iter().map(|n| (n, Arc::new(self.devices_of(n)))).collect()
    }

    /// Node `node`'s devices from the slices local to it.
    pub fn devices_of(&self, node: Sym) -> NodeDevices {
        match self.by_node.get(&node) {
            Some(local) => {
                let slices: Vec<Arc<ResourceSlice>> = local.values().cloned().collect();
                NodeDevices::for_node(node, &LabelSet::default(), &slices)
            }
            None => NodeDevices::default(),
        }
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
