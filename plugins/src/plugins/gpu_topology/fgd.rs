//! The FGD strategy's score: how little the node's expected fragmentation grows when the pod
//! goes there, on the GPUs FGD would give it ([`crate::gpu_frag::fgd_increase`]).
//!
//! Scoring a pod evaluates a few states of every feasible node, and many nodes are in the same
//! state (empty nodes of one kind, full ones, nodes with the same shares in use). The increase
//! depends only on the node's GPU model, its free shares as a multiset (GPUs of one model are
//! interchangeable to fragmentation), and which typical pods' CPU its free CPU covers before
//! and after the pod ([`TypicalSet::cpu_class`]); so one batch computes it once per such
//! state.

use super::remainder::Remainder;
use crate::framework::MAX_NODE_SCORE;
use crate::gpu_frag::{TypicalSet, fgd_increase};
use crate::intern::Sym;
use crate::model::Pod;
use crate::nodeinfo::NodeInfo;
use crate::resources::ResourceId;
use crate::topology::FxMap;

/// Nodes with more GPUs than this are scored without the memo (the key holds 8 shares).
const KEYED_GPUS: usize = 8;

/// The score of `pod` on `node`, or 0 if its GPUs do not fit there (Filter has removed such
/// nodes already).
pub fn score(typical: &TypicalSet, pod: &Pod, node: &NodeInfo) -> i64 {
    fgd_increase(node, pod, typical).map_or(0, sigmoid_score)
}

/// [`score`] of every node of `nodes` into `out`, once per distinct node state, the increase
/// turned into a score by `to_score` (0 where the pod does not fit). With `remainder`, the
/// increase is that of the pod's best GPU under the remainder term ([`Remainder::choice`]),
/// which depends on the same node state.
pub fn score_batch(
    typical: &TypicalSet,
    pod: &Pod,
    nodes: &[&NodeInfo],
    out: &mut [i64],
    remainder: Option<&Remainder>,
    to_score: impl Fn(f64) -> i64,
) {
    let score = |typical: &TypicalSet, pod: &Pod, node: &NodeInfo| {
        let increase = match remainder {
            Some(r) => r.choice(typical, pod, node).map(|(_, increase)| increase),
            None => fgd_increase(node, pod, typical),
        };
        increase.map_or(0, &to_score)
    };
    let mut models: Vec<Sym> = Vec::new();
    let mut memo: FxMap<u128, i64> = FxMap::default();
    let cpu = pod.requests.get(ResourceId::CPU);
    for (o, n) in out.iter_mut().zip(nodes) {
        *o = match state_key(typical, cpu, n, &mut models) {
            Some(key) => *memo.entry(key).or_insert_with(|| score(typical, pod, n)),
            None => score(typical, pod, n),
        };
    }
}

/// The state of `node` that the increase of a pod asking `cpu` millicores depends on, packed:
/// model (8 bits, an index into `models`), GPU count (4), CPU class before and after (8 each),
/// then each free share, largest first (10 bits each). `None` when it does not fit the key.
fn state_key(typical: &TypicalSet, cpu: i64, node: &NodeInfo, models: &mut Vec<Sym>) -> Option<u128> {
    let gpus = &node.node.gpus;
    let model = gpus.first().map(|g| g.model);
    if gpus.len() > KEYED_GPUS || model.is_some_and(|m| gpus.iter().any(|g| g.model != m)) {
        return None;
    }
    let model = match model {
        None => 0,
        Some(m) => match models.iter().position(|x| *x == m) {
            Some(i) => i + 1,
            None => {
                models.push(m);
                models.len()
            }
        },
    };
    let free_cpu = node.node.allocatable.get(ResourceId::CPU) - node.requested.get(ResourceId::CPU);
    let (before, after) = (typical.cpu_class(free_cpu), typical.cpu_class(free_cpu.saturating_sub(cpu)));
    if model > 0xFF || before > 0xFF || after > 0xFF {
        return None;
    }
    let mut shares = [0u32; KEYED_GPUS];
    for (i, s) in shares.iter_mut().enumerate().take(gpus.len()) {
        *s = node.gpu_free(i);
    }
    shares.sort_unstable_by(|a, b| b.cmp(a));
    let mut key =
        (model as u128) << 120 | (gpus.len() as u128) << 116 | (before as u128) << 108 | (after as u128) << 100;
    for (i, s) in shares.iter().enumerate() {
        key |= u128::from(*s & 0x3FF) << (10 * i);
    }
    Some(key)
}

/// The paper's score for a fragmentation increase in milli-GPU:
/// `100 × sigmoid(−increase / 1000)`, truncated. No change scores 50, a decrease more; the
/// sigmoid keeps the scale in GPUs, so an increase of a whole GPU scores 26.
pub fn sigmoid_score(increase: f64) -> i64 {
    let s = 1.0 / (1.0 + (increase / 1000.0).exp());
    (s * MAX_NODE_SCORE as f64) as i64
}
