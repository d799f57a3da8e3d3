//! What a node can allocate from: the devices of complete pools local to it, and those of
//! complete pools published for a `nodeSelector` it matches or for `allNodes`, indexed densely
//! so that device use is a bit set on the node ([`DeviceSet`]).
//!
//! A device that is not local to the node ([`NodeDevices::remote`]) appears in the inventory of
//! every node that reaches it: the snapshot keeps its use in step across all of them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dra::model::{Device, DeviceId, ResourceSlice, SliceNodes};
use crate::intern::Sym;
use crate::labels::LabelSet;

/// A node's devices, in (driver, pool, device) order. Shared by every copy of the node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeDevices {
    /// The devices; a device's index here is its bit in a [`DeviceSet`].
    pub devices: Vec<Arc<Device>>,
    /// The devices not local to this node: published for a `nodeSelector` or `allNodes`, and
    /// so reachable from other nodes too.
    pub remote: DeviceSet,
    /// Pools the node could use that are left out because fewer slices of their newest
    /// generation were seen than `resourceSliceCount` says (`driver/pool`).
    pub incomplete: Vec<(Sym, Sym)>,
}

impl NodeDevices {
    /// The devices of `slices` that node `node` (with `labels`) can use: those local to it
    /// and those of slices whose `nodeSelector` it matches or that are for `allNodes`. For
    /// each pool, only its newest generation, and only if every slice of that generation is
    /// among `slices` (a pool still being published is not used, as upstream). Give it the
    /// node's own slices and every slice not local to one node; others are ignored.
    pub fn for_node(node: Sym, labels: &LabelSet, slices: &[Arc<ResourceSlice>]) -> NodeDevices {
        let local = |s: &ResourceSlice| matches!(&s.nodes, SliceNodes::Node(n) if *n == node);
        let mine = |s: &ResourceSlice| match &s.nodes {
            SliceNodes::Node(n) => *n == node,
            SliceNodes::Selector(selector) => selector.matches(labels, node),
            SliceNodes::All => true,
        };
        // A pool is complete or not whichever of its slices reach this node.
        let pooled = |s: &ResourceSlice| local(s) || !matches!(s.nodes, SliceNodes::Node(_));
        let mut pools: HashMap<(Sym, Sym), (i64, u32, u32)> = HashMap::new();
        for s in slices.iter().filter(|s| pooled(s)) {
            let e = pools.entry((s.driver, s.pool)).or_insert((s.generation, s.slice_count, 0));
            if s.generation > e.0 {
                *e = (s.generation, s.slice_count, 0);
            }
            if s.generation == e.0 {
                e.2 += 1;
            }
        }
        let mut devices: Vec<(Arc<Device>, bool)> = Vec::new();
        let mut incomplete = Vec::new();
        for s in slices.iter().filter(|s| mine(s)) {
            let Some(&(generation, count, seen)) = pools.get(&(s.driver, s.pool)) else { continue };
            if s.generation != generation {
                continue;
            }
            if seen >= count {
                devices.extend(s.devices.iter().map(|d| (d.clone(), !local(s))));
            } else if !incomplete.contains(&(s.driver, s.pool)) {
                incomplete.push((s.driver, s.pool));
            }
        }
        incomplete.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
        devices.sort_by(|a, b| key(&a.0).cmp(&key(&b.0)));
        devices.dedup_by(|a, b| a.0.id() == b.0.id());
        let mut remote = DeviceSet::new();
        remote.extend(devices.iter().enumerate().filter(|(_, d)| d.1).map(|(i, _)| i));
        NodeDevices { devices: devices.into_iter().map(|d| d.0).collect(), remote, incomplete }
    }

    /// How many devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether the node has no devices.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The index of device `id`.
    pub fn index_of(&self, id: &DeviceId) -> Option<usize> {
        let k = (id.driver.as_str(), id.pool.as_str(), id.device.as_str());
        self.devices.binary_search_by(|d| key(d).cmp(&k)).ok()
    }

    /// The devices not local to the node, with their indices.
    pub fn remote_devices(&self) -> impl Iterator<Item = (usize, &Arc<Device>)> + '_ {
        self.remote.iter().map(|i| (i, &self.devices[i]))
    }

    /// Whether a claim holding device `i` keeps others from it: not when the device allows
    /// multiple allocations (consumable capacity).
    pub fn exclusive(&self, i: usize) -> bool {
        !self.devices[i].allow_multiple_allocations
    }
}

fn key(d: &Device) -> (&'static str, &'static str, &'static str) {
    (d.driver.as_str(), d.pool.as_str(), d.name.as_str())
}

/// A set of device indices of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceSet(Vec<u64>);

impl DeviceSet {
    /// An empty set.
    pub fn new() -> DeviceSet {
        DeviceSet::default()
    }

    /// Whether index `i` is in the set.
    pub fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Adds index `i`.
    pub fn insert(&mut self, i: usize) {
        if self.0.len() <= i / 64 {
            self.0.resize(i / 64 + 1, 0);
        }
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// Adds every index of `indices`.
    pub fn extend(&mut self, indices: impl IntoIterator<Item = usize>) {
        for i in indices {
            self.insert(i);
        }
    }

    /// Removes index `i`.
    pub fn remove(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w &= !(1 << (i % 64));
        }
    }

    /// How many indices.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The indices, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(k, &w)| (0..64).filter(move |b| w & (1 << b) != 0).map(move |b| k * 64 + b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{NodeSelector, NodeSelectorTerm, Operator, Requirement};

    fn slice(
        name: &str,
        pool: &str,
        nodes: SliceNodes,
        generation: i64,
        count: u32,
        devices: &[&str],
    ) -> Arc<ResourceSlice> {
        let devices = devices
            .iter()
            .map(|d| {
                Arc::new(Device {
                    uid: Device::next_uid(),
                    name: Sym::new(d),
                    driver: Sym::new("x.example.com"),
                    pool: Sym::new(pool),
                    attributes: Default::default(),
                    capacity: Default::default(),
                    taints: Vec::new(),
                    allow_multiple_allocations: false,
                    consumes_counters: Vec::new(),
                })
            })
            .collect();
        Arc::new(ResourceSlice {
            name: Arc::from(name),
            driver: Sym::new("x.example.com"),
            pool: Sym::new(pool),
            generation,
            slice_count: count,
            nodes,
            devices,
            shared_counters: Vec::new(),
        })
    }

    fn rack(value: &str) -> SliceNodes {
        let requirement =
            Requirement { key: Sym::new("rack"), op: Operator::In, values: vec![Sym::new(value)], bound: 0 };
        let term = NodeSelectorTerm { match_expressions: vec![requirement], match_fields: Vec::new() };
        SliceNodes::Selector(NodeSelector { terms: vec![term] })
    }

    fn names(d: &NodeDevices) -> Vec<String> {
        d.devices.iter().map(|d| format!("{}/{}", d.pool, d.name)).collect()
    }

    #[test]
    fn a_node_reaches_local_devices_and_those_of_slices_for_its_selector_or_all_nodes() {
        let n1 = Sym::new("n1");
        let slices = [
            slice("own", "n1", SliceNodes::Node(n1), 1, 1, &["gpu-0"]),
            slice("other", "n2", SliceNodes::Node(Sym::new("n2")), 1, 1, &["gpu-0"]),
            slice("r1", "r1", rack("r1"), 1, 1, &["channel-0"]),
            slice("r2", "r2", rack("r2"), 1, 1, &["channel-0"]),
            slice("all", "all", SliceNodes::All, 1, 1, &["link-0"]),
            // Two slices of generation 2 announced, one seen: the pool waits.
            slice("half", "half", SliceNodes::All, 2, 2, &["link-9"]),
        ];
        let labels = LabelSet::from_pairs([("rack", "r1")]);
        let d = NodeDevices::for_node(n1, &labels, &slices);
        assert_eq!(names(&d), ["all/link-0", "n1/gpu-0", "r1/channel-0"]);
        assert_eq!(d.remote.iter().collect::<Vec<_>>(), [0, 2], "only gpu-0 is local");
        assert_eq!(d.incomplete, [(Sym::new("x.example.com"), Sym::new("half"))]);
        let elsewhere = NodeDevices::for_node(Sym::new("n3"), &LabelSet::default(), &slices);
        assert_eq!(names(&elsewhere), ["all/link-0"], "no rack label: only the allNodes device");
    }
}
