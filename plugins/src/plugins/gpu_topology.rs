//! GpuTopology: places pods on individual GPUs — whole GPUs kept inside one NVLink island,
//! shared GPUs (a share of one GPU, as in Alibaba's GPU-sharing clusters) packed best-fit —
//! and scores nodes so that GPUs fill up instead of fragmenting.
//!
//! Filter asks the node whether the request fits on its devices (count, share and model).
//! Scoring follows `args.scoringStrategy` ([`args`]):
//! - `MostAllocated` (default): the node whose GPUs end up fullest, counting only GPUs the pod
//!   may use; packing leaves whole GPUs and whole nodes free for the multi-GPU jobs that need
//!   them. Pods without GPUs are not scored.
//! - `Packing`: best fit on CPU and GPU, the FGD paper's BestFit baseline (module `packing`).
//! - `CpuAwareFGD` (module `cpu_aware`): FGD plus the idle GPU a node's free CPU can no longer
//!   feed. `ModelAwareFGD` (module `model_aware`): CpuAwareFGD plus the GPU a pod takes from a
//!   model that pods constrained to few models need; PreScore works out each model's pressure
//!   once per pod, from the whole cluster's idle GPUs. Both may add the remainder term
//!   (module `remainder`, `remainderWeight`): the free share a shared-GPU pod leaves that no mix
//!   of typical shares can fill; it also picks the pod's GPU on the node.
//! - `FGD`: Fragmentation Gradient Descent (module `fgd`, [`crate::gpu_frag`]): the node where the
//!   expected GPU fragmentation, weighed by the workload's typical pods, grows least. The
//!   typical pods are learned from the pods seen ([`learn`]). FGD also picks *which* GPUs of
//!   the chosen node the pod gets, by the same rule: it records them at Reserve
//!   ([`CycleState::set_gpu_choice`]), so GpuTopology must run at Reserve too (`multiPoint`
//!   does that). Other strategies leave the GPU choice to [`NodeInfo::choose_gpus`].
//!
//! Whatever the strategy, a pod asking whole GPUs is steered first to the nodes where the GPUs
//! it would get are wired best and break up the fewest whole NVLink islands (module `wiring`;
//! `bestWiredFirst`, on by default): with GpuTopology the only score, a 4-GPU pod gets a whole
//! island when a node scored has one free.

pub mod args;
mod cpu_aware;
mod fgd;
pub mod learn;
mod model_aware;
mod packing;
mod remainder;
mod spread;
mod wiring;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use self::args::{GpuTopologyArgs, ScoringStrategy};
use self::learn::Learner;
use self::model_aware::{ModelPressure, Weights};
use self::remainder::Remainder;
use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PreFilterPlugin, PreScorePlugin, ReservePlugin, ScoreBatch,
    ScorePlugin,
};
use crate::gpu_frag::{TypicalSet, fgd_choice};
use crate::model::{GPU_MILLI, GpuRequest, Pod};
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "GpuTopology";
/// Reason when the node's GPUs are too busy: the words kube-scheduler uses for the extended
/// resource, so a pending pod reads the same under either scheduler.
pub const ERR_REASON_INSUFFICIENT: &str = "Insufficient nvidia.com/gpu";

/// Where PreFilter leaves the typical pods for Score and Reserve (FGD only).
const TYPICAL_KEY: &str = "GpuTopology/typical";
/// Where PreScore leaves the models' pressure for Score (ModelAwareFGD only).
const PRESSURE_KEY: &str = "GpuTopology/pressure";
/// Where PreScore leaves the remainder term for Score and Reserve (CpuAwareFGD and
/// ModelAwareFGD with a `remainderWeight`, shared-GPU pods only).
const REMAINDER_KEY: &str = "GpuTopology/remainder";

/// See the module docs.
#[derive(Debug)]
pub struct GpuTopology {
    args: GpuTopologyArgs,
    strategy: ScoringStrategy,
    /// FGD's workload model; `None` for the other strategies.
    learner: Option<Learner>,
}

impl Default for GpuTopology {
    fn default() -> Self {
        GpuTopology::with_args(&GpuTopologyArgs::default())
    }
}

impl GpuTopology {
    /// The plugin configured by validated `args`.
    pub fn with_args(args: &GpuTopologyArgs) -> GpuTopology {
        let learner = args.scoring_strategy.learns().then(|| Learner::new(args));
        GpuTopology { args: args.clone(), strategy: args.scoring_strategy, learner }
    }

    /// The scoring strategy.
    pub fn strategy(&self) -> ScoringStrategy {
        self.strategy
    }

    /// ModelAwareFGD's two weights.
    fn weights(&self) -> Weights {
        Weights { stranding: self.args.stranding_weight(), model: self.args.model_weight() }
    }

    /// The models' pressure PreScore left (ModelAwareFGD only: CpuAwareFGD has no model term).
    fn pressure<'s>(&self, state: &'s CycleState) -> Option<&'s Arc<ModelPressure>> {
        let model_aware = self.strategy == ScoringStrategy::ModelAwareFgd;
        model_aware.then(|| state.read::<Arc<ModelPressure>>(PRESSURE_KEY)).flatten()
    }

    /// The remainder term PreScore left for `pod`, or worked out now when PreScore did not run
    /// (a single feasible node); `None` when it does not apply.
    fn remainder(&self, state: &CycleState, typical: &TypicalSet, pod: &Pod) -> Option<Arc<Remainder>> {
        if !self.strategy.strands() {
            return None;
        }
        match state.read::<Arc<Remainder>>(REMAINDER_KEY) {
            Some(r) => Some(r.clone()),
            None => Remainder::for_pod(typical, self.args.remainder_weight(), pod),
        }
    }

    /// The typical pods the cycle's PreFilter saw, or the learner's current ones.
    fn typical(&self, state: &CycleState) -> Option<Arc<TypicalSet>> {
        match state.read::<Arc<TypicalSet>>(TYPICAL_KEY) {
            Some(t) => Some(t.clone()),
            None => self.learner.as_ref().map(Learner::current),
        }
    }
}

/// Makes the plugin from its args ([`GpuTopologyArgs`]).
pub fn new(args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(GpuTopology::with_args(&GpuTopologyArgs::decode(args)?)))
}

impl Plugin for GpuTopology {
    fn name(&self) -> &'static str {
        NAME
    }
    /// Reads only the node and the pod's signature fields — except under FGD, whose scores
    /// also depend on the workload learned so far, which changes from pod to pod.
    fn node_local(&self) -> bool {
        !self.strategy.learns()
    }
    /// FGD learns the workload; a new scheduler starts from the args' seeds again.
    fn fresh(&self) -> Option<Arc<dyn Plugin>> {
        self.learner.is_some().then(|| Arc::new(GpuTopology::with_args(&self.args)) as Arc<dyn Plugin>)
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
    /// Only FGD chooses GPUs itself.
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        self.strategy.learns().then_some(self as &dyn ReservePlugin)
    }
}

impl PreFilterPlugin for GpuTopology {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, _: &Snapshot) -> Result<Option<Vec<NodeId>>, Status> {
        if let Some(learner) = &self.learner {
            state.write(TYPICAL_KEY, learner.observe(pod));
        }
        match pod.gpu {
            Some(_) => Ok(None),
            None => Err(Status::skip()),
        }
    }
}

impl FilterPlugin for GpuTopology {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(req) = &pod.gpu else { return Status::success() };
        if node.fits_gpus(req) {
            return Status::success();
        }
        let capable = node.node.gpus.iter().filter(|g| req.accepts(g.model)).count();
        if capable >= req.count as usize {
            Status::unschedulable(ERR_REASON_INSUFFICIENT)
        } else if capable > 0 || req.models.is_empty() {
            // Too few GPUs of the models asked, however free: no preemption helps.
            Status::unresolvable(ERR_REASON_INSUFFICIENT)
        } else {
            Status::unresolvable(model_reason(&req.models, node))
        }
    }
}

impl PreScorePlugin for GpuTopology {
    /// MostAllocated and Spread have nothing to say about pods without GPUs; the others score
    /// every pod, since where CPU goes decides whether idle GPUs stay usable. ModelAwareFGD
    /// works out the models' pressure here, for a pod with GPUs; CpuAwareFGD and ModelAwareFGD
    /// the remainder term, for a shared-GPU pod.
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot, _: &[&NodeInfo]) -> Status {
        if self.strategy.strands()
            && let Some(r) = self.typical(state).and_then(|t| Remainder::for_pod(&t, self.args.remainder_weight(), pod))
        {
            state.write(REMAINDER_KEY, r);
        }
        match self.strategy {
            ScoringStrategy::MostAllocated | ScoringStrategy::Spread if pod.gpu.is_none() => Status::skip(),
            ScoringStrategy::ModelAwareFgd if pod.gpu.is_some() => {
                if let Some(pressure) = self.typical(state).and_then(|t| ModelPressure::new(&t, snapshot)) {
                    state.write(PRESSURE_KEY, Arc::new(pressure));
                }
                Status::success()
            }
            _ => Status::success(),
        }
    }
}

impl ScorePlugin for GpuTopology {
    /// The strategy's score; for a pod asking whole GPUs, with the rank of the GPUs it would
    /// get here (module `wiring`).
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        let s = self.strategy_score(state, pod, node);
        match self.gated(pod) {
            Some(req) => wiring::encode(req, node, s),
            None => s,
        }
    }

    /// Reads the cycle state once for the whole batch rather than once per node.
    fn score_batch(&self, state: &CycleState, pod: &Pod, batch: ScoreBatch<'_>, out: &mut [i64]) {
        match (self.strategy, self.typical(state)) {
            (ScoringStrategy::Fgd, Some(t)) => fgd::score_batch(&t, pod, batch.nodes, out, None, fgd::sigmoid_score),
            (ScoringStrategy::CpuAwareFgd | ScoringStrategy::ModelAwareFgd, Some(t)) => {
                let r = self.remainder(state, &t, pod);
                match self.pressure(state) {
                    Some(p) => model_aware::score_batch(&t, p, self.weights(), r.as_deref(), pod, batch.nodes, out),
                    None => cpu_aware::score_batch(
                        &t,
                        self.args.stranding_weight(),
                        r.as_deref(),
                        pod,
                        batch.nodes,
                        out,
                        |_| 0.0,
                    ),
                }
            }
            _ => {
                for (o, n) in out.iter_mut().zip(batch.nodes) {
                    *o = self.strategy_score(state, pod, n);
                }
            }
        }
        if let Some(req) = self.gated(pod) {
            for (o, n) in out.iter_mut().zip(batch.nodes) {
                *o = wiring::encode(req, n, *o);
            }
        }
    }

    fn normalize_score(&self, _: &CycleState, pod: &Pod, scores: &mut [i64]) {
        let strategy = |scores: &mut [i64]| {
            if self.strategy == ScoringStrategy::Packing {
                packing::normalize(scores);
            }
        };
        match self.gated(pod) {
            Some(req) => wiring::normalize(req, scores, strategy),
            None => strategy(scores),
        }
    }
}

impl GpuTopology {
    /// The node's score under the scoring strategy alone.
    fn strategy_score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        match self.strategy {
            ScoringStrategy::MostAllocated => most_allocated(pod, node),
            ScoringStrategy::Packing => packing::score(pod, node),
            ScoringStrategy::Fgd => self.typical(state).map_or(0, |t| fgd::score(&t, pod, node)),
            ScoringStrategy::CpuAwareFgd | ScoringStrategy::ModelAwareFgd => {
                let Some(t) = self.typical(state) else { return 0 };
                let r = self.remainder(state, &t, pod);
                match self.pressure(state) {
                    Some(p) => model_aware::score(&t, p, self.weights(), r.as_deref(), pod, node),
                    None => cpu_aware::score(&t, self.args.stranding_weight(), r.as_deref(), pod, node),
                }
            }
            ScoringStrategy::Spread => spread::spread(pod, node),
            ScoringStrategy::DotProduct => spread::dot_product(pod, node),
        }
    }

    /// The request whose GPUs' wiring ranks nodes first (module `wiring`), unless
    /// `bestWiredFirst` is off.
    fn gated<'p>(&self, pod: &'p Pod) -> Option<&'p GpuRequest> {
        self.args.best_wired_first.then(|| wiring::gated(pod)).flatten()
    }
}

impl ReservePlugin for GpuTopology {
    /// Records FGD's GPUs for the pod on the selected node: the same rule, on the same node
    /// and typical pods, as its Score applied (with the remainder term when it applies).
    fn reserve(&self, state: &mut CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        if !self.strategy.learns() || pod.gpu.as_ref().is_none_or(|g| g.count == 0) {
            return Status::success();
        }
        let Some(typical) = self.typical(state) else { return Status::success() };
        if let Some(r) = self.remainder(state, &typical, pod) {
            return match r.choice(&typical, pod, node) {
                Some((gpu, _)) => {
                    state.set_gpu_choice(1 << gpu);
                    Status::success()
                }
                None => Status::unschedulable(ERR_REASON_INSUFFICIENT),
            };
        }
        match fgd_choice(node, pod, &typical) {
            Some(c) => {
                state.set_gpu_choice(c.gpus);
                Status::success()
            }
            None => Status::unschedulable(ERR_REASON_INSUFFICIENT),
        }
    }

    /// Nothing to release: the choice lives in the cycle state.
    fn unreserve(&self, _: &mut CycleState, _: &Pod, _: &NodeInfo) {}
}

/// Filter's reason when `node` lacks GPUs of the `asked` models, upstream style, to be counted
/// per node by the diagnosis: `node(s) had GPU model T4 but the pod asks for [V100, A100]`
/// (`models [A10, T4]` on a node of several, `no GPU` on a node without).
fn model_reason(asked: &[crate::intern::Sym], node: &NodeInfo) -> String {
    let mut had: Vec<&str> = Vec::new();
    for g in &node.node.gpus {
        if !had.contains(&g.model.as_str()) {
            had.push(g.model.as_str());
        }
    }
    let asked = asked.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
    match had.as_slice() {
        [] => format!("node(s) had no GPU but the pod asks for [{asked}]"),
        [one] => format!("node(s) had GPU model {one} but the pod asks for [{asked}]"),
        many => format!("node(s) had GPU models [{}] but the pod asks for [{asked}]", many.join(", ")),
    }
}

/// The MostAllocated score: how full the GPUs the pod may use are once it is placed.
fn most_allocated(pod: &Pod, node: &NodeInfo) -> i64 {
    let Some(req) = &pod.gpu else { return 0 };
    let usable = node.node.gpus.iter().enumerate().filter(|(_, g)| req.accepts(g.model)).map(|(i, _)| i);
    let (mut used, mut total) = (0u64, 0u64);
    for i in usable {
        used += u64::from(node.gpu_used[i]);
        total += u64::from(GPU_MILLI);
    }
    if total == 0 {
        return 0;
    }
    let after = (used + req.total_milli()).min(total);
    (after * MAX_NODE_SCORE as u64 / total) as i64
}
