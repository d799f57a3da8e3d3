//! The ModelAwareFGD strategy: CpuAwareFGD ([`super::cpu_aware`]), plus the GPU of a model in
//! demand that a pod able to run elsewhere would take from the pods that can run only there.
//!
//! Why: when many pods pin GPU models (the openb `gpuspec*` traces), FGD and CpuAwareFGD let
//! pods without a constraint fill the few models the pinned pods depend on (T4 on `gpuspec33`,
//! where T4-only pods ask more GPU than the cluster's T4s hold), while the common model (G2)
//! keeps idle GPUs; the pinned pods then fail. CpuAwareFGD makes it worse: the G2 nodes have the
//! least CPU per GPU, so its stranding term pushes pods towards the other models.
//!
//! *Pressure* of a model `m`: the share of `m`'s idle GPU that the pods constrained to a few
//! models would ask for if the cluster's idle GPU filled up as the workload learned so far:
//!
//! `P(m) = Σ_{p constrained, m ∈ S_p} (d_p / D) × idle / idle(S_p)`, capped at 1,
//!
//! where `d_p` is typical pod `p`'s GPU demand (count × GPUs × milli), `D` that of every typical
//! GPU pod, `S_p` the models `p` accepts, `idle(S)` the idle milli-GPU of those models in the
//! cluster and `idle` all of it (each constrained pod's demand is spread over its models in
//! proportion to their idle GPU, so `idle(m)` cancels). At 1, every milli-GPU of `m` a flexible
//! pod takes is one a constrained pod will miss; above 1 they miss it anyway.
//!
//! A pod on a node of model `m` then adds `w × milli × (P(m) − P_min)` to CpuAwareFGD's
//! increase, `P_min` being the lowest pressure among the models the pod accepts and `w`
//! `modelWeight` (default 2): a pod pays only for leaving a model of lower pressure it could
//! have used, so a pod that accepts a single model pays nothing, and neither does any pod of a
//! workload without constraints (every pressure is 0: ModelAwareFGD is CpuAwareFGD there).

use super::cpu_aware;
use super::remainder::Remainder;
use crate::gpu_frag::TypicalSet;
use crate::intern::Sym;
use crate::model::{GPU_MILLI, Pod};
use crate::nodeinfo::NodeInfo;
use crate::snapshot::Snapshot;

/// Each GPU model's pressure (see the module docs) for one scheduling cycle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelPressure {
    /// `(model, pressure)` for every model with idle GPU, in the order first met.
    models: Vec<(Sym, f64)>,
}

impl ModelPressure {
    /// The pressures of `typical` on the idle GPUs of `snapshot`'s nodes; `None` when no
    /// typical pod is constrained to some models (every pressure would be 0), which spares a
    /// walk over every node per pod.
    pub fn new(typical: &TypicalSet, snapshot: &Snapshot) -> Option<ModelPressure> {
        let constrained = typical.gpu_pods().iter().any(|p| !p.shape.models.is_empty());
        constrained.then(|| ModelPressure::from_idle(typical, &idle_by_model(snapshot.nodes().map(|n| &**n))))
    }

    /// The pressures of `typical` on `idle`, the idle milli-GPU of each model.
    pub fn from_idle(typical: &TypicalSet, idle: &[(Sym, u64)]) -> ModelPressure {
        let all: u64 = idle.iter().map(|(_, i)| i).sum();
        let demand =
            |p: &crate::gpu_frag::TypicalPod| p.count as f64 * f64::from(p.shape.gpus) * f64::from(p.shape.milli);
        let total: f64 = typical.gpu_pods().iter().map(demand).sum();
        let mut models: Vec<(Sym, f64)> = idle.iter().map(|&(m, _)| (m, 0.0)).collect();
        if total == 0.0 {
            return ModelPressure { models };
        }
        for p in typical.gpu_pods().iter().filter(|p| !p.shape.models.is_empty()) {
            let reach: u64 = idle.iter().filter(|(m, _)| p.shape.accepts(*m)).map(|(_, i)| i).sum();
            if reach == 0 {
                continue;
            }
            let share = demand(p) / total * all as f64 / reach as f64;
            for (_, pressure) in models.iter_mut().filter(|(m, _)| p.shape.accepts(*m)) {
                *pressure += share;
            }
        }
        for (_, p) in &mut models {
            *p = p.min(1.0);
        }
        ModelPressure { models }
    }

    /// The pressure of `model` (0 for a model no node has).
    pub fn of(&self, model: Sym) -> f64 {
        self.models.iter().find(|(m, _)| *m == model).map_or(0.0, |&(_, p)| p)
    }

    /// The lowest pressure among the models `pod` accepts: 0 for a pod without GPUs, 1 when no
    /// node has a model it accepts (it pays nothing then: no pressure is above 1).
    pub fn lowest_for(&self, pod: &Pod) -> f64 {
        let Some(req) = &pod.gpu else { return 0.0 };
        self.models.iter().filter(|(m, _)| req.accepts(*m)).map(|&(_, p)| p).fold(f64::INFINITY, f64::min).min(1.0)
    }

    /// The milli-GPU `pod` adds to the increase on `node` (see the module docs), before the
    /// weight; `lowest` is [`ModelPressure::lowest_for`] of the pod. A node of several models
    /// counts the least pressed model the pod accepts there.
    pub fn cost(&self, lowest: f64, pod: &Pod, node: &NodeInfo) -> f64 {
        let Some(req) = &pod.gpu else { return 0.0 };
        let here = node
            .node
            .gpus
            .iter()
            .filter(|g| req.accepts(g.model))
            .map(|g| self.of(g.model))
            .fold(f64::INFINITY, f64::min);
        if here.is_finite() { (here - lowest).max(0.0) * req.total_milli() as f64 } else { 0.0 }
    }
}

/// The idle milli-GPU of each GPU model over `nodes`, models in the order first met.
pub fn idle_by_model<'a>(nodes: impl Iterator<Item = &'a NodeInfo>) -> Vec<(Sym, u64)> {
    let mut idle: Vec<(Sym, u64)> = Vec::new();
    for n in nodes {
        for (i, g) in n.node.gpus.iter().enumerate() {
            let free = u64::from(n.gpu_free(i).min(GPU_MILLI));
            match idle.iter_mut().find(|(m, _)| *m == g.model) {
                Some((_, f)) => *f += free,
                None => idle.push((g.model, free)),
            }
        }
    }
    idle
}

/// The score of `pod` on `node`: CpuAwareFGD's, with the model cost times `weights.model` added
/// to the increase.
pub fn score(
    typical: &TypicalSet,
    pressure: &ModelPressure,
    weights: Weights,
    remainder: Option<&Remainder>,
    pod: &Pod,
    node: &NodeInfo,
) -> i64 {
    let cost = weights.model * pressure.cost(pressure.lowest_for(pod), pod, node);
    cpu_aware::score_with(typical, weights.stranding, remainder, pod, node, cost)
}

/// [`score`] of every node of `nodes` into `out`.
pub fn score_batch(
    typical: &TypicalSet,
    pressure: &ModelPressure,
    weights: Weights,
    remainder: Option<&Remainder>,
    pod: &Pod,
    nodes: &[&NodeInfo],
    out: &mut [i64],
) {
    let lowest = pressure.lowest_for(pod);
    let extra = |n: &NodeInfo| weights.model * pressure.cost(lowest, pod, n);
    cpu_aware::score_batch(typical, weights.stranding, remainder, pod, nodes, out, extra);
}

/// The weights of ModelAwareFGD's two terms, in milli-GPU of fragmentation per milli-GPU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    /// `strandingWeight`: per milli-GPU the node's free CPU can no longer feed.
    pub stranding: f64,
    /// `modelWeight`: per milli-GPU taken from a model under more pressure than the pod needs.
    pub model: f64,
}
