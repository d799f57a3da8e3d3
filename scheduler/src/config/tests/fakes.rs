//! Plugins that implement exactly the points a test says, so the expansion rules can be pinned
//! without depending on which built-in plugins are finished.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tessera_plugins::framework::{
    BindPlugin, CycleState, FilterPlugin, PermitPlugin, Plugin, PostBindPlugin, PostFilterInput, PostFilterPlugin,
    PostFilterResult, PreBindPlugin, PreEnqueuePlugin, PreFilterPlugin, PreScorePlugin, QueueSortPlugin, QueuedPod,
    ReservePlugin, ScorePlugin,
};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::Pod;
use tessera_plugins::nodeinfo::{NodeId, NodeInfo};
use tessera_plugins::registry::{PluginArgs, PluginError, Registry, decode_args};
use tessera_plugins::snapshot::Snapshot;
use tessera_plugins::status::Status;

use crate::config::ExtensionPoint as E;

#[derive(Debug)]
pub struct Fake {
    name: &'static str,
    points: &'static [E],
}

impl Fake {
    fn has(&self, p: E) -> bool {
        self.points.contains(&p)
    }
}

impl Plugin for Fake {
    fn name(&self) -> &'static str {
        self.name
    }
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        self.has(E::PreEnqueue).then_some(self as &dyn PreEnqueuePlugin)
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        self.has(E::QueueSort).then_some(self as &dyn QueueSortPlugin)
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        self.has(E::PreFilter).then_some(self as &dyn PreFilterPlugin)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        self.has(E::Filter).then_some(self as &dyn FilterPlugin)
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        self.has(E::PostFilter).then_some(self as &dyn PostFilterPlugin)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        self.has(E::PreScore).then_some(self as &dyn PreScorePlugin)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        self.has(E::Score).then_some(self as &dyn ScorePlugin)
    }
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        self.has(E::Reserve).then_some(self as &dyn ReservePlugin)
    }
    fn as_permit(&self) -> Option<&dyn PermitPlugin> {
        self.has(E::Permit).then_some(self as &dyn PermitPlugin)
    }
    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        self.has(E::PreBind).then_some(self as &dyn PreBindPlugin)
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        self.has(E::Bind).then_some(self as &dyn BindPlugin)
    }
    fn as_post_bind(&self) -> Option<&dyn PostBindPlugin> {
        self.has(E::PostBind).then_some(self as &dyn PostBindPlugin)
    }
}

impl PreEnqueuePlugin for Fake {
    fn pre_enqueue(&self, _: &Pod) -> Status {
        Status::success()
    }
}
impl QueueSortPlugin for Fake {
    fn less(&self, _: &QueuedPod, _: &QueuedPod) -> bool {
        false
    }
}
impl PreFilterPlugin for Fake {
    fn pre_filter(&self, _: &mut CycleState, _: &Pod, _: &Snapshot) -> Result<Option<Vec<NodeId>>, Status> {
        Ok(None)
    }
}
impl FilterPlugin for Fake {
    fn filter(&self, _: &CycleState, _: &Pod, _: &NodeInfo) -> Status {
        Status::success()
    }
}
impl PostFilterPlugin for Fake {
    fn post_filter(&self, _: &PostFilterInput<'_>) -> PostFilterResult {
        PostFilterResult::Clear(Status::unschedulable("fake"))
    }
}
impl PreScorePlugin for Fake {
    fn pre_score(&self, _: &mut CycleState, _: &Pod, _: &Snapshot, _: &[&NodeInfo]) -> Status {
        Status::success()
    }
}
impl ScorePlugin for Fake {
    fn score(&self, _: &CycleState, _: &Pod, _: &NodeInfo) -> i64 {
        0
    }
}
impl ReservePlugin for Fake {
    fn reserve(&self, _: &mut CycleState, _: &Pod, _: &NodeInfo) -> Status {
        Status::success()
    }
    fn unreserve(&self, _: &mut CycleState, _: &Pod, _: &NodeInfo) {}
}
impl PermitPlugin for Fake {
    fn permit(&self, _: &mut CycleState, _: &Pod, _: Sym) -> (Status, Duration) {
        (Status::success(), Duration::ZERO)
    }
}
impl PreBindPlugin for Fake {
    fn pre_bind(&self, _: &CycleState, _: &Pod, _: Sym) -> Status {
        Status::success()
    }
}
impl BindPlugin for Fake {
    fn bind(&self, _: &CycleState, _: &Pod, _: Sym) -> Status {
        Status::success()
    }
}
impl PostBindPlugin for Fake {
    fn post_bind(&self, _: &CycleState, _: &Pod, _: Sym) {}
}

macro_rules! fake {
    ($f:ident, $name:literal, [$($p:ident),*]) => {
        fn $f(_: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
            Ok(Arc::new(Fake { name: $name, points: &[$(E::$p),*] }))
        }
    };
}

// The points each upstream plugin implements in kube-scheduler v1.37.
fake!(priority_sort, "PrioritySort", [QueueSort]);
fake!(node_unschedulable, "NodeUnschedulable", [Filter]);
fake!(node_name, "NodeName", [Filter]);
fake!(taint_toleration, "TaintToleration", [Filter, PreScore, Score]);
fake!(node_affinity, "NodeAffinity", [PreFilter, Filter, PreScore, Score]);
fake!(node_ports, "NodePorts", [PreFilter, Filter]);
fake!(node_resources_fit, "NodeResourcesFit", [PreFilter, Filter, PreScore, Score]);
fake!(pod_topology_spread, "PodTopologySpread", [PreFilter, Filter, PreScore, Score]);
fake!(inter_pod_affinity, "InterPodAffinity", [PreFilter, Filter, PreScore, Score]);
fake!(balanced, "NodeResourcesBalancedAllocation", [PreScore, Score]);
fake!(image_locality, "ImageLocality", [Score]);
fake!(dynamic_resources, "DynamicResources", [PreEnqueue, PreFilter, Filter, PostFilter, Reserve, PreBind]);
fake!(default_preemption, "DefaultPreemption", [PostFilter]);
fake!(default_binder, "DefaultBinder", [Bind]);
// Plugins of our own for tests.
fake!(gang, "Gang", [PreEnqueue, Reserve, Permit]);
fake!(other_sort, "OtherSort", [QueueSort]);
fake!(nothing, "Nothing", []);

/// Args of `Picky`: a level up to 10.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PickyArgs {
    #[serde(default)]
    level: u32,
}

/// A Filter + Score plugin whose factory validates its args.
fn picky(args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    let a: PickyArgs = decode_args("Picky", args)?;
    if a.level > 10 {
        return Err(PluginError::bad_args("Picky", format!("level must be at most 10, got {}", a.level)));
    }
    Ok(Arc::new(Fake { name: "Picky", points: &[E::Filter, E::Score] }))
}

/// A QueueSort plugin that accepts any args.
fn tuned_sort(_: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(Fake { name: "TunedSort", points: &[E::QueueSort] }))
}

/// The eleven default plugins Tessera has, each implementing the points upstream's does.
pub fn upstream_like() -> Registry {
    let mut r = Registry::new();
    r.register("PrioritySort", priority_sort);
    r.register("NodeUnschedulable", node_unschedulable);
    r.register("NodeName", node_name);
    r.register("TaintToleration", taint_toleration);
    r.register("NodeAffinity", node_affinity);
    r.register("NodePorts", node_ports);
    r.register("NodeResourcesFit", node_resources_fit);
    r.register("PodTopologySpread", pod_topology_spread);
    r.register("InterPodAffinity", inter_pod_affinity);
    r.register("NodeResourcesBalancedAllocation", balanced);
    r.register("ImageLocality", image_locality);
    r.register("DefaultBinder", default_binder);
    r
}

/// [`upstream_like`] plus the test-only plugins.
pub fn with_extras() -> Registry {
    let mut r = upstream_like();
    r.register("Gang", gang);
    r.register("OtherSort", other_sort);
    r.register("TunedSort", tuned_sort);
    r.register("Nothing", nothing);
    r.register("Picky", picky);
    r
}

/// [`upstream_like`] plus fakes of two upstream defaults Tessera does not have yet.
pub fn with_future_defaults() -> Registry {
    let mut r = upstream_like();
    r.register("DynamicResources", dynamic_resources);
    r.register("DefaultPreemption", default_preemption);
    r
}
