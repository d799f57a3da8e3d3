//! YAML reading: documents, lists, kinds, and errors that point at the document.

use super::*;

const CLUSTER: &str = r#"
# A comment-only document before the first separator is empty.
---
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {allocatable: {cpu: 4, memory: 8Gi}}
---
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: ns}
  spec: {containers: [{name: c, resources: {requests: {cpu: 1.5, memory: 100Mi}}}]}
- apiVersion: v1
  kind: Namespace
  metadata: {name: ns, labels: {team: x}}
- apiVersion: node.k8s.io/v1
  kind: RuntimeClass
  metadata: {name: kata}
  handler: kata
- apiVersion: scheduling.x-k8s.io/v1alpha1
  kind: PodGroup
  metadata: {name: g}
  spec: {minMember: 2}
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: d}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c2}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: rc}
"#;

#[test]
fn multi_document_files_and_lists_are_sorted_by_kind() {
    let objects = read_objects("cluster.yaml", CLUSTER).unwrap();
    assert_eq!(objects.nodes.len(), 1);
    assert_eq!(objects.nodes[0].metadata.name.as_deref(), Some("n1"));
    assert_eq!(objects.priority_classes[0].value, Some(1000));
    assert_eq!(objects.pods.len(), 1);
    let requests = objects.pods[0].spec.as_ref().unwrap().containers[0].resources.as_ref().unwrap().requests.as_ref();
    // A YAML number is a valid quantity, as in kubectl.
    assert_eq!(requests.unwrap()["cpu"].0, "1.5");
    assert_eq!(objects.namespaces.len(), 1);
    assert_eq!(objects.runtime_classes.len(), 1);
    assert_eq!(objects.pod_groups.len(), 1);
    let claims: Vec<_> = objects.resource_claims.iter().map(|c| c.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(claims, vec!["rc"]);
    assert!(objects.persistent_volumes.is_empty() && objects.persistent_volume_claims.is_empty());
    let unknown: Vec<_> = objects.unknown_kinds.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(unknown, vec![("ConfigMap", 2), ("CronJob", 1)]);
    assert_eq!(objects.len(), 7);
}

#[test]
fn typed_lists_lend_their_kind_to_items() {
    let text = "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a}\n  spec: {containers: []}\n- metadata: {name: b}\n";
    let objects = read_objects("pods.yaml", text).unwrap();
    let names: Vec<_> = objects.pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(names, vec!["a", "b"]);
    assert!(read_objects("empty.yaml", "kind: List\nitems: []\n").unwrap().is_empty());
}

#[test]
fn empty_input_and_empty_documents_are_skipped() {
    assert!(read_objects("a.yaml", "").unwrap().is_empty());
    assert!(read_objects("a.yaml", "---\n---\n# nothing\n---\n").unwrap().is_empty());
}

#[test]
fn invalid_yaml_names_file_and_document() {
    let text = "kind: Namespace\nmetadata: {name: a}\n---\nkind: Namespace\nmetadata: {name: b}\n---\nkind: Pod\nmetadata: [unclosed\n";
    let e = read_objects("bad.yaml", text).unwrap_err();
    assert!(matches!(&e, IngestError::Yaml { location, .. } if location.document == 3), "{e:?}");
    assert!(e.to_string().starts_with("bad.yaml: document 3: not valid YAML: "), "{e}");
}

#[test]
fn objects_that_do_not_fit_their_kind_name_document_and_object() {
    let text = "kind: Namespace\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: web, namespace: shop}\nspec: {containers: 3}\n";
    let e = read_objects("pods.yaml", text).unwrap_err().to_string();
    assert!(e.starts_with("pods.yaml: document 2 (Pod shop/web): not a valid object of its kind: invalid type"), "{e}");
    let text = "kind: List\nitems:\n- {kind: Namespace, metadata: {name: a}}\n- {kind: Node, metadata: {name: n}, spec: {taints: x}}\n";
    let e = read_objects("l.yaml", text).unwrap_err().to_string();
    assert!(e.starts_with("l.yaml: document 1, item 2 (Node n): not a valid object of its kind"), "{e}");
    let e = read_objects("v.yaml", "apiVersion: v2\nkind: Pod\nmetadata: {name: p}\n").unwrap_err().to_string();
    assert!(e.starts_with("v.yaml: document 1 (Pod p): not a valid object of its kind: invalid value"), "{e}");
}

#[test]
fn documents_without_a_kind_or_not_objects_are_errors() {
    let e =
        read_objects("k.yaml", "---\nkind: Namespace\nmetadata: {name: a}\n---\nmetadata: {name: b}\n").unwrap_err();
    assert_eq!(e.to_string(), "k.yaml: document 2 (b): missing `kind`");
    let e = read_objects("k.yaml", "kind: 5\n").unwrap_err();
    assert_eq!(e.to_string(), "k.yaml: document 1: `kind` must be a non-empty string, found 5");
    let e = read_objects("s.yaml", "just a string\n").unwrap_err();
    assert_eq!(e.to_string(), "s.yaml: document 1: expected a Kubernetes object (a mapping), found a string");
    let e = read_objects("l.yaml", "kind: List\nitems: {a: b}\n").unwrap_err();
    assert_eq!(e.to_string(), "l.yaml: document 1 (List): `items` must be a list of objects");
    let e = read_objects("n.yaml", "kind: List\nitems: [{kind: List, items: []}]\n").unwrap_err();
    assert_eq!(e.to_string(), "n.yaml: document 1, item 1 (List): a List cannot contain another List");
}

#[test]
fn objects_from_several_files_add_up() {
    let mut all = read_objects("a.yaml", "kind: ConfigMap\n---\nkind: Namespace\nmetadata: {name: a}\n").unwrap();
    all.extend(read_objects("b.yaml", "kind: ConfigMap\n---\nkind: Secret\n").unwrap());
    assert_eq!(all.namespaces.len(), 1);
    assert_eq!(all.unknown_kinds.get("ConfigMap"), Some(&2));
    assert_eq!(all.unknown_kinds.get("Secret"), Some(&1));
}

#[test]
fn controllers_are_kept_and_their_pods_derived_again_when_files_are_added() {
    let rs = "kind: ReplicaSet\nmetadata: {name: rs, uid: r1}\nspec:\n  replicas: 2\n  template: {metadata: {labels: {a: b}}, spec: {containers: []}}\n";
    let mut all = read_objects("a.yaml", &format!("kind: Pod\nmetadata: {{name: first}}\n---\n{rs}")).unwrap();
    let names = |o: &Objects| o.pods.iter().map(|p| p.metadata.name.clone().unwrap()).collect::<Vec<_>>();
    assert_eq!(names(&all), ["first", "rs-0", "rs-1"]);
    assert_eq!(all.len(), 4, "the controller is an object kept, beside the pods");
    assert_eq!(all.controllers().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["rs"]);
    // A pod of the ReplicaSet in a later file: one pod fewer is added, where the controller is.
    let owned = "kind: Pod\nmetadata: {name: rs-abcde, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: rs, uid: r1, controller: true}]}\n";
    all.extend(read_objects("b.yaml", owned).unwrap());
    assert_eq!(names(&all), ["first", "rs-0", "rs-abcde"]);
    assert_eq!(all.expanded.get("ReplicaSet"), Some(&1));
    // Adding nothing derives the same again, without keeping the old derivation.
    all.extend(Objects::default());
    assert_eq!(names(&all), ["first", "rs-0", "rs-abcde"]);
    assert_eq!(all.controller_selectors.len(), 1);
}

#[test]
fn dra_kinds_are_read_typed_from_resource_k8s_io_v1_only() {
    let text = "apiVersion: resource.k8s.io/v1\nkind: DeviceClass\nmetadata: {name: gpu}\n---\n\
                apiVersion: resource.k8s.io/v1\nkind: ResourceSlice\nmetadata: {name: s}\n\
                spec: {driver: d.io, nodeName: n1, pool: {name: p, generation: 0, resourceSliceCount: 1}}\n---\n\
                apiVersion: resource.k8s.io/v1\nkind: ResourceClaimTemplate\nmetadata: {name: t}\nspec: {spec: {}}\n---\n\
                apiVersion: example.com/v1\nkind: ResourceSlice\nmetadata: {name: crd}\n";
    let objects = read_objects("dra.yaml", text).unwrap();
    let lens = (objects.device_classes.len(), objects.resource_slices.len(), objects.resource_claim_templates.len());
    assert_eq!(lens, (1, 1, 1));
    assert_eq!(objects.unknown_kinds.get("ResourceSlice (example.com/v1)"), Some(&1));
    assert_eq!(objects.len(), 3);
    let e = read_objects("old.yaml", "apiVersion: resource.k8s.io/v1beta1\nkind: DeviceClass\nmetadata: {name: g}\n")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "old.yaml: document 1 (DeviceClass g): unsupported apiVersion \"resource.k8s.io/v1beta1\" for DeviceClass: \
         supported: resource.k8s.io/v1"
    );
}
