//! `NodeInfo`: a node together with the pods on it and what they add up to.

use std::sync::Arc;

use crate::intern::Sym;
use crate::model::{HostPort, Node, Pod, PodKey};
use crate::resources::ResourceVec;

/// Dense index of a node in a snapshot. Stable for the node's lifetime.
pub type NodeId = u32;

/// A node and the pods bound or assumed on it. Cheap to share (`Arc`), copied on write.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node's slot in every snapshot.
    pub id: NodeId,
    /// The node itself.
    pub node: Arc<Node>,
    /// Pods bound or assumed here.
    pub pods: Vec<Arc<Pod>>,
    /// Sum of the pods' requests.
    pub requested: ResourceVec,
    /// Sum of the pods' non-zero requests (the scoring view).
    pub non_zero_requested: ResourceVec,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// How many pods here have required pod anti-affinity terms.
    pub pods_with_required_anti_affinity: u32,
    /// How many pods here have any pod affinity or anti-affinity.
    pub pods_with_affinity: u32,
    /// Bumped by the cluster state on every change to this node or its pods.
    pub generation: u64,
}

impl NodeInfo {
    /// An empty node.
    pub fn new(id: NodeId, node: Arc<Node>) -> NodeInfo {
        NodeInfo {
            id,
            node,
            pods: Vec::new(),
            requested: ResourceVec::ZERO,
            non_zero_requested: ResourceVec::ZERO,
            used_ports: Vec::new(),
            pods_with_required_anti_affinity: 0,
            pods_with_affinity: 0,
            generation: 0,
        }
    }

    /// The node's name.
    pub fn name(&self) -> Sym {
        self.node.name
    }

    /// Free capacity: allocatable minus requested.
    pub fn free(&self) -> ResourceVec {
        let mut f = self.node.allocatable;
        f.sub(&self.requested);
        f
    }

    /// Accounts for `pod` on this node.
    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero_requests);
        self.used_ports.extend(pod.host_ports.iter().copied());
        if !pod.pod_anti_affinity.required.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        if !pod.pod_affinity.is_empty() || !pod.pod_anti_affinity.is_empty() {
            self.pods_with_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes the pod with `key`, returning it, or `None` if it is not here.
    pub fn remove_pod(&mut self, key: &PodKey) -> Option<Arc<Pod>> {
        let i = self.pods.iter().position(|p| p.namespace == key.namespace && p.name == key.name)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero_requests);
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if !pod.pod_anti_affinity.required.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        if !pod.pod_affinity.is_empty() || !pod.pod_anti_affinity.is_empty() {
            self.pods_with_affinity -= 1;
        }
        Some(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelSet;

    fn node() -> Arc<Node> {
        Arc::new(Node {
            name: Sym::new("n1"),
            labels: LabelSet::default(),
            taints: vec![],
            unschedulable: false,
            allocatable: ResourceVec::cpu_mem(4000, 8 << 30),
            allowed_pods: 110,
            images: vec![],
        })
    }

    #[test]
    fn add_then_remove_restores_the_totals() {
        let mut ni = NodeInfo::new(0, node());
        let mut p = Pod::new("default", "a", ResourceVec::cpu_mem(500, 1 << 30));
        p.host_ports.push(HostPort { ip: None, protocol: Sym::new("TCP"), port: 80 });
        ni.add_pod(Arc::new(p.clone()));
        assert_eq!(ni.requested, ResourceVec::cpu_mem(500, 1 << 30));
        assert_eq!(ni.free(), ResourceVec::cpu_mem(3500, 7 << 30));
        assert_eq!(ni.used_ports.len(), 1);
        assert!(ni.remove_pod(&p.key()).is_some());
        assert_eq!(ni.requested, ResourceVec::ZERO);
        assert!(ni.used_ports.is_empty());
        assert!(ni.remove_pod(&p.key()).is_none());
    }
}
