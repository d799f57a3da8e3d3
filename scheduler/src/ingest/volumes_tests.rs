//! Storage objects: defaulting, the fields the plugins read, and errors naming object and
//! field (and, through the YAML reader, the file and document).

use super::*;
use crate::ingest::read_objects;

const OBJECTS: &str = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
allowedTopologies:
- matchLabelExpressions:
  - {key: topology.kubernetes.io/zone, values: [a, b]}
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-1
  labels: {topology.kubernetes.io/zone: a}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce, ReadOnlyMany]
  storageClassName: local
  claimRef: {name: data, namespace: ml}
  csi: {driver: ebs.csi.aws.com, volumeHandle: vol-1}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [node-1]}
status: {phase: Bound}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: ml
  annotations: {volume.kubernetes.io/selected-node: node-1}
spec:
  accessModes: [ReadWriteOncePod]
  resources: {requests: {storage: 5Gi}}
---
apiVersion: storage.k8s.io/v1
kind: CSINode
metadata: {name: node-1}
spec:
  drivers:
  - {name: ebs.csi.aws.com, nodeID: i-1, allocatable: {count: 25}}
  - {name: unlimited.example.com, nodeID: i-1}
"#;

#[test]
fn storage_objects_keep_what_the_plugins_read() {
    let objects = read_objects("volumes.yaml", OBJECTS).unwrap();
    let class = storage_class(&objects.storage_classes[0]).unwrap();
    assert!(class.wait_for_first_consumer && !class.provisions());
    assert_eq!(class.allowed_topologies.len(), 1);
    let zone = |z: &str| tessera_plugins::labels::LabelSet::from_pairs([("topology.kubernetes.io/zone", z)]);
    assert!(class.allows(&zone("b"), Sym::new("n")) && !class.allows(&zone("c"), Sym::new("n")));

    let pv = persistent_volume(&objects.persistent_volumes[0]).unwrap();
    assert_eq!(pv.capacity, 10 << 30);
    assert!(pv.access_modes.contains(AccessModes::READ_ONLY_MANY));
    assert_eq!(pv.claim_ref, Some(PvcKey::new("ml", "data")));
    assert_eq!(pv.csi.map(|c| c.handle.as_str()), Some("vol-1"));
    assert!(!pv.available, "Bound");
    assert!(!pv.reachable_from(&Default::default(), Sym::new("x")), "only node-1 reaches it");

    let default = default_class(&objects.storage_classes);
    assert_eq!(default, Some("local"));
    let pvc = persistent_volume_claim(&objects.persistent_volume_claims[0], default).unwrap();
    assert_eq!(pvc.storage_class.as_str(), "local", "the default class, as admission sets it");
    assert_eq!(pvc.request, 5 << 30);
    assert_eq!(pvc.selected_node.map(|n| n.as_str()), Some("node-1"));
    assert!(pvc.access_modes.contains(AccessModes::READ_WRITE_ONCE_POD));

    let csi = csi_node(&objects.csi_nodes[0]).unwrap();
    assert_eq!(csi.limit(Sym::new("ebs.csi.aws.com")), Some(25));
    assert_eq!(csi.limit(Sym::new("unlimited.example.com")), None, "no count: no limit");
}

#[test]
fn a_bad_storage_object_names_file_document_object_and_field() {
    let text = "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv-x}\n\
                spec: {capacity: {storage: lots}, accessModes: [ReadWriteOnce]}\n";
    let e = read_objects("cluster.yaml", text).unwrap_err().to_string();
    assert!(
        e.starts_with("cluster.yaml: document 1 (PersistentVolume pv-x): PersistentVolume pv-x: spec.capacity.storage"),
        "{e}"
    );

    let text = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: c}\nspec: {accessModes: [Sometimes]}\n";
    let e = read_objects("claims.yaml", text).unwrap_err().to_string();
    assert!(e.contains("PersistentVolumeClaim default/c: spec.accessModes[0]: unsupported value \"Sometimes\""), "{e}");

    let text = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: s}\nprovisioner: p\n\
                volumeBindingMode: Later\n";
    let e = read_objects("classes.yaml", text).unwrap_err().to_string();
    assert!(e.contains("StorageClass s: volumeBindingMode: unsupported value \"Later\""), "{e}");

    let text = "apiVersion: storage.k8s.io/v1beta1\nkind: CSINode\nmetadata: {name: n}\nspec: {drivers: []}\n";
    let e = read_objects("csi.yaml", text).unwrap_err().to_string();
    assert!(e.contains("unsupported apiVersion \"storage.k8s.io/v1beta1\" for CSINode"), "{e}");
}

#[test]
fn pod_volumes_keep_claims_and_inline_disks_only() {
    let spec: core::PodSpec = serde_json::from_value(serde_json::json!({
        "containers": [],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "pd", "gcePersistentDisk": {"pdName": "disk-1", "readOnly": true}},
            {"name": "img", "rbd": {"monitors": ["m1"], "image": "i"}},
        ]
    }))
    .unwrap();
    let v = pod_volumes(&spec, "web-0").unwrap();
    assert_eq!(v.len(), 4, "the configMap is left out");
    assert_eq!(v[0], PodVolume::Claim { claim: Sym::new("data"), ephemeral: false });
    assert_eq!(v[1], PodVolume::Claim { claim: Sym::new("web-0-scratch"), ephemeral: true });
    assert_eq!(v[2], PodVolume::GcePersistentDisk { pd_name: Sym::new("disk-1"), read_only: true });
    assert!(matches!(&v[3], PodVolume::Rbd { pool, .. } if pool.as_str() == "rbd"), "the default pool");
}
