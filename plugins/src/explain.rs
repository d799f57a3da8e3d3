//! Why a pod went where it went: every node's Filter verdict and every Score plugin's score,
//! what kube-scheduler-simulator shows its users, computed by the profile's own plugins.
//!
//! The engine's cycle stops filtering once it has enough feasible nodes and reuses work across
//! pods; an explanation does neither. It runs PreFilter, then every Filter on every node (the
//! first failure in profile order is the node's verdict, as in the cycle), then PreScore and each
//! Score plugin over all feasible nodes: raw score, normalized score, weight and weighted score,
//! and the total the cycle compares. It is for a handful of pods a person asks about, not for
//! every pod.

use serde::Serialize;

use crate::framework::{CycleState, Profile, ScoreBatch};
use crate::model::Pod;
use crate::nodeinfo::{NodeId, NodeInfo};
use crate::snapshot::Snapshot;

/// One scheduling attempt of one pod, explained.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Explanation {
    /// PreFilter's rejection of the pod, if it rejected it (then no node was looked at).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_filter: Option<String>,
    /// Every node, by name: feasible ones first, best total first.
    pub nodes: Vec<NodeExplanation>,
}

/// One node's part in an attempt.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NodeExplanation {
    /// The node.
    pub node: String,
    /// The Filter plugin that rejected the pod here and why; `None` when it fits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterVerdict>,
    /// Each Score plugin's score, for a node that fits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<PluginScore>,
    /// The sum of the weighted scores: what the cycle ranks nodes by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// Why a node was rejected.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FilterVerdict {
    /// The plugin (`PreFilter` when a PreFilter left the node out of the candidates).
    pub plugin: String,
    /// Its reasons.
    pub reasons: Vec<String>,
}

/// One Score plugin's score of one node.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PluginScore {
    /// The plugin.
    pub plugin: String,
    /// What its Score gave.
    pub raw: i64,
    /// After its NormalizeScore, over the feasible nodes.
    pub normalized: i64,
    /// Its weight in the profile.
    pub weight: i64,
    /// `normalized × weight`.
    pub weighted: i64,
}

/// Explains scheduling `pod` on `snapshot` with `profile`. See the module docs.
pub fn explain(profile: &Profile, snapshot: &Snapshot, pod: &Pod) -> Explanation {
    let mut state = CycleState::new();
    let restriction = match profile.run_pre_filter(&mut state, pod, snapshot) {
        Ok(r) => r,
        Err(s) => return Explanation { pre_filter: Some(s.to_string()), nodes: Vec::new() },
    };
    let mut rejected = Vec::new();
    let (mut ids, mut feasible): (Vec<NodeId>, Vec<&NodeInfo>) = (Vec::new(), Vec::new());
    for node in snapshot.nodes() {
        let left_out = restriction.as_ref().is_some_and(|r| r.binary_search(&node.id).is_err());
        let verdict = if left_out {
            Some(FilterVerdict { plugin: "PreFilter".into(), reasons: vec!["left out of the candidate nodes".into()] })
        } else {
            let s =
                node.reservation_status(pod).unwrap_or_else(|| profile.run_filter_with_nominated(&state, pod, node));
            (!s.is_success()).then(|| FilterVerdict {
                plugin: s.plugin.to_string(),
                reasons: s.reasons.iter().map(ToString::to_string).collect(),
            })
        };
        match verdict {
            Some(v) => rejected.push(NodeExplanation {
                node: node.name().to_string(),
                filter: Some(v),
                scores: Vec::new(),
                total: None,
            }),
            None => {
                ids.push(node.id);
                feasible.push(node.as_ref());
            }
        }
    }
    let mut nodes = scores(profile, &mut state, pod, snapshot, &ids, &feasible);
    nodes.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.node.cmp(&b.node)));
    rejected.sort_by(|a, b| a.node.cmp(&b.node));
    nodes.extend(rejected);
    Explanation { pre_filter: None, nodes }
}

/// Each feasible node with every Score plugin's score, as `Profile::run_score` computes them.
fn scores(
    profile: &Profile,
    state: &mut CycleState,
    pod: &Pod,
    snapshot: &Snapshot,
    ids: &[NodeId],
    feasible: &[&NodeInfo],
) -> Vec<NodeExplanation> {
    let mut out: Vec<NodeExplanation> = feasible
        .iter()
        .map(|n| NodeExplanation { node: n.name().to_string(), filter: None, scores: Vec::new(), total: Some(0) })
        .collect();
    if feasible.is_empty() || profile.run_pre_score(state, pod, snapshot, feasible).is_err() {
        return out;
    }
    let batch = ScoreBatch::new(snapshot, ids, feasible);
    for (i, ws) in profile.score.iter().enumerate() {
        let Some(sp) = ws.plugin.as_score() else { continue };
        if state.skips_score(i) || ws.weight == 0 {
            continue;
        }
        let mut raw = vec![0i64; feasible.len()];
        sp.score_batch(state, pod, batch, &mut raw);
        let mut normalized = raw.clone();
        sp.normalize_score(state, pod, &mut normalized);
        for (j, n) in out.iter_mut().enumerate() {
            let weighted = normalized[j] * ws.weight;
            n.scores.push(PluginScore {
                plugin: ws.plugin.name().to_string(),
                raw: raw[j],
                normalized: normalized[j],
                weight: ws.weight,
                weighted,
            });
            n.total = Some(n.total.unwrap_or(0) + weighted);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::WeightedScore;
    use crate::plugins::testing::{node, pod, snapshot};
    use crate::registry::Registry;

    #[test]
    fn every_node_gets_its_verdict_and_the_feasible_ones_their_scores() {
        let r = Registry::builtin();
        let fit = r.make("NodeResourcesFit", None).unwrap();
        let profile = Profile {
            filter: vec![fit.clone()],
            score: vec![WeightedScore { plugin: fit, weight: 2 }],
            ..Profile::default()
        };
        let snap = snapshot(
            vec![
                (node("small", 1000, 1 << 30), vec![]),
                (node("big", 8000, 8 << 30), vec![]),
                (node("busy", 8000, 8 << 30), vec![pod("x", 6000, 1 << 30)]),
            ],
            &[],
        );
        let e = explain(&profile, &snap, &pod("p", 2000, 1 << 30));
        let names: Vec<&str> = e.nodes.iter().map(|n| n.node.as_str()).collect();
        // Feasible first, best first (the emptier node scores higher under LeastAllocated).
        assert_eq!(names, vec!["big", "busy", "small"]);
        let small = &e.nodes[2];
        assert_eq!(small.filter.as_ref().map(|f| f.plugin.as_str()), Some("NodeResourcesFit"));
        assert_eq!(small.filter.as_ref().unwrap().reasons, vec!["Insufficient cpu".to_string()]);
        let big = &e.nodes[0];
        assert_eq!(big.scores.len(), 1);
        let s = &big.scores[0];
        assert_eq!((s.weight, s.weighted, big.total), (2, s.normalized * 2, Some(s.normalized * 2)));
        assert!(big.total > e.nodes[1].total);
    }
}
