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

/// Converts one pod-style toleration at `path`.
pub(crate) fn toleration(t: &core::Toleration, path: &str) -> Result<Toleration, FieldError> {
    let fields = TolerationFields {
        key: t.key.as_deref(),
        operator: t.operator.as_deref(),
        value: t.value.as_deref(),
        effect: t.effect.as_deref(),
    };
    toleration_of(fields, path, POD_EFFECTS)
}

/// A toleration as written, by a pod or by a DRA device request.
pub(crate) struct TolerationFields<'a> {
    /// `key`.
    pub key: Option<&'a str>,
    /// `operator`.
    pub operator: Option<&'a str>,
    /// `value`.
    pub value: Option<&'a str>,
    /// `effect`.
    pub effect: Option<&'a str>,
}

/// The effects a toleration may name, and how an error lists them.
pub(crate) type Effects = (&'static [TaintEffect], &'static str);

/// A pod's: every taint effect.
const POD_EFFECTS: Effects = (
    &[TaintEffect::NoSchedule, TaintEffect::PreferNoSchedule, TaintEffect::NoExecute],
    "NoSchedule, PreferNoSchedule, NoExecute",
);

/// Converts a toleration at `path` whose effect, when set, must be one of `effects`, rejecting
/// what upstream validation rejects.
pub(crate) fn toleration_of(t: TolerationFields<'_>, path: &str, effects: Effects) -> Result<Toleration, FieldError> {
    let key = t.key.filter(|k| !k.is_empty()).map(Sym::new);
    let operator = match t.operator {
        None | Some("" | "Equal") => TolerationOperator::Equal,
        Some("Exists") => TolerationOperator::Exists,
        Some(other) => return Err(FieldError::unsupported(format!("{path}.operator"), other, "Equal, Exists")),
    };
    let value = t.value.unwrap_or("");
    if operator == TolerationOperator::Exists && !value.is_empty() {
        return Err(FieldError::invalid(format!("{path}.value"), value, "must be empty when operator is Exists"));
    }
    // An empty key matches every key, which only makes sense with Exists.
    if key.is_none() && operator == TolerationOperator::Equal {
        return Err(FieldError::invalid(format!("{path}.operator"), "Equal", "must be Exists when key is empty"));
    }
    let effect = match t.effect {
        None | Some("") => None,
        Some(e) => Some(
            TaintEffect::parse(e)
                .filter(|e| effects.0.contains(e))
                .ok_or_else(|| FieldError::unsupported(format!("{path}.effect"), e, effects.1))?,
        ),
    };
    Ok(Toleration { key, operator, value: Sym::new(value), effect })
}
