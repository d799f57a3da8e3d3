//! Where claims are held across nodes: the claims other pods may share, and the use of
//! devices that are not local to one node (published for a `nodeSelector` or `allNodes`).
//!
//! A node's [`NodeInfo`] holds the claims its pods use and the local devices they take. A
//! device reachable from many nodes is in every such node's inventory, so its use must show on
//! all of them: [`ClaimIndex`] counts, per such device, the claims holding it (one per node
//! holding the claim, plus one for a claim the API records allocated that no node here holds
//! yet), and reports the devices whose use flipped, which the snapshot then marks on every node
//! that reaches them. A flip changes those nodes, so their generations move and the binder's
//! fast path and the Filter reuse cache stay exact.

use std::sync::Arc;

use crate::dra::model::{ClaimAllocation, ClaimKey, DeviceId};
use crate::nodeinfo::{HeldClaim, NodeId, NodeInfo};
use crate::topology::FxMap;

/// A claim held somewhere that other pods may share, or that holds non-local devices.
#[derive(Clone, Debug, PartialEq)]
pub struct Holding {
    /// The allocation: the API's when it records one, else the one the first holder
    /// recorded.
    pub allocation: Arc<ClaimAllocation>,
    /// The nodes holding it: one for a claim on node-local devices; any number for a claim
    /// whose devices are all non-local (a PodGroup's claim, used by pods on many nodes).
    pub nodes: Vec<NodeId>,
    /// The allocation the API records, which holds its devices whether or not a node here
    /// holds the claim.
    pub pinned: Option<Arc<ClaimAllocation>>,
}

/// A device not local to one node.
#[derive(Clone, Debug, Default, PartialEq)]
struct RemoteDevice {
    /// The nodes whose inventory has it.
    nodes: Vec<NodeId>,
    /// Holders: node holdings of claims that take it, plus pinned claims that take it.
    holds: u32,
}

/// See the module docs.
#[derive(Clone, Debug, Default)]
pub struct ClaimIndex {
    held: FxMap<ClaimKey, Holding>,
    remote: FxMap<DeviceId, RemoteDevice>,
}

impl ClaimIndex {
    /// Claim `key`, if it is shared or holds non-local devices and is held somewhere.
    pub fn get(&self, key: &ClaimKey) -> Option<&Holding> {
        self.held.get(key)
    }

    /// The nodes that reach non-local device `id`.
    pub fn nodes_reaching(&self, id: &DeviceId) -> &[NodeId] {
        self.remote.get(id).map_or(&[], |r| &r.nodes)
    }

    /// Whether non-local device `id` is taken by some claim.
    pub fn is_taken(&self, id: &DeviceId) -> bool {
        self.remote.get(id).is_some_and(|r| r.holds > 0)
    }

    /// Whether any node reaches a non-local device (else nothing here has work to do).
    pub fn has_remote_devices(&self) -> bool {
        !self.remote.is_empty()
    }

    /// Adds (`add`) or removes node `info`'s inventory from the reach of its non-local
    /// devices.
    pub fn reach(&mut self, info: &NodeInfo, add: bool) {
        for (_, device) in info.node.devices.remote_devices() {
            let id = device.id();
            let entry = self.remote.entry(id).or_default();
            if add {
                entry.nodes.push(info.id);
            } else {
                entry.nodes.retain(|&n| n != info.id);
                if entry.nodes.is_empty() && entry.holds == 0 {
                    self.remote.remove(&id);
                }
            }
        }
    }

    /// Adds (`add`) or removes the claims node `info` holds, appending to `flips` the
    /// non-local devices whose use changed.
    pub fn index_node(&mut self, info: &NodeInfo, add: bool, flips: &mut Vec<DeviceId>) {
        let reaches_remote = !info.node.devices.remote.is_empty();
        for held in &info.claims {
            if !held.shared && !reaches_remote {
                continue;
            }
            let remote: Vec<DeviceId> = remote_held(info, held).collect();
            if !held.shared && remote.is_empty() {
                continue;
            }
            self.count(&remote, add, flips);
            let key = held.allocation.claim;
            if add {
                let entry = self.held.entry(key).or_insert_with(|| Holding {
                    allocation: held.allocation.clone(),
                    nodes: Vec::new(),
                    pinned: None,
                });
                entry.nodes.push(info.id);
            } else if let Some(entry) = self.held.get_mut(&key) {
                entry.nodes.retain(|&n| n != info.id);
                self.forget_if_unheld(key);
            }
        }
    }

    /// Records that the API has (`Some`) or no longer has (`None`) an allocation of claim
    /// `key` whose devices are all non-local: it holds them whether or not a node here holds
    /// the claim. Devices whose use changed are appended to `flips`.
    pub fn pin(&mut self, key: ClaimKey, allocation: Option<Arc<ClaimAllocation>>, flips: &mut Vec<DeviceId>) {
        if let Some(old) = self.held.get_mut(&key).and_then(|entry| entry.pinned.take()) {
            let old: Vec<DeviceId> = pinned_devices(&old).collect();
            self.count(&old, false, flips);
            self.forget_if_unheld(key);
        }
        let Some(allocation) = allocation else { return };
        let devices: Vec<DeviceId> = pinned_devices(&allocation).collect();
        let entry = self.held.entry(key).or_insert_with(|| Holding {
            allocation: allocation.clone(),
            nodes: Vec::new(),
            pinned: None,
        });
        entry.allocation = allocation.clone();
        entry.pinned = Some(allocation);
        self.count(&devices, true, flips);
    }

    fn count(&mut self, devices: &[DeviceId], add: bool, flips: &mut Vec<DeviceId>) {
        for &id in devices {
            let entry = self.remote.entry(id).or_default();
            let before = entry.holds > 0;
            entry.holds = if add { entry.holds + 1 } else { entry.holds.saturating_sub(1) };
            if before != (entry.holds > 0) {
                flips.push(id);
            }
            if entry.holds == 0 && entry.nodes.is_empty() {
                self.remote.remove(&id);
            }
        }
    }

    fn forget_if_unheld(&mut self, key: ClaimKey) {
        if self.held.get(&key).is_some_and(|e| e.nodes.is_empty() && e.pinned.is_none()) {
            self.held.remove(&key);
        }
    }
}

/// The non-local devices `held` takes on `info` (admin-access grants and devices allowing
/// multiple allocations take nothing).
fn remote_held<'a>(info: &'a NodeInfo, held: &'a HeldClaim) -> impl Iterator<Item = DeviceId> + 'a {
    let inventory = &info.node.devices;
    held.allocation
        .devices
        .iter()
        .filter(|d| !d.admin_access)
        .filter(|d| {
            inventory.index_of(&d.device).is_some_and(|i| inventory.remote.contains(i) && inventory.exclusive(i))
        })
        .map(|d| d.device)
}

/// The devices a pinned allocation with no node takes. Whether a device allows multiple
/// allocations is not known without a node's inventory, so every non-admin device counts:
/// such a device is free for others by its own flag wherever it is checked.
fn pinned_devices(allocation: &ClaimAllocation) -> impl Iterator<Item = DeviceId> + '_ {
    allocation.devices.iter().filter(|d| !d.admin_access).map(|d| d.device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dra::inventory::NodeDevices;
    use crate::dra::model::{AllocatedDevice, Device, ResourceSlice, SliceNodes};
    use crate::intern::Sym;
    use crate::labels::LabelSet;
    use crate::model::Node;
    use crate::resources::ResourceVec;

    /// Node `name` reaching the cluster's one `allNodes` channel.
    fn node(id: NodeId, name: &str) -> NodeInfo {
        let channel = Arc::new(Device {
            uid: Device::next_uid(),
            name: Sym::new("channel-0"),
            driver: Sym::new("fabric.example.com"),
            pool: Sym::new("fabric"),
            attributes: Default::default(),
            capacity: Default::default(),
            taints: Vec::new(),
            allow_multiple_allocations: false,
            consumes_counters: Vec::new(),
        });
        let slice = Arc::new(ResourceSlice {
            name: Arc::from("fabric"),
            driver: channel.driver,
            pool: channel.pool,
            generation: 1,
            slice_count: 1,
            nodes: SliceNodes::All,
            devices: vec![channel],
            shared_counters: Vec::new(),
        });
        let devices = NodeDevices::for_node(Sym::new(name), &LabelSet::default(), &[slice]);
        let node = Node {
            name: Sym::new(name),
            labels: LabelSet::default(),
            taints: vec![],
            unschedulable: false,
            allocatable: ResourceVec::cpu_mem(1000, 1 << 30),
            allowed_pods: 110,
            images: vec![],
            gpus: vec![],
            devices: Arc::new(devices),
        };
        NodeInfo::new(id, Arc::new(node))
    }

    fn allocation(claim: &str) -> Arc<ClaimAllocation> {
        let device = DeviceId {
            driver: Sym::new("fabric.example.com"),
            pool: Sym::new("fabric"),
            device: Sym::new("channel-0"),
        };
        Arc::new(ClaimAllocation {
            claim: ClaimKey::new("ml", claim),
            devices: vec![AllocatedDevice {
                request: Arc::from("channel"),
                device,
                admin_access: false,
                consumed: Default::default(),
            }],
            node: None,
            config: Vec::new(),
        })
    }

    #[test]
    fn a_device_is_taken_while_any_node_or_pin_holds_a_claim_on_it() {
        let (mut a, b) = (node(0, "a"), node(1, "b"));
        let mut index = ClaimIndex::default();
        index.reach(&a, true);
        index.reach(&b, true);
        let id = allocation("g").devices[0].device;
        assert_eq!(index.nodes_reaching(&id), [0, 1]);

        a.pin_claim(allocation("g"), true);
        let mut flips = Vec::new();
        index.index_node(&a, true, &mut flips);
        assert_eq!(flips, [id], "taken");
        assert_eq!(index.get(&ClaimKey::new("ml", "g")).map(|h| h.nodes.clone()), Some(vec![0]));

        flips.clear();
        index.pin(ClaimKey::new("ml", "g"), Some(allocation("g")), &mut flips);
        assert!(flips.is_empty(), "already taken");
        index.index_node(&a, false, &mut flips);
        assert!(flips.is_empty() && index.is_taken(&id), "the pin still holds it");
        index.pin(ClaimKey::new("ml", "g"), None, &mut flips);
        assert_eq!(flips, [id], "freed with the last holder");
        assert!(index.get(&ClaimKey::new("ml", "g")).is_none());

        index.reach(&a, false);
        index.reach(&b, false);
        assert!(!index.has_remote_devices(), "nothing left to track");
    }
}
