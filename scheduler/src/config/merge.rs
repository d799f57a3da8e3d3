//! Upstream's `mergePluginSet`: how a profile's plugin set combines with the default one.
//!
//! The rules, kept exactly because configurations written for kube-scheduler rely on them:
//! `disabled` removes defaults by name (`*` removes them all); a default that is also listed in
//! `enabled` is replaced in place, so it keeps its position but takes the custom weight; every
//! other custom entry is appended in the order written. Disabled names are kept, since the
//! multiPoint expansion consults a point's disabled list too.

/// A plugin reference after defaulting, with where it was written for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The plugin name.
    pub name: String,
    /// The weight as written (`None` when not written).
    pub weight: Option<i64>,
    /// The entry's path (`profiles[0].plugins.score.enabled[1]`), or a description for defaults.
    pub path: String,
}

/// An extension point's (or multiPoint's) plugins after merging.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MergedSet {
    /// Enabled plugins, in order.
    pub enabled: Vec<Entry>,
    /// Disabled names, possibly `*`.
    pub disabled: Vec<String>,
}

impl MergedSet {
    /// Whether `name` (or `*`) is disabled.
    pub fn disables(&self, name: &str) -> bool {
        self.disabled.iter().any(|d| d == name)
    }

    /// Whether everything is disabled (`*`).
    pub fn disables_all(&self) -> bool {
        self.disables("*")
    }
}

/// Merges `custom` into `defaults` as upstream's `mergePluginSet` does.
pub(crate) fn merge_plugin_set(defaults: &MergedSet, custom: &MergedSet) -> MergedSet {
    let mut disabled = custom.disabled.clone();
    disabled.extend(defaults.disabled.iter().cloned());
    let merged_disabled = MergedSet { enabled: Vec::new(), disabled };

    let mut enabled = Vec::with_capacity(defaults.enabled.len() + custom.enabled.len());
    let mut replaced = vec![false; custom.enabled.len()];
    if !merged_disabled.disables_all() {
        for default in &defaults.enabled {
            if merged_disabled.disables(&default.name) {
                continue;
            }
            // Upstream indexes custom entries by name in a map, so with duplicates the last one
            // replaces the default and the earlier ones are appended (then rejected as duplicates).
            match custom.enabled.iter().rposition(|c| c.name == default.name) {
                Some(i) => {
                    replaced[i] = true;
                    enabled.push(custom.enabled[i].clone());
                }
                None => enabled.push(default.clone()),
            }
        }
    }
    enabled.extend(custom.enabled.iter().zip(&replaced).filter(|(_, r)| !**r).map(|(c, _)| c.clone()));
    MergedSet { enabled, disabled: merged_disabled.disabled }
}
