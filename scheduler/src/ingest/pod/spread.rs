//! `spec.topologySpreadConstraints`.

use k8s_openapi::api::core::v1 as core;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::{LabelSet, Operator};
use tessera_plugins::model::{InclusionPolicy, SpreadConstraint, WhenUnsatisfiable};

use crate::ingest::error::{FieldError, FieldProblem};
use crate::ingest::selectors::{fold_label_keys, label_selector};

/// Converts the constraints, folding `matchLabelKeys` into each selector with the values of
/// `labels` (the pod's own), as upstream does.
pub fn spread_constraints(
    constraints: Option<&[core::TopologySpreadConstraint]>,
    labels: &LabelSet,
) -> Result<Vec<SpreadConstraint>, FieldError> {
    constraints
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, c)| spread_constraint(c, &format!("spec.topologySpreadConstraints[{i}]"), labels))
        .collect()
}

fn spread_constraint(
    c: &core::TopologySpreadConstraint,
    path: &str,
    labels: &LabelSet,
) -> Result<SpreadConstraint, FieldError> {
    if c.max_skew <= 0 {
        return Err(FieldError::invalid(format!("{path}.maxSkew"), c.max_skew, "must be greater than zero"));
    }
    if c.topology_key.is_empty() {
        return Err(FieldError::new(format!("{path}.topologyKey"), FieldProblem::Missing));
    }
    let when_unsatisfiable = when_unsatisfiable(&c.when_unsatisfiable, path)?;
    let min_domains = min_domains(c.min_domains, when_unsatisfiable, path)?;
    let mut selector = label_selector(c.label_selector.as_ref(), &format!("{path}.labelSelector"))?;
    fold_label_keys(&mut selector, c.match_label_keys.as_ref(), Operator::In, labels);
    Ok(SpreadConstraint {
        max_skew: c.max_skew,
        topology_key: Sym::new(&c.topology_key),
        when_unsatisfiable,
        selector,
        min_domains,
        node_affinity_policy: policy(
            c.node_affinity_policy.as_deref(),
            InclusionPolicy::Honor,
            path,
            "nodeAffinityPolicy",
        )?,
        node_taints_policy: policy(c.node_taints_policy.as_deref(), InclusionPolicy::Ignore, path, "nodeTaintsPolicy")?,
    })
}

fn when_unsatisfiable(value: &str, path: &str) -> Result<WhenUnsatisfiable, FieldError> {
    match value {
        "DoNotSchedule" => Ok(WhenUnsatisfiable::DoNotSchedule),
        "ScheduleAnyway" => Ok(WhenUnsatisfiable::ScheduleAnyway),
        _ => Err(FieldError::unsupported(format!("{path}.whenUnsatisfiable"), value, "DoNotSchedule, ScheduleAnyway")),
    }
}

/// `minDomains`, which upstream validation wants positive and only with `DoNotSchedule`.
fn min_domains(value: Option<i32>, when: WhenUnsatisfiable, path: &str) -> Result<Option<i32>, FieldError> {
    let Some(n) = value else { return Ok(None) };
    let field = format!("{path}.minDomains");
    if n <= 0 {
        return Err(FieldError::invalid(field, n, "must be greater than zero"));
    }
    if when != WhenUnsatisfiable::DoNotSchedule {
        return Err(FieldError::invalid(field, n, "can only be set when whenUnsatisfiable is DoNotSchedule"));
    }
    Ok(Some(n))
}

fn policy(
    value: Option<&str>,
    default: InclusionPolicy,
    path: &str,
    name: &str,
) -> Result<InclusionPolicy, FieldError> {
    match value {
        None => Ok(default),
        Some("Honor") => Ok(InclusionPolicy::Honor),
        Some("Ignore") => Ok(InclusionPolicy::Ignore),
        Some(other) => Err(FieldError::unsupported(format!("{path}.{name}"), other, "Honor, Ignore")),
    }
}
