//! What a node can allocate from: the devices of complete pools local to it, and those of
//! complete pools published for a `nodeSelector` it matches or for `allNodes`, indexed densely
//! so that device use is a bit set on the node ([`DeviceSet`]).
//!
//! A device that is not local to the node ([`NodeDevices::remote`]) appears in the inventory of
//! every node that reaches it: the snapshot keeps its use in step across all of them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dra::model::{ClaimAllocation, CounterSet, Device, DeviceId, ResourceSlice, SliceNodes};
use crate::dra::wiring::{self, DeviceWiring};
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
    /// What allocations draw on besides the devices themselves.
    pub ledger: Ledger,
    /// How the devices are wired, when their drivers publish PCIe roots, NUMA nodes or NVLink
    /// cliques ([`crate::dra::wiring`]).
    pub wiring: Option<DeviceWiring>,
}

/// Amounts allocations draw on besides whole devices: the counters of partitionable devices'
/// counter sets (a GPU's memory and multiprocessors, which its partitions share), and the
/// capacity of devices that allow multiple allocations (a NIC's bandwidth). Each is a slot
/// with a limit; a node keeps what is drawn per slot. Empty on most nodes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ledger {
    /// Each slot's name (`driver/pool/set/counter`, or `driver/pool/device/capacity`) and
    /// limit, in milli-units.
    pub slots: Vec<(Arc<str>, i64)>,
    /// Per device: the counter slots it draws on whenever allocated, and how much.
    pub counters: Vec<Vec<(u32, i64)>>,
    /// Per device that allows multiple allocations: the slot of each of its capacities, by
    /// qualified name.
    pub capacity: Vec<Vec<(Arc<str>, u32)>>,
}

impl Ledger {
    /// Whether nothing is drawn on (no counters, no shared capacity).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slot of capacity `name` of device `i`, if the device shares it out.
    pub fn capacity_slot(&self, i: usize, name: &str) -> Option<u32> {
        self.capacity.get(i)?.iter().find(|(n, _)| &**n == name).map(|(_, slot)| *slot)
    }

    /// What `allocation` draws on this ledger, for `devices` (its node's inventory): the
    /// counters of the devices it holds and the capacity it consumes of shared devices.
    pub fn draws_of(&self, devices: &NodeDevices, allocation: &ClaimAllocation) -> Vec<(u32, i64)> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for d in allocation.devices.iter().filter(|d| !d.admin_access) {
            let Some(i) = devices.index_of(&d.device) else { continue };
            out.extend(self.counters.get(i).into_iter().flatten().copied());
            out.extend(d.consumed.iter().filter_map(|(name, &amount)| Some((self.capacity_slot(i, name)?, amount))));
        }
        out
    }

    /// Whether `drawn` plus `draws` stays within every limit.
    pub fn fits(&self, drawn: &[i64], draws: &[(u32, i64)]) -> bool {
        let mut extra: Vec<(u32, i64)> = Vec::with_capacity(draws.len());
        for &(slot, amount) in draws {
            match extra.iter_mut().find(|(s, _)| *s == slot) {
                Some(e) => e.1 += amount,
                None => extra.push((slot, amount)),
            }
        }
        extra.iter().all(|&(slot, amount)| {
            let used = drawn.get(slot as usize).copied().unwrap_or(0);
            self.slots.get(slot as usize).is_some_and(|(_, limit)| used.saturating_add(amount) <= *limit)
        })
    }

    /// Adds (`sign` 1) or takes back (-1) `draws` in `drawn`, growing it to the ledger's size.
    pub fn apply(&self, drawn: &mut Vec<i64>, draws: &[(u32, i64)], sign: i64) {
        if drawn.len() < self.slots.len() {
            drawn.resize(self.slots.len(), 0);
        }
        for &(slot, amount) in draws {
            if let Some(d) = drawn.get_mut(slot as usize) {
                *d += sign * amount;
            }
        }
    }

    /// The ledger of `devices` (sorted as the inventory) and the counter sets of their pools.
    fn build(devices: &[Arc<Device>], sets: &[(Sym, Sym, &CounterSet)]) -> Ledger {
        let mut ledger = Ledger::default();
        let mut by_name: HashMap<String, u32> = HashMap::new();
        for (driver, pool, set) in sets {
            for (counter, &value) in &set.counters {
                ledger.slot(&mut by_name, format!("{driver}/{pool}/{}/{counter}", set.name), value);
            }
        }
        for d in devices {
            let mut draws = Vec::new();
            for c in &d.consumes_counters {
                for (counter, &amount) in &c.counters {
                    let name = format!("{}/{}/{}/{counter}", d.driver, d.pool, c.counter_set);
                    let draw = match by_name.get(&name) {
                        Some(&s) => (s, amount),
                        // A counter the pool does not publish can never be drawn on: the device
                        // is not allocatable (a slot of limit 0 that the draw exceeds).
                        None => (ledger.slot(&mut by_name, format!("{name} (not published)"), 0), amount.max(1)),
                    };
                    draws.push(draw);
                }
            }
            ledger.counters.push(draws);
            let mut capacity = Vec::new();
            if d.allow_multiple_allocations {
                for (name, c) in &d.capacity {
                    let slot = ledger.slot(&mut by_name, format!("{}/{}/{}/{name}", d.driver, d.pool, d.name), c.milli);
                    capacity.push((name.clone(), slot));
                }
            }
            ledger.capacity.push(capacity);
        }
        if ledger.slots.is_empty() { Ledger::default() } else { ledger }
    }

    /// The slot named `name`, added with `limit` if new.
    fn slot(&mut self, by_name: &mut HashMap<String, u32>, name: String, limit: i64) -> u32 {
        if let Some(&s) = by_name.get(&name) {
            return s;
        }
        self.slots.push((Arc::from(name.as_str()), limit));
        let s = (self.slots.len() - 1) as u32;
        by_name.insert(name, s);
        s
    }
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
        let mut sets: Vec<(Sym, Sym, &CounterSet)> = Vec::new();
        let mut incomplete = Vec::new();
        for s in slices.iter().filter(|s| mine(s)) {
            let Some(&(generation, count, seen)) = pools.get(&(s.driver, s.pool)) else { continue };
            if s.generation != generation {
                continue;
            }
            if seen >= count {
                devices.extend(s.devices.iter().map(|d| (d.clone(), !local(s))));
                sets.extend(s.shared_counters.iter().map(|set| (s.driver, s.pool, set)));
            } else if !incomplete.contains(&(s.driver, s.pool)) {
                incomplete.push((s.driver, s.pool));
            }
        }
        incomplete.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
        devices.sort_by(|a, b| key(&a.0).cmp(&key(&b.0)));
        devices.dedup_by(|a, b| a.0.id() == b.0.id());
        let mut remote = DeviceSet::new();
        remote.extend(devices.iter().enumerate().filter(|(_, d)| d.1).map(|(i, _)| i));
        let devices: Vec<Arc<Device>> = devices.into_iter().map(|d| d.0).collect();
        let ledger = Ledger::build(&devices, &sets);
        let wiring = wiring::of_devices(&devices);
        NodeDevices { devices, remote, incomplete, ledger, wiring }
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
