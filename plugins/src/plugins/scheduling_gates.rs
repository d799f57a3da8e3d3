//! SchedulingGates: a pod with `spec.schedulingGates` waits outside the queue until every gate
//! is removed (upstream's PreEnqueue plugin of the same name).
//!
//! The verdict reads only the pod, so the engine asks once per arrival or update, never per
//! node. A gated pod is not unschedulable: it was never tried, and reports upstream's
//! `SchedulingGated` condition. Disabling the plugin in a profile admits gated pods, as
//! upstream does.

use std::sync::Arc;

use crate::framework::{Plugin, PreEnqueuePlugin};
use crate::model::Pod;
use crate::registry::{PluginArgs, PluginError};
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "SchedulingGates";
/// The `PodScheduled` condition reason a gated pod shows (set by the API server upstream).
pub const GATED_REASON: &str = "SchedulingGated";
/// The message of that condition.
pub const GATED_MESSAGE: &str = "Scheduling is blocked due to non-empty scheduling gates";

/// See the module docs.
#[derive(Debug, Default)]
pub struct SchedulingGates;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(SchedulingGates))
}

impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        Some(self)
    }
}

impl PreEnqueuePlugin for SchedulingGates {
    /// Upstream's status: UnschedulableAndUnresolvable, "waiting for scheduling gates: [a b]".
    fn pre_enqueue(&self, pod: &Pod) -> Status {
        if pod.scheduling_gates.is_empty() {
            return Status::success();
        }
        Status::unresolvable(format!("waiting for scheduling gates: [{}]", pod.scheduling_gates.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::pod;
    use crate::status::Code;

    #[test]
    fn a_pod_waits_while_any_gate_remains() {
        let mut p = pod("p", 0, 0);
        assert!(SchedulingGates.pre_enqueue(&p).is_success());
        p.scheduling_gates = vec![Arc::from("example.com/a"), Arc::from("example.com/b")];
        let s = SchedulingGates.pre_enqueue(&p);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.to_string(), "waiting for scheduling gates: [example.com/a example.com/b]");
    }
}
