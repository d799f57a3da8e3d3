//! PodTopologySpread (being written).

use std::sync::Arc;

use crate::framework::Plugin;
use crate::registry::{PluginArgs, PluginError};

/// The plugin's name.
pub const NAME: &str = "PodTopologySpread";

/// See the module docs.
#[derive(Debug, Default)]
pub struct PodTopologySpread;

/// Makes the plugin.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(PodTopologySpread))
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
}
