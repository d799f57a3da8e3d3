//! Errors loading a configuration. Every message starts with the file and names the field, in
//! upstream's path notation (`profiles[0].plugins.filter.enabled[2].name`).

use thiserror::Error;

/// Why a configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {message}")]
    Io {
        /// The file.
        file: String,
        /// What the operating system said.
        message: String,
    },
    /// The text is not YAML, or does not have the configuration's shape (wrong type, unknown
    /// field, missing `name`); the message names the field and where it is in the file.
    #[error("{file}: {message}")]
    Yaml {
        /// The file (or other source) name.
        file: String,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// 1-based column, when the parser knows it.
        column: Option<usize>,
        /// The parser's message, with the field path and `at line L column C`.
        message: String,
    },
    /// A field has a value the configuration does not allow.
    #[error("{file}: {field}: {message}")]
    Invalid {
        /// The file (or other source) name.
        file: String,
        /// The field's path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A plugin name that the registry does not know.
    #[error("{file}: {field}: unknown plugin {name:?} (known plugins: {known})")]
    UnknownPlugin {
        /// The file (or other source) name.
        file: String,
        /// The field's path.
        field: String,
        /// The name as written.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// A plugin's factory refused its args (or failed without any).
    #[error("{file}: {field}: {message}")]
    PluginArgs {
        /// The file (or other source) name.
        file: String,
        /// The `pluginConfig[i].args` path, or the profile's when the plugin had no args.
        field: String,
        /// The plugin.
        plugin: String,
        /// The factory's message, which names the plugin.
        message: String,
    },
}

impl ConfigError {
    /// The field path the error names, if it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. }
            | ConfigError::UnknownPlugin { field, .. }
            | ConfigError::PluginArgs { field, .. } => Some(field),
            ConfigError::Io { .. } | ConfigError::Yaml { .. } => None,
        }
    }
}
