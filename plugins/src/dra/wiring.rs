//! How a node's DRA devices are wired to each other, read from the attributes their drivers
//! publish, so that the allocator can give a pod the devices wired best
//! ([`crate::dra::allocator::Preference::Wiring`]):
//!
//! - `resource.kubernetes.io/pcieRoot` (string, `pci<domain>:<bus>`): devices with one value
//!   share a PCIe root complex — a GPU and the RDMA NIC beside it, for GPUDirect.
//! - `resource.kubernetes.io/numaNode` (int): the device's NUMA node.
//! - an attribute named `nvlinkClique` in any domain (`gpu.example.com/nvlinkClique`; string
//!   or int): devices with one value under one attribute name are NVLink peers. Kubernetes
//!   defines no standard attribute for NVLink; a driver that publishes its cliques under this
//!   name gets them honoured.
//!
//! The result is a [`DeviceWiring`]: a [`GpuWiring`] over the node's devices that publish any
//! of these (the first [`MAX_WIRED_GPUS`] in inventory order), the same graph the annotation
//! `tessera.io/gpu-topology` describes for device-plugin GPUs, with the same ranking: NVLink
//! first, then one PCIe root, then one NUMA node. Devices that publish none are not in the
//! graph, so they neither push wired devices past the limit nor make the graph larger than
//! its exact table ([`crate::gpu_wiring::TABLE_GPUS`]). Nodes wired alike share one graph.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use crate::dra::model::{AttrValue, Device};
use crate::gpu_wiring::{GpuWiring, MAX_WIRED_GPUS};

/// The standard attribute naming a device's PCIe root complex.
pub const PCIE_ROOT: &str = "resource.kubernetes.io/pcieRoot";
/// The standard attribute naming a device's NUMA node.
pub const NUMA_NODE: &str = "resource.kubernetes.io/numaNode";
/// The name, after its domain, of the attribute naming a device's NVLink clique.
pub const NVLINK_CLIQUE: &str = "nvlinkClique";

/// How one node's DRA devices are wired: the graph over those that publish wiring
/// attributes, and which device each of its vertices is.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceWiring {
    /// The graph; vertex `v` is device `devices[v]`.
    pub graph: Arc<GpuWiring>,
    /// The device (inventory index) of each vertex, ascending.
    pub devices: Vec<u32>,
}

impl DeviceWiring {
    /// The vertices of `devices` (inventory indices) as a mask; devices outside the graph are
    /// left out.
    pub fn mask(&self, devices: impl IntoIterator<Item = usize>) -> u64 {
        devices.into_iter().filter_map(|d| self.vertex(d)).fold(0, |m, v| m | 1 << v)
    }

    /// Every vertex, as a mask.
    pub fn all(&self) -> u64 {
        match self.devices.len() {
            64.. => u64::MAX,
            n => (1 << n) - 1,
        }
    }

    /// Whether device `d` (an inventory index) is a vertex of `mask`.
    pub fn contains(&self, mask: u64, d: usize) -> bool {
        self.vertex(d).is_some_and(|v| mask & (1 << v) != 0)
    }

    fn vertex(&self, d: usize) -> Option<usize> {
        let d = u32::try_from(d).ok()?;
        self.devices.binary_search(&d).ok()
    }
}

/// The wiring of `devices` (one node's, in inventory order), or `None` when no device
/// publishes any of the attributes above. An attribute of another type than documented is
/// ignored on that device (unknown never counts as shared).
pub fn of_devices(devices: &[Arc<Device>]) -> Option<DeviceWiring> {
    let mut roots: Vec<&str> = Vec::new();
    let (mut vertices, mut pcie, mut numa, mut clique) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, d) in devices.iter().enumerate() {
        // PCIe roots as small integers in order of first appearance: nodes wired alike get
        // equal graphs whatever their bus numbers.
        let root = match d.attribute(PCIE_ROOT) {
            Some(AttrValue::String(s)) => Some(index_of(&mut roots, s)),
            _ => None,
        };
        let node = match d.attribute(NUMA_NODE) {
            Some(AttrValue::Int(n)) => u16::try_from(*n).ok(),
            _ => None,
        };
        let peers = clique_of(d);
        let Ok(index) = u32::try_from(i) else { break };
        if root.is_none() && node.is_none() && peers.is_none() {
            continue;
        }
        vertices.push(index);
        pcie.push(root);
        numa.push(node);
        clique.push(peers);
        if vertices.len() == MAX_WIRED_GPUS {
            break;
        }
    }
    if vertices.is_empty() {
        return None;
    }
    let links: Vec<Vec<u8>> = clique
        .iter()
        .enumerate()
        .map(|(i, a)| clique.iter().enumerate().map(|(j, b)| u8::from(i != j && a.is_some() && a == b)).collect())
        .collect();
    Some(DeviceWiring { graph: intern(GpuWiring::new(&links, &pcie, &numa)), devices: vertices })
}

/// The device's NVLink clique: its attribute's name and value, so that cliques of two drivers
/// never merge.
fn clique_of(device: &Device) -> Option<(&str, &AttrValue)> {
    device.attributes.iter().find_map(|(name, value)| {
        let local = name.rsplit_once('/').map_or(&**name, |(_, local)| local);
        let valued = matches!(value, AttrValue::String(_) | AttrValue::Int(_));
        (local == NVLINK_CLIQUE && valued).then_some((&**name, value))
    })
}

fn index_of<'a>(seen: &mut Vec<&'a str>, value: &'a str) -> u16 {
    let i = seen.iter().position(|s| *s == value).unwrap_or_else(|| {
        seen.push(value);
        seen.len() - 1
    });
    // At most one value per device, and a graph holds at most MAX_WIRED_GPUS devices.
    u16::try_from(i).unwrap_or(u16::MAX)
}

/// One shared graph per distinct wiring: a cluster has thousands of nodes and a handful of
/// wirings, and each graph holds a weight per pair of devices. Graphs no node holds any more
/// (a driver republished its devices otherwise) are dropped when a new one comes.
fn intern(wiring: GpuWiring) -> Arc<GpuWiring> {
    static WIRINGS: OnceLock<Mutex<HashSet<Arc<GpuWiring>>>> = OnceLock::new();
    // Each step leaves the set whole, so a panic elsewhere cannot leave it half-changed.
    let mut known = WIRINGS.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(shared) = known.get(&wiring) {
        return shared.clone();
    }
    known.retain(|w| Arc::strong_count(w) > 1);
    let shared = Arc::new(wiring);
    known.insert(shared.clone());
    shared
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::intern::Sym;

    fn device(name: &str, attrs: &[(&str, AttrValue)]) -> Arc<Device> {
        Arc::new(Device {
            uid: Device::next_uid(),
            name: Sym::new(name),
            driver: Sym::new("gpu.example.com"),
            pool: Sym::new("n1"),
            attributes: attrs.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect(),
            capacity: BTreeMap::new(),
            taints: Vec::new(),
            allow_multiple_allocations: false,
            consumes_counters: Vec::new(),
        })
    }

    fn s(v: &str) -> AttrValue {
        AttrValue::String(Arc::from(v))
    }

    #[test]
    fn roots_numa_nodes_and_cliques_come_from_the_attributes() {
        let clique = "gpu.example.com/nvlinkClique";
        let devices = [
            device("gpu-0", &[(PCIE_ROOT, s("pci0000:17")), (NUMA_NODE, AttrValue::Int(0)), (clique, s("a"))]),
            device("gpu-1", &[(PCIE_ROOT, s("pci0000:17")), (NUMA_NODE, AttrValue::Int(0)), (clique, s("a"))]),
            device(
                "gpu-2",
                &[(PCIE_ROOT, s("pci0000:ca")), (NUMA_NODE, AttrValue::Int(1)), (clique, AttrValue::Int(7))],
            ),
            // A NUMA node of the wrong type and no clique: only its root counts.
            device("nic-0", &[(PCIE_ROOT, s("pci0000:ca")), (NUMA_NODE, s("1"))]),
        ];
        let Some(wiring) = of_devices(&devices) else { panic!("attributes published, no wiring") };
        let w = &wiring.graph;
        assert_eq!((w.links(0, 1), w.links(0, 2), w.links(2, 3)), (1, 0, 0));
        assert_eq!(w.islands(), [0, 0, 1, 2]);
        assert_eq!((0..4).map(|i| w.pcie_root(i)).collect::<Vec<_>>(), [Some(0), Some(0), Some(1), Some(1)]);
        assert_eq!((0..4).map(|i| w.numa(i)).collect::<Vec<_>>(), [Some(0), Some(0), Some(1), None]);
    }

    #[test]
    fn devices_without_wiring_attributes_have_no_wiring() {
        assert!(of_devices(&[device("gpu-0", &[("gpu.example.com/model", s("A100"))])]).is_none());
    }

    #[test]
    fn nodes_wired_alike_share_one_wiring_whatever_their_bus_numbers() {
        let node = |a: &str, b: &str| {
            of_devices(&[device("gpu-0", &[(PCIE_ROOT, s(a))]), device("gpu-1", &[(PCIE_ROOT, s(b))])])
        };
        let (Some(one), Some(two)) = (node("pci0000:17", "pci0000:ca"), node("pci0001:03", "pci0001:04")) else {
            panic!("no wiring")
        };
        assert!(Arc::ptr_eq(&one.graph, &two.graph));
    }

    #[test]
    fn devices_without_wiring_attributes_are_not_in_the_graph() {
        let plain = |i: usize| device(&format!("cpu-{i:02}"), &[]);
        // 70 devices that say nothing of their wiring come first, then two GPUs on one root.
        let mut devices: Vec<Arc<Device>> = (0..70).map(plain).collect();
        devices.extend(["gpu-0", "gpu-1"].map(|n| device(n, &[(PCIE_ROOT, s("pci0000:17"))])));
        let Some(wiring) = of_devices(&devices) else { panic!("no wiring") };
        assert_eq!(wiring.devices, [70, 71]);
        assert_eq!(wiring.graph.len(), 2);
        assert_eq!(wiring.mask([3, 71]), 0b10);
        assert!(wiring.contains(0b10, 71) && !wiring.contains(0b10, 70) && !wiring.contains(u64::MAX, 3));
    }
}
