//! Scheduler configuration in the shape of upstream's `KubeSchedulerConfiguration`
//! (`apiVersion: kubescheduler.config.k8s.io/v1`), so an upstream configuration carries over.
//!
//! [`parse_config`] / [`load_config`] read YAML, apply upstream's defaults (parallelism 16,
//! backoff 1s..10s, one `default-scheduler` profile, the v1.37 default `multiPoint` plugins
//! restricted to what the registry has) and upstream's validation, and build one
//! [`Profile`] per profile with one plugin instance shared by every point it runs at. The
//! plugin rules are upstream's `mergePluginSet` and `expandMultiPointPlugins`; see
//! `plugins.rs`.
//!
//! `leaderElection` and `clientConnection` are read for the live scheduler (`connection.rs`).
//! Upstream settings Tessera does not use (`extenders`, profiling) are accepted and reported in [`SchedulerConfig::warnings`]. Any other unknown field
//! is an error naming its path, as upstream's strict decoding makes it.
//!
//! Tessera's own settings live in a top-level `tessera:` block, so the rest of the file stays
//! valid upstream. Today it holds `tieBreak` (`Random`, upstream's, or `Stable`: see
//! [`tessera_plugins::framework::TieBreak`]); any other field in it is an error.
//!
//! Deviations from upstream, each because Tessera's engine differs: zero queueSort plugins is
//! allowed (the framework then sorts by priority and age, as PrioritySort does) and no Bind
//! plugin is required (the engine's binder binds); a negative score weight is an error.

mod build;
mod connection;
mod context;
mod defaults;
mod describe;
mod error;
mod merge;
mod plugin_config;
mod plugins;
mod points;
mod types;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tessera_plugins::framework::Profile;
use tessera_plugins::registry::{PluginArgs, Registry};

use crate::engine::gang::GangOptions;

pub use connection::{ClientConnection, DEFAULT_BURST, DEFAULT_QPS, LeaderElection};
pub use defaults::{
    API_VERSION, DEFAULT_MULTI_POINT, DEFAULT_PARALLELISM, DEFAULT_POD_INITIAL_BACKOFF_SECONDS,
    DEFAULT_POD_MAX_BACKOFF_SECONDS, DEFAULT_SCHEDULER_NAME, KIND,
};
pub use describe::describe;
pub use error::ConfigError;
pub use points::ExtensionPoint;

use context::Ctx;
use types::RawConfig;

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// One profile per `profiles[]` entry, in order; scheduler names are unique.
    pub profiles: Vec<Profile>,
    /// `parallelism`: how many threads filter and score nodes.
    pub parallelism: u32,
    /// The top-level `percentageOfNodesToScore` (0 = adaptive); each profile already carries the
    /// value that applies to it.
    pub percentage_of_nodes_to_score: u32,
    /// `podInitialBackoffSeconds`.
    pub pod_initial_backoff: Duration,
    /// `podMaxBackoffSeconds`.
    pub pod_max_backoff: Duration,
    /// The `pluginConfig` args each profile's plugins were made with, by scheduler name then
    /// plugin name (only args that were given).
    pub plugin_args: BTreeMap<String, BTreeMap<String, PluginArgs>>,
    /// `tessera.gang`: how gangs are scheduled.
    pub gang: GangOptions,
    /// `leaderElection`, for `tessera run`.
    pub leader_election: LeaderElection,
    /// `clientConnection`, for `tessera run`.
    pub client_connection: ClientConnection,
    /// Things accepted but ignored, each naming the file and field.
    pub warnings: Vec<String>,
}

impl SchedulerConfig {
    /// The profile pods select with `spec.schedulerName: name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.scheduler_name == name)
    }
}

/// The configuration an empty `KubeSchedulerConfiguration` gives: upstream's defaults.
pub fn default_config(registry: &Registry) -> Result<SchedulerConfig, ConfigError> {
    let raw =
        RawConfig { api_version: Some(API_VERSION.to_string()), kind: Some(KIND.to_string()), ..RawConfig::default() };
    build::build(&mut Ctx::new("<defaults>", registry), &raw)
}

/// Parses `text` (named `source` in messages) and builds its profiles from `registry`.
pub fn parse_config(source: &str, text: &str, registry: &Registry) -> Result<SchedulerConfig, ConfigError> {
    let raw = decode(source, text)?;
    build::build(&mut Ctx::new(source, registry), &raw)
}

/// Reads and parses the file at `path`.
pub fn load_config(path: &Path, registry: &Registry) -> Result<SchedulerConfig, ConfigError> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Io { file: file.clone(), message: e.to_string() })?;
    parse_config(&file, &text, registry)
}

fn decode(source: &str, text: &str) -> Result<RawConfig, ConfigError> {
    let yaml_error = |e: serde_yaml_ng::Error| {
        let location = e.location();
        ConfigError::Yaml {
            file: source.to_string(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message: e.to_string(),
        }
    };
    if let Some(deep) = crate::ingest::depth::first_too_deep(text) {
        return Err(too_deep(source, deep));
    }
    // Parsing untyped first tells an empty document (which the typed parse would report as a
    // puzzling end-of-stream) from a real one.
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
    if value.is_null() {
        return Err(ConfigError::Yaml {
            file: source.to_string(),
            line: None,
            column: None,
            message: format!("empty document; expected a {KIND}"),
        });
    }
    serde_yaml_ng::from_str(text).map_err(yaml_error)
}

/// The error for a file nested deeper than [`crate::ingest::depth::MAX_DEPTH`], refused before
/// parsing (the parser slows down with depth) as input files are.
fn too_deep(source: &str, deep: crate::ingest::depth::Deep) -> ConfigError {
    let max = crate::ingest::depth::MAX_DEPTH;
    ConfigError::Yaml {
        file: source.to_string(),
        line: Some(deep.line),
        column: Some(deep.column),
        message: format!(
            "nested more than {max} levels deep at line {}, column {}; no {KIND} nests that deep, so the file \
             is refused before parsing",
            deep.line, deep.column
        ),
    }
}
