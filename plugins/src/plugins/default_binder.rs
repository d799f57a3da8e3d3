//! DefaultBinder: binds a pod to its node by creating the pod's Binding
//! (`POST pods/{name}/binding`), upstream's only Bind plugin.
//!
//! Binding is a write to the API server, which the framework's synchronous
//! [`BindPlugin::bind`] does not perform: in `tessera run` the bind executor writes the Binding
//! for each pod whose profile lists this plugin at Bind (and refuses to start with a profile
//! that binds otherwise); in the simulator and benchmarks the engine's placement is the binding.
//! `bind` itself therefore has nothing left to do and says Success. Registering it lets upstream
//! configurations that enable or disable it load, and gives every default profile the Bind
//! plugin upstream requires.

use std::sync::Arc;

use crate::framework::{BindPlugin, CycleState, Plugin};
use crate::intern::Sym;
use crate::model::Pod;
use crate::registry::{PluginArgs, PluginError};
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "DefaultBinder";

/// See the module docs.
#[derive(Debug, Default)]
pub struct DefaultBinder;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(DefaultBinder))
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

impl BindPlugin for DefaultBinder {
    /// The Binding is written by the live bind executor (see the module docs).
    fn bind(&self, _: &CycleState, _: &Pod, _: Sym) -> Status {
        Status::success()
    }
}
