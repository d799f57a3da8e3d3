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
//! The result is a [`GpuWiring`] over the node's devices in inventory order (its first
//! [`MAX_WIRED_GPUS`]), the same graph the annotation `tessera.io/gpu-topology` describes for
//! device-plugin GPUs, with the same ranking: NVLink first, then one PCIe root, then one NUMA
//! node. Nodes wired alike share one wiring: a node carries a pointer, not a graph.

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

/// The wiring of `devices` (one node's, in inventory order), or `None` when no device
/// publishes any of the attributes above. An attribute of another type than documented is
/// ignored on that device (unknown never counts as shared).
pub fn of_devices(devices: &[Arc<Device>]) -> Option<Arc<GpuWiring>> {
    let devices = &devices[..devices.len().min(MAX_WIRED_GPUS)];
    let mut roots: Vec<String> = Vec::new();
    let mut pcie = Vec::with_capacity(devices.len());
    let mut numa = Vec::with_capacity(devices.len());
    let mut clique = Vec::with_capacity(devices.len());
    for d in devices {
        // PCIe roots as small integers in order of first appearance: nodes wired alike get
        // equal wirings whatever their bus numbers.
        pcie.push(d.attribute(PCIE_ROOT).and_then(|v| match v {
            AttrValue::String(s) => Some(index_of(&mut roots, s)),
            _ => None,
        }));
        numa.push(match d.attribute(NUMA_NODE) {
            Some(AttrValue::Int(n)) => u16::try_from(*n).ok(),
            _ => None,
        });
        clique.push(clique_of(d));
    }
    if pcie.iter().chain(&numa).all(Option::is_none) && clique.iter().all(Option::is_none) {
        return None;
    }
    let links: Vec<Vec<u8>> = clique
        .iter()
        .enumerate()
        .map(|(i, a)| clique.iter().enumerate().map(|(j, b)| u8::from(i != j && a.is_some() && a == b)).collect())
        .collect();
    Some(intern(GpuWiring::new(&links, &pcie, &numa)))
}

/// The device's NVLink clique as `name=value`, so that cliques of two drivers never merge.
fn clique_of(device: &Device) -> Option<String> {
    device.attributes.iter().find_map(|(name, value)| {
        let local = name.rsplit_once('/').map_or(&**name, |(_, local)| local);
        let value = match value {
            AttrValue::String(s) => s.to_string(),
            AttrValue::Int(n) => n.to_string(),
            _ => return None,
        };
        (local == NVLINK_CLIQUE).then(|| format!("{name}={value}"))
    })
}

fn index_of(seen: &mut Vec<String>, value: &str) -> u16 {
    let i = seen.iter().position(|s| s == value).unwrap_or_else(|| {
        seen.push(value.to_string());
        seen.len() - 1
    });
    // At most MAX_WIRED_GPUS distinct values.
    i as u16
}

/// One shared wiring per distinct graph: a cluster has thousands of nodes and a handful of
/// wirings, and each wiring holds a table per pair of devices.
fn intern(wiring: GpuWiring) -> Arc<GpuWiring> {
    static WIRINGS: OnceLock<Mutex<HashSet<Arc<GpuWiring>>>> = OnceLock::new();
    // The set is only ever added to, so a panic elsewhere cannot leave it half-changed.
    let mut known = WIRINGS.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(shared) = known.get(&wiring) {
        return shared.clone();
    }
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
        let Some(w) = of_devices(&devices) else { panic!("attributes published, no wiring") };
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
        assert!(Arc::ptr_eq(&one, &two));
    }
}
