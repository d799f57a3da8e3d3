//! TaintToleration: a pod may not land on a node with a `NoSchedule` or `NoExecute` taint it
//! does not tolerate; among the rest, nodes with fewer untolerated `PreferNoSchedule` taints
//! score higher.

use std::sync::Arc;

use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PreScorePlugin, ScorePlugin, default_normalize_score,
};
use crate::model::{Pod, Taint, TaintEffect, Toleration};
use crate::nodeinfo::NodeInfo;
use crate::registry::{PluginArgs, PluginError};
use crate::snapshot::Snapshot;
use crate::status::Status;

/// The plugin's name.
pub const NAME: &str = "TaintToleration";
/// Upstream's reason. It names no taint, so that it costs no allocation and nodes with
/// different taints add up under one reason in the summary.
pub const ERR_REASON: &str = "node(s) had untolerated taint(s)";

const PRE_SCORE_KEY: &str = "PreScoreTaintToleration";

/// The pod's tolerations that can tolerate a `PreferNoSchedule` taint, from PreScore.
#[derive(Clone, Debug)]
struct PreScoreState(Vec<Toleration>);

/// See the module docs.
#[derive(Debug, Default)]
pub struct TaintToleration;

/// Makes the plugin; it takes no args.
pub fn new(_args: Option<&PluginArgs>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(TaintToleration))
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
    /// Reads only the node and the pod's signature fields.
    fn node_local(&self) -> bool {
        true
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
}

fn tolerated<'a>(tolerations: impl IntoIterator<Item = &'a Toleration>, taint: &Taint) -> bool {
    tolerations.into_iter().any(|t| t.tolerates(taint))
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let blocks = |t: &&Taint| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute);
        if node.node.taints.iter().filter(blocks).all(|t| tolerated(&pod.tolerations, t)) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON)
        }
    }
}

/// Upstream keeps only tolerations whose effect is empty (every effect) or PreferNoSchedule.
fn prefer_no_schedule(t: &&Toleration) -> bool {
    matches!(t.effect, None | Some(TaintEffect::PreferNoSchedule))
}

impl PreScorePlugin for TaintToleration {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, _: &Snapshot, _: &[&NodeInfo]) -> Status {
        state.write(PRE_SCORE_KEY, PreScoreState(pod.tolerations.iter().filter(prefer_no_schedule).cloned().collect()));
        Status::success()
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        let soft = node.node.taints.iter().filter(|t| t.effect == TaintEffect::PreferNoSchedule);
        let count = match state.read::<PreScoreState>(PRE_SCORE_KEY) {
            Some(PreScoreState(tols)) => soft.filter(|t| !tolerated(tols, t)).count(),
            // A profile may run Score without this PreScore: filter the same tolerations on the fly.
            None => soft.filter(|t| !tolerated(pod.tolerations.iter().filter(prefer_no_schedule), t)).count(),
        };
        count as i64
    }

    fn normalize_score(&self, _: &CycleState, _: &Pod, scores: &mut [i64]) {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Sym;
    use crate::model::TolerationOperator;
    use crate::plugins::testing::*;
    use crate::status::Code;

    fn taint(key: &str, value: &str, effect: TaintEffect) -> Taint {
        Taint { key: Sym::new(key), value: Sym::new(value), effect }
    }

    fn equal(key: &str, value: &str, effect: Option<TaintEffect>) -> Toleration {
        Toleration { key: Some(Sym::new(key)), operator: TolerationOperator::Equal, value: Sym::new(value), effect }
    }

    fn exists(key: &str, effect: Option<TaintEffect>) -> Toleration {
        Toleration { key: Some(Sym::new(key)), operator: TolerationOperator::Exists, value: Sym::new(""), effect }
    }

    fn tainted(name: &str, taints: Vec<Taint>) -> NodeInfo {
        let n = taints.into_iter().fold(node(name, 1000, GI), with_taint);
        node_info(0, n, vec![])
    }

    fn tolerating(tolerations: Vec<Toleration>) -> Pod {
        let mut p = pod("p", 0, 0);
        p.tolerations = tolerations;
        p
    }

    fn fits(tolerations: Vec<Toleration>, taints: Vec<Taint>) -> bool {
        let s = TaintToleration.filter(&CycleState::new(), &tolerating(tolerations), &tainted("n", taints));
        if !s.is_success() {
            assert_eq!(s, Status::unresolvable(ERR_REASON));
            assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        }
        s.is_success()
    }

    // Upstream TestTaintTolerationFilter, case by case.
    #[test]
    fn filter_follows_upstream_cases() {
        use TaintEffect::*;
        let user1 = || taint("dedicated", "user1", NoSchedule);
        assert!(!fits(vec![], vec![user1()]), "no tolerations, NoSchedule taint");
        assert!(fits(vec![equal("dedicated", "user1", Some(NoSchedule))], vec![user1()]), "dedicated to user1");
        assert!(!fits(vec![equal("dedicated", "user2", Some(NoSchedule))], vec![user1()]), "dedicated to someone else");
        assert!(
            fits(vec![exists("foo", Some(NoSchedule))], vec![taint("foo", "bar", NoSchedule)]),
            "Exists tolerates any value"
        );
        let both = vec![equal("dedicated", "user2", Some(NoSchedule)), exists("foo", Some(NoSchedule))];
        assert!(
            fits(both, vec![taint("dedicated", "user2", NoSchedule), taint("foo", "bar", NoSchedule)]),
            "all taints tolerated"
        );
        assert!(
            !fits(vec![equal("foo", "bar", Some(PreferNoSchedule))], vec![taint("foo", "bar", NoSchedule)]),
            "effect mismatch"
        );
        assert!(
            fits(vec![equal("foo", "bar", None)], vec![taint("foo", "bar", NoSchedule)]),
            "empty effect matches all"
        );
        assert!(
            fits(
                vec![equal("dedicated", "user2", Some(NoSchedule))],
                vec![taint("dedicated", "user1", PreferNoSchedule)]
            ),
            "soft taint"
        );
        assert!(fits(vec![], vec![taint("dedicated", "user1", PreferNoSchedule)]), "soft taint, no tolerations");
        assert!(!fits(vec![], vec![taint("dedicated", "user1", NoExecute)]), "NoExecute blocks too");
        let everything =
            Toleration { key: None, operator: TolerationOperator::Exists, value: Sym::new(""), effect: None };
        assert!(
            fits(vec![everything], vec![user1(), taint("x", "y", NoExecute)]),
            "empty key with Exists tolerates everything"
        );
    }

    fn scores(pod: &Pod, nodes: &[NodeInfo]) -> Vec<i64> {
        let snap = snapshot(vec![], &[]);
        let mut cs = CycleState::new();
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        assert!(TaintToleration.pre_score(&mut cs, pod, &snap, &refs).is_success());
        let mut s: Vec<i64> = nodes.iter().map(|n| TaintToleration.score(&cs, pod, n)).collect();
        TaintToleration.normalize_score(&cs, pod, &mut s);
        s
    }

    // Upstream TestTaintTolerationScore, case by case.
    #[test]
    fn score_follows_upstream_cases() {
        use TaintEffect::*;
        let p = tolerating(vec![equal("foo", "bar", Some(PreferNoSchedule))]);
        let nodes = [
            tainted("a", vec![taint("foo", "bar", PreferNoSchedule)]),
            tainted("b", vec![taint("foo", "blah", PreferNoSchedule)]),
        ];
        assert_eq!(scores(&p, &nodes), vec![100, 0], "tolerated beats intolerable");

        let p = tolerating(vec![
            equal("cpu-type", "arm64", Some(PreferNoSchedule)),
            equal("disk-type", "ssd", Some(PreferNoSchedule)),
        ]);
        let nodes = [
            tainted("a", vec![]),
            tainted("b", vec![taint("cpu-type", "arm64", PreferNoSchedule)]),
            tainted(
                "c",
                vec![taint("cpu-type", "arm64", PreferNoSchedule), taint("disk-type", "ssd", PreferNoSchedule)],
            ),
        ];
        assert_eq!(scores(&p, &nodes), vec![100, 100, 100], "tolerated taints do not count");

        let p = tolerating(vec![equal("foo", "bar", Some(PreferNoSchedule))]);
        let nodes = [
            tainted("a", vec![]),
            tainted("b", vec![taint("cpu-type", "arm64", PreferNoSchedule)]),
            tainted(
                "c",
                vec![taint("cpu-type", "arm64", PreferNoSchedule), taint("disk-type", "ssd", PreferNoSchedule)],
            ),
        ];
        assert_eq!(scores(&p, &nodes), vec![100, 50, 0], "more intolerable taints, lower score");

        let p =
            tolerating(vec![equal("cpu-type", "arm64", Some(NoSchedule)), equal("disk-type", "ssd", Some(NoSchedule))]);
        let nodes = [
            tainted("a", vec![]),
            tainted("b", vec![taint("cpu-type", "arm64", NoSchedule)]),
            tainted(
                "c",
                vec![taint("cpu-type", "arm64", PreferNoSchedule), taint("disk-type", "ssd", PreferNoSchedule)],
            ),
        ];
        assert_eq!(scores(&p, &nodes), vec![100, 100, 0], "only PreferNoSchedule taints and tolerations count");

        let nodes = [tainted("a", vec![]), tainted("b", vec![taint("cpu-type", "arm64", PreferNoSchedule)])];
        assert_eq!(scores(&pod("p", 0, 0), &nodes), vec![100, 0], "no taints and tolerations");
    }

    #[test]
    fn score_without_pre_score_counts_the_same() {
        let p = tolerating(vec![equal("foo", "bar", None), equal("x", "y", Some(TaintEffect::NoSchedule))]);
        let n = tainted(
            "a",
            vec![taint("foo", "bar", TaintEffect::PreferNoSchedule), taint("x", "y", TaintEffect::PreferNoSchedule)],
        );
        assert_eq!(TaintToleration.score(&CycleState::new(), &p, &n), 1);
    }
}
