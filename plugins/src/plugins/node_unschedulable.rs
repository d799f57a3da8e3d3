//! NodeUnschedulable: cordoned nodes take only pods that tolerate the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use std::sync::Arc;

use crate::framework::{CycleState, FilterPlugin, Plugin};
use crate::intern::Sym;
use crate::model::{Pod, Taint, TaintEffect};
use crate::nodeinfo::NodeInfo;
use crate::registry::{PluginArgs, PluginError};
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "NodeUnschedulable";
/// Upstream's reason.
pub const ERR_REASON: &str = "node(s) were unschedulable";
/// The taint a cordoned node implicitly carries.
pub const UNSCHEDULABLE_TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

/// See the module docs.
#[derive(Debug, Default)]
pub struct NodeUnschedulable;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(NodeUnschedulable))
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    /// Reads only the node and the pod's signature fields.
    fn node_local(&self) -> bool {
        true
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        if !node.node.unschedulable {
            return Status::success();
        }
        let taint =
            Taint { key: Sym::new(UNSCHEDULABLE_TAINT_KEY), value: Sym::new(""), effect: TaintEffect::NoSchedule };
        if pod.tolerations.iter().any(|t| t.tolerates(&taint)) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Toleration, TolerationOperator};
    use crate::plugins::testing::*;

    #[test]
    fn cordoned_nodes_reject_pods_without_the_toleration() {
        let mut n = node("n1", 1000, GI);
        n.unschedulable = true;
        let ni = node_info(0, n, vec![]);
        let s = CycleState::new();
        let mut p = pod("p", 0, 0);
        assert_eq!(NodeUnschedulable.filter(&s, &p, &ni), Status::unresolvable(ERR_REASON));
        p.tolerations.push(Toleration {
            key: Some(Sym::new(UNSCHEDULABLE_TAINT_KEY)),
            operator: TolerationOperator::Exists,
            value: Sym::new(""),
            effect: Some(TaintEffect::NoSchedule),
        });
        assert!(NodeUnschedulable.filter(&s, &p, &ni).is_success());
        assert!(NodeUnschedulable.filter(&s, &pod("q", 0, 0), &node_info(1, node("n2", 1, 1), vec![])).is_success());
    }
}
