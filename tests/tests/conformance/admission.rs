//! What a real cluster does to a pod before any scheduler sees it, which Tessera must do the
//! same: RuntimeClass admission merges the class's `scheduling` into its pods, and a pod
//! created with `spec.nodeName` is bound to that name whether or not such a node exists.

use super::gates::{TWO_NODES, load, pending_pod, record, replay_with, summary};

/// RuntimeClass `gvisor`, as `kubectl get runtimeclass gvisor -o yaml` shows it: its handler
/// runs only on nodes labelled `sandbox.example.com/runtime: gvisor`, which are tainted.
const GVISOR: &str = r#"apiVersion: node.k8s.io/v1
handler: runsc
kind: RuntimeClass
metadata:
  creationTimestamp: "2026-11-30T09:00:00Z"
  name: gvisor
  resourceVersion: "812"
  uid: 0b9c1f3e-1111-4000-8000-000000000001
scheduling:
  nodeSelector:
    sandbox.example.com/runtime: gvisor
  tolerations:
  - effect: NoSchedule
    key: sandbox.example.com/runtime
    operator: Equal
    value: gvisor
"#;

/// A third node, the only one running gvisor: labelled and tainted for it.
const SANDBOX_NODE: &str = r#"apiVersion: v1
kind: Node
metadata:
  labels:
    kubernetes.io/hostname: node-sandbox
    kubernetes.io/os: linux
    sandbox.example.com/runtime: gvisor
  name: node-sandbox
spec:
  podCIDR: 10.244.3.0/24
  taints:
  - effect: NoSchedule
    key: sandbox.example.com/runtime
    value: gvisor
status:
  allocatable:
    cpu: "4"
    memory: 16Gi
    pods: "110"
  capacity:
    cpu: "4"
    memory: 16Gi
    pods: "110"
"#;

#[test]
fn runtime_class_node_selector_is_merged_into_its_pods() {
    // Without the merge the pod could go to node-a or node-b; with it, only node-sandbox fits.
    let pod = pending_pod("sandboxed", "", "  runtimeClassName: gvisor\n");
    let input = load(&[TWO_NODES, SANDBOX_NODE, GVISOR, &pod]);
    let p = &input.pods[0].pod;
    let selected: Vec<(&str, &str)> = p.node_selector.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(selected, [("sandbox.example.com/runtime", "gvisor")]);
    let run = replay_with(&input, "");
    assert_eq!(record(&run, "sandboxed").node.map(|n| n.as_str()), Some("node-sandbox"));
}

#[test]
fn runtime_class_tolerations_are_merged_into_its_pods() {
    // The class's toleration lets its pods onto the tainted node, which a plain pod may not use.
    let sandboxed = pending_pod("sandboxed", "", "  runtimeClassName: gvisor\n");
    let plain = pending_pod("plain", "", "  nodeSelector:\n    sandbox.example.com/runtime: gvisor\n");
    let run = replay_with(&load(&[SANDBOX_NODE, GVISOR, &sandboxed, &plain]), "");
    assert_eq!(record(&run, "sandboxed").node.map(|n| n.as_str()), Some("node-sandbox"));
    let plain = record(&run, "plain");
    assert_eq!(plain.node, None);
    assert_eq!(
        plain.reason,
        "0/1 nodes are available: 1 node(s) had untolerated taint(s). \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
    );
}

#[test]
fn a_runtime_class_node_selector_conflicting_with_the_pods_is_an_error() {
    // Upstream's admission refuses to create such a pod; the simulator refuses the input,
    // naming the pod, the field and the RuntimeClass.
    let pod = pending_pod(
        "clash",
        "",
        "  nodeSelector:\n    sandbox.example.com/runtime: kata\n  runtimeClassName: gvisor\n",
    );
    let objects = tessera_scheduler::ingest::read_objects("clash.yaml", &[TWO_NODES, GVISOR, &pod].join("---\n"));
    let e =
        tessera_scheduler::sim::input::from_objects(&objects.unwrap(), tessera_scheduler::sim::input::OnInvalid::Stop)
            .unwrap_err()
            .to_string();
    assert_eq!(
        e,
        "Pod default/clash: spec.nodeSelector.sandbox.example.com/runtime: \"kata\" conflicts with RuntimeClass \
         gvisor's scheduling.nodeSelector.sandbox.example.com/runtime \"gvisor\""
    );
}

#[test]
fn a_pod_bound_to_a_missing_node_stays_bound() {
    // Created with spec.nodeName of a node that is not (or no longer) in the cluster: the API
    // server accepts it, no scheduler touches it, and it stays bound to that name.
    let orphan = pending_pod("orphan", "", "  nodeName: node-gone\n");
    let run = replay_with(&load(&[TWO_NODES, &orphan]), "");
    let r = record(&run, "orphan");
    assert_eq!(r.node.map(|n| n.as_str()), Some("node-gone"));
    assert!(r.already_bound && r.start == Some(0.0) && r.reason.is_empty(), "{r:?}");
    assert_eq!(run.final_allocation[0], 0.0, "it holds none of the cluster's room");
    let s = summary(run);
    assert_eq!((s.already_bound, s.unschedulable), (1, 0));
}
