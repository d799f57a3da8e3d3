//! The simulator's bundled sample (`tessera simulate` with no arguments) must always ingest:
//! every node and pod converts, the counts stay in the intended range, every gang has its
//! PodGroup, and every DRA pod's claims resolve against the sample's devices.

use std::collections::{HashMap, HashSet};

use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GroupKey, PodGroupApi};

use super::duration::{ARRIVAL_ANNOTATION, DURATION_ANNOTATION};
use super::{Objects, PodContext, go_duration, node, pod, pod_groups, read_objects};

const CLUSTER: &str = include_str!("../sim/sample/cluster.yaml");
const WORKLOAD: &str = include_str!("../sim/sample/workload.yaml");

fn sample() -> Objects {
    let mut objects = read_objects("cluster.yaml", CLUSTER).unwrap_or_else(|e| panic!("{e}"));
    objects.extend(read_objects("workload.yaml", WORKLOAD).unwrap_or_else(|e| panic!("{e}")));
    objects
}

#[test]
fn the_bundled_sample_ingests() {
    let objects = sample();
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

#[test]
fn the_bundled_sample_has_a_pod_group_for_every_gang() {
    let objects = sample();
    let cx = PodContext::from_objects(&objects).unwrap_or_else(|e| panic!("{e}"));
    let groups = pod_groups(&objects, &cx).unwrap_or_else(|e| panic!("{e}"));
    let mut members: HashMap<GroupKey, u32> = HashMap::new();
    for p in &objects.pods {
        if let Some(key) = pod(p, &cx).unwrap_or_else(|e| panic!("{e}")).group_key() {
            *members.entry(key).or_default() += 1;
        }
    }
    assert!(!members.is_empty(), "the sample has gangs");
    let defined: HashSet<GroupKey> = groups.iter().map(|g| g.key).collect();
    assert_eq!(defined.len(), groups.len(), "one PodGroup per gang");
    for key in members.keys() {
        assert!(defined.contains(key), "gang {key} has no PodGroup");
    }
    for g in &groups {
        let n = members.get(&g.key).copied().unwrap_or(0);
        assert!((1..=n).contains(&g.min_count), "PodGroup {} needs {} of its {n} pods", g.key, g.min_count);
    }
    for api in [PodGroupApi::Kubernetes, PodGroupApi::Coscheduling] {
        assert!(groups.iter().any(|g| g.api == api), "no {api:?} PodGroup");
    }
    // Topology keys are labels the nodes carry, or no gang could ever be placed.
    let rack = Sym::new("topology.kubernetes.io/rack");
    assert!(groups.iter().any(|g| g.topology_key == Some(rack)), "some gangs are confined to a rack");
    for g in &groups {
        if let Some(key) = g.topology_key {
            let labelled = |n: &k8s_openapi::api::core::v1::Node| {
                n.metadata.labels.as_ref().is_some_and(|l| l.contains_key(key.as_str()))
            };
            assert!(objects.nodes.iter().all(labelled), "nodes lack {key}");
        }
    }
    assert!(groups.iter().any(|g| g.min_resources.is_some() && g.schedule_timeout_s.is_none()));
    assert!(groups.iter().any(|g| g.schedule_timeout_s.is_some()));
    assert!(groups.iter().any(|g| g.priority == Some(1000)), "priorityClassName resolves");
}

#[test]
fn the_bundled_sample_has_dra_pods_whose_claims_resolve() {
    let objects = sample();
    let input =
        crate::sim::input::from_objects(&objects, crate::sim::input::OnInvalid::Stop).unwrap_or_else(|e| panic!("{e}"));
    assert!(input.skipped.is_empty(), "{:?}", input.skipped);
    assert!(
        !input.unknown_kinds.keys().any(|k| k.contains("ResourceSlice")),
        "every ResourceSlice is local to a node: {:?}",
        input.unknown_kinds
    );
    let all_pods = input.pods.iter().map(|p| &p.pod).chain(&input.running);
    let dra: Vec<_> = all_pods.filter(|p| !p.claims.is_empty()).collect();
    assert!((30..=60).contains(&dra.len()), "{} DRA pods", dra.len());
    assert!(dra.iter().any(|p| p.pod_group.is_some()), "a DRA gang");
    assert!(dra.iter().any(|p| p.claims.iter().any(|c| c.shared)), "a pod naming its claim directly");
    assert!(dra.iter().any(|p| p.claims.iter().any(|c| !c.shared)), "pods whose claims come from a template");
    for p in &dra {
        for c in &p.claims {
            assert!(c.spec.is_ok(), "{}/{} claim {}: {:?}", p.namespace.as_str(), p.name, c.name.as_str(), c.spec);
        }
    }
    let with_devices: Vec<_> = input.nodes.iter().filter(|n| !n.devices.devices.is_empty()).collect();
    assert_eq!(with_devices.len(), 16, "DRA nodes");
    for n in &with_devices {
        assert_eq!(n.devices.devices.len(), 16, "{} has 8 GPUs and 8 NICs", n.name.as_str());
        assert!(n.devices.incomplete.is_empty(), "{}: {:?}", n.name.as_str(), n.devices.incomplete);
    }
}
