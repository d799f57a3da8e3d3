//! TaintToleration (being written).

use std::sync::Arc;

use crate::framework::Plugin;
use crate::registry::{PluginArgs, PluginError};

/// The plugin's name.
pub const NAME: &str = "TaintToleration";

/// See the module docs.
#[derive(Debug, Default)]
pub struct TaintToleration;

/// Makes the plugin.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(TaintToleration))
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
}
