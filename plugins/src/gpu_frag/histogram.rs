//! Counts of pod shapes, and the typical pods they give.
//!
//! The counts are kept sorted (most frequent first, ties by shape) as they change, so that
//! the typical pods after one more pod cost a walk over the typical prefix, not a sort: a
//! scheduler that learns the workload online asks for them once per pod.

use std::collections::HashMap;

use super::{PodShape, TypicalPod};
use crate::model::Pod;

/// Share of pods the typical shapes cover (the FGD paper's `podPopularityThreshold`, 95%).
pub const DEFAULT_POPULARITY_THRESHOLD: f64 = 0.95;

/// How often each pod shape was seen. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct ShapeHistogram {
    index: HashMap<PodShape, usize>,
    shapes: Vec<PodShape>,
    counts: Vec<u64>,
    /// Shape indices, most frequent first; equal counts by shape order.
    order: Vec<usize>,
    /// Each shape's position in `order`.
    pos: Vec<usize>,
    total: u64,
}

impl ShapeHistogram {
    /// An empty histogram.
    pub fn new() -> ShapeHistogram {
        ShapeHistogram::default()
    }

    /// The histogram of `pods`.
    pub fn of<'a>(pods: impl Iterator<Item = &'a Pod>) -> ShapeHistogram {
        let mut h = ShapeHistogram::new();
        for p in pods {
            h.add(PodShape::of(p), 1);
        }
        h
    }

    /// Counts `n` more pods of `shape`.
    pub fn add(&mut self, shape: PodShape, n: u64) {
        if n == 0 {
            return;
        }
        let i = match self.index.get(&shape) {
            Some(&i) => i,
            None => {
                let i = self.shapes.len();
                self.index.insert(shape.clone(), i);
                self.shapes.push(shape);
                self.counts.push(0);
                self.pos.push(self.order.len());
                self.order.push(i);
                i
            }
        };
        self.counts[i] = self.counts[i].saturating_add(n);
        self.total = self.total.saturating_add(n);
        // Only this shape moved, and only forwards: one insertion step restores the order.
        let mut p = self.pos[i];
        while p > 0 && self.ahead(i, self.order[p - 1]) {
            let j = self.order[p - 1];
            self.order[p] = j;
            self.pos[j] = p;
            p -= 1;
        }
        self.order[p] = i;
        self.pos[i] = p;
    }

    /// Halves every count (rounding down): old pods weigh half as much as new ones, so that a
    /// long-running scheduler follows a workload that drifts.
    pub fn halve(&mut self) {
        for c in &mut self.counts {
            *c /= 2;
        }
        self.total = self.counts.iter().sum();
        let mut order = std::mem::take(&mut self.order);
        order.sort_by(|&a, &b| self.counts[b].cmp(&self.counts[a]).then_with(|| self.shapes[a].cmp(&self.shapes[b])));
        for (p, &i) in order.iter().enumerate() {
            self.pos[i] = p;
        }
        self.order = order;
    }

    /// Pods counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Distinct shapes seen.
    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    /// Whether no pod was counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Whether shape `a` sorts before shape `b`: more frequent, or as frequent and smaller.
    fn ahead(&self, a: usize, b: usize) -> bool {
        match self.counts[a].cmp(&self.counts[b]) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => self.shapes[a] < self.shapes[b],
        }
    }

    /// The most frequent shapes, until they cover `threshold` (0..=1) of the pods counted,
    /// with frequencies renormalised over them. Empty when nothing was counted.
    pub fn typical(&self, threshold: f64) -> Vec<TypicalPod> {
        let mut chosen = Vec::new();
        let mut covered = 0u64;
        for &i in &self.order {
            if self.total == 0 || self.counts[i] == 0 || covered as f64 / self.total as f64 >= threshold {
                break;
            }
            covered += self.counts[i];
            chosen.push(i);
        }
        chosen
            .into_iter()
            .map(|i| TypicalPod {
                shape: self.shapes[i].clone(),
                count: self.counts[i],
                weight: self.counts[i] as f64 / covered as f64,
            })
            .collect()
    }
}

/// The typical pods of `pods` at the paper's 95% threshold.
pub fn typical_pods<'a>(pods: impl Iterator<Item = &'a Pod>) -> Vec<TypicalPod> {
    ShapeHistogram::of(pods).typical(DEFAULT_POPULARITY_THRESHOLD)
}
