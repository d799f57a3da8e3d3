//! Resource lists (`requests`, `limits`, `allocatable`, `overhead`) into [`ResourceVec`]s.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tessera_plugins::quantity::{parse_milli, parse_value};
use tessera_plugins::resources::{ResourceId, ResourceSet, ResourceVec};

use super::error::FieldError;

/// A resource list as amounts, remembering which names were listed: upstream tells a missing
/// request (which scoring replaces with a default) from an explicit zero (which it keeps).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Amounts {
    /// The amounts, in canonical units.
    pub values: ResourceVec,
    /// The listed names.
    pub present: ResourceSet,
}

impl Amounts {
    /// Whether `id` was listed.
    pub fn has(&self, id: ResourceId) -> bool {
        self.present.contains(id)
    }

    /// Lists `id` with `amount`.
    pub fn set(&mut self, id: ResourceId, amount: i64) {
        self.values.set(id, amount);
        self.present.insert(id);
    }

    /// Adds `other`: amounts slot by slot, listed names as a union.
    pub fn add(&mut self, other: &Amounts) {
        self.values.add(&other.values);
        self.present.union_with(&other.present);
    }

    /// The listed slots.
    pub fn listed(&self) -> impl Iterator<Item = ResourceId> + '_ {
        self.present.iter()
    }
}

/// A resource list, keyed by resource name.
pub type ResourceList = BTreeMap<String, Quantity>;

/// Converts a resource list found at `path` (fields are `path.<name>`). `None` is empty.
pub fn resource_list(list: Option<&ResourceList>, path: &str) -> Result<Amounts, FieldError> {
    let mut out = Amounts::default();
    for (name, quantity) in list.into_iter().flatten() {
        let (id, amount) = resource_amount(name, quantity, path)?;
        out.set(id, amount);
    }
    Ok(out)
}

/// One entry of a resource list at `path`: its slot and its amount in canonical units —
/// millicores for CPU, whole units (bytes, devices) for everything else, as upstream's
/// scheduler reads them (`MilliValue()` for CPU, `Value()` otherwise).
pub fn resource_amount(name: &str, quantity: &Quantity, path: &str) -> Result<(ResourceId, i64), FieldError> {
    let field = || format!("{path}.{name}");
    let id = ResourceId::of(name).map_err(|e| FieldError::new(field(), e))?;
    let parsed = if id.is_milli() { parse_milli(&quantity.0) } else { parse_value(&quantity.0) };
    let amount = parsed.map_err(|e| FieldError::new(field(), e))?;
    // Upstream validation rejects negative requests and capacities; letting one through
    // would make a pod free up room on its node.
    if amount < 0 {
        return Err(FieldError::invalid(field(), &quantity.0, "must be greater than or equal to 0"));
    }
    Ok((id, amount))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::error::FieldProblem;
    use tessera_plugins::quantity::QuantityError;

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect()
    }

    fn one(name: &str, q: &str) -> i64 {
        let a = resource_list(Some(&list(&[(name, q)])), "x").unwrap();
        a.values.get(ResourceId::of(name).unwrap())
    }

    #[test]
    fn cpu_is_read_in_millicores_in_every_form() {
        for (q, milli) in [
            ("100m", 100),
            ("1", 1000),
            ("1.5", 1500),
            (".5", 500),
            ("2.", 2000),
            ("+3", 3000),
            ("1n", 1),
            ("250000u", 250),
            ("1k", 1_000_000),
            ("2e3", 2_000_000),
            ("1E-3", 1),
            ("1Ki", 1_024_000),
            ("0", 0),
        ] {
            assert_eq!(one("cpu", q), milli, "cpu {q}");
        }
    }

    #[test]
    fn other_resources_are_read_in_whole_units_in_every_form() {
        for (q, bytes) in [
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("129M", 129_000_000),
            ("123Mi", 128_974_848),
            ("1.5Gi", 1_610_612_736),
            ("1Ki", 1024),
            ("1Ti", 1 << 40),
            ("1Pi", 1 << 50),
            ("1k", 1000),
            ("1G", 1_000_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("1Ei", 1 << 60),
            // Fractions of a unit round up, as upstream's Value().
            ("500m", 1),
            ("1.1", 2),
        ] {
            assert_eq!(one("memory", q), bytes, "memory {q}");
        }
        assert_eq!(one("example.com/widget", "4"), 4);
        assert_eq!(one("ephemeral-storage", "1Gi"), 1 << 30);
    }

    #[test]
    fn presence_is_kept_apart_from_zero() {
        let a = resource_list(Some(&list(&[("cpu", "0")])), "x").unwrap();
        assert!(a.has(ResourceId::CPU));
        assert!(!a.has(ResourceId::MEMORY));
        assert_eq!(a.listed().collect::<Vec<_>>(), vec![ResourceId::CPU]);
        assert_eq!(resource_list(None, "x").unwrap(), Amounts::default());
    }

    #[test]
    fn bad_quantities_name_the_field() {
        let e = resource_list(Some(&list(&[("cpu", "abc")])), "spec.overhead").unwrap_err();
        assert_eq!(e.field, "spec.overhead.cpu");
        assert_eq!(e.problem, FieldProblem::Quantity(QuantityError::Syntax("abc".into())));
        let e = resource_list(Some(&list(&[("memory", "1Xi")])), "r").unwrap_err();
        assert!(matches!(e.problem, FieldProblem::Quantity(QuantityError::Suffix(..))), "{e:?}");
        let e = resource_list(Some(&list(&[("memory", "9Ei")])), "r").unwrap_err();
        assert!(matches!(e.problem, FieldProblem::Quantity(QuantityError::Overflow(_))), "{e:?}");
        let e = resource_list(Some(&list(&[("memory", "")])), "r").unwrap_err();
        assert_eq!(e.problem, FieldProblem::Quantity(QuantityError::Empty));
        let e = resource_list(Some(&list(&[("memory", "-1Gi")])), "r").unwrap_err();
        assert_eq!(e.field, "r.memory");
        assert!(matches!(e.problem, FieldProblem::Invalid { .. }), "{e:?}");
    }
}
