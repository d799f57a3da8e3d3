//! ImageLocality (being written).

use std::sync::Arc;

use crate::framework::Plugin;
use crate::registry::{PluginArgs, PluginError};

/// The plugin's name.
pub const NAME: &str = "ImageLocality";

/// See the module docs.
#[derive(Debug, Default)]
pub struct ImageLocality;

/// Makes the plugin.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(ImageLocality))
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
}
