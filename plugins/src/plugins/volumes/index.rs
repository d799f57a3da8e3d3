//! The volume index: every PersistentVolume, PersistentVolumeClaim, StorageClass and CSINode
//! the cluster has, plus the bindings this scheduler has assumed and not yet seen written.
//!
//! The API objects ([`VolumeObjects`]) change only when the cluster says so; they are shared
//! (`Arc`) by the live snapshot and every worker's copy. The assumptions ([`Assumed`]) change
//! with placements: when a pod lands, each of its unbound `WaitForFirstConsumer` claims is
//! bound on its node — to the smallest available volume that fits there, else to a volume
//! provisioned there — exactly as upstream's `AssumePodVolumes` updates its caches, so that
//! the next pod cannot get the same volume. The snapshot makes the assumption where it
//! accounts for the pod ([`crate::snapshot::Snapshot::add_pod_with`]) and forgets it when the
//! pod goes; the choice is deterministic (smallest, then by name), so a worker and the live
//! state looking at the same index choose the same volume. An assumption made by one pod
//! stands for every later pod of the same claim, as the API's binding would.
//!
//! Both halves are copy-on-write `Arc`s: a PreFilter keeps the index for its Filter calls
//! for the price of two reference counts.

use std::sync::Arc;

use super::model::{CsiNode, PersistentVolume, PersistentVolumeClaim, PodVolume, PvcKey, StorageClass};
use crate::intern::Sym;
use crate::labels::LabelSet;
use crate::model::{Pod, PodKey};
use crate::topology::FxMap;

/// The API's storage objects, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VolumeObjects {
    pvs: FxMap<Sym, Arc<PersistentVolume>>,
    /// Volumes by class, by name: matching walks them in a fixed order.
    by_class: FxMap<Sym, Vec<Arc<PersistentVolume>>>,
    pvcs: FxMap<PvcKey, Arc<PersistentVolumeClaim>>,
    classes: FxMap<Sym, Arc<StorageClass>>,
    csi_nodes: FxMap<Sym, Arc<CsiNode>>,
}

impl VolumeObjects {
    /// Whether there is no object at all (the volume plugins then have nothing to read).
    pub fn is_empty(&self) -> bool {
        self.pvs.is_empty() && self.pvcs.is_empty() && self.classes.is_empty() && self.csi_nodes.is_empty()
    }

    /// Adds or replaces a volume (`None` removes the volume named `name`).
    pub fn set_pv(&mut self, name: Sym, pv: Option<PersistentVolume>) {
        if let Some(old) = self.pvs.remove(&name)
            && let Some(list) = self.by_class.get_mut(&old.storage_class)
        {
            list.retain(|p| p.name != name);
        }
        if let Some(pv) = pv {
            let pv = Arc::new(pv);
            let list = self.by_class.entry(pv.storage_class).or_default();
            let at = list.partition_point(|p| p.name.as_str() < name.as_str());
            list.insert(at, pv.clone());
            self.pvs.insert(name, pv);
        }
    }

    /// Claim `key`, as the API has it (no assumption applied).
    pub fn pvc(&self, key: &PvcKey) -> Option<&Arc<PersistentVolumeClaim>> {
        self.pvcs.get(key)
    }

    /// Adds or replaces a claim (`None` removes it).
    pub fn set_pvc(&mut self, key: PvcKey, pvc: Option<PersistentVolumeClaim>) {
        match pvc {
            Some(c) => self.pvcs.insert(key, Arc::new(c)),
            None => self.pvcs.remove(&key),
        };
    }

    /// Adds or replaces a class (`None` removes it).
    pub fn set_class(&mut self, name: Sym, class: Option<StorageClass>) {
        match class {
            Some(c) => self.classes.insert(name, Arc::new(c)),
            None => self.classes.remove(&name),
        };
    }

    /// Adds or replaces a node's CSINode (`None` removes it).
    pub fn set_csi_node(&mut self, node: Sym, csi: Option<CsiNode>) {
        match csi {
            Some(c) => self.csi_nodes.insert(node, Arc::new(c)),
            None => self.csi_nodes.remove(&node),
        };
    }
}

/// A binding this scheduler decided for a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binding {
    /// Bound to this existing volume.
    Volume(Sym),
    /// A volume is to be provisioned on this node (upstream writes the node to the claim's
    /// `volume.kubernetes.io/selected-node` annotation).
    Provision(Sym),
}

/// A binding, and the pod whose placement made it (its removal forgets the binding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assumption {
    /// The pod.
    pub pod: PodKey,
    /// The binding.
    pub binding: Binding,
}

/// The bindings assumed so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Assumed {
    by_claim: FxMap<PvcKey, Assumption>,
    /// Volumes assumed bound, to their claim.
    taken: FxMap<Sym, PvcKey>,
}

impl Assumed {
    /// The binding assumed for `claim`, if any.
    pub fn get(&self, claim: &PvcKey) -> Option<&Assumption> {
        self.by_claim.get(claim)
    }

    /// Every assumed binding, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&PvcKey, &Assumption)> {
        self.by_claim.iter()
    }

    /// Whether nothing is assumed.
    pub fn is_empty(&self) -> bool {
        self.by_claim.is_empty()
    }
}

/// See the module docs.
#[derive(Clone, Debug, Default)]
pub struct VolumeIndex {
    objects: Arc<VolumeObjects>,
    assumed: Arc<Assumed>,
}

/// Why unbound claims cannot be provided for on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindConflict;

impl VolumeIndex {
    /// An index of `objects` with nothing assumed.
    pub fn new(objects: Arc<VolumeObjects>) -> VolumeIndex {
        VolumeIndex { objects, assumed: Arc::default() }
    }

    /// The API objects.
    pub fn objects(&self) -> &Arc<VolumeObjects> {
        &self.objects
    }

    /// Replaces the API objects (a refresh, or a watch event), keeping the assumptions.
    pub fn set_objects(&mut self, objects: Arc<VolumeObjects>) {
        self.objects = objects;
    }

    /// The objects to change, copied first if shared.
    pub fn objects_mut(&mut self) -> &mut VolumeObjects {
        Arc::make_mut(&mut self.objects)
    }

    /// The assumed bindings.
    pub fn assumed(&self) -> &Arc<Assumed> {
        &self.assumed
    }

    /// Replaces the assumed bindings (a refresh from the live state).
    pub fn set_assumed(&mut self, assumed: Arc<Assumed>) {
        self.assumed = assumed;
    }

    /// Claim `key`.
    pub fn pvc(&self, key: &PvcKey) -> Option<&Arc<PersistentVolumeClaim>> {
        self.objects.pvc(key)
    }

    /// Volume `name`.
    pub fn pv(&self, name: Sym) -> Option<&Arc<PersistentVolume>> {
        self.objects.pvs.get(&name)
    }

    /// Class `name`.
    pub fn class(&self, name: Sym) -> Option<&Arc<StorageClass>> {
        self.objects.classes.get(&name)
    }

    /// The CSINode of node `name`.
    pub fn csi_node(&self, name: Sym) -> Option<&Arc<CsiNode>> {
        self.objects.csi_nodes.get(&name)
    }

    /// The volume `pvc` is bound to: `spec.volumeName`, else an assumed binding.
    pub fn bound_volume(&self, pvc: &PersistentVolumeClaim) -> Option<Sym> {
        pvc.volume_name.or_else(|| match self.assumed.get(&pvc.key)?.binding {
            Binding::Volume(pv) => Some(pv),
            Binding::Provision(_) => None,
        })
    }

    /// The node provisioning was asked on for `pvc`: its annotation, else an assumed
    /// binding.
    pub fn selected_node(&self, pvc: &PersistentVolumeClaim) -> Option<Sym> {
        pvc.selected_node.or_else(|| match self.assumed.get(&pvc.key)?.binding {
            Binding::Provision(node) => Some(node),
            Binding::Volume(_) => None,
        })
    }

    /// Whether `pvc` waits for its first consumer: unbound, of a class that says so.
    pub fn delays_binding(&self, pvc: &PersistentVolumeClaim) -> bool {
        self.bound_volume(pvc).is_none() && self.class(pvc.storage_class).is_some_and(|c| c.wait_for_first_consumer)
    }

    /// The smallest volume `pvc` may be bound to on a node with these labels and name, not
    /// one of `chosen` (upstream `FindMatchingVolume` on the scheduler's path): a volume
    /// pre-bound to the claim if the node reaches it (else none); otherwise an available
    /// volume of the claim's class and mode, big enough, matching its selector and access
    /// modes, reachable from the node, and not bound or assumed for another claim. Ties go to
    /// the first by name.
    pub fn find_matching_volume(
        &self,
        pvc: &PersistentVolumeClaim,
        labels: &LabelSet,
        node: Sym,
        chosen: &[Sym],
    ) -> Option<&Arc<PersistentVolume>> {
        let mut best: Option<&Arc<PersistentVolume>> = None;
        for pv in self.objects.by_class.get(&pvc.storage_class).into_iter().flatten() {
            if chosen.contains(&pv.name) {
                continue;
            }
            let owner = pv.claim_ref.or_else(|| self.assumed.taken.get(&pv.name).copied());
            if owner.is_some_and(|c| c != pvc.key) {
                continue;
            }
            if pv.capacity < pvc.request || pv.volume_mode != pvc.volume_mode || pv.deleting {
                continue;
            }
            let reachable = pv.reachable_from(labels, node);
            if owner == Some(pvc.key) {
                return reachable.then_some(pv);
            }
            if !pv.available || !pvc.selector.as_ref().is_none_or(|s| s.matches(&pv.labels)) {
                continue;
            }
            if !reachable || !pv.access_modes.contains(pvc.access_modes) {
                continue;
            }
            if best.is_none_or(|b| b.capacity > pv.capacity) {
                best = Some(pv);
            }
        }
        best
    }

    /// Binds each of `claims` (unbound, waiting for their first consumer, smallest request
    /// first) on the node: to a matching volume not chosen for an earlier one, else to a
    /// volume provisioned there if the claim's class provisions and allows the node (upstream
    /// `findMatchingVolumes` then `checkVolumeProvisions`). `bind` hears each binding;
    /// `chosen` collects the volumes chosen, and stays unallocated for a single claim.
    pub fn plan(
        &self,
        claims: &[Arc<PersistentVolumeClaim>],
        labels: &LabelSet,
        node: Sym,
        chosen: &mut Vec<Sym>,
        mut bind: impl FnMut(&PersistentVolumeClaim, Binding),
    ) -> Result<(), BindConflict> {
        for pvc in claims {
            if let Some(selected) = self.selected_node(pvc) {
                // Provisioning was asked for on one node already: only that node will do.
                if selected != node {
                    return Err(BindConflict);
                }
                continue;
            }
            if let Some(pv) = self.find_matching_volume(pvc, labels, node, chosen) {
                if claims.len() > 1 {
                    chosen.push(pv.name);
                }
                bind(pvc, Binding::Volume(pv.name));
                continue;
            }
            match self.class(pvc.storage_class) {
                Some(class) if class.provisions() && class.allows(labels, node) => bind(pvc, Binding::Provision(node)),
                _ => return Err(BindConflict),
            }
        }
        Ok(())
    }

    /// The unbound claims of `pod` that wait for their first consumer, deduplicated, smallest
    /// request first (the order upstream binds them in). Claims that are missing are left
    /// out: PreFilter rejects their pods.
    pub fn delayed_claims(&self, pod: &Pod) -> Vec<Arc<PersistentVolumeClaim>> {
        let mut out: Vec<Arc<PersistentVolumeClaim>> = Vec::new();
        for claim in pod.volumes.iter().filter_map(PodVolume::claim) {
            let key = PvcKey { namespace: pod.namespace, name: claim };
            let Some(pvc) = self.pvc(&key) else { continue };
            if self.delays_binding(pvc) && !out.iter().any(|c| c.key == key) {
                out.push(pvc.clone());
            }
        }
        out.sort_by_key(|c| c.request);
        out
    }

    /// Records the bindings of `pod`'s claims placed on the node with these labels and name
    /// (see the module docs). Claims that cannot be provided for there are left unbound: the
    /// binder re-checks a placement before it commits one, so that happens only to pods
    /// placed by the API (already running), which keep what they have.
    pub fn assume(&mut self, pod: &Pod, labels: &LabelSet, node: Sym) {
        let claims = self.delayed_claims(pod);
        if claims.is_empty() {
            return;
        }
        let mut found: Vec<(PvcKey, Binding)> = Vec::new();
        let mut chosen = Vec::new();
        let planned = self.plan(&claims, labels, node, &mut chosen, |pvc, b| found.push((pvc.key, b)));
        if planned.is_err() {
            // Bind what can be bound, one claim at a time: a running pod holds those.
            found.clear();
            for pvc in &claims {
                let taken: Vec<Sym> = found
                    .iter()
                    .filter_map(|(_, b)| match b {
                        Binding::Volume(v) => Some(*v),
                        Binding::Provision(_) => None,
                    })
                    .collect();
                let mut one = Vec::new();
                let _ = self.plan(std::slice::from_ref(pvc), labels, node, &mut one, |pvc, b| {
                    if !matches!(b, Binding::Volume(v) if taken.contains(&v)) {
                        found.push((pvc.key, b));
                    }
                });
            }
        }
        if found.is_empty() {
            return;
        }
        let assumed = Arc::make_mut(&mut self.assumed);
        for (claim, binding) in found {
            if let Binding::Volume(pv) = binding {
                assumed.taken.insert(pv, claim);
            }
            assumed.by_claim.insert(claim, Assumption { pod: pod.key(), binding });
        }
    }

    /// Forgets the bindings `pod`'s placement made (the pod left, or its placement was
    /// undone).
    pub fn forget(&mut self, pod: &Pod) {
        let key = pod.key();
        let mine = |c: &PvcKey| self.assumed.get(c).is_some_and(|a| a.pod == key);
        let claims: Vec<PvcKey> = pod
            .volumes
            .iter()
            .filter_map(PodVolume::claim)
            .map(|name| PvcKey { namespace: pod.namespace, name })
            .filter(|c| mine(c))
            .collect();
        if claims.is_empty() {
            return;
        }
        let assumed = Arc::make_mut(&mut self.assumed);
        for c in claims {
            if let Some(Assumption { binding: Binding::Volume(pv), .. }) = assumed.by_claim.remove(&c) {
                assumed.taken.remove(&pv);
            }
        }
    }
}
