//! NodeResourcesFit: the node must have room for the pod's requests; scoring by
//! LeastAllocated, MostAllocated or RequestedToCapacityRatio.
//!
//! Requests are the pod's effective requests (containers, sidecars, init containers and
//! overhead folded as upstream does, at ingest). Filter lists *every* resource the node is
//! short of, as upstream does, and says Unresolvable when a request exceeds the node's whole
//! allocatable. Scoring uses the non-zero view (100m / 200Mi for a container with no request).

use std::sync::Arc;

use serde::Deserialize;

use crate::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, ScorePlugin};
use crate::model::Pod;
use crate::nodeinfo::NodeInfo;
use crate::registry::{PluginArgs, PluginError, decode_args};
use crate::resources::{ResourceId, ResourceSet};
use crate::status::{Code, Reason, Status};

/// The plugin's name.
pub const NAME: &str = "NodeResourcesFit";

/// A resource and its weight in scoring.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// The resource name (`cpu`, `nvidia.com/gpu`).
    pub name: String,
    /// Its weight (default 1).
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

/// One point of a RequestedToCapacityRatio shape.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UtilizationShapePoint {
    /// Utilisation in percent, 0–100.
    pub utilization: i64,
    /// Score, 0–10.
    pub score: i64,
}

/// `requestedToCapacityRatio` args.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestedToCapacityRatioParam {
    /// The shape, utilisation increasing.
    pub shape: Vec<UtilizationShapePoint>,
}

/// The scoring strategy type.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum ScoringStrategyType {
    /// Prefer emptier nodes (spreading).
    #[default]
    LeastAllocated,
    /// Prefer fuller nodes (bin packing).
    MostAllocated,
    /// Score by a configurable utilisation curve.
    RequestedToCapacityRatio,
}

/// `scoringStrategy` args.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScoringStrategy {
    /// The strategy.
    #[serde(rename = "type", default)]
    pub kind: ScoringStrategyType,
    /// Resources scored, with weights (default cpu and memory, weight 1 each).
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
    /// The shape for RequestedToCapacityRatio.
    #[serde(default)]
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatioParam>,
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        ScoringStrategy {
            kind: ScoringStrategyType::LeastAllocated,
            resources: default_resources(),
            requested_to_capacity_ratio: None,
        }
    }
}

/// cpu and memory, weight 1 each.
pub fn default_resources() -> Vec<ResourceSpec> {
    vec![ResourceSpec { name: "cpu".into(), weight: 1 }, ResourceSpec { name: "memory".into(), weight: 1 }]
}

/// `NodeResourcesFitArgs`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeResourcesFitArgs {
    /// Extended resources Filter ignores.
    #[serde(default)]
    pub ignored_resources: Vec<String>,
    /// Extended resource groups (the part before `/`) Filter ignores.
    #[serde(default)]
    pub ignored_resource_groups: Vec<String>,
    /// How nodes are scored.
    #[serde(default)]
    pub scoring_strategy: ScoringStrategy,
}

/// The resources a scorer looks at, resolved to slots.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredResources(pub Vec<(ResourceId, i64)>);

impl ScoredResources {
    /// Resolves names to slots; a zero or negative weight is an error naming the resource.
    pub fn resolve(plugin: &str, specs: &[ResourceSpec]) -> Result<ScoredResources, PluginError> {
        let mut out = Vec::with_capacity(specs.len());
        for s in specs {
            if s.weight <= 0 || s.weight > 100 {
                return Err(PluginError::bad_args(
                    plugin,
                    format!("resources[{}].weight must be in 1..=100, got {}", s.name, s.weight),
                ));
            }
            let id = ResourceId::of(&s.name).map_err(|e| PluginError::bad_args(plugin, e.to_string()))?;
            out.push((id, s.weight));
        }
        Ok(ScoredResources(out))
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct NodeResourcesFit {
    ignored: ResourceSet,
    ignored_groups: Vec<String>,
    strategy: ScoringStrategyType,
    resources: ScoredResources,
    shape: Vec<(i64, i64)>,
}

/// Makes the plugin from `NodeResourcesFitArgs`.
pub fn new(args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(NodeResourcesFit::from_args(decode_args(NAME, args)?)?))
}

impl NodeResourcesFit {
    /// Builds the plugin from decoded args.
    pub fn from_args(args: NodeResourcesFitArgs) -> Result<NodeResourcesFit, PluginError> {
        let mut ignored = ResourceSet::default();
        for name in &args.ignored_resources {
            let id = ResourceId::of(name).map_err(|e| PluginError::bad_args(NAME, e.to_string()))?;
            ignored.insert(id);
        }
        let strategy = args.scoring_strategy.kind;
        let resources = ScoredResources::resolve(NAME, &args.scoring_strategy.resources)?;
        let shape = match (&args.scoring_strategy.requested_to_capacity_ratio, strategy) {
            (Some(p), ScoringStrategyType::RequestedToCapacityRatio) => validate_shape(&p.shape)?,
            (None, ScoringStrategyType::RequestedToCapacityRatio) => {
                return Err(PluginError::bad_args(
                    NAME,
                    "scoringStrategy.requestedToCapacityRatio is required for RequestedToCapacityRatio",
                ));
            }
            _ => Vec::new(),
        };
        Ok(NodeResourcesFit { ignored, ignored_groups: args.ignored_resource_groups, strategy, resources, shape })
    }

    fn is_ignored(&self, id: ResourceId) -> bool {
        if id.index() < 3 {
            return false;
        }
        self.ignored.contains(id)
            || (!self.ignored_groups.is_empty() && {
                let name = id.name();
                let group = name.split('/').next().unwrap_or("");
                self.ignored_groups.iter().any(|g| g == group)
            })
    }
}

fn validate_shape(shape: &[UtilizationShapePoint]) -> Result<Vec<(i64, i64)>, PluginError> {
    if shape.is_empty() {
        return Err(PluginError::bad_args(NAME, "scoringStrategy.requestedToCapacityRatio.shape must not be empty"));
    }
    let mut prev = -1;
    for (i, p) in shape.iter().enumerate() {
        if !(0..=100).contains(&p.utilization) || !(0..=10).contains(&p.score) {
            return Err(PluginError::bad_args(
                NAME,
                format!("shape[{i}]: utilization must be 0..=100 and score 0..=10"),
            ));
        }
        if p.utilization <= prev {
            return Err(PluginError::bad_args(NAME, format!("shape[{i}].utilization must increase")));
        }
        prev = p.utilization;
    }
    // Upstream scales the 0–10 shape scores to 0–100.
    Ok(shape.iter().map(|p| (p.utilization, p.score * MAX_NODE_SCORE / 10)).collect())
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
    /// Reads only the node and the pod's signature fields.
    fn node_local(&self) -> bool {
        true
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

const REASON_TOO_MANY_PODS: &str = "Too many pods";

fn insufficient(id: ResourceId) -> Reason {
    match id {
        ResourceId::CPU => Reason::Borrowed("Insufficient cpu"),
        ResourceId::MEMORY => Reason::Borrowed("Insufficient memory"),
        ResourceId::EPHEMERAL_STORAGE => Reason::Borrowed("Insufficient ephemeral-storage"),
        _ => Reason::Owned(format!("Insufficient {}", id.name())),
    }
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let mut status = Status::success();
        if node.pods.len() as u32 >= node.node.allowed_pods {
            status.code = Code::Unschedulable;
            status.reasons.push(Reason::Borrowed(REASON_TOO_MANY_PODS));
        }
        let alloc = &node.node.allocatable;
        for (id, want) in pod.requests.iter_nonzero() {
            if want <= 0 || want <= alloc.get(id) - node.requested.get(id) || self.is_ignored(id) {
                continue;
            }
            if status.code != Code::UnschedulableAndUnresolvable {
                status.code =
                    if want > alloc.get(id) { Code::UnschedulableAndUnresolvable } else { Code::Unschedulable };
            }
            status.reasons.push(insufficient(id));
        }
        status
    }
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        let mut total = 0;
        let mut weights = 0;
        for &(id, weight) in &self.resources.0 {
            let (alloc, req) = scoring_amounts(node, pod, id, false);
            if alloc == 0 {
                continue;
            }
            let s = match self.strategy {
                ScoringStrategyType::LeastAllocated => least_requested(req, alloc),
                ScoringStrategyType::MostAllocated => most_requested(req, alloc),
                ScoringStrategyType::RequestedToCapacityRatio => {
                    let s = broken_linear(&self.shape, if req > alloc { 100 } else { req * 100 / alloc });
                    if s <= 0 {
                        continue;
                    }
                    s
                }
            };
            total += s * weight;
            weights += weight;
        }
        match (weights, self.strategy) {
            (0, _) => 0,
            (_, ScoringStrategyType::RequestedToCapacityRatio) => (total as f64 / weights as f64).round() as i64,
            _ => total / weights,
        }
    }
}

/// (allocatable, requested-after-placing-the-pod) of `id` on `node`, as upstream's
/// `calculateResourceAllocatableRequest`: `use_requested` picks actual requests over the
/// non-zero view (BalancedAllocation uses actual), and an extended resource the pod does not
/// ask for yields (0, 0) so that it is not scored.
pub fn scoring_amounts(node: &NodeInfo, pod: &Pod, id: ResourceId, use_requested: bool) -> (i64, i64) {
    let (node_req, pod_req) = if use_requested || id.index() >= 2 {
        (node.requested.get(id), pod.requests.get(id))
    } else {
        (node.non_zero_requested.get(id), pod.non_zero_requests.get(id))
    };
    if id.index() >= 3 && pod_req == 0 {
        return (0, 0);
    }
    (node.node.allocatable.get(id), node_req + pod_req)
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

fn broken_linear(shape: &[(i64, i64)], p: i64) -> i64 {
    for (i, &(u, s)) in shape.iter().enumerate() {
        if p <= u {
            if i == 0 {
                return s;
            }
            let (pu, ps) = shape[i - 1];
            return ps + (s - ps) * (p - pu) / (u - pu);
        }
    }
    shape.last().map_or(0, |&(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use crate::resources::ResourceVec;

    fn fit(args: serde_json::Value) -> NodeResourcesFit {
        let args: NodeResourcesFitArgs = serde_json::from_value(args).unwrap_or_default();
        NodeResourcesFit::from_args(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn default_fit() -> NodeResourcesFit {
        NodeResourcesFit::from_args(NodeResourcesFitArgs::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn filter_lists_every_short_resource() {
        let ni = node_info(0, node("n", 1000, GI), vec![pod("a", 800, GI / 2)]);
        let s = default_fit().filter(&CycleState::new(), &pod("p", 300, GI), &ni);
        assert_eq!(s.code, Code::Unschedulable);
        assert_eq!(s.reasons, vec![Reason::Borrowed("Insufficient cpu"), Reason::Borrowed("Insufficient memory")]);
        assert!(default_fit().filter(&CycleState::new(), &pod("p", 200, GI / 2), &ni).is_success());
    }

    #[test]
    fn request_beyond_allocatable_is_unresolvable() {
        let ni = node_info(0, node("n", 1000, GI), vec![]);
        let s = default_fit().filter(&CycleState::new(), &pod("p", 2000, 0), &ni);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        let gpu = with_resource(ResourceVec::ZERO, "nvidia.com/gpu", 1);
        let p = Pod::new("default", "g", gpu);
        let s = default_fit().filter(&CycleState::new(), &p, &ni);
        assert_eq!(s.reasons, vec![Reason::Owned("Insufficient nvidia.com/gpu".into())]);
    }

    #[test]
    fn pod_count_is_limited() {
        let mut n = node("n", 1000, GI);
        n.allowed_pods = 1;
        let ni = node_info(0, n, vec![pod("a", 0, 0)]);
        let s = default_fit().filter(&CycleState::new(), &pod("p", 0, 0), &ni);
        assert_eq!(s.reasons, vec![Reason::Borrowed(REASON_TOO_MANY_PODS)]);
    }

    #[test]
    fn ignored_resources_are_not_checked() {
        let ni = node_info(0, node("n", 1000, GI), vec![]);
        let p = Pod::new("default", "g", with_resource(ResourceVec::ZERO, "example.com/foo", 1));
        assert!(!default_fit().filter(&CycleState::new(), &p, &ni).is_success());
        assert!(
            fit(serde_json::json!({"ignoredResources": ["example.com/foo"]}))
                .filter(&CycleState::new(), &p, &ni)
                .is_success()
        );
        assert!(
            fit(serde_json::json!({"ignoredResourceGroups": ["example.com"]}))
                .filter(&CycleState::new(), &p, &ni)
                .is_success()
        );
    }

    // Upstream's documented LeastAllocated example: node 4000m/10000, pod 3000m/5000 on an
    // empty node scores ((4000-3000)*100/4000 + (10000-5000)*100/10000)/2 = (25+50)/2 = 37.
    #[test]
    fn least_allocated_matches_upstream_example() {
        let ni = node_info(0, node("n", 4000, 10000), vec![]);
        assert_eq!(default_fit().score(&CycleState::new(), &pod("p", 3000, 5000), &ni), 37);
    }

    #[test]
    fn most_allocated_prefers_fuller_nodes() {
        let most = fit(serde_json::json!({"scoringStrategy": {"type": "MostAllocated"}}));
        let ni = node_info(0, node("n", 4000, 10000), vec![]);
        // (3000*100/4000 + 5000*100/10000)/2 = (75+50)/2 = 62
        assert_eq!(most.score(&CycleState::new(), &pod("p", 3000, 5000), &ni), 62);
    }

    #[test]
    fn zero_requests_count_as_defaults_when_scoring() {
        let ni = node_info(0, node("n", 1000, 1000 * 1024 * 1024), vec![]);
        // cpu: (1000-100)*100/1000 = 90; memory: (1000Mi-200Mi)*100/1000Mi = 80
        assert_eq!(default_fit().score(&CycleState::new(), &pod("p", 0, 0), &ni), 85);
    }

    #[test]
    fn requested_to_capacity_ratio_follows_the_shape() {
        let r = fit(serde_json::json!({"scoringStrategy": {
            "type": "RequestedToCapacityRatio",
            "resources": [{"name": "cpu", "weight": 1}],
            "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}
        }}));
        let ni = node_info(0, node("n", 4000, GI), vec![]);
        assert_eq!(r.score(&CycleState::new(), &pod("p", 1000, 0), &ni), 25);
        assert_eq!(broken_linear(&[(0, 100), (50, 0), (100, 100)], 25), 50);
        assert_eq!(broken_linear(&[(10, 30), (90, 70)], 95), 70);
        assert_eq!(broken_linear(&[(10, 30), (90, 70)], 5), 30);
    }

    #[test]
    fn bad_args_name_the_field() {
        let bad: Result<NodeResourcesFitArgs, _> =
            serde_json::from_value(serde_json::json!({"scoringStrategy": {"type": "Bogus"}}));
        assert!(bad.is_err());
        let e = NodeResourcesFit::from_args(NodeResourcesFitArgs {
            scoring_strategy: ScoringStrategy {
                resources: vec![ResourceSpec { name: "cpu".into(), weight: 0 }],
                ..Default::default()
            },
            ..Default::default()
        });
        assert!(matches!(e, Err(PluginError::BadArgs { message, .. }) if message.contains("weight")));
        let e = new(Some(&serde_json::json!({"unknownField": 1})));
        assert!(e.is_err());
    }
}
