//! NodePorts: a pod asking for host ports fits only nodes where none of them is taken.
//!
//! Two host ports collide when protocol and port are equal and either address is the wildcard
//! or both addresses are equal (upstream `HostPortInfo`). The pod's host ports are gathered at
//! ingest, so PreFilter only decides whether there is anything to check, and Filter reads them
//! from the pod rather than from the cycle state: a binder re-check needs no PreFilter.

use std::sync::Arc;

use crate::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin};
use crate::model::{HostPort, Pod};
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "NodePorts";
/// Upstream's reason.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// See the module docs.
#[derive(Debug, Default)]
pub struct NodePorts;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(NodePorts))
}

impl Plugin for NodePorts {
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

/// Upstream ignores container ports without a host port (`hostPort` 0).
fn wanted(pod: &Pod) -> impl Iterator<Item = &HostPort> + '_ {
    pod.host_ports.iter().filter(|p| p.port != 0)
}

impl PreFilterPlugin for NodePorts {
    fn pre_filter(&self, _: &mut CycleState, pod: &Pod, _: &Snapshot) -> Result<Option<Vec<NodeId>>, Status> {
        if wanted(pod).next().is_none() {
            return Err(Status::skip());
        }
        Ok(None)
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let taken = |want: &HostPort| node.used_ports.iter().any(|used| used.conflicts(want));
        if wanted(pod).any(taken) {
            // Unschedulable, not unresolvable: preempting the pod holding the port frees it.
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Sym;
    use crate::plugins::testing::*;
    use crate::status::Code;

    /// A host port from upstream's "protocol/ip/port" test notation; "0.0.0.0" is the wildcard.
    fn port(spec: &str) -> HostPort {
        let parts: Vec<&str> = spec.split('/').collect();
        let ip = if parts[1] == "0.0.0.0" { None } else { Some(Sym::new(parts[1])) };
        HostPort { ip, protocol: Sym::new(parts[0]), port: parts[2].parse().unwrap() }
    }

    fn with_ports(specs: &[&str]) -> Pod {
        let mut p = pod("p", 0, 0);
        p.host_ports = specs.iter().map(|s| port(s)).collect();
        p
    }

    fn fits(want: &[&str], used: &[&str]) -> bool {
        let ni = node_info(0, node("n", 1000, GI), vec![with_ports(used)]);
        let s = NodePorts.filter(&CycleState::new(), &with_ports(want), &ni);
        if !s.is_success() {
            assert_eq!(s, Status::unschedulable(ERR_REASON));
            assert_eq!(s.code, Code::Unschedulable);
        }
        s.is_success()
    }

    // Upstream TestNodePorts, case by case.
    #[test]
    fn filter_follows_upstream_cases() {
        assert!(fits(&[], &[]), "nothing running");
        assert!(fits(&["UDP/127.0.0.1/8080"], &["UDP/127.0.0.1/9090"]), "other port");
        assert!(!fits(&["UDP/127.0.0.1/8080"], &["UDP/127.0.0.1/8080"]), "same udp port");
        assert!(!fits(&["TCP/127.0.0.1/8080"], &["TCP/127.0.0.1/8080"]), "same tcp port");
        assert!(fits(&["TCP/127.0.0.1/8080"], &["TCP/127.0.0.2/8080"]), "different host ip");
        assert!(fits(&["UDP/127.0.0.1/8080"], &["TCP/127.0.0.1/8080"]), "different protocol");
        assert!(
            !fits(&["UDP/127.0.0.1/8000", "UDP/127.0.0.1/8080"], &["UDP/127.0.0.1/8080"]),
            "second udp port conflict"
        );
        assert!(
            !fits(&["TCP/127.0.0.1/8001", "UDP/127.0.0.1/8080"], &["TCP/127.0.0.1/8001", "UDP/127.0.0.1/8081"]),
            "first tcp port conflict"
        );
        assert!(!fits(&["TCP/0.0.0.0/8001"], &["TCP/127.0.0.1/8001"]), "wildcard wanted, specific ip used");
        assert!(
            !fits(&["TCP/10.0.10.10/8001", "TCP/0.0.0.0/8001"], &["TCP/127.0.0.1/8001"]),
            "wildcard among wanted ports"
        );
        assert!(!fits(&["TCP/127.0.0.1/8001"], &["TCP/0.0.0.0/8001"]), "specific ip wanted, wildcard used");
        assert!(fits(&["TCP/127.0.0.1/8001"], &["UDP/0.0.0.0/8001"]), "wildcard on another protocol");
        assert!(
            fits(&["TCP/127.0.0.1/8001", "UDP/127.0.0.1/8001"], &["TCP/127.0.0.2/8001", "UDP/127.0.0.2/8001"]),
            "other ips"
        );
    }

    #[test]
    fn pre_filter_skips_pods_without_host_ports() {
        let snap = snapshot(vec![], &[]);
        let mut cs = CycleState::new();
        assert_eq!(NodePorts.pre_filter(&mut cs, &pod("p", 0, 0), &snap), Err(Status::skip()));
        assert_eq!(NodePorts.pre_filter(&mut cs, &with_ports(&["TCP/0.0.0.0/0"]), &snap), Err(Status::skip()));
        assert_eq!(NodePorts.pre_filter(&mut cs, &with_ports(&["TCP/0.0.0.0/80"]), &snap), Ok(None));
    }
}
