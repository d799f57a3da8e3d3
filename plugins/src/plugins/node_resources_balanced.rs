//! NodeResourcesBalancedAllocation: prefer nodes whose utilisation stays even across
//! resources once the pod is placed, so that no node runs out of CPU with memory to spare.
//!
//! Score is `(1 - std) * 100`, where std is the standard deviation of requested / allocatable
//! (capped at 1) over the configured resources. Unlike NodeResourcesFit it uses the pods'
//! actual requests, not the 100m / 200Mi defaults, and it does not score pods that request
//! none of the resources: a node full of best-effort pods would otherwise look perfectly
//! balanced and attract every best-effort pod (kubernetes/kubernetes#129138).

use std::sync::Arc;

use serde::Deserialize;

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, PreScorePlugin, ScorePlugin};
use crate::model::Pod;
use crate::nodeinfo::NodeInfo;
use crate::plugins::node_resources_fit::{ResourceSpec, ScoredResources, default_resources, scoring_amounts};
use crate::registry::{PluginArgs, PluginError, decode_args};
use crate::resources::ResourceId;
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "NodeResourcesBalancedAllocation";

/// `NodeResourcesBalancedAllocationArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeResourcesBalancedAllocationArgs {
    /// Resources whose balance is scored (default cpu and memory). Weights must be 1.
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
}

impl Default for NodeResourcesBalancedAllocationArgs {
    fn default() -> Self {
        NodeResourcesBalancedAllocationArgs { resources: default_resources() }
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct NodeResourcesBalancedAllocation {
    resources: ScoredResources,
}

/// Makes the plugin from `NodeResourcesBalancedAllocationArgs`.
pub fn new(args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(NodeResourcesBalancedAllocation::from_args(decode_args(NAME, args)?)?))
}

impl NodeResourcesBalancedAllocation {
    /// Builds the plugin from decoded args, applying upstream's defaulting and validation.
    pub fn from_args(
        args: NodeResourcesBalancedAllocationArgs,
    ) -> Result<NodeResourcesBalancedAllocation, PluginError> {
        // Upstream defaulting: an empty list means cpu and memory, a zero weight means 1.
        let mut specs = if args.resources.is_empty() { default_resources() } else { args.resources };
        for s in specs.iter_mut().filter(|s| s.weight == 0) {
            s.weight = 1;
        }
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|prev| prev.name == s.name) {
                return Err(PluginError::bad_args(NAME, format!("resources[{i}].name: duplicate value {:?}", s.name)));
            }
            // The weight does not enter the score; upstream rejects anything but 1.
            if s.weight != 1 {
                return Err(PluginError::bad_args(NAME, format!("resources[{i}].weight: must be 1, got {}", s.weight)));
            }
        }
        Ok(NodeResourcesBalancedAllocation { resources: ScoredResources::resolve(NAME, &specs)? })
    }

    /// Whether the pod requests none of the scored resources (upstream's best-effort test).
    fn requests_nothing(&self, pod: &Pod) -> bool {
        self.resources.0.iter().all(|&(id, _)| pod.requests.get(id) == 0)
    }

    /// requested / allocatable after placing the pod, capped at 1; `None` when the node has
    /// none of the resource or the resource is an extended one the pod does not ask for.
    fn fraction(node: &NodeInfo, pod: &Pod, id: ResourceId) -> Option<f64> {
        let (allocatable, requested) = scoring_amounts(node, pod, id, true);
        (allocatable != 0).then(|| (requested as f64 / allocatable as f64).min(1.0))
    }

    fn fractions<'a>(&'a self, node: &'a NodeInfo, pod: &'a Pod) -> impl Iterator<Item = f64> + 'a {
        self.resources.0.iter().filter_map(move |&(id, _)| Self::fraction(node, pod, id))
    }

    /// Upstream special-cases two resources as |f0 - f1| / 2, and rounding must match it.
    fn std_dev(&self, node: &NodeInfo, pod: &Pod) -> f64 {
        let (n, sum) = self.fractions(node, pod).fold((0usize, 0.0), |(n, sum), f| (n + 1, sum + f));
        match n {
            0 | 1 => 0.0,
            2 => {
                let mut it = self.fractions(node, pod);
                let (a, b) = (it.next().unwrap_or(0.0), it.next().unwrap_or(0.0));
                ((a - b) / 2.0).abs()
            }
            _ => {
                let mean = sum / n as f64;
                let var = self.fractions(node, pod).map(|f| (f - mean) * (f - mean)).sum::<f64>() / n as f64;
                var.sqrt()
            }
        }
    }
}

impl Plugin for NodeResourcesBalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
    /// Reads only the node and the pod's signature fields.
    fn node_local(&self) -> bool {
        true
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for NodeResourcesBalancedAllocation {
    fn pre_score(&self, _: &mut CycleState, pod: &Pod, _: &Snapshot, _: &[&NodeInfo]) -> Status {
        if self.requests_nothing(pod) {
            return Status::skip();
        }
        Status::success()
    }
}

impl ScorePlugin for NodeResourcesBalancedAllocation {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        // Upstream's fallback when PreScore did not run: best-effort pods score 0.
        if self.requests_nothing(pod) {
            return 0;
        }
        ((1.0 - self.std_dev(node, pod)) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Node;
    use crate::plugins::testing::*;
    use crate::resources::ResourceVec;

    const GPU: &str = "nvidia.com/gpu";

    fn default_plugin() -> NodeResourcesBalancedAllocation {
        NodeResourcesBalancedAllocation::from_args(NodeResourcesBalancedAllocationArgs::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn plugin(args: serde_json::Value) -> NodeResourcesBalancedAllocation {
        let args = serde_json::from_value(args).unwrap_or_else(|e| panic!("{e}"));
        NodeResourcesBalancedAllocation::from_args(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn score(p: &NodeResourcesBalancedAllocation, pod: &Pod, n: Node, pods: Vec<Pod>) -> i64 {
        p.score(&CycleState::new(), pod, &node_info(0, n, pods))
    }

    fn with_gpus(mut n: Node, gpus: i64) -> Node {
        n.allocatable = with_resource(n.allocatable, GPU, gpus);
        n
    }

    // Upstream TestNodeResourcesBalancedAllocation, with upstream's arithmetic.
    #[test]
    fn score_follows_upstream_cases() {
        let b = default_plugin();
        let cpu_and_memory = || pod("p", 3000, 5000);
        let cpu_only = || pod("q", 3000, 0);
        // cpu 3000/4000 = .75, memory 5000/10000 = .5: (1 - .125) * 100 = 87
        assert_eq!(score(&b, &cpu_and_memory(), node("n1", 4000, 10000), vec![]), 87);
        // cpu 3000/6000 = .5, memory .5: 100
        assert_eq!(score(&b, &cpu_and_memory(), node("n2", 6000, 10000), vec![]), 100);
        // cpu 6000/10000 = .6, memory 5000/20000 = .25: (1 - .175) * 100 = 82
        assert_eq!(score(&b, &cpu_and_memory(), node("n1", 10000, 20000), vec![cpu_only()]), 82);
        // cpu .6, memory 10000/20000 = .5: (1 - .05) * 100 = 95
        assert_eq!(score(&b, &cpu_and_memory(), node("n2", 10000, 20000), vec![cpu_and_memory()]), 95);
        // cpu .6, memory 10000/50000 = .2: (1 - .2) * 100 = 80
        assert_eq!(score(&b, &cpu_and_memory(), node("n2", 10000, 50000), vec![cpu_and_memory()]), 80);
        // cpu 6000/4000 capped at 1, memory 0: (1 - .5) * 100 = 50
        assert_eq!(score(&b, &cpu_only(), node("n1", 4000, 10000), vec![cpu_only()]), 50);
        // cpu capped at 1, memory 5000/10000 = .5: (1 - .25) * 100 = 75
        assert_eq!(score(&b, &cpu_only(), node("n2", 4000, 10000), vec![cpu_and_memory()]), 75);
    }

    #[test]
    fn actual_requests_are_used_not_scoring_defaults() {
        // A pod with no memory request adds nothing to memory, where NodeResourcesFit would
        // count 200Mi: cpu 1000/2000 = .5, memory 0: (1 - .25) * 100 = 75.
        assert_eq!(score(&default_plugin(), &pod("p", 1000, 0), node("n", 2000, 1000 * 1024 * 1024), vec![]), 75);
    }

    #[test]
    fn three_resources_use_the_full_standard_deviation() {
        let b =
            plugin(serde_json::json!({"resources": [{"name": "cpu"}, {"name": "memory"}, {"name": GPU, "weight": 1}]}));
        let p = Pod::new("default", "p", with_resource(ResourceVec::cpu_mem(1000, 5000), GPU, 2));
        // .25, .5, .5: mean 5/12, variance 1/72, std .1179: (1 - .1179) * 100 = 88
        assert_eq!(score(&b, &p, with_gpus(node("n", 4000, 10000), 4), vec![]), 88);
        // An extended resource the pod does not request is left out: .25, .5 -> 87.
        assert_eq!(score(&b, &pod("p", 1000, 5000), with_gpus(node("n", 4000, 10000), 4), vec![]), 87);
        // So is a resource the node does not have: only cpu and memory remain.
        assert_eq!(score(&b, &p, node("n", 4000, 10000), vec![]), 87);
    }

    #[test]
    fn resources_the_node_lacks_are_skipped() {
        // Only cpu has allocatable: one fraction, no deviation.
        assert_eq!(score(&default_plugin(), &pod("p", 1000, 5000), node("n", 4000, 0), vec![]), 100);
        assert_eq!(score(&default_plugin(), &pod("p", 1000, 5000), node("n", 0, 0), vec![]), 100);
    }

    #[test]
    fn best_effort_pods_are_not_scored() {
        let snap = snapshot(vec![], &[]);
        let mut cs = CycleState::new();
        let b = default_plugin();
        assert_eq!(b.pre_score(&mut cs, &pod("p", 0, 0), &snap, &[]), Status::skip());
        assert!(b.pre_score(&mut cs, &pod("p", 0, 1), &snap, &[]).is_success());
        assert_eq!(score(&b, &pod("p", 0, 0), node("n", 4000, 10000), vec![]), 0);
        // Requests outside the scored resources do not count.
        let gpu_only = Pod::new("default", "g", with_resource(ResourceVec::ZERO, GPU, 1));
        assert_eq!(b.pre_score(&mut cs, &gpu_only, &snap, &[]), Status::skip());
    }

    #[test]
    fn args_follow_upstream_defaulting_and_validation() {
        assert_eq!(plugin(serde_json::json!({"resources": []})).resources, default_plugin().resources);
        assert_eq!(
            plugin(serde_json::json!({"resources": [{"name": "cpu", "weight": 0}]})).resources.0,
            vec![(ResourceId::CPU, 1)]
        );
        let err = |args: serde_json::Value| match new(Some(&args)) {
            Err(PluginError::BadArgs { message, .. }) => message,
            other => panic!("expected BadArgs, got {other:?}"),
        };
        assert!(err(serde_json::json!({"resources": [{"name": "cpu", "weight": 2}]})).contains("resources[0].weight"));
        assert!(
            err(serde_json::json!({"resources": [{"name": "cpu"}, {"name": "cpu"}]})).contains("resources[1].name")
        );
        assert!(new(Some(&serde_json::json!({"bogus": true}))).is_err());
        assert!(new(None).is_ok());
    }
}
