//! A profile's `plugins` block: merged with the defaults, instantiated once per plugin, and
//! expanded into the extension points as upstream's framework does (`updatePluginList`, then
//! `expandMultiPointPlugins`, then `getScoreWeights`).
//!
//! One deviation: a negative weight is an error here. Upstream does not check the sign, and a
//! negative weight silently turns a plugin's preference upside down.

use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_plugins::framework::{Plugin, Profile, WeightedScore};
use tessera_plugins::registry::PluginError;

use super::context::Ctx;
use super::defaults::{DEFAULT_MULTI_POINT, UPSTREAM_PLUGIN_NAMES};
use super::error::ConfigError;
use super::merge::{Entry, MergedSet, merge_plugin_set};
use super::plugin_config::ArgsEntry;
use super::points::ExtensionPoint;
use super::types::{RawPluginSet, RawPlugins};

/// The largest weight: upstream's weight is an `int32`.
const MAX_WEIGHT: i64 = i32::MAX as i64;

/// One instance per plugin name, shared by every point the plugin runs at.
type Instances = Vec<(String, Arc<dyn Plugin>)>;

/// Fills `profile`'s plugin lists from `raw` (absent means all defaults) and `args`. Returns
/// the configured name of the queue sort plugin, if there is one.
pub(crate) fn wire(
    ctx: &mut Ctx<'_>,
    profile_path: &str,
    raw: Option<&RawPlugins>,
    args: &BTreeMap<String, ArgsEntry>,
    profile: &mut Profile,
) -> Result<Option<String>, ConfigError> {
    let plugins_path = format!("{profile_path}.plugins");
    let defaults = MergedSet {
        enabled: DEFAULT_MULTI_POINT
            .iter()
            .filter(|(name, _)| ctx.registry.contains(name))
            .map(|(name, weight)| Entry {
                name: (*name).to_string(),
                weight: *weight,
                path: format!("{plugins_path}.multiPoint (default)"),
            })
            .collect(),
        disabled: Vec::new(),
    };
    let custom_multi =
        custom_set(ctx, &format!("{plugins_path}.multiPoint"), raw.and_then(|r| r.multi_point.as_ref()), true)?;
    reject_duplicates(ctx, &custom_multi, "plugin already registered")?;
    let multi = merge_plugin_set(&defaults, &custom_multi);
    let mut points = Vec::with_capacity(ExtensionPoint::ALL.len());
    for point in ExtensionPoint::ALL {
        let path = format!("{plugins_path}.{}", point.field());
        let set = custom_set(ctx, &path, raw.and_then(|r| r.at(point)), point == ExtensionPoint::Score)?;
        // Upstream merges each point with an empty default set, which leaves it as written.
        points.push((point, set));
    }

    let instances = instantiate(ctx, profile_path, &multi, &points, args)?;
    validate_unused_args(ctx, &instances, args)?;

    for (point, set) in &points {
        let list = expand(ctx, *point, set, &multi, &instances)?;
        assign(ctx, &plugins_path, profile, *point, list, set, &multi)?;
    }
    let queue_sort = profile.queue_sort.as_ref().and_then(|qs| instances.iter().find(|(_, p)| Arc::ptr_eq(p, qs)));
    Ok(queue_sort.map(|(name, _)| name.clone()))
}

/// Reads one written plugin set: names must be registered (a disabled upstream plugin Tessera
/// lacks is only a warning), weights must be in range.
fn custom_set(
    ctx: &mut Ctx<'_>,
    path: &str,
    raw: Option<&RawPluginSet>,
    weighted: bool,
) -> Result<MergedSet, ConfigError> {
    let mut set = MergedSet::default();
    let Some(raw) = raw else { return Ok(set) };
    for (j, p) in raw.enabled.iter().flatten().enumerate() {
        let entry_path = format!("{path}.enabled[{j}]");
        if !ctx.registry.contains(&p.name) {
            return Err(ctx.unknown_plugin(format!("{entry_path}.name"), &p.name));
        }
        if let Some(w) = p.weight {
            if !(0..=MAX_WEIGHT).contains(&w) {
                let msg = format!("must be in 0..={MAX_WEIGHT} (0 means the default, 1), got {w}");
                return Err(ctx.invalid(format!("{entry_path}.weight"), msg));
            }
            if !weighted {
                ctx.warn(&format!("{entry_path}.weight"), "weights apply only at score and multiPoint; ignored");
            }
        }
        set.enabled.push(Entry { name: p.name.clone(), weight: p.weight, path: entry_path });
    }
    for (j, p) in raw.disabled.iter().flatten().enumerate() {
        let entry_path = format!("{path}.disabled[{j}]");
        if p.name != "*" && !ctx.registry.contains(&p.name) {
            if !UPSTREAM_PLUGIN_NAMES.contains(&p.name.as_str()) {
                return Err(ctx.unknown_plugin(format!("{entry_path}.name"), &p.name));
            }
            ctx.warn(
                &format!("{entry_path}.name"),
                format!("Tessera has no plugin {:?}; disabling it changes nothing", p.name),
            );
        }
        if p.weight.is_some() {
            ctx.warn(&format!("{entry_path}.weight"), "a disabled plugin has no weight; ignored");
        }
        set.disabled.push(p.name.clone());
    }
    Ok(set)
}

/// Errors on the second entry of a name in `set.enabled`.
fn reject_duplicates(ctx: &Ctx<'_>, set: &MergedSet, message: &str) -> Result<(), ConfigError> {
    for (j, e) in set.enabled.iter().enumerate() {
        if set.enabled[..j].iter().any(|prev| prev.name == e.name) {
            return Err(ctx.invalid(format!("{}.name", e.path), format!("{message}: {:?}", e.name)));
        }
    }
    Ok(())
}

/// Makes every plugin enabled anywhere, once, in the order first written (upstream's
/// `pluginsNeeded`: a plugin is made even if it ends up at no point).
fn instantiate(
    ctx: &Ctx<'_>,
    profile_path: &str,
    multi: &MergedSet,
    points: &[(ExtensionPoint, MergedSet)],
    args: &BTreeMap<String, ArgsEntry>,
) -> Result<Instances, ConfigError> {
    let mut out: Instances = Vec::new();
    for e in multi.enabled.iter().chain(points.iter().flat_map(|(_, s)| s.enabled.iter())) {
        if out.iter().any(|(n, _)| *n == e.name) {
            continue;
        }
        let entry = args.get(&e.name);
        let plugin = ctx
            .registry
            .make(&e.name, entry.and_then(|a| a.args.as_ref()))
            .map_err(|err| plugin_error(ctx, profile_path, &e.name, entry, &err))?;
        out.push((e.name.clone(), plugin));
    }
    Ok(out)
}

/// Runs the factory of every configured plugin that is not enabled, so bad args are reported
/// even before the plugin is switched on (upstream validates known args types regardless too).
fn validate_unused_args(
    ctx: &Ctx<'_>,
    instances: &Instances,
    args: &BTreeMap<String, ArgsEntry>,
) -> Result<(), ConfigError> {
    for (name, entry) in args {
        if instances.iter().any(|(n, _)| n == name) {
            continue;
        }
        ctx.registry.make(name, entry.args.as_ref()).map_err(|err| plugin_error(ctx, "", name, Some(entry), &err))?;
    }
    Ok(())
}

fn plugin_error(
    ctx: &Ctx<'_>,
    profile_path: &str,
    plugin: &str,
    entry: Option<&ArgsEntry>,
    err: &PluginError,
) -> ConfigError {
    ConfigError::PluginArgs {
        file: ctx.file.to_string(),
        field: entry.map_or_else(|| profile_path.to_string(), |a| format!("{}.args", a.path)),
        plugin: plugin.to_string(),
        message: err.to_string(),
    }
}

fn instance<'i>(ctx: &Ctx<'_>, instances: &'i Instances, e: &Entry) -> Result<&'i Arc<dyn Plugin>, ConfigError> {
    // Every enabled name was instantiated; this only guards against a broken invariant.
    instances
        .iter()
        .find(|(n, _)| *n == e.name)
        .map(|(_, p)| p)
        .ok_or_else(|| ctx.unknown_plugin(format!("{}.name", e.path), &e.name))
}

/// The plugins at `point` with their configured names, in the order upstream's framework runs
/// them.
fn expand(
    ctx: &Ctx<'_>,
    point: ExtensionPoint,
    set: &MergedSet,
    multi: &MergedSet,
    instances: &Instances,
) -> Result<Instances, ConfigError> {
    // updatePluginList: explicit entries must implement the point, once each.
    let mut explicit: Vec<&Entry> = Vec::with_capacity(set.enabled.len());
    for e in &set.enabled {
        if !point.implemented_by(instance(ctx, instances, e)?.as_ref()) {
            return Err(ctx.invalid(
                format!("{}.name", e.path),
                format!("plugin {:?} does not extend {}", e.name, point.interface()),
            ));
        }
        if explicit.iter().any(|x| x.name == e.name) {
            return Err(ctx.invalid(
                format!("{}.name", e.path),
                format!("plugin {:?} already registered as {}", e.name, point.interface()),
            ));
        }
        explicit.push(e);
    }

    // expandMultiPointPlugins: `*` at the point keeps multiPoint out entirely.
    let mut from_multi: Vec<&Entry> = Vec::new();
    let mut overridden: Vec<&str> = Vec::new();
    if !set.disables_all() {
        for e in &multi.enabled {
            if !point.implemented_by(instance(ctx, instances, e)?.as_ref()) || set.disables(&e.name) {
                continue;
            }
            // Also enabled explicitly at this point: the explicit entry wins and moves first.
            if explicit.iter().any(|x| x.name == e.name) {
                overridden.push(&e.name);
                continue;
            }
            if from_multi.iter().any(|x| x.name == e.name) {
                let msg = format!("plugin {:?} already registered as {}", e.name, point.interface());
                return Err(ctx.invalid(format!("{}.name", e.path), msg));
            }
            from_multi.push(e);
        }
    }

    // Upstream's order: overridden explicit entries (as written), then multiPoint's, then the
    // remaining explicit ones.
    let is_overridden = |e: &Entry| overridden.contains(&e.name.as_str());
    let first = explicit.iter().copied().filter(|e| is_overridden(e));
    let last = explicit.iter().copied().filter(|e| !is_overridden(e));
    let ordered = first.chain(from_multi.iter().copied()).chain(last);
    ordered.map(|e| Ok((e.name.clone(), instance(ctx, instances, e)?.clone()))).collect()
}

/// Stores `list` at `point` in `profile`.
fn assign(
    ctx: &Ctx<'_>,
    plugins_path: &str,
    profile: &mut Profile,
    point: ExtensionPoint,
    named: Instances,
    set: &MergedSet,
    multi: &MergedSet,
) -> Result<(), ConfigError> {
    if point == ExtensionPoint::Score {
        // Weights are looked up by configured name: a plugin's `name()` is not trusted to match.
        profile.score = named
            .into_iter()
            .map(|(name, plugin)| WeightedScore { weight: score_weight(&name, set, multi), plugin })
            .collect();
        return Ok(());
    }
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let list: Vec<Arc<dyn Plugin>> = named.into_iter().map(|(_, p)| p).collect();
    match point {
        ExtensionPoint::QueueSort => {
            // Upstream demands exactly one; Tessera's framework sorts by priority then age (what
            // PrioritySort does) when there is none, so only more than one is an error.
            if list.len() > 1 {
                let msg =
                    format!("only one queue sort plugin can be enabled, got {}: {}", list.len(), names.join(", "));
                return Err(ctx.invalid(format!("{plugins_path}.queueSort"), msg));
            }
            profile.queue_sort = list.into_iter().next();
        }
        // Handled above.
        ExtensionPoint::Score => {}
        ExtensionPoint::PreEnqueue => profile.pre_enqueue = list,
        ExtensionPoint::PreFilter => profile.pre_filter = list,
        ExtensionPoint::Filter => profile.filter = list,
        ExtensionPoint::PostFilter => profile.post_filter = list,
        ExtensionPoint::PreScore => profile.pre_score = list,
        ExtensionPoint::Reserve => profile.reserve = list,
        ExtensionPoint::Permit => profile.permit = list,
        ExtensionPoint::PreBind => profile.pre_bind = list,
        ExtensionPoint::Bind => profile.bind = list,
        ExtensionPoint::PostBind => profile.post_bind = list,
    }
    Ok(())
}

/// Upstream's `getScoreWeights`: the first entry for the plugin in `score.enabled`, then in the
/// merged multiPoint list, decides; an unset or zero weight means 1.
fn score_weight(name: &str, score: &MergedSet, multi: &MergedSet) -> i64 {
    let written = score.enabled.iter().chain(&multi.enabled).find(|e| e.name == name).and_then(|e| e.weight);
    match written {
        None | Some(0) => 1,
        Some(w) => w,
    }
}
