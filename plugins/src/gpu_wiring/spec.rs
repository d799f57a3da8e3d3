//! The node annotation `tessera.io/gpu-topology`: a node's GPU wiring as JSON, or a preset.
//!
//! ```text
//! tessera.io/gpu-topology: dgx-h100                      # a preset, bare
//! tessera.io/gpu-topology: '{"preset": "dgx-1-v100"}'    # a preset, as JSON
//! tessera.io/gpu-topology: |                             # every GPU, in device order
//!   {"gpus": [
//!     {"pcieRoot": "pci0000:00", "numa": 0, "nvlink": {"1": 12, "2": 12, "3": 12}},
//!     {"pcieRoot": "pci0000:00", "numa": 0, "nvlink": {"0": 12, "2": 12, "3": 12}},
//!     ...]}
//! ```
//!
//! `nvlink` maps a peer's device index to the NVLink links between the two (1..=255; what
//! `nvidia-smi topo -m` prints as `NV12`). A link listed by one side only counts for both; two
//! sides that disagree are an error. `pcieRoot` (any string: GPUs with equal strings share the
//! root; DRA's `resource.kubernetes.io/pcieRoot` holds such values) and `numa` are optional:
//! unknown never counts as shared. Presets describe 8-GPU boxes: NVSwitch systems, where every
//! pair of GPUs has the same bandwidth (`dgx-h100`/`hgx-h100`: 18 links, `dgx-a100`/`hgx-a100`:
//! 12), and the DGX-1's hybrid cube-mesh (`dgx-1-v100`), where only some 4-GPU sets are fully
//! connected. Presets put GPUs 2i and 2i+1 on one PCIe switch, GPUs 0–3 on NUMA node 0 and 4–7
//! on node 1.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use thiserror::Error;

use super::{GpuWiring, MAX_WIRED_GPUS};

/// The presets [`parse_annotation`] knows, by name.
pub const PRESETS: &[&str] = &["dgx-h100", "hgx-h100", "dgx-a100", "hgx-a100", "dgx-1-v100"];

/// What is wrong with a `tessera.io/gpu-topology` value. Messages name the GPU and peer at
/// fault; the caller adds the node and the annotation.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WiringError {
    /// Not JSON of the schema (nor a bare preset name).
    #[error(
        "not a preset name nor JSON of the form {{\"gpus\": [{{\"pcieRoot\": \"0\", \"numa\": 0, \"nvlink\": {{\"1\": 12}}}}]}}: {0}"
    )]
    Syntax(String),
    /// A preset nobody defined.
    #[error("unknown preset {name:?}; known presets: {known}")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// The presets known, for the message.
        known: String,
    },
    /// The description and the node disagree on the GPU count.
    #[error("describes {described} GPUs but the node has {node}")]
    Count {
        /// GPUs the annotation describes.
        described: usize,
        /// GPUs the node's allocatable `nvidia.com/gpu` counts.
        node: usize,
    },
    /// A peer that is not a device index of the node.
    #[error("gpus[{gpu}].nvlink: peer {peer:?} is not a device index below {count}")]
    BadPeer {
        /// The GPU listing it.
        gpu: usize,
        /// The key given.
        peer: String,
        /// GPUs on the node.
        count: usize,
    },
    /// A GPU listed as its own peer.
    #[error("gpus[{gpu}].nvlink: a GPU is not its own NVLink peer")]
    SelfLink {
        /// The GPU.
        gpu: usize,
    },
    /// A link count of 0 (leave the peer out instead).
    #[error("gpus[{gpu}].nvlink.{peer}: link count must be 1 to 255, got 0")]
    ZeroLinks {
        /// The GPU.
        gpu: usize,
        /// The peer.
        peer: usize,
    },
    /// The two ends of a link disagree.
    #[error("gpus[{a}].nvlink.{b} is {ab} but gpus[{b}].nvlink.{a} is {ba}")]
    Asymmetric {
        /// One GPU.
        a: usize,
        /// The other.
        b: usize,
        /// Links `a` lists.
        ab: u8,
        /// Links `b` lists.
        ba: u8,
    },
}

/// The JSON form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    gpus: Option<Vec<GpuSpec>>,
}

/// One GPU of the JSON form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GpuSpec {
    #[serde(default)]
    pcie_root: Option<String>,
    #[serde(default)]
    numa: Option<u16>,
    #[serde(default)]
    nvlink: BTreeMap<String, u8>,
}

/// The wiring `value` describes for a node with `gpus` GPUs. Presets are built once and shared.
pub fn parse_annotation(value: &str, gpus: usize) -> Result<Arc<GpuWiring>, WiringError> {
    let v = value.trim();
    let spec: Spec = if v.starts_with('{') {
        serde_json::from_str(v).map_err(|e| WiringError::Syntax(e.to_string()))?
    } else if v.starts_with('"') {
        let name: String = serde_json::from_str(v).map_err(|e| WiringError::Syntax(e.to_string()))?;
        Spec { preset: Some(name), gpus: None }
    } else {
        Spec { preset: Some(v.to_string()), gpus: None }
    };
    let wiring = match (spec.preset, spec.gpus) {
        (Some(name), None) => preset(&name)?,
        (None, Some(list)) => Arc::new(custom(&list)?),
        (Some(_), Some(_)) => return Err(WiringError::Syntax("give either `preset` or `gpus`, not both".into())),
        (None, None) => return Err(WiringError::Syntax("missing `preset` or `gpus`".into())),
    };
    if wiring.len() != gpus {
        return Err(WiringError::Count { described: wiring.len(), node: gpus });
    }
    Ok(wiring)
}

/// The wiring of a JSON GPU list.
fn custom(list: &[GpuSpec]) -> Result<GpuWiring, WiringError> {
    let n = list.len();
    if n > MAX_WIRED_GPUS {
        return Err(WiringError::Count { described: n, node: MAX_WIRED_GPUS });
    }
    let mut links = vec![vec![0u8; n]; n];
    for (i, g) in list.iter().enumerate() {
        for (key, &count) in &g.nvlink {
            let j = key.trim().parse::<usize>().ok().filter(|&j| j < n).ok_or_else(|| WiringError::BadPeer {
                gpu: i,
                peer: key.clone(),
                count: n,
            })?;
            if j == i {
                return Err(WiringError::SelfLink { gpu: i });
            }
            if count == 0 {
                return Err(WiringError::ZeroLinks { gpu: i, peer: j });
            }
            links[i][j] = count;
        }
    }
    for (i, row) in links.clone().iter().enumerate() {
        for (j, &ab) in row.iter().enumerate() {
            let ba = links[j][i];
            match (ab, ba) {
                (0, _) | (_, 0) => {
                    let l = ab.max(ba);
                    links[i][j] = l;
                    links[j][i] = l;
                }
                _ if ab != ba => return Err(WiringError::Asymmetric { a: i.min(j), b: i.max(j), ab, ba }),
                _ => {}
            }
        }
    }
    // PCIe roots as small integers in order of first appearance.
    let mut roots: Vec<&str> = Vec::new();
    let pcie: Vec<Option<u16>> = list
        .iter()
        .map(|g| {
            g.pcie_root.as_deref().map(|r| match roots.iter().position(|x| *x == r) {
                Some(p) => p as u16,
                None => {
                    roots.push(r);
                    (roots.len() - 1) as u16
                }
            })
        })
        .collect();
    let numa: Vec<Option<u16>> = list.iter().map(|g| g.numa).collect();
    Ok(GpuWiring::new(&links, &pcie, &numa))
}

/// A preset by name, built on first use.
fn preset(name: &str) -> Result<Arc<GpuWiring>, WiringError> {
    static NVSWITCH_18: OnceLock<Arc<GpuWiring>> = OnceLock::new();
    static NVSWITCH_12: OnceLock<Arc<GpuWiring>> = OnceLock::new();
    static CUBE_MESH: OnceLock<Arc<GpuWiring>> = OnceLock::new();
    let w = match name {
        "dgx-h100" | "hgx-h100" => NVSWITCH_18.get_or_init(|| Arc::new(nvswitch(18))),
        "dgx-a100" | "hgx-a100" => NVSWITCH_12.get_or_init(|| Arc::new(nvswitch(12))),
        "dgx-1-v100" => CUBE_MESH.get_or_init(|| Arc::new(hybrid_cube_mesh())),
        _ => return Err(WiringError::UnknownPreset { name: name.to_string(), known: PRESETS.join(", ") }),
    };
    Ok(w.clone())
}

/// PCIe switch per GPU pair and NUMA node per half, as the presets' 8-GPU boxes have them.
fn box_of_8(links: Vec<Vec<u8>>) -> GpuWiring {
    let pcie: Vec<Option<u16>> = (0..8u16).map(|i| Some(i / 2)).collect();
    let numa: Vec<Option<u16>> = (0..8u16).map(|i| Some(i / 4)).collect();
    GpuWiring::new(&links, &pcie, &numa)
}

/// 8 GPUs on NVSwitches: every pair has `links` links' bandwidth.
pub fn nvswitch(links: u8) -> GpuWiring {
    box_of_8((0..8).map(|i| (0..8).map(|j| if i == j { 0 } else { links }).collect()).collect())
}

/// The DGX-1 (V100) hybrid cube-mesh, as `nvidia-smi topo -m` prints it: each GPU has 6
/// links, to the 3 others of its quad (1 or 2 links) and to its twin in the other quad.
pub fn hybrid_cube_mesh() -> GpuWiring {
    const PAIRS: [(usize, usize, u8); 16] = [
        (0, 1, 1),
        (0, 2, 1),
        (0, 3, 2),
        (0, 4, 2),
        (1, 2, 2),
        (1, 3, 1),
        (1, 5, 2),
        (2, 3, 2),
        (2, 6, 1),
        (3, 7, 1),
        (4, 5, 1),
        (4, 6, 1),
        (4, 7, 2),
        (5, 6, 2),
        (5, 7, 1),
        (6, 7, 2),
    ];
    let mut links = vec![vec![0u8; 8]; 8];
    for (a, b, l) in PAIRS {
        links[a][b] = l;
        links[b][a] = l;
    }
    box_of_8(links)
}
