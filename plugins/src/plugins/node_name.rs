//! NodeName: a pod that sets `spec.nodeName` fits only that node.

use std::sync::Arc;

use crate::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin};
use crate::model::Pod;
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "NodeName";
/// Upstream's reason.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

/// See the module docs.
#[derive(Debug, Default)]
pub struct NodeName;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(NodeName))
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    /// Reads only the node and the pod's signature fields.
    fn node_local(&self) -> bool {
        true
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodeName {
    fn pre_filter(&self, _: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> Result<Option<Vec<NodeId>>, Status> {
        match pod.node_name {
            None => Err(Status::skip()),
            // Upstream narrows the candidates to the named node; a missing node leaves none.
            Some(name) => Ok(Some(snapshot.node_id(name).into_iter().collect())),
        }
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        match pod.node_name {
            Some(name) if name != node.name() => Status::unresolvable(ERR_REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Sym;
    use crate::plugins::testing::*;

    #[test]
    fn only_the_named_node_fits() {
        let mut p = pod("p", 0, 0);
        p.node_name = Some(Sym::new("n2"));
        let s = CycleState::new();
        assert!(!NodeName.filter(&s, &p, &node_info(0, node("n1", 1000, GI), vec![])).is_success());
        assert!(NodeName.filter(&s, &p, &node_info(1, node("n2", 1000, GI), vec![])).is_success());
        let snap = snapshot(vec![(node("n1", 1, 1), vec![]), (node("n2", 1, 1), vec![])], &[]);
        let mut cs = CycleState::new();
        assert_eq!(NodeName.pre_filter(&mut cs, &p, &snap), Ok(Some(vec![1])));
        let free = pod("q", 0, 0);
        assert!(NodeName.filter(&s, &free, &node_info(0, node("n1", 1000, GI), vec![])).is_success());
    }
}
