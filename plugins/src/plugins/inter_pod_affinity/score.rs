//! Preferred terms: PreScore sums weights per topology key and domain; Score adds up the node's
//! domains; NormalizeScore maps min..max of the scored nodes onto 0..100.

use crate::framework::{CycleState, MAX_NODE_SCORE, PreScorePlugin, ScorePlugin};
use crate::model::Pod;
use crate::nodeinfo::NodeInfo;
use crate::snapshot::Snapshot;
use crate::status::Status;
use crate::topology::TermKind;

use super::{InterPodAffinity, TopologyCounts, count_matching_pods, for_each_existing_term};

pub(super) const PRE_SCORE_KEY: &str = "PreScoreInterPodAffinity";

/// PreScore's result for one pod: the score each domain adds.
#[derive(Clone, Debug, Default)]
pub(super) struct PreScoreState(TopologyCounts);

impl InterPodAffinity {
    /// What one existing pod's term that matches the incoming pod adds per carrier (the index
    /// already holds preferred terms' weights), or `None` if such terms do not score.
    fn existing_term_multiplier(&self, kind: TermKind) -> Option<i64> {
        match kind {
            TermKind::RequiredAffinity if self.hard_pod_affinity_weight > 0 => Some(self.hard_pod_affinity_weight),
            TermKind::PreferredAffinity => Some(1),
            TermKind::PreferredAntiAffinity => Some(-1),
            TermKind::RequiredAffinity | TermKind::RequiredAntiAffinity => None,
        }
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot, nodes: &[&NodeInfo]) -> Status {
        if nodes.is_empty() {
            return Status::skip();
        }
        let preferred = &pod.pod_affinity.preferred;
        let preferred_anti = &pod.pod_anti_affinity.preferred;
        if self.ignore_preferred_terms_of_existing_pods && preferred.is_empty() && preferred_anti.is_empty() {
            return Status::skip();
        }
        let mut scores = TopologyCounts::default();
        let own_terms = preferred.iter().map(|w| (w, 1)).chain(preferred_anti.iter().map(|w| (w, -1)));
        for (w, sign) in own_terms {
            let weight = sign * i64::from(w.weight);
            count_matching_pods(snapshot, pod, &[&w.term], &[w.term.topology_key], weight, &mut scores);
        }
        for_each_existing_term(
            snapshot,
            pod,
            |kind| self.existing_term_multiplier(kind).is_some(),
            |kind, key, domain, n| scores.add(key, domain, n * self.existing_term_multiplier(kind).unwrap_or(0)),
        );
        if scores.0.iter().all(|(_, m)| m.is_empty()) {
            return Status::skip();
        }
        state.write(PRE_SCORE_KEY, PreScoreState(scores));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &Pod, node: &NodeInfo) -> i64 {
        let Some(PreScoreState(scores)) = state.read::<PreScoreState>(PRE_SCORE_KEY) else { return 0 };
        let labels = &node.node.labels;
        scores.0.iter().filter_map(|(key, m)| labels.get(*key).and_then(|d| m.get(&d))).sum()
    }

    fn normalize_score(&self, state: &CycleState, _: &Pod, scores: &mut [i64]) {
        if state.read::<PreScoreState>(PRE_SCORE_KEY).is_none() {
            return;
        }
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let spread = max - min;
        for s in scores.iter_mut() {
            *s = if spread > 0 { (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / spread as f64)) as i64 } else { 0 };
        }
    }
}
