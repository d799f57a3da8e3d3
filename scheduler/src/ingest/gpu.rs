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

use std::collections::BTreeMap;

use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GPU_MILLI, Gpu, GpuRequest};
use tessera_plugins::resources::{ResourceId, ResourceVec};

use super::error::FieldError;

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
    let islands = islands(annotations.and_then(|a| a.get(GPU_ISLANDS_ANNOTATION)), count as usize)?;
    Ok(islands.into_iter().map(|island| Gpu { model, island }).collect())
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
        assert_eq!(g[3], Gpu { model: Sym::new("A100"), island: 1 });
        assert!(node_gpus(&gpus(2), None, Some(&ann)).is_err(), "islands must match the count");
        assert!(node_gpus(&ResourceVec::ZERO, None, None).unwrap().is_empty());
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
