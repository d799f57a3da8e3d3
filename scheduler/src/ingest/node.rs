//! Kubernetes `Node` into the compact [`Node`].

use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{Node, Taint, TaintEffect};
use tessera_plugins::quantity::parse_value;
use tessera_plugins::resources::ResourceVec;

use super::error::{FieldError, FieldProblem, IngestError, ObjectRef};
use super::quantities::resource_amount;
use super::selectors::label_set;

/// Pods per node when the node does not say (the kubelet's default `maxPods`).
pub const DEFAULT_ALLOWED_PODS: u32 = 110;

const TAINT_EFFECTS: &str = "NoSchedule, PreferNoSchedule, NoExecute";

/// Converts a node. Allocatable comes from `status.allocatable`, or `status.capacity` when a
/// node (typically hand-written simulator input) gives no allocatable.
pub fn node(n: &core::Node) -> Result<Node, IngestError> {
    let object = || ObjectRef::cluster("Node", n.metadata.name.as_deref());
    let name = n
        .metadata
        .name
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| FieldError::new("metadata.name", FieldProblem::Missing).on(object()))?;
    convert(n, name).map_err(|e| e.on(object()))
}

fn convert(n: &core::Node, name: &str) -> Result<Node, FieldError> {
    let spec = n.spec.as_ref();
    let (allocatable, allowed_pods) = allocatable(n.status.as_ref())?;
    Ok(Node {
        name: Sym::new(name),
        labels: label_set(n.metadata.labels.as_ref()),
        taints: taints(spec.and_then(|s| s.taints.as_deref()).unwrap_or_default())?,
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        gpus: super::gpu::node_gpus(&allocatable, n.metadata.labels.as_ref(), n.metadata.annotations.as_ref())?,
        allocatable,
        allowed_pods,
        images: images(n.status.as_ref()),
        devices: Default::default(),
    })
}

fn taints(taints: &[core::Taint]) -> Result<Vec<Taint>, FieldError> {
    taints.iter().enumerate().map(|(i, t)| taint(t, &format!("spec.taints[{i}]"))).collect()
}

fn taint(t: &core::Taint, path: &str) -> Result<Taint, FieldError> {
    if t.key.is_empty() {
        return Err(FieldError::new(format!("{path}.key"), FieldProblem::Missing));
    }
    let effect = TaintEffect::parse(&t.effect)
        .ok_or_else(|| FieldError::unsupported(format!("{path}.effect"), &t.effect, TAINT_EFFECTS))?;
    Ok(Taint { key: Sym::new(&t.key), value: Sym::new(t.value.as_deref().unwrap_or("")), effect })
}

/// The resources a node offers, and how many pods it takes.
fn allocatable(status: Option<&core::NodeStatus>) -> Result<(ResourceVec, u32), FieldError> {
    let allocatable = status.and_then(|s| s.allocatable.as_ref()).filter(|l| !l.is_empty());
    let (list, path) = match allocatable {
        Some(list) => (Some(list), "status.allocatable"),
        None => (status.and_then(|s| s.capacity.as_ref()), "status.capacity"),
    };
    let mut out = ResourceVec::ZERO;
    let mut allowed_pods = DEFAULT_ALLOWED_PODS;
    for (name, quantity) in list.into_iter().flatten() {
        // `pods` is a count of pods, not something pods request: it has its own field.
        if name == "pods" {
            allowed_pods = pod_count(&quantity.0, &format!("{path}.pods"))?;
            continue;
        }
        let (id, amount) = resource_amount(name, quantity, path)?;
        out.set(id, amount);
    }
    Ok((out, allowed_pods))
}

fn pod_count(quantity: &str, field: &str) -> Result<u32, FieldError> {
    let n = parse_value(quantity).map_err(|e| FieldError::new(field, e))?;
    u32::try_from(n).map_err(|_| FieldError::invalid(field, quantity, "must be a pod count between 0 and 2^32-1"))
}

/// Every name of every image, with the image's size.
fn images(status: Option<&core::NodeStatus>) -> Vec<(Arc<str>, i64)> {
    let images = status.and_then(|s| s.images.as_deref()).unwrap_or_default();
    images
        .iter()
        .flat_map(|image| {
            let size = image.size_bytes.unwrap_or(0);
            image.names.iter().flatten().map(move |name| (Arc::from(name.as_str()), size))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_plugins::resources::ResourceId;

    fn parse(yaml: &str) -> core::Node {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const FULL: &str = r#"
metadata:
  name: n1
  labels: {zone: a, "kubernetes.io/hostname": n1}
spec:
  unschedulable: true
  taints:
  - {key: gpu, value: "true", effect: NoSchedule}
  - {key: spot, effect: PreferNoSchedule}
  - {key: drain, effect: NoExecute}
status:
  capacity: {cpu: "64", memory: 256Gi, pods: "250"}
  allocatable: {cpu: 63500m, memory: 250Gi, ephemeral-storage: 100G, pods: "200", nvidia.com/gpu: "8"}
  images:
  - names: ["registry/a@sha256:1", "registry/a:v1"]
    sizeBytes: 1000
  - names: ["registry/b:v2"]
"#;

    #[test]
    fn converts_every_field() {
        let n = node(&parse(FULL)).unwrap();
        assert_eq!(n.name.as_str(), "n1");
        assert_eq!(n.labels.get(Sym::new("zone")), Some(Sym::new("a")));
        assert!(n.unschedulable);
        let effects: Vec<_> = n.taints.iter().map(|t| (t.key.as_str(), t.value.as_str(), t.effect)).collect();
        assert_eq!(
            effects,
            vec![
                ("gpu", "true", TaintEffect::NoSchedule),
                ("spot", "", TaintEffect::PreferNoSchedule),
                ("drain", "", TaintEffect::NoExecute)
            ]
        );
        assert_eq!(n.allocatable.get(ResourceId::CPU), 63_500);
        assert_eq!(n.allocatable.get(ResourceId::MEMORY), 250 << 30);
        assert_eq!(n.allocatable.get(ResourceId::EPHEMERAL_STORAGE), 100_000_000_000);
        assert_eq!(n.allocatable.get(ResourceId::of("nvidia.com/gpu").unwrap()), 8);
        assert_eq!(n.allowed_pods, 200);
        let images: Vec<_> = n.images.iter().map(|(n, s)| (n.as_ref(), *s)).collect();
        assert_eq!(images, vec![("registry/a@sha256:1", 1000), ("registry/a:v1", 1000), ("registry/b:v2", 0)]);
    }

    #[test]
    fn capacity_stands_in_for_missing_allocatable_and_pods_default_to_110() {
        let n = node(&parse("metadata: {name: n2}\nstatus: {capacity: {cpu: 4, memory: 8Gi}}")).unwrap();
        assert_eq!(n.allocatable, ResourceVec::cpu_mem(4000, 8 << 30));
        assert_eq!(n.allowed_pods, DEFAULT_ALLOWED_PODS);
        assert!(!n.unschedulable && n.taints.is_empty() && n.images.is_empty());
        let bare = node(&parse("metadata: {name: n3}")).unwrap();
        assert_eq!(bare.allocatable, ResourceVec::ZERO);
    }

    #[test]
    fn errors_name_node_and_field() {
        let e = node(&parse("metadata: {labels: {a: b}}")).unwrap_err();
        assert_eq!(e.to_string(), "Node <unnamed>: metadata.name: required field is missing");
        let e = node(&parse(
            "metadata: {name: n}\nspec: {taints: [{key: a, effect: NoSchedule}, {key: b, effect: Never}]}",
        ))
        .unwrap_err();
        assert!(e.to_string().starts_with("Node n: spec.taints[1].effect: unsupported value \"Never\""), "{e}");
        let e = node(&parse("metadata: {name: n}\nspec: {taints: [{key: '', effect: NoSchedule}]}")).unwrap_err();
        assert!(e.to_string().starts_with("Node n: spec.taints[0].key:"), "{e}");
        let e = node(&parse("metadata: {name: n}\nstatus: {allocatable: {cpu: lots}}")).unwrap_err();
        assert!(e.to_string().starts_with("Node n: status.allocatable.cpu: quantity \"lots\""), "{e}");
        let e = node(&parse("metadata: {name: n}\nstatus: {capacity: {pods: \"-1\"}}")).unwrap_err();
        assert!(e.to_string().starts_with("Node n: status.capacity.pods: invalid value \"-1\""), "{e}");
    }
}
