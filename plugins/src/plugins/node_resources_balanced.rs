//! NodeResourcesBalancedAllocation (being written).

use std::sync::Arc;

use crate::framework::Plugin;
use crate::registry::{PluginArgs, PluginError};

/// The plugin's name.
pub const NAME: &str = "NodeResourcesBalancedAllocation";

/// See the module docs.
#[derive(Debug, Default)]
pub struct NodeResourcesBalancedAllocation;

/// Makes the plugin.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(NodeResourcesBalancedAllocation))
}

impl Plugin for NodeResourcesBalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
}
