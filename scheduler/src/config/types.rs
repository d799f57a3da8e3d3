//! The YAML shape of upstream's `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`),
//! as written by a person: every field optional, defaults applied later in `build`.
//!
//! `deny_unknown_fields` everywhere, because upstream decodes strictly and a typo such as
//! `filtr:` silently ignored would run a different scheduler than the one configured. Fields
//! upstream has and Tessera does not use are declared (so they are accepted) and reported as
//! warnings. Integers are read as `i64` so that out-of-range values get a message naming the
//! field and the valid range, not a type error.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::points::ExtensionPoint;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "KubeSchedulerConfiguration")]
pub(crate) struct RawConfig {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub parallelism: Option<i64>,
    pub percentage_of_nodes_to_score: Option<i64>,
    pub pod_initial_backoff_seconds: Option<i64>,
    pub pod_max_backoff_seconds: Option<i64>,
    pub profiles: Option<Vec<RawProfile>>,
    /// Tessera's own settings (see [`TesseraBlock`]).
    pub tessera: Option<TesseraBlock>,
    // What the live scheduler reads (see `connection`).
    pub leader_election: Option<super::connection::RawLeaderElection>,
    pub client_connection: Option<super::connection::RawClientConnection>,
    // Upstream fields Tessera accepts and ignores (each one is a warning when present).
    pub extenders: Option<IgnoredAny>,
    pub enable_profiling: Option<IgnoredAny>,
    pub enable_contention_profiling: Option<IgnoredAny>,
    pub delay_cache_until_active: Option<IgnoredAny>,
}

impl RawConfig {
    /// The upstream-only fields that are set, by their YAML names.
    pub fn ignored_fields(&self) -> Vec<&'static str> {
        [
            ("extenders", self.extenders.is_some()),
            ("enableProfiling", self.enable_profiling.is_some()),
            ("enableContentionProfiling", self.enable_contention_profiling.is_some()),
            ("delayCacheUntilActive", self.delay_cache_until_active.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// The top-level `tessera:` block: settings upstream has no field for, kept apart so that the
/// rest of the file stays a valid upstream configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Tessera")]
pub(crate) struct TesseraBlock {
    /// How ties for the best score are broken, in every profile: `Random` (upstream's, the
    /// default) or `Stable`.
    pub tie_break: Option<String>,
    /// Gang scheduling.
    pub gang: Option<RawGang>,
}

/// `tessera.gang`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Gang")]
pub(crate) struct RawGang {
    /// Node labels from the widest domain to the narrowest.
    pub topology_hierarchy: Option<Vec<String>>,
    /// Reservations against starvation.
    pub reservation: Option<RawReservation>,
    /// Timeout of scheduler-plugins gangs whose PodGroup sets none.
    pub default_timeout_seconds: Option<f64>,
}

/// `tessera.gang.reservation`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Reservation")]
pub(crate) struct RawReservation {
    /// On by default.
    pub enabled: Option<bool>,
    /// How long one reservation lasts at most.
    pub seconds: Option<f64>,
}

/// One entry of `profiles`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "KubeSchedulerProfile")]
pub(crate) struct RawProfile {
    pub scheduler_name: Option<String>,
    pub percentage_of_nodes_to_score: Option<i64>,
    pub plugins: Option<RawPlugins>,
    pub plugin_config: Option<Vec<RawPluginConfig>>,
}

/// A profile's `plugins` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", rename = "Plugins")]
pub(crate) struct RawPlugins {
    pub multi_point: Option<RawPluginSet>,
    pub pre_enqueue: Option<RawPluginSet>,
    pub queue_sort: Option<RawPluginSet>,
    pub pre_filter: Option<RawPluginSet>,
    pub filter: Option<RawPluginSet>,
    pub post_filter: Option<RawPluginSet>,
    pub pre_score: Option<RawPluginSet>,
    pub score: Option<RawPluginSet>,
    pub reserve: Option<RawPluginSet>,
    pub permit: Option<RawPluginSet>,
    pub pre_bind: Option<RawPluginSet>,
    pub bind: Option<RawPluginSet>,
    pub post_bind: Option<RawPluginSet>,
}

impl RawPlugins {
    /// The set configured for `point`, if any.
    pub fn at(&self, point: ExtensionPoint) -> Option<&RawPluginSet> {
        match point {
            ExtensionPoint::PreEnqueue => self.pre_enqueue.as_ref(),
            ExtensionPoint::QueueSort => self.queue_sort.as_ref(),
            ExtensionPoint::PreFilter => self.pre_filter.as_ref(),
            ExtensionPoint::Filter => self.filter.as_ref(),
            ExtensionPoint::PostFilter => self.post_filter.as_ref(),
            ExtensionPoint::PreScore => self.pre_score.as_ref(),
            ExtensionPoint::Score => self.score.as_ref(),
            ExtensionPoint::Reserve => self.reserve.as_ref(),
            ExtensionPoint::Permit => self.permit.as_ref(),
            ExtensionPoint::PreBind => self.pre_bind.as_ref(),
            ExtensionPoint::Bind => self.bind.as_ref(),
            ExtensionPoint::PostBind => self.post_bind.as_ref(),
        }
    }
}

/// `{enabled: [...], disabled: [...]}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "PluginSet")]
pub(crate) struct RawPluginSet {
    pub enabled: Option<Vec<RawPlugin>>,
    pub disabled: Option<Vec<RawPlugin>>,
}

/// `{name, weight}`; upstream uses the same type for disabled entries, where weight means
/// nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "Plugin")]
pub(crate) struct RawPlugin {
    pub name: String,
    pub weight: Option<i64>,
}

/// One entry of `pluginConfig`. Args are kept as JSON because that is what plugin factories
/// decode.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "PluginConfig")]
pub(crate) struct RawPluginConfig {
    pub name: String,
    pub args: Option<serde_json::Value>,
}
