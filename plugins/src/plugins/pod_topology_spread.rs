//! PodTopologySpread: spread a workload's pods evenly across topology domains (zones, hosts).
//!
//! Hard constraints (`whenUnsatisfiable: DoNotSchedule`) are a Filter: a node passes if placing
//! the pod there keeps `matching pods in the node's domain + self-match − global minimum` within
//! `maxSkew`. The global minimum is over the *eligible* domains: the values of nodes that carry
//! every constraint's key and pass `nodeAffinityPolicy` (Honor, the default: the pod's
//! nodeSelector and required node affinity) and `nodeTaintsPolicy` (Honor: no untolerated
//! NoSchedule/NoExecute taint; Ignore, the default); with fewer eligible domains than
//! `minDomains` it is 0. Only pods in the incoming pod's namespace count.
//!
//! Soft constraints (`ScheduleAnyway`) are a Score: each constraint adds the matching pods of
//! the node's domain times `ln(domains + 2)` plus `maxSkew − 1`; normalisation turns fewer
//! matches into a higher score, and nodes missing a key score 0.
//!
//! A pod with no constraints of its own gets the cluster defaults (`defaultConstraints`, or with
//! `defaultingType: System` zone maxSkew 5 and hostname maxSkew 3, both ScheduleAnyway), whose
//! selector is upstream's `DefaultSelector`: the Services that select the pod and the
//! ReplicationController, ReplicaSet or StatefulSet that controls it
//! ([`crate::default_selector`]). A pod none of them selects — a bare pod, a Job's pod — gets
//! no default constraints, and costs nothing here.
//!
//! Cost: PreFilter and PreScore read per-domain counts from the snapshot's
//! [`TopologyIndex`](crate::topology::TopologyIndex), so they cost O(domains holding matching
//! pods), not O(pods). Nodes that may be ineligible (missing a key, tainted under Honor, or all
//! nodes when the pod restricts nodes under Honor) have their pods subtracted, or counted
//! directly when that is cheaper; an untracked key is counted from the nodes. Filter and Score
//! are one hash lookup per constraint.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use crate::framework::{FilterPlugin, Plugin, PreFilterPlugin, PreScorePlugin, ScorePlugin};
use crate::intern::Sym;
use crate::labels::LabelSelector;
use crate::model::{InclusionPolicy, Pod, WhenUnsatisfiable};
use crate::registry::{PluginArgs, PluginError, decode_args};
use crate::snapshot::Snapshot;

mod counting;
mod filter;
mod score;
#[cfg(test)]
mod tests;

/// The plugin's name.
pub const NAME: &str = "PodTopologySpread";
/// Upstream's reason when placing the pod would exceed a constraint's skew.
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
/// Upstream's reason when a node lacks a constraint's topology key.
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
/// The well-known hostname label, which scoring treats per node.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// The well-known zone label.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// `whenUnsatisfiable` as configuration spells it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum WhenUnsatisfiableArg {
    /// A Filter.
    DoNotSchedule,
    /// A Score.
    ScheduleAnyway,
}

/// `nodeAffinityPolicy` / `nodeTaintsPolicy` as configuration spells them.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum InclusionPolicyArg {
    /// Only nodes the pod could go to count.
    Honor,
    /// Every node counts.
    Ignore,
}

// Parsed by hand so that a bad value's message names the field, which serde's does not.
impl TryFrom<String> for WhenUnsatisfiableArg {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "DoNotSchedule" => Ok(WhenUnsatisfiableArg::DoNotSchedule),
            "ScheduleAnyway" => Ok(WhenUnsatisfiableArg::ScheduleAnyway),
            _ => Err(format!("whenUnsatisfiable must be DoNotSchedule or ScheduleAnyway, got {s:?}")),
        }
    }
}

impl TryFrom<String> for InclusionPolicyArg {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "Honor" => Ok(InclusionPolicyArg::Honor),
            "Ignore" => Ok(InclusionPolicyArg::Ignore),
            _ => Err(format!("nodeAffinityPolicy and nodeTaintsPolicy must be Honor or Ignore, got {s:?}")),
        }
    }
}

impl TryFrom<String> for DefaultingType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "System" => Ok(DefaultingType::System),
            "List" => Ok(DefaultingType::List),
            _ => Err(format!("defaultingType must be System or List, got {s:?}")),
        }
    }
}

impl From<InclusionPolicyArg> for InclusionPolicy {
    fn from(p: InclusionPolicyArg) -> InclusionPolicy {
        match p {
            InclusionPolicyArg::Honor => InclusionPolicy::Honor,
            InclusionPolicyArg::Ignore => InclusionPolicy::Ignore,
        }
    }
}

/// One `defaultConstraints` entry (a `TopologySpreadConstraint` without a selector).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultConstraintArgs {
    /// `maxSkew`, at least 1.
    pub max_skew: i32,
    /// `topologyKey`.
    pub topology_key: String,
    /// `whenUnsatisfiable`.
    pub when_unsatisfiable: WhenUnsatisfiableArg,
    /// Forbidden: default constraints take their selector from the pod.
    #[serde(default)]
    pub label_selector: Option<serde_json::Value>,
    /// `minDomains`, at least 1 when set.
    #[serde(default)]
    pub min_domains: Option<i32>,
    /// `nodeAffinityPolicy` (default Honor).
    #[serde(default)]
    pub node_affinity_policy: Option<InclusionPolicyArg>,
    /// `nodeTaintsPolicy` (default Ignore).
    #[serde(default)]
    pub node_taints_policy: Option<InclusionPolicyArg>,
    /// Accepted for compatibility; upstream replaces a default constraint's selector with the
    /// derived one, so these have no effect there either.
    #[serde(default)]
    pub match_label_keys: Vec<String>,
}

/// Where default constraints come from.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub enum DefaultingType {
    /// Upstream's built-in defaults (zone maxSkew 5, hostname maxSkew 3, ScheduleAnyway).
    #[default]
    System,
    /// `defaultConstraints`.
    List,
}

/// `PodTopologySpreadArgs`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodTopologySpreadArgs {
    /// Constraints for pods that have none (with `defaultingType: List`).
    #[serde(default)]
    pub default_constraints: Vec<DefaultConstraintArgs>,
    /// System or List.
    #[serde(default)]
    pub defaulting_type: DefaultingType,
}

/// A default constraint, validated.
#[derive(Clone, Debug, PartialEq)]
struct DefaultConstraint {
    max_skew: i32,
    key: Sym,
    when: WhenUnsatisfiable,
    min_domains: i32,
    affinity_policy: InclusionPolicy,
    taints_policy: InclusionPolicy,
}

/// A constraint as the plugin evaluates it, from the pod or from the defaults.
#[derive(Clone, Debug)]
struct Constraint<'a> {
    key: Sym,
    max_skew: i32,
    /// `None` matches no pod.
    selector: Option<Cow<'a, LabelSelector>>,
    min_domains: i32,
    affinity_policy: InclusionPolicy,
    taints_policy: InclusionPolicy,
}

/// See the module docs.
#[derive(Debug)]
pub struct PodTopologySpread {
    defaults: Vec<DefaultConstraint>,
    system_defaulted: bool,
    hostname: Sym,
}

/// Makes the plugin from `PodTopologySpreadArgs`.
pub fn new(args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(PodTopologySpread::from_args(decode_args(NAME, args)?)?))
}

impl PodTopologySpread {
    /// Builds the plugin from decoded args, validating them as upstream does.
    pub fn from_args(args: PodTopologySpreadArgs) -> Result<PodTopologySpread, PluginError> {
        let system_defaulted = args.defaulting_type == DefaultingType::System;
        if system_defaulted && !args.default_constraints.is_empty() {
            return Err(PluginError::bad_args(NAME, "defaultConstraints must be empty when defaultingType is System"));
        }
        let defaults = if system_defaulted { system_defaults() } else { validate_defaults(&args.default_constraints)? };
        Ok(PodTopologySpread { defaults, system_defaulted, hostname: Sym::new(LABEL_HOSTNAME) })
    }

    /// The pod's constraints with `when`, or the defaults with `when` if the pod has none at all.
    fn constraints<'a>(&self, pod: &'a Pod, when: WhenUnsatisfiable, snapshot: &Snapshot) -> Vec<Constraint<'a>> {
        if !pod.spread_constraints.is_empty() {
            return pod
                .spread_constraints
                .iter()
                .filter(|c| c.when_unsatisfiable == when)
                .map(|c| Constraint {
                    key: c.topology_key,
                    max_skew: c.max_skew,
                    selector: c.selector.as_ref().map(Cow::Borrowed),
                    min_domains: c.min_domains.unwrap_or(1),
                    affinity_policy: c.node_affinity_policy,
                    taints_policy: c.node_taints_policy,
                })
                .collect();
        }
        if !self.defaults.iter().any(|c| c.when == when) {
            return Vec::new();
        }
        let Some(selector) = snapshot.selector_sources().default_selector(pod) else { return Vec::new() };
        self.defaults
            .iter()
            .filter(|c| c.when == when)
            .map(|c| Constraint {
                key: c.key,
                max_skew: c.max_skew,
                selector: Some(Cow::Owned(selector.clone())),
                min_domains: c.min_domains,
                affinity_policy: c.affinity_policy,
                taints_policy: c.taints_policy,
            })
            .collect()
    }
}

fn system_defaults() -> Vec<DefaultConstraint> {
    let soft = |key: &str, max_skew| DefaultConstraint {
        max_skew,
        key: Sym::new(key),
        when: WhenUnsatisfiable::ScheduleAnyway,
        min_domains: 1,
        affinity_policy: InclusionPolicy::Honor,
        taints_policy: InclusionPolicy::Ignore,
    };
    vec![soft(LABEL_ZONE, 5), soft(LABEL_HOSTNAME, 3)]
}

fn validate_defaults(args: &[DefaultConstraintArgs]) -> Result<Vec<DefaultConstraint>, PluginError> {
    let mut out: Vec<DefaultConstraint> = Vec::with_capacity(args.len());
    for (i, c) in args.iter().enumerate() {
        let bad =
            |field: &str, why: &str| PluginError::bad_args(NAME, format!("defaultConstraints[{i}].{field}: {why}"));
        if c.max_skew <= 0 {
            return Err(bad("maxSkew", "must be greater than zero"));
        }
        if c.topology_key.is_empty() {
            return Err(bad("topologyKey", "must not be empty"));
        }
        if c.label_selector.is_some() {
            return Err(bad("labelSelector", "must not be set: default constraints take their selector from the pod"));
        }
        if c.min_domains.is_some_and(|m| m <= 0) {
            return Err(bad("minDomains", "must be greater than zero"));
        }
        let when = match c.when_unsatisfiable {
            WhenUnsatisfiableArg::DoNotSchedule => WhenUnsatisfiable::DoNotSchedule,
            WhenUnsatisfiableArg::ScheduleAnyway => WhenUnsatisfiable::ScheduleAnyway,
        };
        let key = Sym::new(&c.topology_key);
        if out.iter().any(|o| o.key == key && o.when == when) {
            return Err(bad("topologyKey", "duplicates another constraint with the same whenUnsatisfiable"));
        }
        out.push(DefaultConstraint {
            max_skew: c.max_skew,
            key,
            when,
            min_domains: c.min_domains.unwrap_or(1),
            affinity_policy: c.node_affinity_policy.map_or(InclusionPolicy::Honor, Into::into),
            taints_policy: c.node_taints_policy.map_or(InclusionPolicy::Ignore, Into::into),
        });
    }
    Ok(out)
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
    /// The default constraints' keys, so that defaulted pods are counted from the index.
    fn topology_keys(&self) -> Vec<Sym> {
        self.defaults.iter().map(|c| c.key).collect()
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}
