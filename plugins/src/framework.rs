//! The extension points, named and ordered as in kube-scheduler, and the per-profile runner
//! that calls them.
//!
//! A plugin is one object implementing [`Plugin`] plus any of the extension-point traits; it
//! advertises which through the `as_*` methods, so a profile can put one instance at several
//! points (as upstream's `multiPoint` does). Filter and Score take a single [`NodeInfo`] and
//! must not allocate on success: they run for every (pod, node) pair.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use crate::dra::model::ClaimAllocation;
use crate::intern::Sym;
use crate::model::Pod;
use crate::nodeinfo::{DeviceChoice, NodeId, NodeInfo};
use crate::snapshot::Snapshot;
use crate::status::{Code, Diagnosis, Status};

/// The highest score a Score plugin gives after normalisation (upstream `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// A value a plugin keeps in the [`CycleState`]: any `Clone` type, so that preemption can try
/// removing pods on a copy of the state (upstream's `CycleState.Clone`).
pub trait StateData: Any + Send + Sync {
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn StateData>;
    /// The value, to downcast.
    fn as_any(&self) -> &dyn Any;
    /// The value, to downcast and change.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Send + Sync + Clone> StateData for T {
    fn clone_box(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Data a plugin computes in PreFilter/PreScore and reads back in Filter/Score, for one pod in
/// one scheduling cycle.
#[derive(Default)]
pub struct CycleState {
    entries: Vec<(&'static str, Box<dyn StateData>)>,
    /// Bit i set: the profile's i-th Filter plugin is skipped (its PreFilter said Skip).
    skip_filter: u64,
    /// Bit i set: the profile's i-th Score plugin is skipped (its PreScore said Skip).
    skip_score: u64,
    /// The devices Reserve plugins chose for the pod on the selected node.
    devices: DeviceChoice,
    /// The PreFilter plugins that narrowed the candidate nodes, in profile order.
    narrowed_by: Vec<&'static str>,
}

impl std::fmt::Debug for CycleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<_> = self.entries.iter().map(|(k, _)| *k).collect();
        f.debug_struct("CycleState").field("keys", &keys).finish()
    }
}

impl Clone for CycleState {
    fn clone(&self) -> CycleState {
        CycleState {
            entries: self.entries.iter().map(|(k, v)| (*k, (**v).clone_box())).collect(),
            skip_filter: self.skip_filter,
            skip_score: self.skip_score,
            devices: self.devices.clone(),
            narrowed_by: self.narrowed_by.clone(),
        }
    }
}

impl CycleState {
    /// An empty state.
    pub fn new() -> CycleState {
        CycleState::default()
    }

    /// Stores `value` under `key`, replacing any earlier value.
    pub fn write<T: StateData>(&mut self, key: &'static str, value: T) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = Box::new(value),
            None => self.entries.push((key, Box::new(value))),
        }
    }

    /// The value stored under `key`, if it has type `T`.
    pub fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        self.entries.iter().find(|(k, _)| *k == key).and_then(|(_, v)| (**v).as_any().downcast_ref())
    }

    /// The value stored under `key` to change, if it has type `T` (PreFilter extensions).
    pub fn read_mut<T: Any>(&mut self, key: &'static str) -> Option<&mut T> {
        self.entries.iter_mut().find(|(k, _)| *k == key).and_then(|(_, v)| (**v).as_any_mut().downcast_mut())
    }

    /// Records the GPUs the pod gets on the node being reserved (see [`ReservePlugin`]): the
    /// engine then places the pod on exactly these, and its binder checks they are still free.
    pub fn set_gpu_choice(&mut self, gpus: u64) {
        self.devices.gpus = Some(gpus);
    }

    /// The GPUs a Reserve plugin chose, if any.
    pub fn gpu_choice(&self) -> Option<u64> {
        self.devices.gpus
    }

    /// Records the DRA claims allocated for the pod on the node being reserved: the engine
    /// places the pod holding them, and its binder checks their devices are still free.
    pub fn set_claim_allocations(&mut self, claims: Vec<Arc<ClaimAllocation>>) {
        self.devices.claims = claims;
    }

    /// Everything Reserve plugins chose, leaving nothing behind.
    pub fn take_device_choice(&mut self) -> DeviceChoice {
        std::mem::take(&mut self.devices)
    }

    /// The PreFilter plugins that narrowed the candidate nodes (upstream's plugins "with
    /// nodes"): the nodes they left out are reported as not satisfying them.
    pub fn pre_filter_narrowed_by(&self) -> &[&'static str] {
        &self.narrowed_by
    }

    /// Whether the profile's `i`-th Filter plugin is skipped for this pod.
    pub fn skips_filter(&self, i: usize) -> bool {
        i < 64 && self.skip_filter & (1 << i) != 0
    }

    /// Whether the profile's `i`-th Score plugin is skipped for this pod.
    pub fn skips_score(&self, i: usize) -> bool {
        i < 64 && self.skip_score & (1 << i) != 0
    }
}

/// A pod waiting in the queue, as QueueSort compares them.
#[derive(Clone, Debug)]
pub struct QueuedPod {
    /// The pod.
    pub pod: Arc<Pod>,
    /// When it (or its unit) entered the queue, in engine ticks; earlier sorts first.
    pub timestamp: u64,
    /// How many scheduling attempts it has had.
    pub attempts: u32,
}

/// Every plugin is a `Plugin`; the `as_*` methods say which extension points it implements.
pub trait Plugin: Send + Sync + Debug {
    /// The name used in configuration and messages (`NodeResourcesFit`).
    fn name(&self) -> &'static str;
    /// Topology keys the plugin reads per-domain counts of for *every* pod (for example the
    /// keys of cluster default spread constraints). The engine keeps these tracked in the
    /// snapshot's [`TopologyIndex`](crate::topology::TopologyIndex), as it does the keys of
    /// each pod's own constraints.
    fn topology_keys(&self) -> Vec<Sym> {
        Vec::new()
    }
    /// Whether the plugin is *node-local*: its Filter verdict and raw Score for a node are
    /// functions of that node's [`NodeInfo`], of the plugin's configuration, and of the pod's
    /// node-local signature fields only (see [`same_node_local_signature`]) — never of other
    /// nodes, the topology index, namespaces, or other pod fields — and its PreFilter and
    /// PreScore decide (Skip, node restriction, the state Filter and Score read) from those
    /// same pod fields. The engine then reuses a node-local plugin's verdict and raw score for
    /// a node across pods with equal signatures while the node is unchanged. NormalizeScore is
    /// never reused: it always runs over the current pod's nodes. The default, `false`, is
    /// always safe.
    fn node_local(&self) -> bool {
        false
    }
    /// A new instance with the same configuration and none of what this one learned from the
    /// pods it saw (a plugin that learns keeps state across cycles). `None`, the default,
    /// means the plugin learns nothing and the instance itself can serve a new scheduler.
    fn fresh(&self) -> Option<Arc<dyn Plugin>> {
        None
    }
    /// The plugin as a PreEnqueue plugin.
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        None
    }
    /// The plugin as a QueueSort plugin.
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        None
    }
    /// The plugin as a PreFilter plugin.
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    /// The plugin as a Filter plugin.
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    /// The plugin as a PostFilter plugin.
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    /// The plugin as a PreScore plugin.
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    /// The plugin as a Score plugin.
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    /// The plugin as a Reserve plugin.
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
    /// The plugin as a Permit plugin.
    fn as_permit(&self) -> Option<&dyn PermitPlugin> {
        None
    }
    /// The plugin as a PreBind plugin.
    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        None
    }
    /// The plugin as a Bind plugin.
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
    /// The plugin as a PostBind plugin.
    fn as_post_bind(&self) -> Option<&dyn PostBindPlugin> {
        None
    }
}

/// Decides whether a pod may enter the active queue at all (scheduling gates, incomplete gangs).
pub trait PreEnqueuePlugin {
    /// Success admits the pod; anything else keeps it out with that reason.
    fn pre_enqueue(&self, pod: &Pod) -> Status;
}

/// Orders the active queue.
pub trait QueueSortPlugin {
    /// Whether `a` should be scheduled before `b`.
    fn less(&self, a: &QueuedPod, b: &QueuedPod) -> bool;
}

/// Runs once per pod before Filter.
pub trait PreFilterPlugin {
    /// Computes what Filter needs. `Ok(Some(nodes))` restricts the candidates to `nodes`;
    /// `Err` with [`Code::Skip`] skips this plugin's Filter; any other `Err` rejects the pod.
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot)
    -> Result<Option<Vec<NodeId>>, Status>;

    /// PreFilter extension (upstream's `AddPod`): `other` joins `node` in the view `pod` is
    /// evaluated against, as when preemption puts back a pod it had set aside. A plugin whose
    /// PreFilter counted pods across nodes updates its state; the default does nothing, right
    /// for plugins whose Filter reads only the node.
    fn add_pod(&self, _state: &mut CycleState, _pod: &Pod, _other: &Pod, _node: &NodeInfo, _snapshot: &Snapshot) {}

    /// PreFilter extension (upstream's `RemovePod`): `other` leaves `node` in the view, as a
    /// preemption victim does. See [`PreFilterPlugin::add_pod`].
    fn remove_pod(&self, _state: &mut CycleState, _pod: &Pod, _other: &Pod, _node: &NodeInfo, _snapshot: &Snapshot) {}
}

/// Decides whether a pod fits on one node.
pub trait FilterPlugin {
    /// Success, or why the pod does not fit on `node`.
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status;
}

/// Runs when no node fits (preemption).
pub trait PostFilterPlugin {
    /// Whether, and how, the pod could be made to fit by evicting others.
    fn post_filter(&self, input: &PostFilterInput<'_>) -> PostFilterResult;
}

/// What a PostFilter plugin sees of a pod that fit nowhere.
#[derive(Clone, Copy, Debug)]
pub struct PostFilterInput<'a> {
    /// The profile, whose Filter plugins decide whether the pod fits once victims are gone.
    pub profile: &'a Profile,
    /// The cycle state PreFilter left.
    pub state: &'a CycleState,
    /// The pod.
    pub pod: &'a Pod,
    /// The view the cycle ran on.
    pub snapshot: &'a Snapshot,
    /// Why each node failed.
    pub diagnosis: &'a Diagnosis,
    /// The pod's standing nomination from an earlier preemption, if any.
    pub nominated: Option<&'a Nomination>,
}

/// A preemption decided: the node the pod is nominated to and the pods to evict for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Nomination {
    /// The node.
    pub node: NodeId,
    /// The node's generation in the snapshot the victims were chosen on: the engine commits the
    /// preemption only if the node has not changed since, as the binder does a placement.
    pub seen_generation: u64,
    /// The pods to evict, most important first: on the node, and the fellow members of
    /// victims in gangs, wherever they run.
    pub victims: Vec<Victim>,
    /// How many victims break a PodDisruptionBudget (0 when a choice without existed).
    pub pdb_violations: usize,
}

/// A pod preemption evicts, and where it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Victim {
    /// Its node.
    pub node: NodeId,
    /// The pod.
    pub pod: Arc<Pod>,
}

/// What PostFilter made of a pod that fit nowhere.
#[derive(Clone, Debug, PartialEq)]
pub enum PostFilterResult {
    /// Evict the victims and nominate the pod to the node.
    Nominate(Nomination),
    /// Nothing to do now, and any standing nomination stands (the pod waits for the victims
    /// it already chose); the status says why.
    Keep(Status),
    /// No eviction would make the pod fit; any standing nomination is cleared.
    Clear(Status),
}

/// Runs once per pod before Score, with the feasible nodes.
pub trait PreScorePlugin {
    /// Computes what Score needs; [`Code::Skip`] skips this plugin's Score.
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot, nodes: &[&NodeInfo]) -> Status;
}

/// The nodes one pod is scored on, by id and by reference, in the same order.
#[derive(Clone, Copy, Debug)]
pub struct ScoreBatch<'a> {
    /// The snapshot the nodes are from.
    pub snapshot: &'a Snapshot,
    /// The nodes' ids: index per-node columns (the topology index's domains) without
    /// touching the nodes themselves, which at 100k nodes are mostly out of cache.
    pub ids: &'a [NodeId],
    /// The nodes.
    pub nodes: &'a [&'a NodeInfo],
}

impl<'a> ScoreBatch<'a> {
    /// A batch of `nodes` of `snapshot`.
    pub fn new(snapshot: &'a Snapshot, ids: &'a [NodeId], nodes: &'a [&'a NodeInfo]) -> ScoreBatch<'a> {
        ScoreBatch { snapshot, ids, nodes }
    }
}

/// Ranks feasible nodes.
pub trait ScorePlugin {
    /// The raw score of `node`.
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> i64;

    /// The raw scores of every node of `batch` into `out` (same length, same order). The
    /// default calls [`ScorePlugin::score`] per node; a plugin overrides it to read its cycle
    /// state once per pod rather than once per node, or to look nodes up by id. Must give
    /// exactly what `score` gives.
    fn score_batch(&self, state: &CycleState, pod: &Pod, batch: ScoreBatch<'_>, out: &mut [i64]) {
        for (o, n) in out.iter_mut().zip(batch.nodes) {
            *o = self.score(state, pod, n);
        }
    }

    /// Rescales raw scores (one per node, in the order scored) to `0..=MAX_NODE_SCORE`.
    /// Plugins whose raw scores are already in range keep the default, which does nothing.
    fn normalize_score(&self, _state: &CycleState, _pod: &Pod, _scores: &mut [i64]) {}
}

/// Claims or releases per-plugin resources (devices) when a placement is decided or undone.
/// A plugin that picks the pod's devices records them in the cycle state
/// ([`CycleState::set_gpu_choice`], [`CycleState::set_claim_allocations`]).
pub trait ReservePlugin {
    /// Claims what `pod` needs on `node`.
    fn reserve(&self, state: &mut CycleState, pod: &Pod, node: &NodeInfo) -> Status;
    /// Releases what `reserve` claimed.
    fn unreserve(&self, state: &mut CycleState, pod: &Pod, node: &NodeInfo);
}

/// Holds a reserved pod until it may bind (gangs wait here for their members).
pub trait PermitPlugin {
    /// Success lets the pod bind; [`Code::Wait`] holds it for at most the duration.
    fn permit(&self, state: &mut CycleState, pod: &Pod, node: Sym) -> (Status, Duration);
}

/// Prepares the API before binding (writes DRA allocations).
pub trait PreBindPlugin {
    /// Success, or why the pod cannot be bound.
    fn pre_bind(&self, state: &CycleState, pod: &Pod, node: Sym) -> Status;
}

/// Binds the pod to the node.
pub trait BindPlugin {
    /// Success, [`Code::Skip`] to let the next Bind plugin act, or a failure.
    fn bind(&self, state: &CycleState, pod: &Pod, node: Sym) -> Status;
}

/// Learns that a pod was bound.
pub trait PostBindPlugin {
    /// Informational.
    fn post_bind(&self, state: &CycleState, pod: &Pod, node: Sym);
}

/// A Score plugin with its weight in a profile.
#[derive(Clone, Debug)]
pub struct WeightedScore {
    /// The plugin.
    pub plugin: Arc<dyn Plugin>,
    /// Its weight.
    pub weight: i64,
}

/// How the engine chooses among nodes with the same best score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TieBreak {
    /// Uniformly at random (upstream's reservoir sampling).
    #[default]
    Random,
    /// The node first in a fixed pseudo-random order of the nodes, drawn from the salt, so
    /// that equal choices keep landing on the same nodes and the others stay empty. This is
    /// how the FGD paper's simulator breaks ties (the smallest node name, names carrying a
    /// random per-run prefix), and what its FGD results depend on.
    Stable(u64),
}

/// One scheduling profile: which plugins run at which point, in order. Built from
/// configuration by `tessera-scheduler`; immutable afterwards and shared by every worker.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// `schedulerName` that pods select this profile by.
    pub scheduler_name: String,
    /// The QueueSort plugin (exactly one upstream; `None` means priority then age).
    pub queue_sort: Option<Arc<dyn Plugin>>,
    /// PreEnqueue plugins.
    pub pre_enqueue: Vec<Arc<dyn Plugin>>,
    /// PreFilter plugins.
    pub pre_filter: Vec<Arc<dyn Plugin>>,
    /// Filter plugins, in the order they run.
    pub filter: Vec<Arc<dyn Plugin>>,
    /// PostFilter plugins.
    pub post_filter: Vec<Arc<dyn Plugin>>,
    /// PreScore plugins.
    pub pre_score: Vec<Arc<dyn Plugin>>,
    /// Score plugins with weights.
    pub score: Vec<WeightedScore>,
    /// Reserve plugins.
    pub reserve: Vec<Arc<dyn Plugin>>,
    /// Permit plugins.
    pub permit: Vec<Arc<dyn Plugin>>,
    /// PreBind plugins.
    pub pre_bind: Vec<Arc<dyn Plugin>>,
    /// Bind plugins.
    pub bind: Vec<Arc<dyn Plugin>>,
    /// PostBind plugins.
    pub post_bind: Vec<Arc<dyn Plugin>>,
    /// `percentageOfNodesToScore`; `None` or 0 means upstream's adaptive default.
    pub percentage_of_nodes_to_score: Option<u32>,
    /// How ties for the best score are broken (`tessera.tieBreak`).
    pub tie_break: TieBreak,
}

impl Profile {
    /// Every distinct plugin instance of the profile.
    pub fn plugins(&self) -> Vec<Arc<dyn Plugin>> {
        let all = self.queue_sort.iter().chain(&self.pre_enqueue).chain(&self.pre_filter).chain(&self.filter);
        let all = all.chain(&self.post_filter).chain(&self.pre_score).chain(self.score.iter().map(|w| &w.plugin));
        let all =
            all.chain(&self.reserve).chain(&self.permit).chain(&self.pre_bind).chain(&self.bind).chain(&self.post_bind);
        let mut out: Vec<Arc<dyn Plugin>> = Vec::new();
        for p in all {
            if !out.iter().any(|q| Arc::ptr_eq(q, p)) {
                out.push(p.clone());
            }
        }
        out
    }

    /// The profile as a new scheduler would have it: every plugin that learns replaced by a
    /// [`Plugin::fresh`] instance (one instance still serving every point it served), the
    /// others shared. A simulation run starts from this, so runs do not leak into each other.
    pub fn fresh(&self) -> Profile {
        let mut map: Vec<(Arc<dyn Plugin>, Arc<dyn Plugin>)> = Vec::new();
        for p in self.plugins() {
            if let Some(f) = p.fresh() {
                map.push((p, f));
            }
        }
        if map.is_empty() {
            return self.clone();
        }
        let swap = |p: &Arc<dyn Plugin>| {
            map.iter().find(|(old, _)| Arc::ptr_eq(old, p)).map_or_else(|| p.clone(), |(_, new)| new.clone())
        };
        let list = |l: &[Arc<dyn Plugin>]| l.iter().map(swap).collect::<Vec<_>>();
        Profile {
            scheduler_name: self.scheduler_name.clone(),
            queue_sort: self.queue_sort.as_ref().map(swap),
            pre_enqueue: list(&self.pre_enqueue),
            pre_filter: list(&self.pre_filter),
            filter: list(&self.filter),
            post_filter: list(&self.post_filter),
            pre_score: list(&self.pre_score),
            score: self.score.iter().map(|w| WeightedScore { plugin: swap(&w.plugin), weight: w.weight }).collect(),
            reserve: list(&self.reserve),
            permit: list(&self.permit),
            pre_bind: list(&self.pre_bind),
            bind: list(&self.bind),
            post_bind: list(&self.post_bind),
            percentage_of_nodes_to_score: self.percentage_of_nodes_to_score,
            tie_break: self.tie_break,
        }
    }

    /// Runs PreEnqueue plugins: the first non-success keeps the pod out of the active queue.
    pub fn run_pre_enqueue(&self, pod: &Pod) -> Status {
        for p in &self.pre_enqueue {
            if let Some(pe) = p.as_pre_enqueue() {
                let s = pe.pre_enqueue(pod);
                if !s.is_success() {
                    return s.with_plugin(p.name());
                }
            }
        }
        Status::success()
    }

    /// Whether `a` sorts before `b` in the queue.
    pub fn queue_less(&self, a: &QueuedPod, b: &QueuedPod) -> bool {
        match self.queue_sort.as_ref().and_then(|p| p.as_queue_sort()) {
            Some(qs) => qs.less(a, b),
            None => (b.pod.priority, a.timestamp) < (a.pod.priority, b.timestamp),
        }
    }

    /// Runs PreFilter plugins. Returns the candidate node restriction (intersection of what
    /// plugins returned), or the status that rejects the pod.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<Option<Vec<NodeId>>, Status> {
        let mut restriction: Option<Vec<NodeId>> = None;
        for p in &self.pre_filter {
            let Some(pf) = p.as_pre_filter() else { continue };
            match pf.pre_filter(state, pod, snapshot) {
                Ok(None) => {}
                Ok(Some(mut nodes)) => {
                    state.narrowed_by.push(p.name());
                    nodes.sort_unstable();
                    restriction = Some(match restriction {
                        None => nodes,
                        Some(prev) => prev.into_iter().filter(|n| nodes.binary_search(n).is_ok()).collect(),
                    });
                }
                Err(s) if s.code == Code::Skip => state.skip_filter |= position_mask(&self.filter, p),
                Err(s) => return Err(s.with_plugin(p.name())),
            }
        }
        Ok(restriction)
    }

    /// Runs every PreFilter plugin's `add_pod` (`delta` > 0) or `remove_pod` extension for
    /// `other` on `node`.
    pub fn run_pre_filter_extensions(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        other: &Pod,
        node: &NodeInfo,
        snapshot: &Snapshot,
        added: bool,
    ) {
        for p in &self.pre_filter {
            let Some(pf) = p.as_pre_filter() else { continue };
            if added {
                pf.add_pod(state, pod, other, node, snapshot);
            } else {
                pf.remove_pod(state, pod, other, node, snapshot);
            }
        }
    }

    /// Runs Filter plugins on one node in order; the first failure is the node's verdict.
    pub fn run_filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        for (i, p) in self.filter.iter().enumerate() {
            if state.skips_filter(i) {
                continue;
            }
            if let Some(f) = p.as_filter() {
                let s = f.filter(state, pod, node);
                if !s.is_success() {
                    return s.with_plugin(p.name());
                }
            }
        }
        Status::success()
    }

    /// Runs Filter plugins on one node as upstream's `RunFilterPluginsWithNominatedPods`: when
    /// pods of at least the pod's priority are nominated there, the pod must fit both with them
    /// and without them (the second pass keeps a nominated pod from satisfying an affinity it
    /// would not once it went elsewhere).
    pub fn run_filter_with_nominated(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        if !node.nominated.is_empty()
            && let Some(view) = node.with_nominated_for(pod)
        {
            let s = self.run_filter(state, pod, &view);
            if !s.is_success() {
                return s;
            }
        }
        self.run_filter(state, pod, node)
    }

    /// Runs PostFilter plugins in order: the first nomination wins; otherwise the last
    /// plugin's answer stands. `None` when the profile has no PostFilter plugin.
    pub fn run_post_filter(&self, input: &PostFilterInput<'_>) -> Option<PostFilterResult> {
        let mut last = None;
        for p in &self.post_filter {
            let Some(pf) = p.as_post_filter() else { continue };
            match pf.post_filter(input) {
                PostFilterResult::Nominate(n) => return Some(PostFilterResult::Nominate(n)),
                PostFilterResult::Keep(s) => last = Some(PostFilterResult::Keep(s.with_plugin(p.name()))),
                PostFilterResult::Clear(s) => last = Some(PostFilterResult::Clear(s.with_plugin(p.name()))),
            }
        }
        last
    }

    /// Runs PreScore plugins over the feasible nodes.
    pub fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        nodes: &[&NodeInfo],
    ) -> Result<(), Status> {
        for p in &self.pre_score {
            let Some(ps) = p.as_pre_score() else { continue };
            let s = ps.pre_score(state, pod, snapshot, nodes);
            match s.code {
                Code::Success => {}
                Code::Skip => {
                    let i = self.score.iter().position(|ws| Arc::ptr_eq(&ws.plugin, p));
                    state.skip_score |= i.filter(|i| *i < 64).map_or(0, |i| 1 << i);
                }
                _ => return Err(s.with_plugin(p.name())),
            }
        }
        Ok(())
    }

    /// Scores `batch`: each plugin's scores are normalised, weighted and summed per node.
    pub fn run_score(&self, state: &CycleState, pod: &Pod, batch: ScoreBatch<'_>) -> Vec<i64> {
        self.run_score_with(state, pod, batch, |_, _, _| false)
    }

    /// As [`Profile::run_score`], but `raw(i, plugin, scores)` may supply the raw scores of the
    /// `i`-th Score plugin (returning `true`) instead of the plugin computing them: the engine
    /// reuses node-local plugins' scores this way. Normalisation and weights still apply.
    pub fn run_score_with(
        &self,
        state: &CycleState,
        pod: &Pod,
        batch: ScoreBatch<'_>,
        mut raw: impl FnMut(usize, &dyn ScorePlugin, &mut [i64]) -> bool,
    ) -> Vec<i64> {
        let n = batch.nodes.len();
        let mut total = vec![0i64; n];
        let mut scores = vec![0i64; n];
        for (i, ws) in self.score.iter().enumerate() {
            if state.skips_score(i) || ws.weight == 0 {
                continue;
            }
            let Some(sp) = ws.plugin.as_score() else { continue };
            if !raw(i, sp, &mut scores) {
                sp.score_batch(state, pod, batch, &mut scores);
            }
            sp.normalize_score(state, pod, &mut scores);
            for (t, s) in total.iter_mut().zip(&scores) {
                *t += s * ws.weight;
            }
        }
        total
    }

    /// Runs Reserve plugins in order for `pod` on the selected `node`. On the first failure the
    /// plugins already run are unreserved in reverse order (upstream's semantics) and the
    /// failure is returned.
    pub fn run_reserve(&self, state: &mut CycleState, pod: &Pod, node: &NodeInfo) -> Result<(), Status> {
        for (i, p) in self.reserve.iter().enumerate() {
            let Some(r) = p.as_reserve() else { continue };
            let s = r.reserve(state, pod, node);
            if !s.is_success() && s.code != Code::Skip {
                for q in self.reserve[..i].iter().rev() {
                    if let Some(r) = q.as_reserve() {
                        r.unreserve(state, pod, node);
                    }
                }
                return Err(s.with_plugin(p.name()));
            }
        }
        Ok(())
    }

    /// How many feasible nodes to find before scoring, for a cluster of `num_nodes`
    /// (upstream `numFeasibleNodesToFind`).
    pub fn num_feasible_nodes_to_find(&self, num_nodes: usize) -> usize {
        const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
        const MIN_FEASIBLE_PERCENTAGE: i64 = 5;
        const BASE_PERCENTAGE: i64 = 50;
        let pct_config = i64::from(self.percentage_of_nodes_to_score.unwrap_or(0));
        if num_nodes < MIN_FEASIBLE_NODES_TO_FIND || pct_config >= 100 {
            return num_nodes;
        }
        let pct = if pct_config == 0 {
            (BASE_PERCENTAGE - num_nodes as i64 / 125).max(MIN_FEASIBLE_PERCENTAGE)
        } else {
            pct_config
        };
        let n = (num_nodes as i64 * pct / 100) as usize;
        n.max(MIN_FEASIBLE_NODES_TO_FIND)
    }
}

/// Whether pods `a` and `b` have the same node-local signature: every field a node-local
/// plugin ([`Plugin::node_local`]) may read — requests, `nodeName`, `nodeSelector`, node
/// affinity, tolerations, host ports, GPU request, DRA claims ([`PodClaim::same_needs`]).
///
/// [`PodClaim::same_needs`]: crate::dra::model::PodClaim::same_needs Pods of one workload usually do, whatever
/// their names and labels.
pub fn same_node_local_signature(a: &Pod, b: &Pod) -> bool {
    a.requests == b.requests
        && a.non_zero_requests == b.non_zero_requests
        && a.node_name == b.node_name
        && a.node_selector == b.node_selector
        && a.required_node_affinity == b.required_node_affinity
        && a.preferred_node_affinity == b.preferred_node_affinity
        && a.tolerations == b.tolerations
        && a.host_ports == b.host_ports
        && a.gpu == b.gpu
        && a.claims.len() == b.claims.len()
        && a.claims.iter().zip(&b.claims).all(|(x, y)| x.same_needs(y))
}

/// A hash of the fields [`same_node_local_signature`] compares: equal signatures, equal hashes.
pub fn node_local_signature_hash(pod: &Pod) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = crate::topology::FxHasher::default();
    pod.requests.hash(&mut h);
    pod.non_zero_requests.hash(&mut h);
    pod.node_name.hash(&mut h);
    pod.node_selector.hash(&mut h);
    pod.required_node_affinity.hash(&mut h);
    pod.preferred_node_affinity.hash(&mut h);
    pod.tolerations.hash(&mut h);
    pod.host_ports.hash(&mut h);
    pod.gpu.hash(&mut h);
    for c in &pod.claims {
        c.hash_needs(&mut h);
    }
    h.finish()
}

/// The skip bit of plugin `p` among `list` (by identity: one instance serves every point).
fn position_mask(list: &[Arc<dyn Plugin>], p: &Arc<dyn Plugin>) -> u64 {
    list.iter().position(|f| Arc::ptr_eq(f, p)).filter(|i| *i < 64).map_or(0, |i| 1 << i)
}

/// Upstream's `DefaultNormalizeScore`: scales scores to `0..=max_priority` by the highest
/// score; `reverse` flips them so that the lowest raw score wins. With every score 0, scores
/// stay 0, or all become `max_priority` when reversed.
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.fill(max_priority);
        }
        return;
    }
    for s in scores.iter_mut() {
        let scaled = max_priority * *s / max;
        *s = if reverse { max_priority - scaled } else { scaled };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_percentage_follows_upstream() {
        let p = Profile::default();
        assert_eq!(p.num_feasible_nodes_to_find(50), 50);
        assert_eq!(p.num_feasible_nodes_to_find(1000), 420); // 50 - 8 = 42%
        assert_eq!(p.num_feasible_nodes_to_find(5000), 500); // 50 - 40 = 10%
        assert_eq!(p.num_feasible_nodes_to_find(100_000), 5000); // floor of 5%
        let fixed = Profile { percentage_of_nodes_to_score: Some(100), ..Profile::default() };
        assert_eq!(fixed.num_feasible_nodes_to_find(5000), 5000);
        let small = Profile { percentage_of_nodes_to_score: Some(1), ..Profile::default() };
        assert_eq!(small.num_feasible_nodes_to_find(5000), 100);
    }

    #[test]
    fn fresh_replaces_learning_plugins_and_keeps_the_rest() {
        let r = crate::registry::Registry::builtin();
        let fgd = r.make("GpuTopology", Some(&serde_json::json!({"scoringStrategy": "FGD"}))).unwrap();
        let fit = r.make("NodeResourcesFit", None).unwrap();
        let p = Profile {
            pre_filter: vec![fgd.clone()],
            filter: vec![fit.clone(), fgd.clone()],
            score: vec![WeightedScore { plugin: fgd.clone(), weight: 1000 }],
            reserve: vec![fgd.clone()],
            tie_break: TieBreak::Stable(3),
            ..Profile::default()
        };
        let f = p.fresh();
        assert!(!Arc::ptr_eq(&f.filter[1], &fgd), "FGD learns: a new instance");
        assert!(Arc::ptr_eq(&f.filter[1], &f.pre_filter[0]) && Arc::ptr_eq(&f.filter[1], &f.reserve[0]));
        assert!(Arc::ptr_eq(&f.filter[1], &f.score[0].plugin), "one new instance serves every point");
        assert!(Arc::ptr_eq(&f.filter[0], &fit), "a plugin that learns nothing is shared");
        assert_eq!((f.score[0].weight, f.tie_break), (1000, TieBreak::Stable(3)));
    }

    #[test]
    fn reserve_records_the_gpus_a_plugin_chose() {
        use crate::model::{Gpu, GpuRequest};
        let r = crate::registry::Registry::builtin();
        let args = serde_json::json!({"scoringStrategy": "FGD", "learn": false,
            "typicalPods": [{"cpu": 1, "gpuCount": 1, "gpuMilli": 1000, "count": 1}]});
        let p = Profile { reserve: vec![r.make("GpuTopology", Some(&args)).unwrap()], ..Profile::default() };
        let mut node = crate::plugins::testing::node("n", 8000, 1 << 30);
        node.gpus = (0..2).map(|_| Gpu::new(crate::intern::Sym::new("T4"), 0)).collect();
        let mut info = NodeInfo::new(0, Arc::new(node));
        let mut held = Pod::new("default", "held", crate::resources::ResourceVec::ZERO);
        held.gpu = Some(GpuRequest { count: 1, milli: 600, models: vec![] });
        info.add_pod_with(Arc::new(held), &crate::nodeinfo::DeviceChoice::gpus(0b10));
        let mut q = Pod::new("default", "q", crate::resources::ResourceVec::ZERO);
        q.gpu = Some(GpuRequest { count: 1, milli: 400, models: vec![] });
        let mut state = CycleState::new();
        assert_eq!(state.gpu_choice(), None);
        assert!(p.run_reserve(&mut state, &q, &info).is_ok());
        assert_eq!(state.gpu_choice(), Some(0b10), "filling GPU1 strands nothing for whole-GPU pods");
        assert!(Profile::default().run_reserve(&mut CycleState::new(), &q, &info).is_ok());
    }

    #[test]
    fn cycle_state_round_trips_typed_values() {
        let mut s = CycleState::new();
        s.write("a", 5u32);
        s.write("a", 6u32);
        assert_eq!(s.read::<u32>("a"), Some(&6));
        assert_eq!(s.read::<i64>("a"), None);
        assert_eq!(s.read::<u32>("b"), None);
    }
}
