//! The fragmentation of one node state, fast: FGD evaluates a few states of every feasible
//! node for every pod.
//!
//! Fragmentation is `Σ_p count_p × unusable_p / total` (see the parent module). Every idle
//! milli-GPU is unusable for a pod that does not fit; for one that fits, only what sits on
//! GPUs it cannot use. So the scaled amount is `idle × total − Σ_{p fits} count_p × usable_p`,
//! where `usable_p` is the idle milli on GPUs with room for p's share: integers throughout, so
//! equal states give exactly equal amounts whatever the order of evaluation.

use super::{MAX_GPUS, PodShape, TypicalSet};
use crate::intern::Sym;
use crate::model::Gpu;

/// What fragmentation needs of a node's GPUs besides their free shares, worked out once per
/// node.
#[derive(Clone, Copy, Debug)]
pub struct GpuLayout<'a> {
    gpus: &'a [Gpu],
    /// The model of every GPU, when they are all one model (the usual node).
    model: Option<Sym>,
}

impl<'a> GpuLayout<'a> {
    /// The layout of `gpus` (device order).
    pub fn of(gpus: &'a [Gpu]) -> GpuLayout<'a> {
        let first = gpus.first().map(|g| g.model);
        let model = first.filter(|m| gpus.iter().all(|g| g.model == *m));
        GpuLayout { gpus, model }
    }

    /// Expected fragmented milli-GPU, scaled by `typical.total()` (see the module docs), of
    /// the node when its free CPU is `cpu` and its GPUs have `free` milli-GPU free (device
    /// order). [`TypicalSet::milli`] turns it into milli-GPU.
    pub fn fragmentation(&self, cpu: i64, free: &[u32], typical: &TypicalSet) -> u128 {
        let idle: u32 = free.iter().sum();
        if idle == 0 {
            return 0;
        }
        let usable = match self.model {
            Some(model) => usable_one_model(model, cpu, free, typical),
            None => usable_mixed(self.gpus, cpu, free, typical),
        };
        (u128::from(idle) * u128::from(typical.total())).saturating_sub(usable)
    }
}

/// `Σ_{p fits} count_p × usable_p` when every GPU is of `model`. A pod then accepts every GPU
/// or none, and the GPUs with room for its share are the largest free shares: walking the pods
/// by share, largest first, those GPUs only grow, so one sweep over the sorted shares serves
/// every pod.
fn usable_one_model(model: Sym, cpu: i64, free: &[u32], typical: &TypicalSet) -> u128 {
    let n = free.len().min(MAX_GPUS);
    let mut sorted = [0u32; MAX_GPUS];
    sorted[..n].copy_from_slice(&free[..n]);
    sorted[..n].sort_unstable_by(|a, b| b.cmp(a));
    let (mut room, mut usable) = (0usize, 0u64);
    let mut acc = 0u128;
    for p in typical.gpu_pods() {
        let s = &p.shape;
        while room < n && sorted[room] >= s.milli {
            usable += u64::from(sorted[room]);
            room += 1;
        }
        if s.cpu <= cpu && room >= s.gpus as usize && s.accepts(model) {
            acc += u128::from(p.count) * u128::from(usable);
        }
    }
    acc
}

/// `Σ_{p fits} count_p × usable_p` on a node with GPUs of several models: a GPU is usable
/// for p if it is of a model p accepts and has room for p's share.
fn usable_mixed(gpus: &[Gpu], cpu: i64, free: &[u32], typical: &TypicalSet) -> u128 {
    let mut acc = 0u128;
    for p in typical.gpu_pods() {
        if p.shape.cpu > cpu {
            continue;
        }
        let (count, usable) = usable_for(&p.shape, gpus, free);
        if count >= p.shape.gpus {
            acc += u128::from(p.count) * u128::from(usable);
        }
    }
    acc
}

/// How many GPUs a pod of shape `p` could use, and their idle milli-GPU.
fn usable_for(p: &PodShape, gpus: &[Gpu], free: &[u32]) -> (u32, u64) {
    let (mut count, mut usable) = (0u32, 0u64);
    for (f, g) in free.iter().zip(gpus) {
        if *f >= p.milli && p.accepts(g.model) {
            count += 1;
            usable += u64::from(*f);
        }
    }
    (count, usable)
}
