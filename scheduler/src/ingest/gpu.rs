//! GPUs: a node's devices and a pod's GPU request, from the conventions clusters already use.
//!
//! - Whole GPUs: the extended resource `nvidia.com/gpu` (node allocatable, pod requests).
//! - Shared GPUs (Alibaba's GPU-sharing convention, used by the openb trace and the FGD paper):
//!   pod annotations `alibabacloud.com/gpu-milli` (thousandths of each GPU) and
//!   `alibabacloud.com/gpu-count`.
//! - GPU model: node label `nvidia.com/gpu.product` (GPU feature discovery) or
//!   `alibabacloud.com/gpu-card-model`; a pod restricts models with the annotation
//!   `alibabacloud.com/gpu-card-model` (`|`-separated).
//! - NVLink islands: node annotation `tessera.io/gpu-islands`, one island number per GPU
//!   (`0,0,0,0,1,1,1,1`); without it every GPU is in island 0.
//! - Wiring: node annotation `tessera.io/gpu-topology`, NVLink links, PCIe roots and NUMA
//!   nodes per GPU, or a preset ([`tessera_plugins::gpu_wiring::spec`]). It takes precedence
//!   over the islands, which it implies. Wirings are interned: every node wired alike shares
//!   one (its subset table is built once).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use tessera_plugins::gpu_wiring::{GpuWiring, parse_annotation};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GPU_MILLI, Gpu, GpuRequest};
use tessera_plugins::resources::{ResourceId, ResourceVec};

use k8s_openapi::api::core::v1 as core;

use super::error::{FieldError, FieldProblem, IngestError};

/// The whole-GPU extended resource.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Pod annotation: thousandths of each GPU.
pub const GPU_MILLI_ANNOTATION: &str = "alibabacloud.com/gpu-milli";
/// Pod annotation: GPU count for shared GPUs.
pub const GPU_COUNT_ANNOTATION: &str = "alibabacloud.com/gpu-count";
/// Pod annotation and node label: GPU model.
pub const GPU_MODEL_KEY: &str = "alibabacloud.com/gpu-card-model";
/// Node label set by NVIDIA GPU feature discovery.
pub const GPU_PRODUCT_LABEL: &str = "nvidia.com/gpu.product";
/// Node annotation: NVLink island per GPU.
pub const GPU_ISLANDS_ANNOTATION: &str = "tessera.io/gpu-islands";
/// Node annotation: how the GPUs are wired (JSON or a preset name).
pub const GPU_TOPOLOGY_ANNOTATION: &str = "tessera.io/gpu-topology";
/// Most GPUs one node may have (device sets are 64-bit masks).
pub const MAX_GPUS_PER_NODE: i64 = 64;

type Strings = BTreeMap<String, String>;

/// The node's GPUs from its allocatable count, model label and islands annotation.
pub fn node_gpus(
    allocatable: &ResourceVec,
    labels: Option<&Strings>,
    annotations: Option<&Strings>,
) -> Result<Vec<Gpu>, FieldError> {
    let count = ResourceId::lookup(GPU_RESOURCE).map_or(0, |id| allocatable.get(id));
    if !(0..=MAX_GPUS_PER_NODE).contains(&count) {
        return Err(FieldError::invalid(
            format!("status.allocatable.{GPU_RESOURCE}"),
            count,
            "must be between 0 and 64",
        ));
    }
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let model = Sym::new(label(GPU_PRODUCT_LABEL).or_else(|| label(GPU_MODEL_KEY)).unwrap_or(""));
    let count = count as usize;
    let wiring = match annotations.and_then(|a| a.get(GPU_TOPOLOGY_ANNOTATION)) {
        Some(v) if count > 0 => Some(interned(v, count, || parse_annotation(v, count)).map_err(|e| {
            FieldError::new(format!("metadata.annotations.{GPU_TOPOLOGY_ANNOTATION}"), FieldProblem::Wiring(e))
        })?),
        _ => {
            let islands = islands(annotations.and_then(|a| a.get(GPU_ISLANDS_ANNOTATION)), count)?;
            // One island (or none given) says nothing: the node keeps the plain placement.
            match islands.iter().any(|&i| i != islands[0]) {
                true => Some(interned(&format!("islands:{islands:?}"), count, || {
                    Ok(Arc::new(GpuWiring::from_islands(&islands)))
                })?),
                false => None,
            }
        }
    };
    let island = |i: usize| wiring.as_ref().map_or(0, |w| w.islands()[i]);
    Ok((0..count).map(|i| Gpu { wiring: wiring.clone(), ..Gpu::new(model, island(i)) }).collect())
}

/// Wirings by annotation value (or islands list) and GPU count.
type WiringCache = HashMap<(String, usize), Arc<GpuWiring>>;

/// The wiring `key` names on a node of `count` GPUs: built by `build` the first time, shared
/// afterwards (nodes of one cluster are wired in a handful of ways).
fn interned<E>(
    key: &str,
    count: usize,
    build: impl FnOnce() -> Result<Arc<GpuWiring>, E>,
) -> Result<Arc<GpuWiring>, E> {
    static CACHE: OnceLock<Mutex<WiringCache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let k = (key.to_string(), count);
    if let Some(w) = cache.lock().ok().and_then(|c| c.get(&k).cloned()) {
        return Ok(w);
    }
    let w = build()?;
    if let Ok(mut c) = cache.lock() {
        // Bounded: a cluster with more distinct wirings than this is a cluster of typos.
        if c.len() < 4096 {
            c.insert(k, w.clone());
        }
    }
    Ok(w)
}

/// Whether `e` is about a node's GPU wiring annotations (`tessera.io/gpu-topology` or
/// `tessera.io/gpu-islands`): such a node can still be placed on by GPU count.
pub fn is_wiring_error(e: &IngestError) -> bool {
    match e {
        IngestError::Field { field, .. } => {
            field.ends_with(GPU_TOPOLOGY_ANNOTATION) || field.ends_with(GPU_ISLANDS_ANNOTATION)
        }
        _ => false,
    }
}

/// `n` without its GPU wiring annotations, for count-only placement.
pub fn without_wiring(n: &core::Node) -> core::Node {
    let mut n = n.clone();
    if let Some(a) = n.metadata.annotations.as_mut() {
        a.remove(GPU_TOPOLOGY_ANNOTATION);
        a.remove(GPU_ISLANDS_ANNOTATION);
    }
    n
}

fn islands(value: Option<&String>, count: usize) -> Result<Vec<u16>, FieldError> {
    let field = || format!("metadata.annotations.{GPU_ISLANDS_ANNOTATION}");
    let Some(v) = value else { return Ok(vec![0; count]) };
    let parsed: Result<Vec<u16>, _> = v.split(',').map(|s| s.trim().parse::<u16>()).collect();
    match parsed {
        Ok(list) if list.len() == count => Ok(list),
        _ => Err(FieldError::invalid(field(), v, "must list one island number per GPU, comma-separated")),
    }
}

/// The annotation that records the GPUs a pod was bound to: device indices, comma-separated;
/// a share of a GPU carries its thousandths after a colon (`"3:250"`).
pub const GPU_IDS_ANNOTATION: &str = "tessera.io/gpu-ids";

/// The [`GPU_IDS_ANNOTATION`] value for GPUs `mask` of a pod asking `milli` of each.
pub fn format_gpu_ids(mask: u64, milli: u32) -> String {
    let ids = (0..64).filter(|i| mask & (1 << i) != 0);
    let ids: Vec<String> =
        ids.map(|i| if milli < GPU_MILLI { format!("{i}:{milli}") } else { i.to_string() }).collect();
    ids.join(",")
}

/// Why recorded GPUs do not fit the pod's request.
const MISMATCH: &str = "must name as many devices as the pod's GPU request, each with the share it asks";

/// The GPUs [`GPU_IDS_ANNOTATION`] records, checked against the pod's request `req`: as many
/// devices as it asks, each with the share it asks. `None` when the annotation is absent.
pub fn gpu_ids(annotations: Option<&Strings>, req: Option<&GpuRequest>) -> Result<Option<u64>, FieldError> {
    let Some(value) = annotations.and_then(|a| a.get(GPU_IDS_ANNOTATION)) else { return Ok(None) };
    let field = || format!("metadata.annotations.{GPU_IDS_ANNOTATION}");
    let Some(req) = req else {
        return Err(FieldError::invalid(field(), value, "the pod asks for no GPU"));
    };
    let mut mask = 0u64;
    for part in value.split(',') {
        let (index, milli) = part.trim().split_once(':').map_or((part.trim(), None), |(i, m)| (i, Some(m)));
        let i: u32 = index.parse().ok().filter(|i| *i < 64).ok_or_else(|| {
            FieldError::invalid(field(), value, "expected device indices from 0 to 63, e.g. \"0,1\" or \"3:250\"")
        })?;
        let milli = milli.map_or(Ok(GPU_MILLI), |m| m.parse::<u32>()).unwrap_or(0);
        if milli != req.milli {
            return Err(FieldError::invalid(field(), value, MISMATCH));
        }
        mask |= 1 << i;
    }
    if mask.count_ones() != req.count {
        return Err(FieldError::invalid(field(), value, MISMATCH));
    }
    Ok(Some(mask))
}

/// The pod's GPU request from its `nvidia.com/gpu` request or the sharing annotations.
pub fn pod_gpu(requests: &ResourceVec, annotations: Option<&Strings>) -> Result<Option<GpuRequest>, FieldError> {
    let ann = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    let models: Vec<Sym> = ann(GPU_MODEL_KEY)
        .map(|m| m.split('|').map(str::trim).filter(|s| !s.is_empty()).map(Sym::new).collect())
        .unwrap_or_default();
    let whole = ResourceId::lookup(GPU_RESOURCE).map_or(0, |id| requests.get(id));
    if let Some(milli) = ann(GPU_MILLI_ANNOTATION) {
        let field = format!("metadata.annotations.{GPU_MILLI_ANNOTATION}");
        let milli: u32 = milli
            .trim()
            .parse()
            .ok()
            .filter(|m| (1..=GPU_MILLI).contains(m))
            .ok_or_else(|| FieldError::invalid(field, milli, "must be an integer from 1 to 1000"))?;
        let count = match ann(GPU_COUNT_ANNOTATION) {
            Some(c) => c.trim().parse::<u32>().ok().filter(|c| (1..=64).contains(c)).ok_or_else(|| {
                FieldError::invalid(
                    format!("metadata.annotations.{GPU_COUNT_ANNOTATION}"),
                    c,
                    "must be an integer from 1 to 64",
                )
            })?,
            None => 1,
        };
        return Ok(Some(GpuRequest { count, milli, models }));
    }
    if whole > MAX_GPUS_PER_NODE {
        return Err(FieldError::invalid(format!("requests.{GPU_RESOURCE}"), whole, "must be at most 64"));
    }
    Ok((whole > 0).then_some(GpuRequest { count: whole as u32, milli: GPU_MILLI, models }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(pairs: &[(&str, &str)]) -> Strings {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn gpus(n: i64) -> ResourceVec {
        let mut r = ResourceVec::ZERO;
        r.set(ResourceId::of(GPU_RESOURCE).unwrap(), n);
        r
    }

    #[test]
    fn node_gpus_take_count_model_and_islands() {
        let labels = strings(&[(GPU_PRODUCT_LABEL, "A100")]);
        let ann = strings(&[(GPU_ISLANDS_ANNOTATION, "0,0,1,1")]);
        let g = node_gpus(&gpus(4), Some(&labels), Some(&ann)).unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!((g[3].model, g[3].island), (Sym::new("A100"), 1));
        assert!(node_gpus(&gpus(2), None, Some(&ann)).is_err(), "islands must match the count");
        assert!(node_gpus(&ResourceVec::ZERO, None, None).unwrap().is_empty());
    }

    #[test]
    fn node_gpus_take_the_wiring_annotation() {
        let ann = strings(&[(GPU_TOPOLOGY_ANNOTATION, "dgx-1-v100"), (GPU_ISLANDS_ANNOTATION, "0,0,0,0,0,0,0,0")]);
        let g = node_gpus(&gpus(8), None, Some(&ann)).unwrap();
        let w = g[0].wiring.clone().unwrap();
        assert_eq!(
            (w.links(0, 3), g[7].island),
            (2, 0),
            "the cube-mesh is one NVLink island; it wins over the islands"
        );
        assert!(g.iter().all(|x| x.wiring.as_ref().is_some_and(|o| Arc::ptr_eq(o, &w))), "one wiring per node");
        let again = node_gpus(&gpus(8), None, Some(&ann)).unwrap();
        assert!(Arc::ptr_eq(again[0].wiring.as_ref().unwrap(), &w), "and per distinct annotation");
        let islands = strings(&[(GPU_ISLANDS_ANNOTATION, "0,0,1,1")]);
        let g = node_gpus(&gpus(4), None, Some(&islands)).unwrap();
        assert_eq!(g[0].wiring.as_ref().unwrap().islands(), &[0, 0, 1, 1], "islands are the simple form of a wiring");
        let one = strings(&[(GPU_ISLANDS_ANNOTATION, "0,0")]);
        assert!(node_gpus(&gpus(2), None, Some(&one)).unwrap()[0].wiring.is_none(), "one island says nothing");
        let bad = strings(&[(GPU_TOPOLOGY_ANNOTATION, r#"{"gpus": [{"nvlink": {"5": 2}}, {}]}"#)]);
        let e = node_gpus(&gpus(2), None, Some(&bad)).unwrap_err();
        assert_eq!(e.field, "metadata.annotations.tessera.io/gpu-topology");
        assert_eq!(e.problem.to_string(), "gpus[0].nvlink: peer \"5\" is not a device index below 2");
        assert!(node_gpus(&ResourceVec::ZERO, None, Some(&bad)).unwrap().is_empty(), "no GPUs yet: nothing to wire");
    }

    #[test]
    fn a_malformed_wiring_names_the_node_and_can_be_dropped() {
        let mut n = core::Node::default();
        n.metadata.name = Some("gpu-7".into());
        n.metadata.annotations = Some(strings(&[(GPU_TOPOLOGY_ANNOTATION, "dgx-z100")]));
        let mut status = core::NodeStatus::default();
        let q = k8s_openapi::apimachinery::pkg::api::resource::Quantity("8".into());
        status.allocatable = Some([(GPU_RESOURCE.to_string(), q)].into_iter().collect());
        n.status = Some(status);
        let e = crate::ingest::node(&n).unwrap_err();
        assert!(is_wiring_error(&e));
        let msg = e.to_string();
        assert!(
            msg.starts_with("Node gpu-7: metadata.annotations.tessera.io/gpu-topology: unknown preset \"dgx-z100\""),
            "{msg}"
        );
        let plain = crate::ingest::node(&without_wiring(&n)).unwrap();
        assert_eq!(plain.gpus.len(), 8);
        assert!(plain.gpus[0].wiring.is_none());
    }

    #[test]
    fn gpu_ids_round_trip_and_are_checked_against_the_request() {
        let whole = GpuRequest { count: 2, milli: GPU_MILLI, models: vec![] };
        let shared = GpuRequest { count: 1, milli: 250, models: vec![] };
        assert_eq!(format_gpu_ids(0b1010, GPU_MILLI), "1,3");
        assert_eq!(format_gpu_ids(0b100, 250), "2:250");
        let ann = |v: &str| strings(&[(GPU_IDS_ANNOTATION, v)]);
        assert_eq!(gpu_ids(Some(&ann("1,3")), Some(&whole)).unwrap(), Some(0b1010));
        assert_eq!(gpu_ids(Some(&ann("2:250")), Some(&shared)).unwrap(), Some(0b100));
        assert_eq!(gpu_ids(None, Some(&whole)).unwrap(), None);
        for (v, req) in [("1", &whole), ("1,x", &whole), ("1,64", &whole), ("2:500", &shared), ("2", &shared)] {
            let e = gpu_ids(Some(&ann(v)), Some(req)).unwrap_err();
            assert_eq!(e.field, "metadata.annotations.tessera.io/gpu-ids", "{v}");
        }
        assert!(gpu_ids(Some(&ann("0")), None).is_err(), "GPUs recorded on a pod that asks for none");
    }

    #[test]
    fn pod_gpu_requests_come_from_resources_or_annotations() {
        assert_eq!(pod_gpu(&gpus(2), None).unwrap(), Some(GpuRequest { count: 2, milli: 1000, models: vec![] }));
        let shared = strings(&[(GPU_MILLI_ANNOTATION, "460"), (GPU_MODEL_KEY, "V100M16|V100M32")]);
        let r = pod_gpu(&ResourceVec::ZERO, Some(&shared)).unwrap().unwrap();
        assert_eq!((r.count, r.milli, r.models.len()), (1, 460, 2));
        let bad = strings(&[(GPU_MILLI_ANNOTATION, "1500")]);
        let e = pod_gpu(&ResourceVec::ZERO, Some(&bad)).unwrap_err();
        assert!(e.field.contains(GPU_MILLI_ANNOTATION), "{e:?}");
        assert_eq!(pod_gpu(&ResourceVec::ZERO, None).unwrap(), None);
    }
}
