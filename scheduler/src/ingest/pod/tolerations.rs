//! `spec.tolerations`.

use k8s_openapi::api::core::v1 as core;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{TaintEffect, Toleration, TolerationOperator};

use crate::ingest::error::FieldError;

/// Converts the tolerations, rejecting what upstream validation rejects.
pub fn tolerations(tolerations: Option<&[core::Toleration]>) -> Result<Vec<Toleration>, FieldError> {
    tolerations
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, t)| toleration(t, &format!("spec.tolerations[{i}]")))
        .collect()
}

fn toleration(t: &core::Toleration, path: &str) -> Result<Toleration, FieldError> {
    let key = t.key.as_deref().filter(|k| !k.is_empty()).map(Sym::new);
    let operator = match t.operator.as_deref() {
        None | Some("" | "Equal") => TolerationOperator::Equal,
        Some("Exists") => TolerationOperator::Exists,
        Some(other) => return Err(FieldError::unsupported(format!("{path}.operator"), other, "Equal, Exists")),
    };
    let value = t.value.as_deref().unwrap_or("");
    if operator == TolerationOperator::Exists && !value.is_empty() {
        return Err(FieldError::invalid(format!("{path}.value"), value, "must be empty when operator is Exists"));
    }
    // An empty key matches every key, which only makes sense with Exists.
    if key.is_none() && operator == TolerationOperator::Equal {
        return Err(FieldError::invalid(format!("{path}.operator"), "Equal", "must be Exists when key is empty"));
    }
    let effect = match t.effect.as_deref() {
        None | Some("") => None,
        Some(e) => Some(TaintEffect::parse(e).ok_or_else(|| {
            FieldError::unsupported(format!("{path}.effect"), e, "NoSchedule, PreferNoSchedule, NoExecute")
        })?),
    };
    Ok(Toleration { key, operator, value: Sym::new(value), effect })
}
