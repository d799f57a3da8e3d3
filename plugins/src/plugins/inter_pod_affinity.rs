//! InterPodAffinity (being written).

use std::sync::Arc;

use crate::framework::Plugin;
use crate::registry::{PluginArgs, PluginError};

/// The plugin's name.
pub const NAME: &str = "InterPodAffinity";

/// See the module docs.
#[derive(Debug, Default)]
pub struct InterPodAffinity;

/// Makes the plugin.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(InterPodAffinity))
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
}
