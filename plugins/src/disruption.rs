//! PodDisruptionBudgets as preemption reads them: which pods each budget covers and how many
//! more of them may be disrupted now.
//!
//! Upstream's preemption reads `status.disruptionsAllowed`, which the disruption controller
//! keeps up to date. A budget taken from the API carries that figure as it is
//! ([`Allowance::Fixed`]). The simulator has no controller, so a budget read from its input
//! carries its rule instead ([`Allowance::Rule`]) and the engine recomputes what it allows
//! from the pods placed each time one it covers comes or goes ([`Budgets::count`]).

use std::sync::Arc;

use crate::intern::Sym;
use crate::labels::LabelSelector;
use crate::model::Pod;

/// `minAvailable` or `maxUnavailable`, as a count or a percentage of the pods expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// An absolute number of pods.
    Count(i32),
    /// A percentage of the pods expected, rounded up (as upstream's `GetScaledValueFromIntOrPercent`).
    Percent(i32),
}

impl Bound {
    /// The bound in pods, for `expected` pods.
    pub fn pods(self, expected: i32) -> i32 {
        match self {
            Bound::Count(n) => n,
            Bound::Percent(p) => {
                (i64::from(p) * i64::from(expected)).div_euclid(100) as i32
                    + i32::from((i64::from(p) * i64::from(expected)).rem_euclid(100) != 0)
            }
        }
    }
}

/// Where a budget's allowed disruptions come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowance {
    /// `status.disruptionsAllowed`, as the API's disruption controller computed it.
    Fixed(i32),
    /// The budget's rule, applied to the pods it covers that are placed now. Upstream counts
    /// the pods a controller expects; without controllers, "expected" is the pods placed plus
    /// those evicted (a pod that ends on its own is no longer expected).
    Rule {
        /// `minAvailable` (else `maxUnavailable` applies).
        min_available: Option<Bound>,
        /// `maxUnavailable`.
        max_unavailable: Option<Bound>,
    },
}

/// One PodDisruptionBudget.
#[derive(Clone, Debug, PartialEq)]
pub struct DisruptionBudget {
    /// Its namespace: it covers pods of this namespace only.
    pub namespace: Sym,
    /// Its name.
    pub name: Arc<str>,
    /// `spec.selector`; `None` (missing) or empty covers nothing, as upstream's preemption
    /// reads it.
    pub selector: Option<LabelSelector>,
    /// Where its allowance comes from.
    pub allowance: Allowance,
    /// Placed pods it covers now.
    pub healthy: i32,
    /// Pods it covers that preemption evicted.
    pub disrupted: i32,
}

impl DisruptionBudget {
    /// Whether the budget covers `pod`.
    pub fn covers(&self, pod: &Pod) -> bool {
        pod.namespace == self.namespace
            && self.selector.as_ref().is_some_and(|s| !s.is_empty() && s.matches(&pod.labels))
    }

    /// How many more of its pods may be disrupted now.
    pub fn allowed(&self) -> i32 {
        let expected = self.healthy + self.disrupted;
        match self.allowance {
            Allowance::Fixed(n) => n,
            Allowance::Rule { min_available: Some(min), .. } => (self.healthy - min.pods(expected)).max(0),
            Allowance::Rule { max_unavailable: Some(max), .. } => (max.pods(expected) - self.disrupted).max(0),
            // Neither set: upstream defaults to minAvailable 1.
            Allowance::Rule { .. } => (self.healthy - 1).max(0),
        }
    }
}

/// Every budget of the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Budgets {
    /// The budgets, in no particular order.
    pub budgets: Vec<DisruptionBudget>,
}

impl Budgets {
    /// Whether there are none (the common case: preemption then never looks).
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty()
    }

    /// Whether counting `pod` would change any budget: it has a rule and covers the pod.
    pub fn counts(&self, pod: &Pod) -> bool {
        self.budgets.iter().any(|b| matches!(b.allowance, Allowance::Rule { .. }) && b.covers(pod))
    }

    /// Counts `pod` placed (`delta` 1) or gone (`delta` -1) in the budgets with a rule that
    /// cover it.
    pub fn count(&mut self, pod: &Pod, delta: i32) {
        for b in self.budgets.iter_mut().filter(|b| matches!(b.allowance, Allowance::Rule { .. })) {
            if b.covers(pod) {
                debug_assert!(b.healthy + delta >= 0, "budget {} counted below 0", b.name);
                b.healthy = (b.healthy + delta).max(0);
            }
        }
    }

    /// Records that preemption evicts `pod`: still expected by the budgets with a rule that
    /// cover it, though no longer there (its removal is counted as for any pod).
    pub fn disrupt(&mut self, pod: &Pod) {
        for b in self.budgets.iter_mut().filter(|b| matches!(b.allowance, Allowance::Rule { .. })) {
            if b.covers(pod) {
                b.disrupted += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelSet;
    use crate::resources::ResourceVec;

    fn budget(allowance: Allowance) -> DisruptionBudget {
        let selector = LabelSelector::from_match_labels(&LabelSet::from_pairs([("app", "web")]));
        DisruptionBudget {
            namespace: Sym::new("default"),
            name: Arc::from("web"),
            selector: Some(selector),
            allowance,
            healthy: 0,
            disrupted: 0,
        }
    }

    fn web(name: &str) -> Pod {
        let mut p = Pod::new("default", name, ResourceVec::ZERO);
        p.labels = LabelSet::from_pairs([("app", "web")]);
        p
    }

    #[test]
    fn a_rule_allows_what_the_placed_pods_leave_over_it() {
        let min = Allowance::Rule { min_available: Some(Bound::Count(2)), max_unavailable: None };
        let mut b = Budgets { budgets: vec![budget(min)] };
        for i in 0..3 {
            b.count(&web(&format!("w{i}")), 1);
        }
        assert_eq!(b.budgets[0].allowed(), 1);
        b.count(&web("w0"), -1);
        assert_eq!(b.budgets[0].allowed(), 0);
        let max = Allowance::Rule { min_available: None, max_unavailable: Some(Bound::Percent(50)) };
        let mut b = Budgets { budgets: vec![budget(max)] };
        for i in 0..3 {
            b.count(&web(&format!("w{i}")), 1);
        }
        // 50% of 3 rounds up to 2; one evicted leaves one more; one that ended on its own is
        // no longer expected.
        assert_eq!(b.budgets[0].allowed(), 2);
        b.disrupt(&web("w0"));
        b.count(&web("w0"), -1);
        assert_eq!(b.budgets[0].allowed(), 1);
        b.count(&web("w1"), -1);
        assert_eq!(b.budgets[0].allowed(), 0, "50% of 2 expected is 1, and one is disrupted");
    }

    #[test]
    fn a_budget_covers_only_its_namespace_and_never_with_an_empty_selector() {
        let b = budget(Allowance::Fixed(1));
        assert!(b.covers(&web("a")));
        let mut other = web("a");
        other.namespace = Sym::new("other");
        assert!(!b.covers(&other));
        let empty = DisruptionBudget { selector: Some(LabelSelector::default()), ..budget(Allowance::Fixed(1)) };
        assert!(!empty.covers(&web("a")));
        assert_eq!(Bound::Percent(34).pods(10), 4);
    }
}
