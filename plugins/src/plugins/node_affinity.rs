//! NodeAffinity: the node must match the pod's `nodeSelector` and required node affinity (and
//! the profile's `addedAffinity`, if configured); nodes matching more preferred terms score
//! higher.
//!
//! The pod's selectors are compiled at ingest, so Filter and Score only walk interned symbols.
//! PreFilter narrows the candidates when every required term names nodes through
//! `matchFields` on `metadata.name`, as upstream does, so a pod pinned to a few nodes never
//! runs Filter on the rest of the cluster.

use std::sync::Arc;

use serde::Deserialize;

use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PreFilterPlugin, PreScorePlugin, ScorePlugin,
    default_normalize_score,
};
use crate::intern::Sym;
use crate::labels::{NodeSelector, NodeSelectorTerm, Operator, Requirement};
use crate::model::Pod;
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::registry::{PluginArgs, PluginError, decode_args};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "NodeAffinity";
/// Upstream's reason when the pod's own selector or required affinity does not match.
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
/// Upstream's reason when the profile's `addedAffinity` does not match.
pub const ERR_REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";
/// Upstream's reason when the required terms pin disjoint sets of node names.
pub const ERR_REASON_CONFLICT: &str = "pod affinity terms conflict";

/// The only field a node selector's `matchFields` may name.
const NODE_NAME_FIELD: &str = "metadata.name";

/// `NodeAffinityArgs`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeAffinityArgs {
    /// Node affinity applied to every pod of the profile, in addition to the pod's own.
    #[serde(default)]
    pub added_affinity: Option<NodeAffinitySpec>,
}

/// A `v1.NodeAffinity` as written in configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeAffinitySpec {
    /// Terms a node must match (ORed).
    #[serde(default)]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelectorSpec>,
    /// Weighted terms a node should match.
    #[serde(default)]
    pub preferred_during_scheduling_ignored_during_execution: Vec<PreferredTermSpec>,
}

/// A `v1.NodeSelector` as written in configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSelectorSpec {
    /// The terms, ORed.
    #[serde(default)]
    pub node_selector_terms: Vec<NodeSelectorTermSpec>,
}

/// A `v1.NodeSelectorTerm` as written in configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSelectorTermSpec {
    /// Requirements on node labels.
    #[serde(default)]
    pub match_expressions: Vec<RequirementSpec>,
    /// Requirements on node fields (only `metadata.name`).
    #[serde(default)]
    pub match_fields: Vec<RequirementSpec>,
}

/// A `v1.NodeSelectorRequirement` as written in configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequirementSpec {
    /// The label key or field name.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt` or `Lt`.
    pub operator: String,
    /// The values.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A `v1.PreferredSchedulingTerm` as written in configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PreferredTermSpec {
    /// 1–100.
    pub weight: i32,
    /// The term.
    pub preference: NodeSelectorTermSpec,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct NodeAffinity {
    added_required: Option<NodeSelector>,
    added_preferred: Vec<(i32, NodeSelectorTerm)>,
}

/// Makes the plugin from `NodeAffinityArgs`.
pub fn new(args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(NodeAffinity::from_args(decode_args(NAME, args)?)?))
}

impl NodeAffinity {
    /// Builds the plugin from decoded args, compiling `addedAffinity`.
    pub fn from_args(args: NodeAffinityArgs) -> Result<NodeAffinity, PluginError> {
        let Some(added) = args.added_affinity else { return Ok(NodeAffinity::default()) };
        let bad = |message: String| PluginError::bad_args(NAME, message);
        let added_required = match &added.required_during_scheduling_ignored_during_execution {
            Some(spec) => Some(
                compile_selector("addedAffinity.requiredDuringSchedulingIgnoredDuringExecution", spec).map_err(bad)?,
            ),
            None => None,
        };
        let added_preferred = compile_preferred(
            "addedAffinity.preferredDuringSchedulingIgnoredDuringExecution",
            &added.preferred_during_scheduling_ignored_during_execution,
        )
        .map_err(bad)?;
        Ok(NodeAffinity { added_required, added_preferred })
    }
}

fn compile_selector(path: &str, spec: &NodeSelectorSpec) -> Result<NodeSelector, String> {
    let terms = spec
        .node_selector_terms
        .iter()
        .enumerate()
        .map(|(i, t)| compile_term(&format!("{path}.nodeSelectorTerms[{i}]"), t))
        .collect::<Result<_, _>>()?;
    Ok(NodeSelector { terms })
}

fn compile_preferred(path: &str, specs: &[PreferredTermSpec]) -> Result<Vec<(i32, NodeSelectorTerm)>, String> {
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !(1..=100).contains(&spec.weight) {
            return Err(format!("{at}.weight: must be in 1..=100, got {}", spec.weight));
        }
        out.push((spec.weight, compile_term(&format!("{at}.preference"), &spec.preference)?));
    }
    Ok(out)
}

fn compile_term(path: &str, spec: &NodeSelectorTermSpec) -> Result<NodeSelectorTerm, String> {
    let match_expressions = spec
        .match_expressions
        .iter()
        .enumerate()
        .map(|(i, r)| compile_expression(&format!("{path}.matchExpressions[{i}]"), r))
        .collect::<Result<_, _>>()?;
    let match_fields = spec
        .match_fields
        .iter()
        .enumerate()
        .map(|(i, r)| compile_field(&format!("{path}.matchFields[{i}]"), r))
        .collect::<Result<_, _>>()?;
    Ok(NodeSelectorTerm { match_expressions, match_fields })
}

fn parse_operator(path: &str, spec: &RequirementSpec) -> Result<Operator, String> {
    Operator::parse(&spec.operator).ok_or_else(|| {
        format!(
            "{path}.operator: unsupported operator {:?} (want In, NotIn, Exists, DoesNotExist, Gt or Lt)",
            spec.operator
        )
    })
}

/// Applies upstream's label-requirement rules on value counts.
fn compile_expression(path: &str, spec: &RequirementSpec) -> Result<Requirement, String> {
    if spec.key.is_empty() {
        return Err(format!("{path}.key: must not be empty"));
    }
    let op = parse_operator(path, spec)?;
    let key = Sym::new(&spec.key);
    let n = spec.values.len();
    match op {
        Operator::In | Operator::NotIn if n == 0 => {
            Err(format!("{path}.values: must have at least one value for {}", spec.operator))
        }
        Operator::Exists | Operator::DoesNotExist if n != 0 => {
            Err(format!("{path}.values: must be empty for {}", spec.operator))
        }
        Operator::Gt | Operator::Lt => {
            let [value] = spec.values.as_slice() else {
                return Err(format!("{path}.values: must have exactly one value for {}", spec.operator));
            };
            let bound = value.parse::<i64>().map_err(|_| format!("{path}.values[0]: {value:?} is not an integer"))?;
            Ok(Requirement { key, op, values: Vec::new(), bound })
        }
        _ => Ok(Requirement { key, op, values: spec.values.iter().map(|v| Sym::new(v)).collect(), bound: 0 }),
    }
}

/// Upstream allows only `metadata.name` with `In`/`NotIn` and exactly one value.
fn compile_field(path: &str, spec: &RequirementSpec) -> Result<Requirement, String> {
    if spec.key != NODE_NAME_FIELD {
        return Err(format!("{path}.key: unsupported field {:?} (want {NODE_NAME_FIELD})", spec.key));
    }
    let op = parse_operator(path, spec)?;
    if !matches!(op, Operator::In | Operator::NotIn) {
        return Err(format!("{path}.operator: field selectors support only In and NotIn, got {}", spec.operator));
    }
    let [value] = spec.values.as_slice() else {
        return Err(format!("{path}.values: must have exactly one value"));
    };
    Ok(Requirement { key: Sym::new(NODE_NAME_FIELD), op, values: vec![Sym::new(value)], bound: 0 })
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    /// Reads only the node and the pod's signature fields.
    fn node_local(&self) -> bool {
        true
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

impl PreFilterPlugin for NodeAffinity {
    fn pre_filter(&self, _: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> Result<Option<Vec<NodeId>>, Status> {
        let Some(required) = &pod.required_node_affinity else {
            if pod.node_selector.is_empty() && self.added_required.is_none() {
                return Err(Status::skip());
            }
            return Ok(None);
        };
        match pinned_node_names(required) {
            None => Ok(None),
            Some(names) if names.is_empty() => Err(Status::unresolvable(ERR_REASON_CONFLICT)),
            Some(names) => {
                // Names of nodes not in the snapshot simply leave no candidate behind.
                let mut ids: Vec<NodeId> = names.into_iter().filter_map(|n| snapshot.node_id(n)).collect();
                ids.sort_unstable();
                ids.dedup();
                Ok(Some(ids))
            }
        }
    }
}

/// The node names the required terms can match, when every term pins names through
/// `matchFields` `In` (upstream: the union over terms of the intersection within a term);
/// `None` when some term leaves every node eligible, or there are no terms.
fn pinned_node_names(required: &NodeSelector) -> Option<Vec<Sym>> {
    if required.terms.is_empty() {
        return None;
    }
    let mut union: Vec<Sym> = Vec::new();
    for term in &required.terms {
        let mut pinned: Option<Vec<Sym>> = None;
        for r in term.match_fields.iter().filter(|r| r.op == Operator::In) {
            pinned = Some(match pinned {
                None => r.values.clone(),
                Some(prev) => prev.into_iter().filter(|n| r.values.contains(n)).collect(),
            });
        }
        union.extend(pinned?);
    }
    union.sort_unstable();
    union.dedup();
    Some(union)
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let (labels, name) = (&node.node.labels, node.name());
        if self.added_required.as_ref().is_some_and(|s| !s.matches(labels, name)) {
            return Status::unresolvable(ERR_REASON_ENFORCED);
        }
        let selector_ok = labels.contains_all(&pod.node_selector);
        if !selector_ok || pod.required_node_affinity.as_ref().is_some_and(|s| !s.matches(labels, name)) {
            return Status::unresolvable(ERR_REASON_POD);
        }
        Status::success()
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(&self, _: &mut CycleState, pod: &Pod, _: &Snapshot, _: &[&NodeInfo]) -> Status {
        if pod.preferred_node_affinity.is_empty() && self.added_preferred.is_empty() {
            return Status::skip();
        }
        Status::success()
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        let (labels, name) = (&node.node.labels, node.name());
        self.added_preferred
            .iter()
            .chain(&pod.preferred_node_affinity)
            .filter(|(_, term)| term.matches(labels, name))
            .map(|&(weight, _)| i64::from(weight))
            .sum()
    }

    fn normalize_score(&self, _: &CycleState, _: &Pod, scores: &mut [i64]) {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelSet;
    use crate::plugins::testing::*;
    use crate::status::Code;

    fn req(key: &str, op: Operator, values: &[&str]) -> Requirement {
        Requirement { key: Sym::new(key), op, values: values.iter().map(|v| Sym::new(v)).collect(), bound: 0 }
    }

    fn term(exprs: Vec<Requirement>) -> NodeSelectorTerm {
        NodeSelectorTerm { match_expressions: exprs, match_fields: vec![] }
    }

    fn names_term(names: &[&str]) -> NodeSelectorTerm {
        NodeSelectorTerm { match_expressions: vec![], match_fields: vec![req(NODE_NAME_FIELD, Operator::In, names)] }
    }

    fn requiring(terms: Vec<NodeSelectorTerm>) -> Pod {
        let mut p = pod("p", 0, 0);
        p.required_node_affinity = Some(NodeSelector { terms });
        p
    }

    fn labelled_node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
        node_info(0, with_labels(node(name, 1000, GI), labels), vec![])
    }

    fn plugin(args: serde_json::Value) -> NodeAffinity {
        NodeAffinity::from_args(serde_json::from_value(args).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn filter(p: &Pod, n: &NodeInfo) -> Status {
        NodeAffinity::default().filter(&CycleState::new(), p, n)
    }

    // Upstream TestNodeAffinity: "missing labels" / "same labels" / "node labels are superset".
    #[test]
    fn node_selector_must_be_a_subset_of_node_labels() {
        let mut p = pod("p", 0, 0);
        p.node_selector = LabelSet::from_pairs([("foo", "bar")]);
        let s = filter(&p, &labelled_node("n", &[]));
        assert_eq!(s, Status::unresolvable(ERR_REASON_POD));
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert!(filter(&p, &labelled_node("n", &[("foo", "bar")])).is_success());
        assert!(filter(&p, &labelled_node("n", &[("foo", "bar"), ("baz", "blah")])).is_success());
        assert!(!filter(&p, &labelled_node("n", &[("foo", "baz")])).is_success());
    }

    // Upstream: terms are ORed, expressions within a term ANDed, and a pod needs both its
    // nodeSelector and its required affinity to match.
    #[test]
    fn required_terms_are_ored_and_combined_with_the_selector() {
        let p = requiring(vec![
            term(vec![req("foo", Operator::In, &["bar"]), req("kernel", Operator::Exists, &[])]),
            term(vec![req("diskType", Operator::In, &["ssd"])]),
        ]);
        assert!(filter(&p, &labelled_node("n", &[("diskType", "ssd")])).is_success());
        assert!(filter(&p, &labelled_node("n", &[("foo", "bar"), ("kernel", "5")])).is_success());
        assert!(!filter(&p, &labelled_node("n", &[("foo", "bar")])).is_success());
        let mut with_selector = p.clone();
        with_selector.node_selector = LabelSet::from_pairs([("zone", "a")]);
        assert!(!filter(&with_selector, &labelled_node("n", &[("diskType", "ssd")])).is_success());
        assert!(filter(&with_selector, &labelled_node("n", &[("diskType", "ssd"), ("zone", "a")])).is_success());
    }

    // Upstream: "Pod with an empty []NodeSelectorTerm in affinity, can't schedule onto any node"
    // and "Pod with empty MatchExpressions is not a valid value will match no objects".
    #[test]
    fn empty_required_terms_match_no_node() {
        assert!(!filter(&requiring(vec![]), &labelled_node("n", &[("foo", "bar")])).is_success());
        assert!(
            !filter(&requiring(vec![NodeSelectorTerm::default()]), &labelled_node("n", &[("foo", "bar")])).is_success()
        );
    }

    #[test]
    fn pre_filter_skips_pods_without_constraints() {
        let snap = snapshot(vec![(node("n1", 1, 1), vec![])], &[]);
        let mut cs = CycleState::new();
        assert_eq!(NodeAffinity::default().pre_filter(&mut cs, &pod("p", 0, 0), &snap), Err(Status::skip()));
        let mut p = pod("p", 0, 0);
        p.node_selector = LabelSet::from_pairs([("foo", "bar")]);
        assert_eq!(NodeAffinity::default().pre_filter(&mut cs, &p, &snap), Ok(None));
        let added = plugin(serde_json::json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]}}}));
        assert_eq!(added.pre_filter(&mut cs, &pod("p", 0, 0), &snap), Ok(None));
    }

    // Upstream TestNodeAffinity PreFilterResult cases: a term's matchFields In sets intersect,
    // terms union, a term without them leaves every node, disjoint names conflict.
    #[test]
    fn pre_filter_restricts_to_pinned_node_names() {
        let nodes = ["n1", "n2", "n3"].iter().map(|n| (node(n, 1, 1), vec![])).collect();
        let snap = snapshot(nodes, &[]);
        let mut cs = CycleState::new();
        let pf = |p: &Pod, cs: &mut CycleState| NodeAffinity::default().pre_filter(cs, p, &snap);
        assert_eq!(pf(&requiring(vec![names_term(&["n1"])]), &mut cs), Ok(Some(vec![0])));
        assert_eq!(
            pf(&requiring(vec![names_term(&["n1"]), names_term(&["n3", "gone"])]), &mut cs),
            Ok(Some(vec![0, 2]))
        );
        let both = NodeSelectorTerm {
            match_expressions: vec![],
            match_fields: vec![
                req(NODE_NAME_FIELD, Operator::In, &["n1", "n2"]),
                req(NODE_NAME_FIELD, Operator::In, &["n2", "n3"]),
            ],
        };
        assert_eq!(pf(&requiring(vec![both]), &mut cs), Ok(Some(vec![1])));
        let open = requiring(vec![names_term(&["n1"]), term(vec![req("foo", Operator::Exists, &[])])]);
        assert_eq!(pf(&open, &mut cs), Ok(None));
        let disjoint = NodeSelectorTerm {
            match_expressions: vec![],
            match_fields: vec![
                req(NODE_NAME_FIELD, Operator::In, &["n1"]),
                req(NODE_NAME_FIELD, Operator::In, &["n2"]),
            ],
        };
        assert_eq!(pf(&requiring(vec![disjoint]), &mut cs), Err(Status::unresolvable(ERR_REASON_CONFLICT)));
        assert_eq!(pf(&requiring(vec![names_term(&["gone"])]), &mut cs), Ok(Some(vec![])));
    }

    // Upstream TestNodeAffinityPriority "all nodes matches preferred affinity, but nodes have
    // different scores": weights of matching terms add up, then scale by the best node.
    #[test]
    fn score_sums_matching_weights_and_normalizes_by_the_maximum() {
        let mut p = pod("p", 0, 0);
        p.preferred_node_affinity = vec![
            (2, term(vec![req("foo", Operator::In, &["bar"])])),
            (4, term(vec![req("key", Operator::In, &["value"])])),
            (
                5,
                term(vec![
                    req("foo", Operator::In, &["bar"]),
                    req("key", Operator::In, &["value"]),
                    req("az", Operator::In, &["az1"]),
                ]),
            ),
        ];
        let na = NodeAffinity::default();
        let cs = CycleState::new();
        let n1 = labelled_node("n1", &[("foo", "bar")]);
        let n2 = labelled_node("n2", &[("key", "value")]);
        let n3 = labelled_node("n3", &[("foo", "bar"), ("key", "value"), ("az", "az1")]);
        let mut scores: Vec<i64> = [&n1, &n2, &n3].iter().map(|n| na.score(&cs, &p, n)).collect();
        assert_eq!(scores, vec![2, 4, 11]);
        na.normalize_score(&cs, &p, &mut scores);
        assert_eq!(scores, vec![18, 36, 100]);
    }

    #[test]
    fn pre_score_skips_pods_without_preferences() {
        let snap = snapshot(vec![], &[]);
        let mut cs = CycleState::new();
        assert_eq!(NodeAffinity::default().pre_score(&mut cs, &pod("p", 0, 0), &snap, &[]), Status::skip());
        let added = plugin(serde_json::json!({"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 3, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}]}}));
        assert!(added.pre_score(&mut cs, &pod("p", 0, 0), &snap, &[]).is_success());
        assert_eq!(added.score(&cs, &pod("p", 0, 0), &labelled_node("n", &[("zone", "a")])), 3);
    }

    // Upstream TestNodeAffinity "Matches added affinity and Pod's node affinity" and friends.
    #[test]
    fn added_affinity_is_enforced_with_its_own_reason() {
        let na = plugin(serde_json::json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["foo"]}]}]}}}));
        let cs = CycleState::new();
        assert_eq!(
            na.filter(&cs, &pod("p", 0, 0), &labelled_node("n", &[("zone", "bar")])),
            Status::unresolvable(ERR_REASON_ENFORCED)
        );
        assert!(na.filter(&cs, &pod("p", 0, 0), &labelled_node("n", &[("zone", "foo")])).is_success());
        let p = requiring(vec![term(vec![req("disk", Operator::Exists, &[])])]);
        assert_eq!(na.filter(&cs, &p, &labelled_node("n", &[("zone", "foo")])), Status::unresolvable(ERR_REASON_POD));
        assert!(na.filter(&cs, &p, &labelled_node("n", &[("zone", "foo"), ("disk", "ssd")])).is_success());
    }

    #[test]
    fn args_decode_every_operator_and_name_bad_fields() {
        let na = plugin(serde_json::json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{
            "matchExpressions": [{"key": "gpus", "operator": "Gt", "values": ["4"]}, {"key": "zone", "operator": "NotIn", "values": ["c"]}],
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]
        }]}}}));
        let cs = CycleState::new();
        assert!(na.filter(&cs, &pod("p", 0, 0), &labelled_node("n1", &[("gpus", "8")])).is_success());
        assert!(!na.filter(&cs, &pod("p", 0, 0), &labelled_node("n1", &[("gpus", "2")])).is_success());
        assert!(!na.filter(&cs, &pod("p", 0, 0), &labelled_node("n2", &[("gpus", "8")])).is_success());

        let err = |args: serde_json::Value| match new(Some(&args)) {
            Err(PluginError::BadArgs { message, .. }) => message,
            other => panic!("expected BadArgs, got {other:?}"),
        };
        let required = |expr: serde_json::Value| serde_json::json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr]}]}}});
        let m = err(required(serde_json::json!({"key": "zone", "operator": "Near", "values": ["a"]})));
        assert!(m.contains("addedAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator"), "{m}");
        assert!(err(required(serde_json::json!({"key": "zone", "operator": "In"}))).contains(".values"));
        assert!(
            err(required(serde_json::json!({"key": "gpus", "operator": "Lt", "values": ["x"]}))).contains("values[0]")
        );
        assert!(
            err(required(serde_json::json!({"key": "zone", "operator": "Exists", "values": ["a"]})))
                .contains(".values")
        );
        let field = serde_json::json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["x"]}]}]}}});
        assert!(err(field).contains("matchFields[0].key"));
        let weight = serde_json::json!({"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 0, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}});
        assert!(err(weight).contains("preferredDuringSchedulingIgnoredDuringExecution[0].weight"));
        assert!(new(Some(&serde_json::json!({"addedAffinity": {"bogus": 1}}))).is_err());
        assert!(new(None).is_ok());
    }

    // Upstream helper.DefaultNormalizeScore table.
    #[test]
    fn default_normalize_score_matches_upstream() {
        let mut s = vec![10, 20, 30, 40];
        default_normalize_score(100, false, &mut s);
        assert_eq!(s, vec![25, 50, 75, 100]);
        let mut s = vec![10, 20, 30, 40];
        default_normalize_score(100, true, &mut s);
        assert_eq!(s, vec![75, 50, 25, 0]);
        let mut s = vec![0, 0];
        default_normalize_score(100, false, &mut s);
        assert_eq!(s, vec![0, 0]);
        default_normalize_score(100, true, &mut s);
        assert_eq!(s, vec![100, 100]);
    }
}
