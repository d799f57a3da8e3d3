//! `NodeInfo`: a node together with the pods on it and what they add up to.

use std::sync::Arc;

use crate::dra::inventory::DeviceSet;
use crate::dra::model::{ClaimAllocation, ClaimKey};
use crate::gpu_wiring::GpuWiring;
use crate::intern::Sym;
use crate::model::{GPU_MILLI, GpuRequest, GroupKey, HostPort, Node, Pod, PodKey};
use crate::resources::ResourceVec;
use crate::status::Status;

/// Dense index of a node in a snapshot. Stable for the node's lifetime.
pub type NodeId = u32;

/// The devices a pod gets on its node, as Reserve plugins chose them: carried from the
/// worker's pick to the binder, which re-checks they are still free, and on to the node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceChoice {
    /// The GPUs (a bit set of device indices); `None` leaves them to
    /// [`NodeInfo::choose_gpus`].
    pub gpus: Option<u64>,
    /// Claims of the pod allocated for it here (DRA); claims the node already holds are not
    /// repeated.
    pub claims: Vec<Arc<ClaimAllocation>>,
}

impl DeviceChoice {
    /// Exactly these GPUs and no claim.
    pub fn gpus(mask: u64) -> DeviceChoice {
        DeviceChoice { gpus: Some(mask), claims: Vec::new() }
    }
}

/// A claim allocated on a node, with how many of the node's pods use it.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldClaim {
    /// The allocation.
    pub allocation: Arc<ClaimAllocation>,
    /// The node's local devices it holds (indices into the node's devices; admin-access
    /// grants and shareable devices are not held; the use of non-local devices is marked by the
    /// snapshot, which sees every node that reaches them).
    pub devices: Vec<usize>,
    /// What it draws on the node's ledger (counters of partitionable devices, capacity of
    /// shared devices).
    pub draws: Vec<(u32, i64)>,
    /// Other pods may use it too (the snapshot indexes where such claims are held).
    pub shared: bool,
    /// Pods here that use it; at 0, and unpinned, the claim is freed.
    pub users: u32,
    /// The API records it allocated here ([`NodeInfo::pin_claim`]): it holds its devices
    /// whether or not a pod here uses it, until the API deallocates it.
    pub pinned: bool,
}

/// A node and the pods bound or assumed on it. Cheap to share (`Arc`), copied on write.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node's slot in every snapshot.
    pub id: NodeId,
    /// The node itself.
    pub node: Arc<Node>,
    /// Pods bound or assumed here.
    pub pods: Vec<Arc<Pod>>,
    /// For each pod (same index as `pods`), the GPUs it holds, as a bit set of device indices.
    pub pod_gpus: Vec<u64>,
    /// Milli-GPU in use on each of the node's GPUs.
    pub gpu_used: Vec<u32>,
    /// DRA devices held by the claims allocated here (indices into `node.devices`).
    pub devices_used: DeviceSet,
    /// DRA claims allocated here.
    pub claims: Vec<HeldClaim>,
    /// Drawn on each slot of the node's device ledger (`node.devices.ledger`).
    pub drawn: Vec<i64>,
    /// Sum of the pods' requests.
    pub requested: ResourceVec,
    /// Sum of the pods' non-zero requests (the scoring view).
    pub non_zero_requested: ResourceVec,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// How many pods here have required pod anti-affinity terms.
    pub pods_with_required_anti_affinity: u32,
    /// How many pods here have any pod affinity or anti-affinity.
    pub pods_with_affinity: u32,
    /// How many pods here use a PersistentVolumeClaim: while none does, the snapshot need not
    /// look at the pods to count claim users.
    pub pods_with_claims: u32,
    /// Bumped by the cluster state on every change to this node or its pods.
    pub generation: u64,
    /// The waiting gang this node is held for: no other pod may land here until the gang is
    /// placed or the reservation lapses (see the engine's gang module).
    pub reserved_for: Option<GroupKey>,
    /// The lowest priority of the pods here (`i32::MAX` with none): preemption skips a node
    /// with nothing below the preemptor's priority without looking at its pods.
    pub lowest_priority: i32,
    /// How many pods here belong to a group (gang): preemption looks for a victim's fellow
    /// members only on nodes that have some.
    pub pods_in_groups: u32,
    /// Pods that preempted others here and wait for them to leave (upstream's nominated
    /// pods): they hold their room against pods of lower or equal priority
    /// ([`NodeInfo::with_nominated_for`]), not against higher ones.
    pub nominated: Vec<Arc<Pod>>,
}

/// The reason a node held for a waiting gang gives every other pod.
pub const RESERVED_REASON: &str = "node(s) were reserved for a waiting gang";

impl NodeInfo {
    /// An empty node.
    pub fn new(id: NodeId, node: Arc<Node>) -> NodeInfo {
        let gpus = node.gpus.len();
        NodeInfo {
            id,
            node,
            pods: Vec::new(),
            pod_gpus: Vec::new(),
            gpu_used: vec![0; gpus],
            devices_used: DeviceSet::new(),
            claims: Vec::new(),
            drawn: Vec::new(),
            requested: ResourceVec::ZERO,
            non_zero_requested: ResourceVec::ZERO,
            used_ports: Vec::new(),
            pods_with_required_anti_affinity: 0,
            pods_with_affinity: 0,
            pods_with_claims: 0,
            generation: 0,
            reserved_for: None,
            lowest_priority: i32::MAX,
            pods_in_groups: 0,
            nominated: Vec::new(),
        }
    }

    /// The node as `pod` must see it when filtering: with the nominated pods of at least its
    /// priority (other than itself) added, as upstream's `addNominatedPods`; `None` when there
    /// are none to add, and the node is seen as it is.
    ///
    /// Two exceptions keep a pod from counting twice or against its own: a nominated pod
    /// already placed here (a worker's pick not yet answered), and a fellow member of the
    /// pod's gang (the gang preempted as one, and its members share the room they made).
    pub fn with_nominated_for(&self, pod: &Pod) -> Option<NodeInfo> {
        let counts = |n: &&Arc<Pod>| {
            n.priority >= pod.priority
                && (n.namespace != pod.namespace || n.name != pod.name)
                && (pod.pod_group.is_none() || n.pod_group != pod.pod_group || n.namespace != pod.namespace)
                && !self.pods.iter().any(|p| p.namespace == n.namespace && p.name == n.name)
        };
        if !self.nominated.iter().any(|n| counts(&n)) {
            return None;
        }
        let mut view = self.clone();
        for n in self.nominated.iter().filter(counts) {
            view.add_pod(n.clone());
        }
        Some(view)
    }

    /// Records `pod` as nominated here (replacing an earlier nomination of it).
    pub fn nominate(&mut self, pod: Arc<Pod>) {
        self.unnominate(&pod.key());
        self.nominated.push(pod);
    }

    /// Forgets the nomination of the pod with `key`; whether there was one.
    pub fn unnominate(&mut self, key: &PodKey) -> bool {
        let before = self.nominated.len();
        self.nominated.retain(|n| n.namespace != key.namespace || n.name != key.name);
        self.nominated.len() != before
    }

    /// Why `pod` may not land here because the node is held for another gang, if it is.
    pub fn reservation_status(&self, pod: &Pod) -> Option<Status> {
        match self.reserved_for {
            Some(g) if pod.group_key() != Some(g) => {
                Some(Status::unschedulable(RESERVED_REASON).with_plugin("GangScheduling"))
            }
            _ => None,
        }
    }

    /// The node's name.
    pub fn name(&self) -> Sym {
        self.node.name
    }

    /// Free capacity: allocatable minus requested.
    pub fn free(&self) -> ResourceVec {
        let mut f = self.node.allocatable.clone();
        f.sub(&self.requested);
        f
    }

    /// Free milli-GPU on GPU `i`.
    pub fn gpu_free(&self, i: usize) -> u32 {
        GPU_MILLI.saturating_sub(self.gpu_used.get(i).copied().unwrap_or(GPU_MILLI))
    }

    /// The GPUs a pod asking `req` would get here, or `None` if they are not free.
    ///
    /// Whole GPUs on a node whose wiring is known go to the free GPUs wired best together,
    /// leaving the rest wired best ([`GpuWiring::best_subset`]); without a wiring, to the lowest
    /// free indices, keeping an NVLink island together when one island can hold them all. A
    /// shared GPU goes to the fullest GPU that still fits it (best fit), which keeps whole GPUs
    /// free for whole-GPU pods. Deterministic, so a worker and the binder looking at the same
    /// node choose the same devices. `Some` exactly when enough GPUs fit ([`Self::fits_gpus`]).
    pub fn choose_gpus(&self, req: &GpuRequest) -> Option<u64> {
        if req.milli >= GPU_MILLI
            && let Some(wiring) = self.wiring()
        {
            return wiring.best_subset(self.fitting_gpus(req), req.count);
        }
        let fits = |i: usize| req.accepts(self.node.gpus[i].model) && self.gpu_free(i) >= req.milli;
        let mut candidates: Vec<usize> = (0..self.node.gpus.len().min(64)).filter(|&i| fits(i)).collect();
        if candidates.len() < req.count as usize {
            return None;
        }
        if req.milli < GPU_MILLI {
            candidates.sort_by_key(|&i| (self.gpu_free(i), i));
        } else if let Some(island) = self.island_holding(&candidates, req.count as usize) {
            candidates.retain(|&i| self.node.gpus[i].island == island);
        }
        Some(candidates.iter().take(req.count as usize).fold(0u64, |m, &i| m | 1 << i))
    }

    /// The node's GPU wiring, when it is known and describes every GPU.
    pub fn wiring(&self) -> Option<&GpuWiring> {
        let w = self.node.gpus.first()?.wiring.as_deref()?;
        (w.len() == self.node.gpus.len().min(64)).then_some(w)
    }

    /// The GPUs (a bit set) of a model `req` accepts with room for its share.
    pub fn fitting_gpus(&self, req: &GpuRequest) -> u64 {
        let n = self.node.gpus.len().min(64);
        (0..n)
            .filter(|&i| req.accepts(self.node.gpus[i].model) && self.gpu_free(i) >= req.milli)
            .fold(0u64, |m, i| m | 1 << i)
    }

    /// Whether a pod asking `req` fits on this node's GPUs: exactly when
    /// [`NodeInfo::choose_gpus`] gives `Some`, without building the choice.
    pub fn fits_gpus(&self, req: &GpuRequest) -> bool {
        self.fitting_gpus(req).count_ones() >= req.count
    }

    /// Whether exactly the GPUs in `gpus` can take a pod asking `req`: `req.count` of them,
    /// each of an acceptable model with room for the share. A placement that names its GPUs
    /// (chosen by a plugin) is checked this way against a node that may have changed since.
    pub fn gpus_available(&self, req: &GpuRequest, gpus: u64) -> bool {
        let n = self.node.gpus.len().min(64);
        if gpus.count_ones() != req.count || (n < 64 && gpus >> n != 0) {
            return false;
        }
        (0..n)
            .filter(|&i| gpus & (1 << i) != 0)
            .all(|i| req.accepts(self.node.gpus[i].model) && self.gpu_free(i) >= req.milli)
    }

    /// The first island with at least `n` of `candidates`.
    fn island_holding(&self, candidates: &[usize], n: usize) -> Option<u16> {
        let islands = candidates.iter().map(|&i| self.node.gpus[i].island);
        islands.clone().find(|&isl| candidates.iter().filter(|&&i| self.node.gpus[i].island == isl).count() >= n)
    }

    /// Accounts for `pod` on this node, giving it GPUs by [`NodeInfo::choose_gpus`] and
    /// holding the claims its status records as allocated here.
    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        self.add_pod_with(pod, &DeviceChoice::default());
    }

    /// Accounts for `pod` on this node holding the devices of `choice`: exactly its GPUs when
    /// it names them (else those [`NodeInfo::choose_gpus`] picks), and its claims (else those
    /// the pod's claims record as allocated).
    pub fn add_pod_with(&mut self, pod: Arc<Pod>, choice: &DeviceChoice) {
        let gpus = choice.gpus.or_else(|| pod.gpu.as_ref().and_then(|r| self.choose_gpus(r))).unwrap_or(0);
        let milli = pod.gpu.as_ref().map_or(0, |r| r.milli);
        for (i, used) in self.gpu_used.iter_mut().enumerate() {
            if gpus & (1 << i) != 0 {
                *used += milli;
            }
        }
        self.hold_claims(&pod, choice);
        self.pod_gpus.push(gpus);
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero_requests);
        self.used_ports.extend(pod.host_ports.iter().copied());
        if !pod.pod_anti_affinity.required.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        if !pod.pod_affinity.is_empty() || !pod.pod_anti_affinity.is_empty() {
            self.pods_with_affinity += 1;
        }
        self.lowest_priority = self.lowest_priority.min(pod.priority);
        self.pods_in_groups += u32::from(pod.pod_group.is_some());
        if pod.has_claims() {
            self.pods_with_claims += 1;
        }
        self.pods.push(pod);
    }

    /// Adds `pod` as a user of each of its claims: one the node holds already, one allocated
    /// for it in `choice`, or one its status records allocated here.
    fn hold_claims(&mut self, pod: &Pod, choice: &DeviceChoice) {
        for (i, pc) in pod.claims.iter().enumerate() {
            if pod.claims[..i].iter().any(|o| o.key == pc.key) {
                continue;
            }
            if let Some(held) = self.claims.iter_mut().find(|h| h.allocation.claim == pc.key) {
                held.users += 1;
                continue;
            }
            let chosen = choice.claims.iter().find(|a| a.claim == pc.key);
            let Some(allocation) = chosen.or(pc.allocation.as_ref()) else { continue };
            self.hold(allocation.clone(), pc.shared, 1, false);
        }
    }

    /// Holds the devices of `allocation` for a new [`HeldClaim`].
    fn hold(&mut self, allocation: Arc<ClaimAllocation>, shared: bool, users: u32, pinned: bool) {
        let devices = self.local_devices_taken(&allocation);
        for &d in &devices {
            self.devices_used.insert(d);
        }
        let ledger = &self.node.devices.ledger;
        let draws = ledger.draws_of(&self.node.devices, &allocation);
        ledger.apply(&mut self.drawn, &draws, 1);
        self.claims.push(HeldClaim { allocation, devices, draws, shared, users, pinned });
    }

    /// The local devices `allocation` keeps others from (see [`HeldClaim::devices`]).
    fn local_devices_taken(&self, allocation: &ClaimAllocation) -> Vec<usize> {
        let inventory = &self.node.devices;
        allocation
            .devices
            .iter()
            .filter(|d| !d.admin_access)
            .filter_map(|d| inventory.index_of(&d.device))
            .filter(|&i| !inventory.remote.contains(i) && inventory.exclusive(i))
            .collect()
    }

    /// Finds again the devices held claims take after the node's inventory changed (its
    /// ResourceSlices were republished): held devices are indices, which a new inventory
    /// renumbers. A device the inventory no longer has is held by nobody.
    pub fn rehold_devices(&mut self) {
        let mut used = DeviceSet::new();
        let mut drawn = Vec::new();
        let inventory = self.node.devices.clone();
        for i in 0..self.claims.len() {
            let devices = self.local_devices_taken(&self.claims[i].allocation);
            used.extend(devices.iter().copied());
            self.claims[i].devices = devices;
            let draws = inventory.ledger.draws_of(&inventory, &self.claims[i].allocation);
            inventory.ledger.apply(&mut drawn, &draws, 1);
            self.claims[i].draws = draws;
        }
        self.devices_used = used;
        self.drawn = drawn;
    }

    /// Records that the API has `allocation` for its claim on this node: the claim holds its
    /// devices from now on even with no pod here using it (a pod between its claim's PreBind
    /// and its binding, or another scheduler's), as upstream counts every allocated claim.
    /// The API is the truth: a claim held here with another allocation (one this scheduler
    /// chose while someone else's was written) takes the API's devices instead.
    pub fn pin_claim(&mut self, allocation: Arc<ClaimAllocation>, shared: bool) {
        let at = self.claims.iter().position(|h| h.allocation.claim == allocation.claim);
        let users = match at {
            Some(i) if self.claims[i].allocation == allocation => {
                self.claims[i].pinned = true;
                return;
            }
            Some(i) => {
                let old = self.claims.swap_remove(i);
                self.release(&old);
                old.users
            }
            None => 0,
        };
        self.hold(allocation, shared, users, true);
    }

    /// Records that the API no longer has claim `key` allocated here: it is freed unless a pod
    /// here still uses it.
    pub fn unpin_claim(&mut self, key: &ClaimKey) {
        let Some(at) = self.claims.iter().position(|h| h.allocation.claim == *key) else { return };
        self.claims[at].pinned = false;
        self.free_if_unused(at);
    }

    /// Frees the claim at `at` when no pod uses it and the API does not hold it.
    fn free_if_unused(&mut self, at: usize) {
        if self.claims[at].users == 0 && !self.claims[at].pinned {
            let held = self.claims.swap_remove(at);
            self.release(&held);
        }
    }

    /// Gives back the devices and draws of a claim no longer held.
    fn release(&mut self, held: &HeldClaim) {
        for &d in &held.devices {
            self.devices_used.remove(d);
        }
        self.node.devices.ledger.apply(&mut self.drawn, &held.draws, -1);
    }

    /// Removes `pod` as a user of its claims, freeing those it was the last user of.
    fn release_claims(&mut self, pod: &Pod) {
        for (i, pc) in pod.claims.iter().enumerate() {
            if pod.claims[..i].iter().any(|o| o.key == pc.key) {
                continue;
            }
            let Some(at) = self.claims.iter().position(|h| h.allocation.claim == pc.key) else { continue };
            self.claims[at].users = self.claims[at].users.saturating_sub(1);
            self.free_if_unused(at);
        }
    }

    /// The claim `key` if it is allocated here.
    pub fn held_claim(&self, key: &ClaimKey) -> Option<&HeldClaim> {
        self.claims.iter().find(|h| h.allocation.claim == *key)
    }

    /// The allocations of the claims `pod` uses here.
    pub fn claims_of(&self, pod: &Pod) -> Vec<Arc<ClaimAllocation>> {
        pod.claims.iter().filter_map(|pc| self.held_claim(&pc.key)).map(|h| h.allocation.clone()).collect()
    }

    /// Whether every device of `allocation` is in this node's inventory (local, or reachable
    /// from here).
    pub fn reaches(&self, allocation: &ClaimAllocation) -> bool {
        allocation.devices.iter().all(|d| self.node.devices.index_of(&d.device).is_some())
    }

    /// Whether the devices `choice` allocates are all still free here, and its claims not
    /// already allocated here: a placement whose node changed since it was chosen is checked
    /// this way.
    pub fn claim_devices_free(&self, choice: &DeviceChoice) -> bool {
        let inventory = &self.node.devices;
        if !inventory.ledger.is_empty() {
            let draws: Vec<(u32, i64)> =
                choice.claims.iter().flat_map(|a| inventory.ledger.draws_of(inventory, a)).collect();
            if !inventory.ledger.fits(&self.drawn, &draws) {
                return false;
            }
        }
        choice.claims.iter().all(|a| self.held_claim(&a.claim).is_none() && self.devices_free(a))
    }

    /// Whether `allocation` could be held here as it is: its devices are the node's and free,
    /// and what it draws fits. A claim's status is read apart from the pins that hold what the
    /// API records, so a pod may still carry an allocation given back meanwhile, whose devices
    /// another claim has since taken: such an allocation must not be held again.
    pub fn allocation_free(&self, allocation: &ClaimAllocation) -> bool {
        let inventory = &self.node.devices;
        self.devices_free(allocation)
            && inventory.ledger.fits(&self.drawn, &inventory.ledger.draws_of(inventory, allocation))
    }

    /// Whether every device `allocation` holds is the node's and not held by another claim.
    fn devices_free(&self, allocation: &ClaimAllocation) -> bool {
        let inventory = &self.node.devices;
        allocation.devices.iter().filter(|d| !d.admin_access).all(|d| match inventory.index_of(&d.device) {
            Some(i) => !inventory.exclusive(i) || !self.devices_used.contains(i),
            None => false,
        })
    }

    /// The GPUs (a bit set of device indices) the pod with `key` holds here, if it is here.
    pub fn gpus_of(&self, key: &PodKey) -> Option<u64> {
        let i = self.pods.iter().position(|p| p.namespace == key.namespace && p.name == key.name)?;
        self.pod_gpus.get(i).copied()
    }

    /// Removes the pod with `key`, returning it, or `None` if it is not here.
    pub fn remove_pod(&mut self, key: &PodKey) -> Option<Arc<Pod>> {
        let i = self.pods.iter().position(|p| p.namespace == key.namespace && p.name == key.name)?;
        let pod = self.pods.swap_remove(i);
        let gpus = self.pod_gpus.swap_remove(i);
        self.release_claims(&pod);
        let milli = pod.gpu.as_ref().map_or(0, |r| r.milli);
        for (j, used) in self.gpu_used.iter_mut().enumerate() {
            if gpus & (1 << j) != 0 {
                *used = used.saturating_sub(milli);
            }
        }
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero_requests);
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if !pod.pod_anti_affinity.required.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        if !pod.pod_affinity.is_empty() || !pod.pod_anti_affinity.is_empty() {
            self.pods_with_affinity -= 1;
        }
        if pod.priority == self.lowest_priority {
            self.lowest_priority = self.pods.iter().map(|p| p.priority).min().unwrap_or(i32::MAX);
        }
        self.pods_in_groups -= u32::from(pod.pod_group.is_some());
        if pod.has_claims() {
            self.pods_with_claims -= 1;
        }
        Some(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelSet;
    use crate::model::Gpu;

    fn node() -> Arc<Node> {
        Arc::new(Node {
            name: Sym::new("n1"),
            labels: LabelSet::default(),
            taints: vec![],
            unschedulable: false,
            allocatable: ResourceVec::cpu_mem(4000, 8 << 30),
            allowed_pods: 110,
            images: vec![],
            gpus: vec![],
            devices: Default::default(),
        })
    }

    #[test]
    fn add_then_remove_restores_the_totals() {
        let mut ni = NodeInfo::new(0, node());
        let mut p = Pod::new("default", "a", ResourceVec::cpu_mem(500, 1 << 30));
        p.host_ports.push(HostPort { ip: None, protocol: Sym::new("TCP"), port: 80 });
        ni.add_pod(Arc::new(p.clone()));
        assert_eq!(ni.requested, ResourceVec::cpu_mem(500, 1 << 30));
        assert_eq!(ni.free(), ResourceVec::cpu_mem(3500, 7 << 30));
        assert_eq!(ni.used_ports.len(), 1);
        assert!(ni.remove_pod(&p.key()).is_some());
        assert_eq!(ni.requested, ResourceVec::ZERO);
        assert!(ni.used_ports.is_empty());
        assert!(ni.remove_pod(&p.key()).is_none());
    }

    fn gpu_node(islands: &[u16]) -> Arc<Node> {
        let gpus = islands.iter().map(|&island| Gpu::new(Sym::new("A100"), island)).collect();
        Arc::new(Node { gpus, ..Node::clone(&node()) })
    }

    fn gpu_pod(name: &str, count: u32, milli: u32) -> Arc<Pod> {
        let mut p = Pod::new("default", name, ResourceVec::ZERO);
        p.gpu = Some(GpuRequest { count, milli, models: vec![] });
        Arc::new(p)
    }

    #[test]
    fn shared_gpus_are_best_fit_and_freed_exactly() {
        let mut ni = NodeInfo::new(0, gpu_node(&[0, 0, 0, 0]));
        ni.add_pod(gpu_pod("a", 1, 600));
        ni.add_pod(gpu_pod("b", 1, 300));
        assert_eq!(ni.gpu_used, vec![900, 0, 0, 0], "the fuller GPU takes the smaller share");
        ni.add_pod(gpu_pod("c", 1, 500));
        assert_eq!(ni.gpu_used, vec![900, 500, 0, 0]);
        assert_eq!(ni.choose_gpus(&GpuRequest { count: 3, milli: 1000, models: vec![] }), None);
        ni.remove_pod(&gpu_pod("a", 0, 0).key());
        assert_eq!(ni.gpu_used, vec![300, 500, 0, 0]);
    }

    #[test]
    fn a_named_gpu_set_is_checked_gpu_by_gpu() {
        let mut ni = NodeInfo::new(0, gpu_node(&[0, 0, 0]));
        ni.add_pod_with(gpu_pod("a", 1, 700), &DeviceChoice::gpus(0b010));
        assert_eq!(ni.gpu_used, vec![0, 700, 0], "the named GPU, not the best fit");
        let half = GpuRequest { count: 1, milli: 500, models: vec![] };
        assert!(ni.gpus_available(&half, 0b001));
        assert!(!ni.gpus_available(&half, 0b010), "only 300 left there");
        assert!(!ni.gpus_available(&half, 0b101), "two GPUs for a one-GPU request");
        assert!(!ni.gpus_available(&half, 0b1000), "no such GPU");
        let t4 = GpuRequest { count: 1, milli: 500, models: vec![Sym::new("T4")] };
        assert!(!ni.gpus_available(&t4, 0b001), "wrong model");
        let two = GpuRequest { count: 2, milli: 1000, models: vec![] };
        assert!(ni.fits_gpus(&two) && ni.choose_gpus(&two).is_some());
        let three = GpuRequest { count: 3, milli: 1000, models: vec![] };
        assert!(!ni.fits_gpus(&three) && ni.choose_gpus(&three).is_none());
    }

    #[test]
    fn whole_gpus_stay_inside_one_island() {
        let mut ni = NodeInfo::new(0, gpu_node(&[0, 0, 0, 0, 1, 1, 1, 1]));
        ni.add_pod(gpu_pod("x", 1, 1000));
        let four = GpuRequest { count: 4, milli: 1000, models: vec![] };
        assert_eq!(ni.choose_gpus(&four), Some(0b1111_0000), "island 0 has only 3 free");
        let wrong_model = GpuRequest { count: 1, milli: 1000, models: vec![Sym::new("T4")] };
        assert_eq!(ni.choose_gpus(&wrong_model), None);
    }
}
