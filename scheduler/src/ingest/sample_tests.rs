//! The simulator's bundled sample (`tessera simulate` with no arguments) must always ingest:
//! every node and pod converts, and the counts stay in the intended range.

use super::duration::{ARRIVAL_ANNOTATION, DURATION_ANNOTATION};
use super::{PodContext, go_duration, node, pod, read_objects};

const CLUSTER: &str = include_str!("../sim/sample/cluster.yaml");
const WORKLOAD: &str = include_str!("../sim/sample/workload.yaml");

#[test]
fn the_bundled_sample_ingests() {
    let mut objects = read_objects("cluster.yaml", CLUSTER).unwrap_or_else(|e| panic!("{e}"));
    objects.extend(read_objects("workload.yaml", WORKLOAD).unwrap_or_else(|e| panic!("{e}")));
    assert!(objects.unknown_kinds.is_empty(), "{:?}", objects.unknown_kinds);
    assert!((250..=350).contains(&objects.nodes.len()), "{} nodes", objects.nodes.len());
    assert!((1500..=3000).contains(&objects.pods.len()), "{} pods", objects.pods.len());
    for kind in ["Deployment", "Job"] {
        assert!(objects.expanded.get(kind).is_some_and(|n| *n > 0), "no {kind} pods: {:?}", objects.expanded);
    }
    for p in &objects.pods {
        let annotations = p.metadata.annotations.as_ref();
        let time =
            |key: &str| annotations.and_then(|a| a.get(key)).map(|v| go_duration(v).unwrap_or_else(|e| panic!("{e}")));
        let arrival = time(ARRIVAL_ANNOTATION).unwrap_or_else(|| panic!("{:?} has no arrival", p.metadata.name));
        assert!(arrival < 6.0 * 3600.0, "{:?} arrives after 6h", p.metadata.name);
        assert!(time(DURATION_ANNOTATION).is_none_or(|d| d > 0.0));
    }
    let cx = PodContext::from_objects(&objects).unwrap_or_else(|e| panic!("{e}"));
    let nodes: Vec<_> = objects.nodes.iter().map(|n| node(n).unwrap_or_else(|e| panic!("{e}"))).collect();
    let pods: Vec<_> = objects.pods.iter().map(|p| pod(p, &cx).unwrap_or_else(|e| panic!("{e}"))).collect();
    let gpu_nodes = nodes.iter().filter(|n| !n.gpus.is_empty()).count();
    assert!((gpu_nodes * 100 / nodes.len()).abs_diff(40) <= 10, "{gpu_nodes} GPU nodes of {}", nodes.len());
    assert!(nodes.iter().any(|n| n.unschedulable), "some nodes are cordoned");
    assert!(pods.iter().any(|p| p.gpu.as_ref().is_some_and(|g| g.milli < 1000)), "some pods share GPUs");
    assert!(pods.iter().any(|p| p.pod_group.is_some()), "some pods are in gangs");
    let mut names: Vec<_> = pods.iter().map(|p| format!("{}/{}", p.namespace.as_str(), p.name)).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), pods.len(), "pod names are unique within their namespace");
}
