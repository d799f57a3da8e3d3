//! Tests of configuration loading. Expansion rules are pinned with fake plugins whose points
//! are fixed (`fakes`); the built-in registry is used where real plugins matter (args, names).

mod defaults;
mod fakes;
mod files;
mod plugins;
mod validation;

use std::sync::Arc;

use tessera_plugins::framework::{Plugin, Profile};
use tessera_plugins::registry::Registry;

use super::{ConfigError, ExtensionPoint, SchedulerConfig, parse_config};

/// The lines every test configuration starts with.
const HEADER: &str = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n";

/// Parses `HEADER` + `body` as `test.yaml`.
fn parse(body: &str, registry: &Registry) -> Result<SchedulerConfig, ConfigError> {
    parse_config("test.yaml", &format!("{HEADER}{body}"), registry)
}

/// Parses and expects success.
fn ok(body: &str, registry: &Registry) -> SchedulerConfig {
    match parse(body, registry) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}\n--- config:\n{body}"),
    }
}

/// Parses and expects an error; returns its message.
fn err(body: &str, registry: &Registry) -> String {
    match parse(body, registry) {
        Ok(_) => panic!("expected an error from:\n{body}"),
        Err(e) => e.to_string(),
    }
}

fn names(list: &[Arc<dyn Plugin>]) -> Vec<&'static str> {
    list.iter().map(|p| p.name()).collect()
}

/// The plugin names at `point`, in order.
fn at(p: &Profile, point: ExtensionPoint) -> Vec<&'static str> {
    match point {
        ExtensionPoint::PreEnqueue => names(&p.pre_enqueue),
        ExtensionPoint::QueueSort => names(p.queue_sort.as_slice()),
        ExtensionPoint::PreFilter => names(&p.pre_filter),
        ExtensionPoint::Filter => names(&p.filter),
        ExtensionPoint::PostFilter => names(&p.post_filter),
        ExtensionPoint::PreScore => names(&p.pre_score),
        ExtensionPoint::Score => p.score.iter().map(|s| s.plugin.name()).collect(),
        ExtensionPoint::Reserve => names(&p.reserve),
        ExtensionPoint::Permit => names(&p.permit),
        ExtensionPoint::PreBind => names(&p.pre_bind),
        ExtensionPoint::Bind => names(&p.bind),
        ExtensionPoint::PostBind => names(&p.post_bind),
    }
}

/// Score plugins with weights, in order.
fn scores(p: &Profile) -> Vec<(&'static str, i64)> {
    p.score.iter().map(|s| (s.plugin.name(), s.weight)).collect()
}
