//! The DRA world of `tessera bench --mix dra`: nodes that publish 8 GPUs and 8 RDMA NICs in a
//! ResourceSlice each, a GPU and a NIC under each of 4 PCIe roots twice over (as on an
//! 8-GPU server with 4 PCIe switches), and pods claiming 1–8 GPU+NIC pairs. Each pair is one
//! claim made from the template `gpu-nic-pair`: one GPU and one NIC whose
//! `resource.kubernetes.io/pcieRoot` match, so that GPUDirect RDMA stays under one switch.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_plugins::dra::cel::{CelError, compile_cached};
use tessera_plugins::dra::inventory::NodeDevices;
use tessera_plugins::dra::model::{
    AllocationMode, AttrValue, ClaimKey, ClaimSpec, Constraint, Device, DeviceClass, DeviceRequest, ExactRequest,
    PodClaim, RequestKind, ResourceSlice, SliceNodes,
};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{Node, Pod};
use tessera_plugins::resources::ResourceVec;

use super::synth;
use crate::engine::rng::Rng;

/// The GPU driver.
pub const GPU_DRIVER: &str = "gpu.example.com";
/// The RDMA NIC driver.
pub const NIC_DRIVER: &str = "rdma.example.com";
/// The standard attribute naming a device's PCIe root complex.
pub const PCIE_ROOT: &str = "resource.kubernetes.io/pcieRoot";
/// GPUs (and NICs) per node.
pub const DEVICES_PER_KIND: usize = 8;
/// PCIe roots per node; each has `DEVICES_PER_KIND / PCIE_ROOTS` GPUs and as many NICs.
pub const PCIE_ROOTS: usize = 4;

/// Pairs per pod and their weights (out of 100).
const PAIRS: [(usize, u64); 4] = [(1, 40), (2, 25), (4, 20), (8, 15)];

/// The classes and the pair template every pod of the world shares.
#[derive(Clone, Debug)]
pub struct DraWorld {
    /// `gpu.example.com`: devices of the GPU driver.
    pub gpu_class: Arc<DeviceClass>,
    /// `rdma.example.com`: devices of the NIC driver.
    pub nic_class: Arc<DeviceClass>,
    /// The template's spec: one GPU and one NIC under one PCIe root.
    pub pair: Arc<ClaimSpec>,
}

impl DraWorld {
    /// Compiles the classes' selectors.
    pub fn new() -> Result<DraWorld, CelError> {
        let gpu_class = class(GPU_DRIVER)?;
        let nic_class = class(NIC_DRIVER)?;
        let request = |name: &str, class: &Arc<DeviceClass>| DeviceRequest {
            name: Arc::from(name),
            kind: RequestKind::Exactly(ExactRequest {
                class: class.clone(),
                selectors: Vec::new(),
                mode: AllocationMode::ExactCount(1),
                admin_access: false,
                tolerations: Vec::new(),
                capacity: BTreeMap::new(),
            }),
        };
        let constraint = Constraint::MatchAttribute {
            requests: vec![Arc::from("gpu"), Arc::from("nic")],
            attribute: Arc::from(PCIE_ROOT),
        };
        let pair = Arc::new(ClaimSpec {
            requests: vec![request("gpu", &gpu_class), request("nic", &nic_class)],
            constraints: vec![constraint],
            config: Vec::new(),
        });
        Ok(DraWorld { gpu_class, nic_class, pair })
    }

    /// The devices of node `name`, as its two ResourceSlices (one per driver) publish them.
    pub fn devices(&self, name: &str) -> NodeDevices {
        let node = Sym::new(name);
        let slice = |driver: &str, prefix: &str| {
            let devices = (0..DEVICES_PER_KIND)
                .map(|i| {
                    let root = format!("pci0000:{:02x}", i % PCIE_ROOTS);
                    let attributes = [(Arc::from(PCIE_ROOT), AttrValue::String(Arc::from(root)))].into_iter().collect();
                    Arc::new(Device {
                        uid: Device::next_uid(),
                        name: Sym::new(&format!("{prefix}-{i}")),
                        driver: Sym::new(driver),
                        pool: node,
                        attributes,
                        capacity: BTreeMap::new(),
                        taints: Vec::new(),
                        allow_multiple_allocations: false,
                        consumes_counters: Vec::new(),
                    })
                })
                .collect();
            Arc::new(ResourceSlice {
                name: Arc::from(format!("{name}-{driver}")),
                driver: Sym::new(driver),
                pool: node,
                generation: 1,
                slice_count: 1,
                nodes: SliceNodes::Node(node),
                devices,
                shared_counters: Vec::new(),
            })
        };
        NodeDevices::for_node(node, &LabelSet::default(), &[slice(GPU_DRIVER, "gpu"), slice(NIC_DRIVER, "nic")])
    }

    /// Pod `name` in `namespace` claiming `pairs` GPU+NIC pairs, each its own claim made from
    /// the pair template (named `<pod>-pair-<i>`, as the resourceclaim controller would, less
    /// its random suffix).
    pub fn pod(&self, namespace: &str, name: &str, pairs: usize) -> Pod {
        let mut p = Pod::new(namespace, name, ResourceVec::cpu_mem(1000 * pairs as i64, (8 << 30) * pairs as i64));
        p.claims = (0..pairs)
            .map(|i| PodClaim {
                name: Sym::new(&format!("pair-{i}")),
                key: ClaimKey::new(namespace, &format!("{name}-pair-{i}")),
                spec: Ok(self.pair.clone()),
                shared: false,
                allocation: None,
                group: None,
            })
            .collect();
        p
    }
}

/// The class of every device of `driver`.
pub fn class(driver: &str) -> Result<Arc<DeviceClass>, CelError> {
    let selector = compile_cached(&format!("device.driver == {driver:?}"))?;
    Ok(Arc::new(DeviceClass { name: Sym::new(driver), selectors: vec![selector], config: Vec::new() }))
}

/// `n` nodes of the DRA world: the basic mix's node shapes, each with its devices.
pub fn cluster(n: usize, world: &DraWorld, rng: &mut Rng) -> Vec<Node> {
    synth::cluster(n, synth::Mix::Basic, rng)
        .into_iter()
        .map(|mut node| {
            node.allocatable = ResourceVec::cpu_mem(96_000, 768 << 30);
            node.devices = Arc::new(world.devices(node.name.as_str()));
            node
        })
        .collect()
}

/// `m` pods claiming 1–8 pairs each (mostly few).
pub fn workload(m: usize, world: &DraWorld, rng: &mut Rng) -> Vec<Arc<Pod>> {
    (0..m)
        .map(|i| {
            let mut p = world.pod(synth::GANG_NAMESPACE, &format!("dra-{i:06}"), synth::weighted(&PAIRS, rng));
            p.scheduler_name = Sym::new(synth::SCHEDULER);
            p.creation_s = i as f64;
            Arc::new(p)
        })
        .collect()
}
