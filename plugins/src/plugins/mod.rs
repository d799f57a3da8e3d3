//! The built-in plugins, one module each, with kube-scheduler v1.37 semantics.

use crate::registry::Factory;

pub mod default_binder;
pub mod default_preemption;
pub mod dynamic_resources;
pub mod gpu_topology;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_balanced;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod scheduling_gates;
pub mod taint_toleration;
pub mod volumes;

#[cfg(test)]
pub(crate) mod testing;

/// Every built-in plugin's name and factory.
pub const BUILTIN: &[(&str, Factory)] = &[
    (default_preemption::NAME, default_preemption::new),
    (default_binder::NAME, default_binder::new),
    (dynamic_resources::NAME, dynamic_resources::new),
    (gpu_topology::NAME, gpu_topology::new),
    (image_locality::NAME, image_locality::new),
    (inter_pod_affinity::NAME, inter_pod_affinity::new),
    (node_affinity::NAME, node_affinity::new),
    (node_name::NAME, node_name::new),
    (node_ports::NAME, node_ports::new),
    (node_resources_balanced::NAME, node_resources_balanced::new),
    (node_resources_fit::NAME, node_resources_fit::new),
    (node_unschedulable::NAME, node_unschedulable::new),
    (pod_topology_spread::NAME, pod_topology_spread::new),
    (priority_sort::NAME, priority_sort::new),
    (scheduling_gates::NAME, scheduling_gates::new),
    (taint_toleration::NAME, taint_toleration::new),
    (volumes::binding::NAME, volumes::binding::new),
    (volumes::limits::NAME, volumes::limits::new),
    (volumes::restrictions::NAME, volumes::restrictions::new),
    (volumes::zone::NAME, volumes::zone::new),
];
