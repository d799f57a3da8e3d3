//! PrioritySort: higher priority first, then earlier arrival.

use std::sync::Arc;

use crate::framework::{Plugin, QueueSortPlugin, QueuedPod};
use crate::registry::{PluginArgs, PluginError};

/// The plugin's name.
pub const NAME: &str = "PrioritySort";

/// See the module docs.
#[derive(Debug, Default)]
pub struct PrioritySort;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(PrioritySort))
}

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        Some(self)
    }
}

impl QueueSortPlugin for PrioritySort {
    fn less(&self, a: &QueuedPod, b: &QueuedPod) -> bool {
        let (pa, pb) = (a.pod.priority, b.pod.priority);
        pa > pb || (pa == pb && a.timestamp < b.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;

    fn queued(priority: i32, timestamp: u64) -> QueuedPod {
        let mut p = pod("p", 0, 0);
        p.priority = priority;
        QueuedPod { pod: Arc::new(p), timestamp, attempts: 0 }
    }

    #[test]
    fn priority_then_age() {
        assert!(PrioritySort.less(&queued(10, 5), &queued(0, 1)));
        assert!(PrioritySort.less(&queued(0, 1), &queued(0, 5)));
        assert!(!PrioritySort.less(&queued(0, 5), &queued(0, 5)));
    }
}
