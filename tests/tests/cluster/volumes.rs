//! `tessera run` with PersistentVolumes: WaitForFirstConsumer claims bound as kube-scheduler's
//! VolumeBinding binds them (the volume's `claimRef`, or the claim's
//! `volume.kubernetes.io/selected-node` for provisioning), one static volume never given to two
//! pods, and a claim the PV controller has bound keeping its pods with its volume.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use tessera_tests::apiserver::TestApiServer;

use super::live::{SECONDARY, Scheduler, WAIT, create, node, placements, pod, until};

fn class(name: &str, provisioner: &str) -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
           "provisioner": provisioner, "volumeBindingMode": "WaitForFirstConsumer"})
}

/// An available local volume of class `local` on node `on`.
fn local_pv(server: &TestApiServer, name: &str, on: &str) {
    create(
        server,
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
               "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                        "local": {"path": "/mnt/disk"},
                        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions":
                            [{"key": "kubernetes.io/hostname", "operator": "In", "values": [on]}]}]}}}}),
    );
    // Created Pending, as upstream; the PV controller (not run here) makes it Available.
    let mut pv = server.store().get("v1", "PersistentVolume", None, name).unwrap();
    pv["status"]["phase"] = json!("Available");
    server.store().update(pv).unwrap();
}

fn claim(server: &TestApiServer, name: &str, class: &str) {
    create(
        server,
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                        "resources": {"requests": {"storage": "1Gi"}}}}),
    );
}

/// A pod for `tessera` using claim `claim`.
fn pod_with(name: &str, claim: &str) -> Value {
    let mut p = pod(name, "tessera", "100m");
    p["spec"]["volumes"] = json!([{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]);
    p
}

fn get(server: &TestApiServer, kind: &str, namespace: Option<&str>, name: &str) -> Value {
    server.store().get("v1", kind, namespace, name).unwrap()
}

/// The pod's `PodScheduled` condition message, once written.
async fn unschedulable_message(server: &TestApiServer, name: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        let p = get(server, "Pod", Some("default"), name);
        let cond = p["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"));
        if let Some(m) = cond.and_then(|c| c["message"].as_str()) {
            return m.to_string();
        }
        assert!(start.elapsed() < WAIT, "no PodScheduled condition on {name}: {p}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_volume_is_bound_to_one_waiting_claim_and_its_pod_lands_where_it_is() {
    let server = TestApiServer::start().await;
    for n in ["n0", "n1", "n2"] {
        create(&server, node(n, "4"));
    }
    create(&server, class("local", "kubernetes.io/no-provisioner"));
    local_pv(&server, "local-n1", "n1");
    claim(&server, "first", "local");
    claim(&server, "second", "local");
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, pod_with("a", "first"));
    until(&server, "a bound", |p| p["a"].is_some()).await;
    assert_eq!(placements(&server)["a"].as_deref(), Some("n1"));
    let pv = get(&server, "PersistentVolume", None, "local-n1");
    assert_eq!(
        (pv["spec"]["claimRef"]["namespace"].as_str(), pv["spec"]["claimRef"]["name"].as_str()),
        (Some("default"), Some("first"))
    );
    assert_eq!(pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"], "yes");

    // The volume is taken: a second claim finds none, as upstream says.
    create(&server, pod_with("b", "second"));
    assert_eq!(
        unschedulable_message(&server, "b").await,
        "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );

    // The PV controller completes the binding on the claim; another pod of that claim follows
    // the volume.
    let mut c = get(&server, "PersistentVolumeClaim", Some("default"), "first");
    c["spec"]["volumeName"] = json!("local-n1");
    c["status"]["phase"] = json!("Bound");
    server.store().update(c).unwrap();
    create(&server, pod_with("a-again", "first"));
    until(&server, "a-again bound", |p| p["a-again"].is_some()).await;
    assert_eq!(placements(&server)["a-again"].as_deref(), Some("n1"));
    assert_eq!(placements(&server)["b"], None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_to_provision_gets_the_selected_node_annotation() {
    let server = TestApiServer::start().await;
    for (n, zone) in [("n0", "a"), ("n1", "b")] {
        let mut nd = node(n, "4");
        nd["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!(zone);
        create(&server, nd);
    }
    let mut zonal = class("zonal", "ebs.csi.aws.com");
    zonal["allowedTopologies"] =
        json!([{"matchLabelExpressions": [{"key": "topology.kubernetes.io/zone", "values": ["b"]}]}]);
    create(&server, zonal);
    claim(&server, "data", "zonal");
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, pod_with("app", "data"));
    until(&server, "app bound", |p| p["app"].is_some()).await;
    assert_eq!(placements(&server)["app"].as_deref(), Some("n1"), "zone b only");
    let c = get(&server, "PersistentVolumeClaim", Some("default"), "data");
    assert_eq!(c["metadata"]["annotations"]["volume.kubernetes.io/selected-node"], "n1");
    s.stop().await;
}
