//! NodeResourcesFit on nodes as real clusters list them: many extended resources (hugepage
//! sizes, device plugins, RDMA) beside CPU and memory. Every name is tracked, however many
//! there are, and a request for any of them is checked like CPU's.

use super::gates::{load, record, replay_with};

/// The extended resources of both nodes: four hugepage sizes and 36 device-plugin names.
fn extended_names() -> Vec<String> {
    let hugepages = ["hugepages-1Gi", "hugepages-2Mi", "hugepages-32Mi", "hugepages-64Ki"].map(String::from);
    hugepages.into_iter().chain((0..36).map(|i| format!("devices.example.com/dev-{i}"))).collect()
}

/// A node listing every extended name with one unit, except `last_device` units of the last.
fn node(name: &str, last_device: u32) -> String {
    let names = extended_names();
    let lines: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("    {n}: \"{}\"\n", if i + 1 == names.len() { last_device } else { 1 }))
        .collect();
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  labels:\n    kubernetes.io/hostname: {name}\n  name: {name}\n\
         status:\n  allocatable:\n    cpu: \"8\"\n    memory: 32Gi\n    pods: \"110\"\n{lines}  capacity:\n    cpu: \"8\"\n    \
         memory: 32Gi\n    pods: \"110\"\n{lines}"
    )
}

/// A pending pod asking one unit of the last device name (extended resources are given as
/// limits; the API server copies them to requests).
fn device_pod(name: &str) -> String {
    let last = extended_names().pop().unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  \
         creationTimestamp: \"2026-11-30T10:00:00Z\"\nspec:\n  containers:\n  - name: main\n    \
         image: registry.example.com/{name}:v1\n    resources:\n      limits:\n        {last}: \"1\"\n      \
         requests:\n        cpu: 500m\n        {last}: \"1\"\nstatus:\n  phase: Pending\n"
    )
}

#[test]
fn forty_extended_resources_are_all_tracked_and_checked() {
    let (with, without) = (node("node-with", 1), node("node-without", 0));
    let (first, second) = (device_pod("first"), device_pod("second"));
    let run = replay_with(&load(&[&with, &without, &first, &second]), "");
    let first = record(&run, "first");
    assert_eq!(first.node.map(|n| n.as_str()), Some("node-with"), "{first:?}");
    let second = record(&run, "second");
    assert_eq!(second.node, None, "only one unit of the device exists: {second:?}");
    let last = extended_names().pop().unwrap_or_default();
    assert!(second.reason.contains(&format!("Insufficient {last}")), "{}", second.reason);
}
