//! DRA devices held by claims, per driver, as a run goes: what the report shows of a cluster
//! whose GPUs and NICs are published through DRA, which the GPU views (counting
//! `nvidia.com/gpu`) do not see.

use std::collections::{BTreeMap, HashSet};

use tessera_plugins::nodeinfo::NodeInfo;

/// Per driver: `[devices, devices held by claims]`. A device that many nodes reach counts
/// once.
pub type DeviceUse = BTreeMap<&'static str, [usize; 2]>;

/// The DRA devices of `nodes` and how many are held, per driver.
pub fn device_use<'a>(nodes: impl Iterator<Item = &'a NodeInfo>) -> DeviceUse {
    let mut out = DeviceUse::new();
    let mut remote_seen = HashSet::new();
    for n in nodes {
        let inventory = &n.node.devices;
        for (i, device) in inventory.devices.iter().enumerate() {
            if inventory.remote.contains(i) && !remote_seen.insert(device.id()) {
                continue;
            }
            let counts = out.entry(device.driver.as_str()).or_default();
            counts[0] += 1;
            counts[1] += usize::from(n.devices_used.contains(i));
        }
    }
    out
}

/// Samples [`device_use`] into a curve of (x, use); samples nothing on a cluster without DRA
/// devices.
#[derive(Clone, Debug, Default)]
pub struct DeviceSampler {
    on: bool,
    curve: Vec<(f64, DeviceUse)>,
}

impl DeviceSampler {
    /// A sampler for a cluster whose nodes are `nodes`.
    pub fn new<'a>(nodes: impl Iterator<Item = &'a NodeInfo>) -> DeviceSampler {
        let mut nodes = nodes;
        DeviceSampler { on: nodes.any(|n| !n.node.devices.is_empty()), curve: Vec::new() }
    }

    /// Records the use over `nodes` at `x`.
    pub fn sample<'a>(&mut self, x: f64, nodes: impl Iterator<Item = &'a NodeInfo>) {
        if self.on {
            self.curve.push((x, device_use(nodes)));
        }
    }

    /// The curve.
    pub fn finish(self) -> Vec<(f64, DeviceUse)> {
        self.curve
    }
}
