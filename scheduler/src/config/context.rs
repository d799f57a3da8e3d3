//! What every step of building needs: the source name for messages, the registry, and the
//! warnings gathered so far.

use tessera_plugins::registry::Registry;

use super::error::ConfigError;

/// The state shared by the building steps of one configuration.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    /// The file (or other source) name every message starts with.
    pub file: &'a str,
    /// Where plugins come from.
    pub registry: &'a Registry,
    /// Warnings so far, each already naming the file and field.
    pub warnings: Vec<String>,
}

impl<'a> Ctx<'a> {
    /// A context with no warnings yet.
    pub fn new(file: &'a str, registry: &'a Registry) -> Ctx<'a> {
        Ctx { file, registry, warnings: Vec::new() }
    }

    /// An [`ConfigError::Invalid`] for `field`.
    pub fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { file: self.file.to_string(), field: field.into(), message: message.into() }
    }

    /// An [`ConfigError::UnknownPlugin`] for `name` at `field`.
    pub fn unknown_plugin(&self, field: impl Into<String>, name: &str) -> ConfigError {
        ConfigError::UnknownPlugin {
            file: self.file.to_string(),
            field: field.into(),
            name: name.to_string(),
            known: self.known(),
        }
    }

    /// Records a warning about `field`.
    pub fn warn(&mut self, field: &str, message: impl AsRef<str>) {
        self.warnings.push(format!("{}: {}: {}", self.file, field, message.as_ref()));
    }

    /// The registered plugin names, comma-separated, for messages.
    pub fn known(&self) -> String {
        self.registry.names().collect::<Vec<_>>().join(", ")
    }
}
