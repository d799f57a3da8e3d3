//! Making plugins by name, with their configuration arguments.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::framework::Plugin;
use crate::plugins;

/// A plugin's `pluginConfig` args, as JSON (YAML configuration is converted on load).
pub type PluginArgs = serde_json::Value;

/// Makes a plugin from its optional args.
pub type Factory = fn(Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError>;

/// Errors making a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PluginError {
    /// No plugin is registered under the name.
    #[error("unknown plugin {name:?} (known plugins: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// The plugin's args do not decode or are out of range.
    #[error("invalid args for plugin {plugin}: {message}")]
    BadArgs {
        /// The plugin.
        plugin: String,
        /// What is wrong, naming the field.
        message: String,
    },
}

impl PluginError {
    /// A `BadArgs` error for `plugin`.
    pub fn bad_args(plugin: &str, message: impl Into<String>) -> PluginError {
        PluginError::BadArgs { plugin: plugin.to_string(), message: message.into() }
    }
}

/// Decodes `args` into `T`, or `T::default()` when there are none. Unknown fields are errors
/// when `T` says `#[serde(deny_unknown_fields)]`.
pub fn decode_args<T: DeserializeOwned + Default>(plugin: &str, args: Option<&PluginArgs>) -> Result<T, PluginError> {
    match args {
        None | Some(serde_json::Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| PluginError::bad_args(plugin, e.to_string())),
    }
}

/// Plugin factories by name.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Every built-in plugin.
    pub fn builtin() -> Registry {
        let mut r = Registry::new();
        for (name, f) in plugins::BUILTIN {
            r.register(name, *f);
        }
        r
    }

    /// Adds (or replaces) a factory.
    pub fn register(&mut self, name: &str, factory: Factory) {
        self.factories.insert(name.to_string(), factory);
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// Makes plugin `name` with `args`.
    pub fn make(&self, name: &str, args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
        match self.factories.get(name) {
            Some(f) => f(args),
            None => {
                Err(PluginError::Unknown { name: name.to_string(), known: self.names().collect::<Vec<_>>().join(", ") })
            }
        }
    }
}
