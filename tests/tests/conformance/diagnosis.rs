//! The message a pending pod's `PodScheduled` condition shows, where it depends on more than
//! one Filter: nodes a PreFilter left out of the candidates count under that plugin.

use super::gates::{TWO_NODES, load, pending_pod, record, replay_with};

/// Required node affinity pinning the pod by name (`matchFields` on `metadata.name`), as the
/// DaemonSet controller pins its pods.
fn pinned_to(node: &str) -> String {
    format!(
        "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n\
         \x20       - matchFields:\n          - key: metadata.name\n            operator: In\n            values:\n\
         \x20           - {node}\n"
    )
}

#[test]
fn prefilter_narrowing_to_no_node_names_the_plugin() {
    let pod = pending_pod("pinned", "", &pinned_to("node-gone"));
    let run = replay_with(&load(&[TWO_NODES, &pod]), "");
    let r = record(&run, "pinned");
    assert_eq!(r.node, None);
    assert_eq!(
        r.reason,
        "0/2 nodes are available: 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
    );
}

#[test]
fn prefilter_narrowing_counts_the_left_out_nodes_beside_the_filter_reasons() {
    // node-a is the one candidate and is full; node-b was never a candidate.
    let big = pending_pod("big", "", "  nodeName: node-a\n").replace("cpu: \"1\"", "cpu: \"4\"");
    let pod = pending_pod("pinned", "", &pinned_to("node-a"));
    let run = replay_with(&load(&[TWO_NODES, &big, &pod]), "");
    assert_eq!(
        record(&run, "pinned").reason,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
         preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, \
         1 Preemption is not helpful for scheduling.."
    );
}
