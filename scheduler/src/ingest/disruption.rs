//! PodDisruptionBudgets (`policy/v1`) into the budgets preemption respects
//! ([`tessera_plugins::disruption`]).
//!
//! The simulator has no disruption controller, so a budget it reads keeps its rule
//! (`minAvailable` or `maxUnavailable`) and the engine applies it to the pods placed; the live
//! scheduler takes `status.disruptionsAllowed`, which the API's controller keeps. Validation
//! is upstream's: at most one of the two bounds, a count at least 0 or a percentage from 0% to
//! 100%.

use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tessera_plugins::disruption::{Allowance, Bound, DisruptionBudget};
use tessera_plugins::intern::Sym;

use super::error::{FieldError, FieldProblem, IngestError, ObjectRef};
use super::selectors::label_selector;

/// Where a budget's allowance comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Its rule, applied by the engine (the simulator).
    Rule,
    /// Its `status.disruptionsAllowed` (the live scheduler).
    Status,
}

/// Reads `pdb`; an invalid field is an error naming the budget and the field.
pub fn budget(pdb: &PodDisruptionBudget, source: Source) -> Result<DisruptionBudget, IngestError> {
    let namespace = pdb.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
    let object = || ObjectRef::namespaced("PodDisruptionBudget", namespace, pdb.metadata.name.as_deref());
    let name = pdb
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| FieldError::new("metadata.name", FieldProblem::Missing).on(object()))?;
    let spec = pdb.spec.as_ref();
    let selector =
        label_selector(spec.and_then(|s| s.selector.as_ref()), "spec.selector").map_err(|e| e.on(object()))?;
    let min = spec.and_then(|s| s.min_available.as_ref());
    let max = spec.and_then(|s| s.max_unavailable.as_ref());
    if min.is_some() && max.is_some() {
        let problem = FieldProblem::Invalid {
            value: "minAvailable and maxUnavailable".into(),
            reason: "minAvailable and maxUnavailable cannot be both set",
        };
        return Err(FieldError::new("spec", problem).on(object()));
    }
    let min_available = min.map(|v| bound(v, "spec.minAvailable")).transpose().map_err(|e| e.on(object()))?;
    let max_unavailable = max.map(|v| bound(v, "spec.maxUnavailable")).transpose().map_err(|e| e.on(object()))?;
    let allowance = match source {
        Source::Rule => Allowance::Rule { min_available, max_unavailable },
        Source::Status => Allowance::Fixed(pdb.status.as_ref().and_then(|s| s.disruptions_allowed).unwrap_or(0).max(0)),
    };
    Ok(DisruptionBudget {
        namespace: Sym::new(namespace),
        name: Arc::from(name),
        selector,
        allowance,
        healthy: 0,
        disrupted: 0,
    })
}

/// A count (at least 0) or a percentage (`"50%"`, 0 to 100).
fn bound(value: &IntOrString, path: &str) -> Result<Bound, FieldError> {
    match value {
        IntOrString::Int(n) if *n >= 0 => Ok(Bound::Count(*n)),
        IntOrString::Int(n) => Err(FieldError::new(
            path,
            FieldProblem::OutOfRange { min: 0, max: i64::from(i32::MAX), got: i64::from(*n) },
        )),
        IntOrString::String(s) => {
            let pct = s.strip_suffix('%').and_then(|p| p.parse::<i32>().ok()).filter(|p| (0..=100).contains(p));
            pct.map(Bound::Percent).ok_or_else(|| {
                FieldError::new(
                    path,
                    FieldProblem::Invalid {
                        value: s.clone(),
                        reason: "must be an integer or a percentage from 0% to 100%",
                    },
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(spec: &str) -> PodDisruptionBudget {
        let yaml = format!(
            "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: web, namespace: shop}}\n{spec}"
        );
        serde_yaml_ng::from_str(&yaml).unwrap()
    }

    #[test]
    fn reads_the_rule_or_the_status() {
        let p = pdb(
            "spec: {minAvailable: 50%, selector: {matchLabels: {app: web}}}\nstatus: {disruptionsAllowed: 2, currentHealthy: 3, desiredHealthy: 1, expectedPods: 3}",
        );
        let b = budget(&p, Source::Rule).unwrap();
        assert_eq!(b.allowance, Allowance::Rule { min_available: Some(Bound::Percent(50)), max_unavailable: None });
        assert_eq!((b.namespace.as_str(), &*b.name), ("shop", "web"));
        assert_eq!(budget(&p, Source::Status).unwrap().allowance, Allowance::Fixed(2));
    }

    #[test]
    fn bad_bounds_name_the_budget_and_field() {
        let both = budget(&pdb("spec: {minAvailable: 1, maxUnavailable: 1}"), Source::Rule).unwrap_err().to_string();
        assert!(both.contains("PodDisruptionBudget shop/web") && both.contains("cannot be both set"), "{both}");
        let pct = budget(&pdb("spec: {maxUnavailable: 150%}"), Source::Rule).unwrap_err().to_string();
        assert!(pct.contains("spec.maxUnavailable") && pct.contains("150%"), "{pct}");
        let neg = budget(&pdb("spec: {minAvailable: -1}"), Source::Rule).unwrap_err().to_string();
        assert!(neg.contains("spec.minAvailable"), "{neg}");
    }
}
