//! The effective configuration as JSON, for `tessera config check`.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_plugins::framework::{Plugin, Profile, TieBreak};

use super::SchedulerConfig;
use super::points::ExtensionPoint;

/// Lists each profile's plugins per extension point (every point, empty ones included, so the
/// shape is the same for every configuration), score weights, and the pluginConfig args given.
pub fn describe(config: &SchedulerConfig) -> Value {
    let profiles: Vec<Value> = config
        .profiles
        .iter()
        .map(|p| {
            let mut plugins = serde_json::Map::new();
            for point in ExtensionPoint::ALL {
                plugins.insert(point.field().to_string(), point_plugins(p, point));
            }
            json!({
                "schedulerName": p.scheduler_name,
                "percentageOfNodesToScore": p.percentage_of_nodes_to_score.unwrap_or(0),
                "tieBreak": if p.tie_break == TieBreak::Random { "Random" } else { "Stable" },
                "plugins": plugins,
                "pluginConfig": config.plugin_args.get(&p.scheduler_name).cloned().unwrap_or_default(),
            })
        })
        .collect();
    json!({
        "parallelism": config.parallelism,
        "percentageOfNodesToScore": config.percentage_of_nodes_to_score,
        "podInitialBackoffSeconds": config.pod_initial_backoff.as_secs(),
        "podMaxBackoffSeconds": config.pod_max_backoff.as_secs(),
        "profiles": profiles,
        "gang": {
            "topologyHierarchy": config.gang.topology_hierarchy.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "reservation": {"enabled": config.gang.reservation, "seconds": config.gang.reservation_s},
            "defaultTimeoutSeconds": config.gang.default_timeout_s,
        },
        "warnings": config.warnings,
    })
}

fn point_plugins(p: &Profile, point: ExtensionPoint) -> Value {
    let names = |list: &[Arc<dyn Plugin>]| Value::from(list.iter().map(|x| x.name()).collect::<Vec<_>>());
    match point {
        ExtensionPoint::Score => p.score.iter().map(|s| json!({"name": s.plugin.name(), "weight": s.weight})).collect(),
        ExtensionPoint::QueueSort => names(p.queue_sort.as_slice()),
        ExtensionPoint::PreEnqueue => names(&p.pre_enqueue),
        ExtensionPoint::PreFilter => names(&p.pre_filter),
        ExtensionPoint::Filter => names(&p.filter),
        ExtensionPoint::PostFilter => names(&p.post_filter),
        ExtensionPoint::PreScore => names(&p.pre_score),
        ExtensionPoint::Reserve => names(&p.reserve),
        ExtensionPoint::Permit => names(&p.permit),
        ExtensionPoint::PreBind => names(&p.pre_bind),
        ExtensionPoint::Bind => names(&p.bind),
        ExtensionPoint::PostBind => names(&p.post_bind),
    }
}
