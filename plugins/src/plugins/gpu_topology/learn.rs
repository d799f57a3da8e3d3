//! The workload FGD assumes, learned online.
//!
//! FGD weighs fragmentation by the workload's *typical pods* (see [`crate::gpu_frag`]); the
//! paper computes them offline from the whole trace. A scheduler does not know its future
//! pods, so the plugin counts the shapes of the pods it is asked to schedule, in PreFilter,
//! optionally starting from shapes given in its args. Each pod is counted once however often
//! it is seen: the binder's re-check and the verifier run PreFilter again, and an
//! unschedulable pod is retried. The counts live behind a mutex: the simulator drives one
//! cycle at a time, so the counts, and every choice made from them, follow the pod order
//! exactly; parallel workers see them in whatever order their pods arrive.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;

use super::args::GpuTopologyArgs;
use crate::gpu_frag::{PodShape, ShapeHistogram, TypicalSet};
use crate::model::Pod;
use crate::topology::FxSet;

/// Pods remembered as counted before the memory is reset and the counts halved: a long-lived
/// scheduler then keeps a bounded set and weighs recent pods more.
const MAX_TRACKED: usize = 1 << 20;

/// See the module docs.
#[derive(Debug)]
pub struct Learner {
    threshold: f64,
    learn: bool,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    histogram: ShapeHistogram,
    /// Hashes of the pods counted.
    seen: FxSet<u64>,
    /// The typical pods of the current counts, built when first asked for.
    typical: Option<Arc<TypicalSet>>,
}

impl Learner {
    /// A learner configured by `args`, holding its seed shapes.
    pub fn new(args: &GpuTopologyArgs) -> Learner {
        let mut histogram = ShapeHistogram::new();
        for (shape, n) in args.seeds() {
            histogram.add(shape, n);
        }
        let inner = Inner { histogram, seen: FxSet::default(), typical: None };
        Learner { threshold: args.threshold(), learn: args.learn, inner: Mutex::new(inner) }
    }

    /// Counts `pod` if it was never counted (and learning is on), then returns the typical
    /// pods.
    pub fn observe(&self, pod: &Pod) -> Arc<TypicalSet> {
        let mut inner = self.inner.lock();
        if self.learn && inner.seen.insert(pod_hash(pod)) {
            if inner.seen.len() > MAX_TRACKED {
                inner.seen.clear();
                inner.histogram.halve();
            }
            inner.histogram.add(PodShape::of(pod), 1);
            inner.typical = None;
        }
        self.typical(&mut inner)
    }

    /// The typical pods of the counts so far.
    pub fn current(&self) -> Arc<TypicalSet> {
        let mut inner = self.inner.lock();
        self.typical(&mut inner)
    }

    fn typical(&self, inner: &mut Inner) -> Arc<TypicalSet> {
        if let Some(t) = &inner.typical {
            return t.clone();
        }
        let t = Arc::new(TypicalSet::new(inner.histogram.typical(self.threshold)));
        inner.typical = Some(t.clone());
        t
    }
}

/// A pod's identity as a hash: SipHash with fixed keys, so runs are reproducible and distinct
/// pods practically never collide.
fn pod_hash(pod: &Pod) -> u64 {
    let mut h = DefaultHasher::new();
    pod.namespace.as_str().hash(&mut h);
    pod.name.hash(&mut h);
    pod.uid.hash(&mut h);
    h.finish()
}
