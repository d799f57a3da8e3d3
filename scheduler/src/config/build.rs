//! From the decoded YAML to a [`SchedulerConfig`]: upstream's defaulting and validation of the
//! top-level fields, each profile, and the checks across profiles.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_plugins::framework::{Profile, TieBreak};
use tessera_plugins::intern::Sym;
use tessera_plugins::registry::PluginArgs;

use super::SchedulerConfig;
use super::connection;
use super::context::Ctx;
use super::defaults::{
    API_VERSION, DEFAULT_PARALLELISM, DEFAULT_POD_INITIAL_BACKOFF_SECONDS, DEFAULT_POD_MAX_BACKOFF_SECONDS,
    DEFAULT_SCHEDULER_NAME, KIND,
};
use super::error::ConfigError;
use super::plugin_config::{self, ArgsEntry};
use super::plugins;
use super::types::{RawConfig, RawGang, RawProfile};
use crate::engine::gang::GangOptions;

/// A built profile with what the cross-profile checks need.
struct Built {
    profile: Profile,
    args: BTreeMap<String, ArgsEntry>,
    queue_sort: Option<String>,
}

/// Validates `raw`, applies upstream's defaults and builds every profile.
pub(crate) fn build(ctx: &mut Ctx<'_>, raw: &RawConfig) -> Result<SchedulerConfig, ConfigError> {
    check_type_meta(ctx, raw)?;
    for field in raw.ignored_fields() {
        ctx.warn(field, "an upstream setting Tessera does not use; ignored");
    }

    let parallelism = match raw.parallelism {
        None => DEFAULT_PARALLELISM,
        Some(p) => u32::try_from(p).ok().filter(|p| (1..=i32::MAX as u32).contains(p)).ok_or_else(|| {
            ctx.invalid(
                "parallelism",
                format!("should be an integer value greater than zero (at most {}), got {p}", i32::MAX),
            )
        })?,
    };
    let percentage = percentage(ctx, "percentageOfNodesToScore", raw.percentage_of_nodes_to_score)?.unwrap_or(0);
    let tie_break = tie_break(ctx, raw.tessera.as_ref().and_then(|t| t.tie_break.as_deref()))?;
    let gang = gang(ctx, raw.tessera.as_ref().and_then(|t| t.gang.as_ref()))?;
    let leader_election = connection::leader_election(ctx, raw.leader_election.as_ref())?;
    let client_connection = connection::client_connection(ctx, raw.client_connection.as_ref())?;
    let initial = raw.pod_initial_backoff_seconds.map_or(Ok(DEFAULT_POD_INITIAL_BACKOFF_SECONDS), |s| {
        u64::try_from(s)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| ctx.invalid("podInitialBackoffSeconds", format!("must be greater than 0, got {s}")))
    })?;
    let max = raw.pod_max_backoff_seconds.map_or(Ok(DEFAULT_POD_MAX_BACKOFF_SECONDS), |s| {
        let msg = format!("must be greater than or equal to podInitialBackoffSeconds ({initial}), got {s}");
        u64::try_from(s).ok().filter(|s| *s >= initial).ok_or_else(|| ctx.invalid("podMaxBackoffSeconds", msg))
    })?;

    // Upstream: no profiles means one default profile, and only a lone profile is named
    // `default-scheduler` when it does not say; several profiles must each be named.
    let default_profile = [RawProfile::default()];
    let raw_profiles = match raw.profiles.as_deref() {
        None | Some([]) => &default_profile[..],
        Some(list) => list,
    };
    let lone = raw_profiles.len() == 1;
    let mut built: Vec<Built> = Vec::with_capacity(raw_profiles.len());
    for (i, rp) in raw_profiles.iter().enumerate() {
        let mut b = build_profile(ctx, i, rp, lone, percentage)?;
        b.profile.tie_break = tie_break;
        if let Some(j) = built.iter().position(|o| o.profile.scheduler_name == b.profile.scheduler_name) {
            let msg = format!("duplicate value {:?} (profiles[{j}] has the same name)", b.profile.scheduler_name);
            return Err(ctx.invalid(format!("profiles[{i}].schedulerName"), msg));
        }
        built.push(b);
    }
    check_common_queue_sort(ctx, &built)?;

    let plugin_args: BTreeMap<String, BTreeMap<String, PluginArgs>> = built
        .iter()
        .map(|b| {
            let args = b.args.iter().filter_map(|(name, a)| a.args.clone().map(|v| (name.clone(), v))).collect();
            (b.profile.scheduler_name.clone(), args)
        })
        .collect();
    Ok(SchedulerConfig {
        profiles: built.into_iter().map(|b| b.profile).collect(),
        parallelism,
        percentage_of_nodes_to_score: percentage,
        pod_initial_backoff: Duration::from_secs(initial),
        pod_max_backoff: Duration::from_secs(max),
        plugin_args,
        gang,
        leader_election,
        client_connection,
        warnings: std::mem::take(&mut ctx.warnings),
    })
}

/// `tessera.gang`, over [`GangOptions`]' defaults.
fn gang(ctx: &Ctx<'_>, raw: Option<&RawGang>) -> Result<GangOptions, ConfigError> {
    let mut out = GangOptions::default();
    let Some(raw) = raw else { return Ok(out) };
    if let Some(levels) = &raw.topology_hierarchy {
        for (i, l) in levels.iter().enumerate() {
            if l.is_empty() || levels[..i].contains(l) {
                let why = if l.is_empty() { "must not be empty".to_string() } else { format!("{l:?} is listed twice") };
                return Err(ctx.invalid(format!("tessera.gang.topologyHierarchy[{i}]"), why));
            }
        }
        out.topology_hierarchy = levels.iter().map(|l| Sym::new(l)).collect();
    }
    let seconds = |field: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(ctx.invalid(field, format!("must be greater than 0, got {v}")))
        }
    };
    if let Some(r) = &raw.reservation {
        out.reservation = r.enabled.unwrap_or(out.reservation);
        if let Some(s) = r.seconds {
            out.reservation_s = seconds("tessera.gang.reservation.seconds", s)?;
        }
    }
    if let Some(s) = raw.default_timeout_seconds {
        out.default_timeout_s = seconds("tessera.gang.defaultTimeoutSeconds", s)?;
    }
    Ok(out)
}

/// `apiVersion` and `kind` are required, as upstream's decoder requires them: a file without
/// them is more likely something other than a scheduler configuration.
fn check_type_meta(ctx: &Ctx<'_>, raw: &RawConfig) -> Result<(), ConfigError> {
    match raw.api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(other) => {
            return Err(ctx.invalid(
                "apiVersion",
                format!("must be {API_VERSION:?} (the only version Tessera reads), got {other:?}"),
            ));
        }
        None => return Err(ctx.invalid("apiVersion", format!("required; set it to {API_VERSION:?}"))),
    }
    match raw.kind.as_deref() {
        Some(KIND) => Ok(()),
        Some(other) => Err(ctx.invalid("kind", format!("must be {KIND:?}, got {other:?}"))),
        None => Err(ctx.invalid("kind", format!("required; set it to {KIND:?}"))),
    }
}

/// `tessera.tieBreak`: `Random` (the default) or `Stable`, whose node order the engine's seed
/// draws (salt 0 until a run sets it).
fn tie_break(ctx: &Ctx<'_>, value: Option<&str>) -> Result<TieBreak, ConfigError> {
    match value {
        None | Some("Random") => Ok(TieBreak::Random),
        Some("Stable") => Ok(TieBreak::Stable(0)),
        Some(other) => Err(ctx.invalid("tessera.tieBreak", format!("must be Random or Stable, got {other:?}"))),
    }
}

/// A `percentageOfNodesToScore` value, checked to be in 0..=100.
fn percentage(ctx: &Ctx<'_>, field: &str, value: Option<i64>) -> Result<Option<u32>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .ok()
            .filter(|v| *v <= 100)
            .map(Some)
            .ok_or_else(|| ctx.invalid(field, format!("not in valid range [0-100], got {v}"))),
    }
}

fn build_profile(
    ctx: &mut Ctx<'_>,
    i: usize,
    raw: &RawProfile,
    lone: bool,
    global_percentage: u32,
) -> Result<Built, ConfigError> {
    let path = format!("profiles[{i}]");
    let scheduler_name = match raw.scheduler_name.as_deref() {
        None if lone => DEFAULT_SCHEDULER_NAME.to_string(),
        Some(name) if !name.is_empty() => name.to_string(),
        _ => return Err(ctx.invalid(format!("{path}.schedulerName"), "required when there is more than one profile")),
    };
    // A profile's own value wins, even 0 (adaptive), as upstream's numFeasibleNodesToFind does.
    let own = percentage(ctx, &format!("{path}.percentageOfNodesToScore"), raw.percentage_of_nodes_to_score)?;
    let mut profile = Profile {
        scheduler_name,
        percentage_of_nodes_to_score: Some(own.unwrap_or(global_percentage)),
        ..Profile::default()
    };
    let args = plugin_config::collect(ctx, &path, raw.plugin_config.as_deref().unwrap_or_default())?;
    let queue_sort = plugins::wire(ctx, &path, raw.plugins.as_ref(), &args, &mut profile)?;
    if profile.bind.is_empty() {
        // Upstream's framework refuses such a profile: nothing would ever bind its pods.
        let msg = format!(
            "at least one bind plugin is needed for profile with scheduler name {:?} (enable DefaultBinder)",
            profile.scheduler_name
        );
        return Err(ctx.invalid(format!("{path}.plugins.bind"), msg));
    }
    Ok(Built { profile, args, queue_sort })
}

/// Every profile must sort the one shared queue the same way: same plugin, same args
/// (upstream's `validateCommonQueueSort` and profile map check).
fn check_common_queue_sort(ctx: &Ctx<'_>, built: &[Built]) -> Result<(), ConfigError> {
    let Some((first, rest)) = built.split_first() else { return Ok(()) };
    let args_of = |b: &Built| b.queue_sort.as_ref().and_then(|qs| b.args.get(qs)).and_then(|a| a.args.clone());
    let first_args = args_of(first);
    for (k, b) in rest.iter().enumerate() {
        let i = k + 1;
        if b.queue_sort != first.queue_sort {
            let msg = format!(
                "must be the same for all profiles: profiles[0] uses {}, this one {}",
                describe_qs(first.queue_sort.as_deref()),
                describe_qs(b.queue_sort.as_deref())
            );
            return Err(ctx.invalid(format!("profiles[{i}].plugins.queueSort"), msg));
        }
        if args_of(b) != first_args {
            let field = match b.queue_sort.as_ref().and_then(|qs| b.args.get(qs)) {
                Some(a) => format!("{}.args", a.path),
                None => format!("profiles[{i}].pluginConfig"),
            };
            return Err(ctx.invalid(field, "queueSort plugin args must be the same for all profiles"));
        }
    }
    Ok(())
}

fn describe_qs(name: Option<&str>) -> String {
    name.map_or_else(|| "none".to_string(), |n| format!("{n:?}"))
}
