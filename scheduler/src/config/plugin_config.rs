//! A profile's `pluginConfig`: one args object per plugin name.

use std::collections::BTreeMap;

use tessera_plugins::registry::PluginArgs;

use super::context::Ctx;
use super::defaults::API_VERSION;
use super::error::ConfigError;
use super::types::RawPluginConfig;

/// A plugin's args and where they were written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ArgsEntry {
    /// The args with upstream's `apiVersion`/`kind` removed; `None` when absent or null.
    pub args: Option<PluginArgs>,
    /// The entry's path (`profiles[0].pluginConfig[1]`).
    pub path: String,
}

/// Collects `pluginConfig` into args by plugin name. A duplicate name is an error (upstream
/// rejects it too); args for a plugin the registry does not have are a warning and dropped,
/// because upstream accepts args for plugins it does not run.
pub(crate) fn collect(
    ctx: &mut Ctx<'_>,
    profile_path: &str,
    raw: &[RawPluginConfig],
) -> Result<BTreeMap<String, ArgsEntry>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut seen: Vec<&str> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let path = format!("{profile_path}.pluginConfig[{i}]");
        if seen.contains(&entry.name.as_str()) {
            return Err(ctx.invalid(format!("{path}.name"), format!("duplicate value {:?}", entry.name)));
        }
        seen.push(&entry.name);
        let args = strip_type_meta(ctx, &path, &entry.name, entry.args.clone())?;
        if !ctx.registry.contains(&entry.name) {
            let known = ctx.known();
            ctx.warn(
                &format!("{path}.name"),
                format!("Tessera has no plugin {:?}; its args are ignored (known plugins: {known})", entry.name),
            );
            continue;
        }
        out.insert(entry.name.clone(), ArgsEntry { args, path });
    }
    Ok(out)
}

/// Removes the `apiVersion` and `kind` an upstream args object may carry, checking them as
/// upstream's decoder does (the kind must be `<plugin>Args`): plugin args types reject unknown
/// fields, and these two are type metadata, not settings.
fn strip_type_meta(
    ctx: &Ctx<'_>,
    path: &str,
    plugin: &str,
    args: Option<PluginArgs>,
) -> Result<Option<PluginArgs>, ConfigError> {
    let Some(mut args) = args else { return Ok(None) };
    if let Some(obj) = args.as_object_mut() {
        if let Some(kind) = obj.remove("kind") {
            let want = format!("{plugin}Args");
            if kind.as_str() != Some(want.as_str()) {
                return Err(ctx.invalid(
                    format!("{path}.args.kind"),
                    format!("args for plugin {plugin} must be of kind {want}, got {kind}"),
                ));
            }
        }
        if let Some(version) = obj.remove("apiVersion")
            && version.as_str() != Some(API_VERSION)
        {
            return Err(
                ctx.invalid(format!("{path}.args.apiVersion"), format!("must be {API_VERSION:?}, got {version}"))
            );
        }
    }
    Ok(if args.is_null() { None } else { Some(args) })
}
