//! DRA objects (`resource.k8s.io/v1`) into [`tessera_plugins::dra::model`]: ResourceSlices
//! into devices ([`resource_slice`]), DeviceClasses with their selectors compiled
//! ([`device_class`]), and claim specs resolved against the classes once per ResourceClaim or
//! ResourceClaimTemplate ([`DraCatalog`]), so that every pod of a template shares one
//! `Arc<ClaimSpec>` (pointer equality is how the engine shares Filter work between them).
//!
//! Two kinds of trouble are told apart. Structural garbage in an object (a capacity that is
//! not a quantity, an unknown `allocationMode`) is an [`IngestError`] naming the object and
//! field, as for any object. A claim that is well formed but cannot be satisfied on any node
//! (its class is missing, a selector does not compile, a bad count) resolves to
//! `Err(reason)` naming the claim and the request: the pods using it stay pending with that
//! reason, and nothing else fails.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::resource::v1 as api;
use k8s_openapi::api::scheduling::v1alpha3 as sched;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tessera_plugins::dra::cel::compile_cached;
use tessera_plugins::dra::model::{
    AttrValue, Capacity, CapacityPolicy, CapacityRange, ClaimAllocation, ClaimGroup, ClaimKey, ClaimProblem, ClaimSpec,
    CounterConsumption, CounterSet, Device, DeviceClass, DeviceTaint, PodClaim, ResourceSlice, SliceNodes,
};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::NodeSelector;
use tessera_plugins::model::{GroupKey, TaintEffect};
use tessera_plugins::quantity::parse_milli;

use super::error::{FieldError, FieldProblem, IngestError, ObjectRef};
use super::selectors::node_selector_term;
use spec::{Resolver, cel_expression, opaque, required};

#[path = "dra_spec.rs"]
mod spec;

/// An object resolved for allocation, or why no node can satisfy what names it (a message
/// naming the object, and the request when there is one).
pub type Resolved<T> = Result<Arc<T>, ClaimProblem>;

/// Converts a ResourceSlice. Its placement is `nodeName`, `nodeSelector` or `allNodes`;
/// `perDeviceNodeSelection`, which this model does not express, becomes an empty node
/// selector: reachable from no node, until the allocator learns per-device placement. A slice
/// holds either devices or its pool's `sharedCounters`, never both; the devices' capacity
/// request policies and counter consumptions are checked as upstream's API validation checks
/// them, where that needs nothing outside the slice (a counter set named by a device is in
/// another slice of the pool, and is not looked for here).
pub fn resource_slice(s: &api::ResourceSlice) -> Result<ResourceSlice, IngestError> {
    let object = || ObjectRef::cluster("ResourceSlice", s.metadata.name.as_deref());
    let name = s.metadata.name.as_deref().unwrap_or("");
    let name = required(name, "metadata.name").map_err(|e| e.on(object()))?;
    convert_slice(name, &s.spec).map_err(|e| e.on(object()))
}

fn convert_slice(name: &str, spec: &api::ResourceSliceSpec) -> Result<ResourceSlice, FieldError> {
    let driver = Sym::new(required(&spec.driver, "spec.driver")?);
    let pool = Sym::new(required(&spec.pool.name, "spec.pool.name")?);
    let count = spec.pool.resource_slice_count;
    let slice_count = u32::try_from(count).ok().filter(|n| *n >= 1).ok_or_else(|| {
        FieldError::new(
            "spec.pool.resourceSliceCount",
            FieldProblem::OutOfRange { min: 1, max: i64::from(u32::MAX), got: count },
        )
    })?;
    let devices = spec
        .devices
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, d)| device(d, driver, pool, &format!("spec.devices[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let shared_counters = counter_sets(spec.shared_counters.as_deref().unwrap_or_default())?;
    if !devices.is_empty() && !shared_counters.is_empty() {
        return Err(FieldError::new("spec", FieldProblem::Rule("devices and sharedCounters must not both be set")));
    }
    Ok(ResourceSlice {
        name: Arc::from(name),
        driver,
        pool,
        generation: spec.pool.generation,
        slice_count,
        nodes: slice_nodes(spec)?,
        devices,
        shared_counters,
    })
}

fn slice_nodes(spec: &api::ResourceSliceSpec) -> Result<SliceNodes, FieldError> {
    let node_name = spec.node_name.as_deref().filter(|n| !n.is_empty());
    let all = spec.all_nodes == Some(true);
    let per_device = spec.per_device_node_selection == Some(true);
    let set = [node_name.is_some(), spec.node_selector.is_some(), all, per_device];
    if set.iter().filter(|s| **s).count() != 1 {
        let rule = "exactly one of nodeName, nodeSelector, allNodes and perDeviceNodeSelection must be set";
        return Err(FieldError::new("spec", FieldProblem::Rule(rule)));
    }
    Ok(match (node_name, &spec.node_selector) {
        (Some(node), _) => SliceNodes::Node(Sym::new(node)),
        (_, Some(selector)) => SliceNodes::Selector(node_selector(selector, "spec.nodeSelector")?),
        _ if all => SliceNodes::All,
        _ => SliceNodes::Selector(NodeSelector::default()),
    })
}

fn node_selector(selector: &core::NodeSelector, path: &str) -> Result<NodeSelector, FieldError> {
    let terms = selector
        .node_selector_terms
        .iter()
        .enumerate()
        .map(|(i, t)| node_selector_term(t, &format!("{path}.nodeSelectorTerms[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(NodeSelector { terms })
}

fn device(d: &api::Device, driver: Sym, pool: Sym, path: &str) -> Result<Arc<Device>, FieldError> {
    let name = Sym::new(required(&d.name, &format!("{path}.name"))?);
    let mut attributes = BTreeMap::new();
    for (key, a) in d.attributes.iter().flatten() {
        if let Some(value) = attribute(a, &format!("{path}.attributes.{key}"))? {
            attributes.insert(qualify(driver, key), value);
        }
    }
    let shared = d.allow_multiple_allocations == Some(true);
    let mut capacity = BTreeMap::new();
    for (key, c) in d.capacity.iter().flatten() {
        let capacity_at = format!("{path}.capacity.{key}");
        capacity.insert(qualify(driver, key), device_capacity(c, shared, &capacity_at)?);
    }
    let consumes_counters = d
        .consumes_counters
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| counter_consumption(c, &format!("{path}.consumesCounters[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, c) in consumes_counters.iter().enumerate() {
        if consumes_counters[..i].iter().any(|other| other.counter_set == c.counter_set) {
            let field = format!("{path}.consumesCounters[{i}].counterSet");
            return Err(FieldError::invalid(field, c.counter_set, "must be unique in the device"));
        }
    }
    let mut taints = Vec::new();
    for (i, t) in d.taints.iter().flatten().enumerate() {
        taints.extend(device_taint(t, &format!("{path}.taints[{i}]"))?);
    }
    Ok(Arc::new(Device {
        uid: Device::next_uid(),
        name,
        driver,
        pool,
        attributes,
        capacity,
        taints,
        allow_multiple_allocations: shared,
        consumes_counters,
    }))
}

/// A quantity at `path` in milli-units.
fn milli_at(q: &Quantity, path: impl Into<String>) -> Result<i64, FieldError> {
    parse_milli(&q.0).map_err(|e| FieldError::new(path, e))
}

/// A device capacity at `path` (`capacity.<name>`) of a device that allows multiple
/// allocations (`shared`) or not: only the former may have a `requestPolicy`, which is checked
/// against the capacity's value as upstream's validation does.
fn device_capacity(c: &api::DeviceCapacity, shared: bool, path: &str) -> Result<Capacity, FieldError> {
    let milli = milli_at(&c.value, format!("{path}.value"))?;
    let policy = match &c.request_policy {
        Some(_) if !shared => {
            return Err(rule(&format!("{path}.requestPolicy"), "allowMultipleAllocations must be true"));
        }
        Some(p) => Some(Arc::new(capacity_policy(p, milli, &format!("{path}.requestPolicy"))?)),
        None => None,
    };
    Ok(Capacity { text: Arc::from(c.value.0.as_str()), milli, policy })
}

/// A `requestPolicy` at `path` of a capacity of `value` milli-units, checked as upstream's
/// `validateRequestPolicy` does: not both `validValues` and `validRange`; with either, a
/// `default` that is one of the values (ascending, none above the capacity), or in the range
/// (within the capacity) on one of its steps.
fn capacity_policy(p: &api::CapacityRequestPolicy, value: i64, path: &str) -> Result<CapacityPolicy, FieldError> {
    let default = p.default.as_ref().map(|d| milli_at(d, format!("{path}.default"))).transpose()?;
    let valid_values = p
        .valid_values
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, v)| milli_at(v, format!("{path}.validValues[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let valid_range = p.valid_range.as_ref().map(|r| capacity_range(r, &format!("{path}.validRange"))).transpose()?;
    let required = |field: &str| FieldError::new(format!("{path}.{field}"), FieldProblem::Missing);
    match (valid_values.is_empty(), valid_range) {
        (false, Some(_)) => return Err(rule(path, "validValues and validRange must not both be set")),
        (false, None) => {
            let default = default.ok_or_else(|| required("default"))?;
            check_valid_values(&valid_values, default, value, &format!("{path}.validValues"))?;
        }
        (true, Some(range)) => {
            let default = default.ok_or_else(|| required("default"))?;
            check_range(range, default, value, &format!("{path}.validRange"))?;
        }
        (true, None) => {}
    }
    Ok(CapacityPolicy { default, valid_values, valid_range })
}

fn rule(path: &str, rule: &'static str) -> FieldError {
    FieldError::new(path, FieldProblem::Rule(rule))
}

/// `validValues` at `path`: ascending without duplicates, none above the capacity's `value`,
/// `default` among them.
fn check_valid_values(values: &[i64], default: i64, value: i64, path: &str) -> Result<(), FieldError> {
    for (i, pair) in values.windows(2).enumerate() {
        if pair[0] >= pair[1] {
            return Err(rule(&format!("{path}[{}]", i + 1), "must be sorted ascending, without duplicates"));
        }
    }
    if let Some(i) = values.iter().position(|&v| v > value) {
        return Err(rule(&format!("{path}[{i}]"), "must not exceed the capacity's value"));
    }
    if !values.contains(&default) {
        return Err(rule(path, "must contain the default"));
    }
    Ok(())
}

/// A `validRange` at `path` as written (its quantities parsed; a `step` must be positive).
fn capacity_range(r: &api::CapacityRequestPolicyRange, path: &str) -> Result<CapacityRange, FieldError> {
    let min = milli_at(&r.min, format!("{path}.min"))?;
    let max = r.max.as_ref().map(|m| milli_at(m, format!("{path}.max"))).transpose()?;
    let step = r.step.as_ref().map(|s| milli_at(s, format!("{path}.step"))).transpose()?;
    if step.is_some_and(|s| s <= 0) {
        return Err(rule(&format!("{path}.step"), "must be positive"));
    }
    Ok(CapacityRange { min, max, step })
}

/// A `validRange` at `path` of a capacity of `value` with its `default`, as upstream's
/// `validateRequestPolicyRange` checks it: `min` and `max` (and `min` plus one `step`) within
/// the capacity, `min <= default <= max`, and `default` and `max` on a step from `min`.
fn check_range(r: CapacityRange, default: i64, value: i64, path: &str) -> Result<(), FieldError> {
    let at = |field: &str| format!("{path}.{field}");
    if r.min > value {
        return Err(rule(&at("min"), "must not exceed the capacity's value"));
    }
    if default < r.min {
        return Err(rule(&at("min"), "must not exceed the default"));
    }
    if let Some(max) = r.max {
        if max < r.min {
            return Err(rule(&at("max"), "must not be less than min"));
        }
        if max > value {
            return Err(rule(&at("max"), "must not exceed the capacity's value"));
        }
        if default > max {
            return Err(rule(&at("max"), "must not be less than the default"));
        }
    }
    let Some(step) = r.step else { return Ok(()) };
    if r.min.checked_add(step).is_none_or(|one| one > value) {
        return Err(rule(&at("step"), "min plus one step must not exceed the capacity's value"));
    }
    let on_step = |v: i64| (v - r.min) % step == 0;
    if !on_step(default) || r.max.is_some_and(|max| !on_step(max)) {
        return Err(rule(&at("step"), "the default and max must be min plus a multiple of step"));
    }
    Ok(())
}

/// `spec.sharedCounters`: each set named, the names unique in the slice, each counter's value
/// a quantity (names kept as written: counters belong to no domain).
fn counter_sets(sets: &[api::CounterSet]) -> Result<Vec<CounterSet>, FieldError> {
    let mut out: Vec<CounterSet> = Vec::with_capacity(sets.len());
    for (i, s) in sets.iter().enumerate() {
        let path = format!("spec.sharedCounters[{i}]");
        let name = required(&s.name, &format!("{path}.name"))?;
        if out.iter().any(|other| other.name.as_str() == name) {
            return Err(FieldError::invalid(format!("{path}.name"), name, "must be unique in the slice"));
        }
        let counters = counters(&s.counters, &format!("{path}.counters"))?;
        out.push(CounterSet { name: Sym::new(name), counters });
    }
    Ok(out)
}

/// One entry of a device's `consumesCounters` at `path`.
fn counter_consumption(c: &api::DeviceCounterConsumption, path: &str) -> Result<CounterConsumption, FieldError> {
    let counter_set = required(&c.counter_set, &format!("{path}.counterSet"))?;
    Ok(CounterConsumption {
        counter_set: Sym::new(counter_set),
        counters: counters(&c.counters, &format!("{path}.counters"))?,
    })
}

/// Counters at `path` (`counters.<name>.value`), in milli-units (upstream takes any
/// quantity that parses).
fn counters(counters: &BTreeMap<String, api::Counter>, path: &str) -> Result<BTreeMap<Arc<str>, i64>, FieldError> {
    let mut out = BTreeMap::new();
    for (name, c) in counters {
        required(name, &format!("{path}.<name>"))?;
        out.insert(Arc::from(name.as_str()), milli_at(&c.value, format!("{path}.{name}.value"))?);
    }
    Ok(out)
}

/// `name` qualified: a name without a domain gets the driver's, as upstream's CEL environment
/// qualifies it.
fn qualify(driver: Sym, name: &str) -> Arc<str> {
    if name.contains('/') { Arc::from(name) } else { Arc::from(format!("{driver}/{name}")) }
}

/// A scalar attribute; `None` for the list-valued ones (`bools`, `ints`, ...: alpha
/// `DRAListTypeAttributes`), which the model does not hold, so selectors see them absent.
fn attribute(a: &api::DeviceAttribute, path: &str) -> Result<Option<AttrValue>, FieldError> {
    let lists = [a.bools.is_some(), a.ints.is_some(), a.strings.is_some(), a.versions.is_some()];
    let scalars = [a.bool.is_some(), a.int.is_some(), a.string.is_some(), a.version.is_some()];
    if lists.iter().chain(&scalars).filter(|s| **s).count() != 1 {
        return Err(FieldError::new(path, FieldProblem::Rule("exactly one value field must be set")));
    }
    Ok(match (a.bool, a.int, &a.string, &a.version) {
        (Some(b), ..) => Some(AttrValue::Bool(b)),
        (_, Some(i), ..) => Some(AttrValue::Int(i)),
        (_, _, Some(s), _) => Some(AttrValue::String(Arc::from(s.as_str()))),
        (.., Some(v)) => Some(AttrValue::Version(Arc::from(v.as_str()))),
        _ => None,
    })
}

/// A device taint; `None` for an effect that keeps no claim off the device (`None`, and any
/// effect unknown here, which upstream says consumers treat like `None`).
fn device_taint(t: &api::DeviceTaint, path: &str) -> Result<Option<DeviceTaint>, FieldError> {
    let key = required(&t.key, &format!("{path}.key"))?;
    let effect = match t.effect.as_str() {
        "NoSchedule" => TaintEffect::NoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        _ => return Ok(None),
    };
    Ok(Some(DeviceTaint { key: Sym::new(key), value: Sym::new(t.value.as_deref().unwrap_or("")), effect }))
}

/// Converts a DeviceClass. A selector that does not compile is not an input error: the class
/// resolves to `Err`, and so does every request naming it.
pub fn device_class(c: &api::DeviceClass) -> Result<Resolved<DeviceClass>, IngestError> {
    let object = || ObjectRef::cluster("DeviceClass", c.metadata.name.as_deref());
    convert_class(c).map_err(|e| e.on(object()))
}

fn convert_class(c: &api::DeviceClass) -> Result<Resolved<DeviceClass>, FieldError> {
    let name = required(c.metadata.name.as_deref().unwrap_or(""), "metadata.name")?;
    let spec = c.spec.as_ref();
    let expressions = spec
        .and_then(|s| s.selectors.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| cel_expression(s, &format!("spec.selectors[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let config = spec
        .and_then(|s| s.config.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, c)| opaque(c.opaque.as_ref(), None, &format!("spec.config[{i}]")))
        .collect::<Result<_, _>>()?;
    let mut selectors = Vec::with_capacity(expressions.len());
    for expression in expressions {
        match compile_cached(expression) {
            Ok(s) => selectors.push(s),
            Err(e) => {
                let why = format!("deviceclass {name:?}: selector {expression:?} does not compile: {e}");
                return Ok(Err(Arc::from(why)));
            }
        }
    }
    Ok(Ok(Arc::new(DeviceClass { name: Sym::new(name), selectors, config })))
}

/// A claim's `status.allocation` (the claim is `key`) as the model holds it: what the live
/// scheduler compares with the allocation it chose before writing its own.
pub fn claim_allocation(key: ClaimKey, a: &api::AllocationResult) -> Result<ClaimAllocation, IngestError> {
    let object = || ObjectRef::namespaced("ResourceClaim", key.namespace.as_str(), Some(key.name.as_str()));
    spec::allocation(key, a).map_err(|e| e.on(object()))
}

/// A ResourceClaim as pods see it: its resolved spec and the allocation its status records.
#[derive(Clone, Debug)]
pub struct ClaimEntry {
    /// `spec.devices`, resolved, or why no node can satisfy it.
    pub spec: Resolved<ClaimSpec>,
    /// `status.allocation`, when the claim is allocated.
    pub allocation: Option<Arc<ClaimAllocation>>,
}

/// DeviceClasses, ResourceClaimTemplates and ResourceClaims, each resolved once when added,
/// and the claims of PodGroups: what turns a pod's `spec.resourceClaims` into [`PodClaim`]s.
/// Templates and claims resolve against the classes added before them, so add the classes
/// first (and add a template or claim again after a class it names changes); PodGroups are
/// looked up as pods resolve, in any order.
///
/// Specs are shared by content: a claim the resourceclaim controller made from a template
/// resolves to the template's very `Arc`, as does any other claim or template asking exactly
/// the same devices (until a class is added again, which starts afresh).
#[derive(Clone, Debug, Default)]
pub struct DraCatalog {
    classes: HashMap<String, Resolved<DeviceClass>>,
    templates: HashMap<ClaimKey, Resolved<ClaimSpec>>,
    claims: HashMap<ClaimKey, ClaimEntry>,
    /// PodGroups (`scheduling.k8s.io`) with `spec.resourceClaims`.
    groups: HashMap<GroupKey, GroupClaims>,
    /// Usable specs by the JSON text of the `spec.devices` they were resolved from.
    specs: HashMap<String, Arc<ClaimSpec>>,
    /// A template's claim exists only once the resourceclaim controller made it (see
    /// [`DraCatalog::live`]).
    waits_for_controller: bool,
}

impl DraCatalog {
    /// A catalog as a live scheduler resolves pods: a pod's claim must exist. A template entry
    /// uses only the claim `pod.status.resourceClaimStatuses` names (or, for a PodGroup's
    /// claim, the group's `status.resourceClaimStatuses`), which upstream's resourceclaim
    /// controller creates (the scheduler never makes claims), and a claim not in the catalog
    /// keeps the pod waiting with a reason naming it.
    pub fn live() -> DraCatalog {
        DraCatalog { waits_for_controller: true, ..DraCatalog::default() }
    }

    /// Adds (or replaces) a DeviceClass. Templates and claims resolved before keep what they
    /// resolved to: add them again to see the change.
    pub fn add_class(&mut self, c: &api::DeviceClass) -> Result<(), IngestError> {
        let class = device_class(c)?;
        // device_class checked the name.
        self.classes.insert(c.metadata.name.clone().unwrap_or_default(), class);
        self.specs.clear();
        Ok(())
    }

    /// Forgets the DeviceClass `name` (requests naming it no longer resolve once their
    /// template or claim is added again).
    pub fn remove_class(&mut self, name: &str) {
        self.classes.remove(name);
        self.specs.clear();
    }

    /// Forgets the ResourceClaim `key`.
    pub fn remove_claim(&mut self, key: &ClaimKey) {
        self.claims.remove(key);
    }

    /// Adds (or replaces) the claims of a PodGroup: its `spec.resourceClaims` and, for its
    /// template entries, the claims `status.resourceClaimStatuses` says were made for it.
    /// Returns whether what its pods resolve to may have changed (see
    /// [`DraCatalog::put_group_claims`]).
    pub fn put_pod_group(&mut self, pg: &sched::PodGroup) -> Result<bool, IngestError> {
        let namespace = namespace_of(&pg.metadata);
        let object = || ObjectRef::namespaced("PodGroup", namespace, pg.metadata.name.as_deref());
        let put = |catalog: &mut DraCatalog| {
            let name = required(pg.metadata.name.as_deref().unwrap_or(""), "metadata.name")?;
            let entries = pg.spec.resource_claims.as_deref().unwrap_or_default();
            let made = pg.status.as_ref().and_then(|s| s.resource_claim_statuses.as_deref()).unwrap_or_default();
            let uid = pg.metadata.uid.as_deref().unwrap_or("");
            catalog.put_group_claims(GroupKey::new(namespace, name), uid, entries, made, "spec")
        };
        put(self).map_err(|e| e.on(object()))
    }

    /// Adds (or replaces) the claims of PodGroup `key` (whose `metadata.uid` is `uid`):
    /// `entries`, its `resourceClaims` found under `at` (`spec`, or the Workload template the
    /// group is made from), and `made`, its `status.resourceClaimStatuses`. Returns whether
    /// what its pods resolve to may have changed (a status update that only touches
    /// conditions changes nothing).
    pub fn put_group_claims(
        &mut self,
        key: GroupKey,
        uid: &str,
        entries: &[sched::PodGroupResourceClaim],
        made: &[sched::PodGroupResourceClaimStatus],
        at: &str,
    ) -> Result<bool, FieldError> {
        group_entries(entries, at)?;
        if entries.is_empty() {
            return Ok(self.groups.remove(&key).is_some());
        }
        let group = GroupClaims {
            group: Arc::new(ClaimGroup { name: key.name, uid: Arc::from(uid) }),
            entries: entries.to_vec(),
            made: made.to_vec(),
        };
        Ok(self.groups.insert(key, group.clone()).is_none_or(|old| old != group))
    }

    /// Forgets the claims of PodGroup `namespace/name`. Returns whether it had any.
    pub fn remove_pod_group(&mut self, namespace: &str, name: &str) -> bool {
        self.groups.remove(&GroupKey::new(namespace, name)).is_some()
    }

    /// The PodGroups whose claim `key` is: named in `spec.resourceClaims`, or made for a
    /// template entry as `status.resourceClaimStatuses` records.
    pub fn groups_with_claim(&self, key: &ClaimKey) -> Vec<GroupKey> {
        let names = |g: &GroupClaims| -> bool {
            let named = g.entries.iter().any(|e| non_empty(&e.resource_claim_name) == Some(key.name.as_str()));
            named || g.made.iter().any(|s| non_empty(&s.resource_claim_name) == Some(key.name.as_str()))
        };
        self.groups.iter().filter(|(k, g)| k.namespace == key.namespace && names(g)).map(|(k, _)| *k).collect()
    }

    /// `devices` resolved (see [`Resolver::resolve`]), a usable spec shared with every earlier
    /// one of the same content.
    fn resolve_shared(&mut self, devices: Option<&api::DeviceClaim>, base: &str, object: &str) -> spec::ResolvedSpec {
        let resolved = Resolver::new(&self.classes).resolve(devices, base, object)?;
        let Ok(spec) = resolved else { return Ok(resolved) };
        let Ok(content) = serde_json::to_string(&devices) else { return Ok(Ok(spec)) };
        Ok(Ok(self.specs.entry(content).or_insert(spec).clone()))
    }

    /// Adds (or replaces) a ResourceClaimTemplate, resolving its `spec.spec` once for every
    /// claim made from it.
    pub fn add_template(&mut self, t: &api::ResourceClaimTemplate) -> Result<(), IngestError> {
        let namespace = namespace_of(&t.metadata);
        let object = || ObjectRef::namespaced("ResourceClaimTemplate", namespace, t.metadata.name.as_deref());
        let name = required(t.metadata.name.as_deref().unwrap_or(""), "metadata.name").map_err(|e| e.on(object()))?;
        let devices = t.spec.as_ref().and_then(|s| s.spec.as_ref()).and_then(|s| s.devices.as_ref());
        let label = format!("resourceclaimtemplate {namespace}/{name}");
        let spec = self.resolve_shared(devices, "spec.spec.devices", &label);
        self.templates.insert(ClaimKey::new(namespace, name), spec.map_err(|e| e.on(object()))?);
        Ok(())
    }

    /// Adds (or replaces) a ResourceClaim: its spec, resolved, and its allocation.
    pub fn add_claim(&mut self, c: &api::ResourceClaim) -> Result<(), IngestError> {
        let namespace = namespace_of(&c.metadata);
        let object = || ObjectRef::namespaced("ResourceClaim", namespace, c.metadata.name.as_deref());
        self.claim_entry(c, namespace).map_err(|e| e.on(object()))
    }

    fn claim_entry(&mut self, c: &api::ResourceClaim, namespace: &str) -> Result<(), FieldError> {
        let name = required(c.metadata.name.as_deref().unwrap_or(""), "metadata.name")?;
        let key = ClaimKey::new(namespace, name);
        let devices = c.spec.as_ref().and_then(|s| s.devices.as_ref());
        let spec = self.resolve_shared(devices, "spec.devices", &format!("resourceclaim {key}"))?;
        let allocation = match c.status.as_ref().and_then(|s| s.allocation.as_ref()) {
            Some(a) => Some(Arc::new(spec::allocation(key, a)?)),
            None => None,
        };
        self.claims.insert(key, ClaimEntry { spec, allocation });
        Ok(())
    }

    /// The resolved spec of template `namespace/name`, if added.
    pub fn template(&self, namespace: &str, name: &str) -> Option<&Resolved<ClaimSpec>> {
        self.templates.get(&ClaimKey::new(namespace, name))
    }

    /// The claim `key`, if added.
    pub fn claim(&self, key: &ClaimKey) -> Option<&ClaimEntry> {
        self.claims.get(key)
    }

    /// The pod's `spec.resourceClaims`, resolved. A claim, template or class that is not in
    /// the catalog gives an entry whose spec is `Err` naming it (the pod waits; a catalog left
    /// empty, as a pod converted without DRA objects has, gives such entries and no error).
    ///
    /// An entry naming a template uses the claim `pod.status.resourceClaimStatuses` records
    /// for it (with the claim's spec when the catalog has the claim, else the template's);
    /// a status entry with no claim means none was needed, and the entry is skipped. Without
    /// a status, the claim is made as upstream's resourceclaim controller would, named
    /// `<pod>-<entry>`: upstream appends a random suffix, the simulator keeps it
    /// deterministic; a [`DraCatalog::live`] catalog instead keeps the pod waiting for the
    /// controller, as it does for a named claim it does not have. Either way the claim is the
    /// pod's own (`shared: false`).
    ///
    /// An entry equal in every field to one of the `spec.resourceClaims` of the pod's PodGroup
    /// (`spec.schedulingGroup.podGroupName`) is the group's claim instead, shared by all its
    /// pods ([`PodClaim::group`]): the claim named, or the one made from the template for the
    /// whole group, found as for a pod but through the group's
    /// `status.resourceClaimStatuses` and named `<podgroup>-<entry>` when the simulator makes
    /// it. An entry the group does not list, or a group the catalog does not have, leaves the
    /// entry the pod's own.
    pub fn pod_claims(&self, p: &core::Pod, namespace: &str, pod_name: &str) -> Result<Vec<PodClaim>, FieldError> {
        let entries = p.spec.as_ref().and_then(|s| s.resource_claims.as_deref()).unwrap_or_default();
        let statuses = p.status.as_ref().and_then(|s| s.resource_claim_statuses.as_deref()).unwrap_or_default();
        let group = claim_group_name(p).and_then(|g| self.groups.get(&GroupKey::new(namespace, g)));
        let mut out = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let path = format!("spec.resourceClaims[{i}]");
            let name = required(&e.name, &format!("{path}.name"))?;
            if entries[..i].iter().any(|other| other.name == e.name) {
                return Err(FieldError::invalid(format!("{path}.name"), name, "must be unique in the pod"));
            }
            let source = Source::of(&e.resource_claim_name, &e.resource_claim_template_name, &path)?;
            let at = Entry { name, namespace };
            if let Some(group) = group.filter(|g| g.lists(name, source)) {
                out.extend(self.group_claim(&at, source, group));
                continue;
            }
            match source {
                Source::Claim(claim) => out.push(self.standalone(&at, claim)),
                Source::Template(template) => {
                    let made = statuses.iter().find(|s| s.name == e.name).map(|s| non_empty(&s.resource_claim_name));
                    out.extend(self.templated(&at, template, made, Maker::Pod(pod_name)));
                }
            }
        }
        Ok(out)
    }

    /// Why a pod waits for claim `key` that the catalog does not have.
    fn missing_claim(&self, key: ClaimKey) -> ClaimProblem {
        if self.waits_for_controller {
            Arc::from(format!("waiting for resourceclaim {key} to be created"))
        } else {
            Arc::from(format!("resourceclaim {key} not found"))
        }
    }

    /// A claim named directly: shared with whichever other pods name it.
    fn standalone(&self, at: &Entry<'_>, claim: &str) -> PodClaim {
        let key = ClaimKey::new(at.namespace, claim);
        let (spec, allocation) = match self.claims.get(&key) {
            Some(entry) => (entry.spec.clone(), entry.allocation.clone()),
            None => (Err(self.missing_claim(key)), None),
        };
        PodClaim { name: Sym::new(at.name), key, spec, shared: true, allocation, group: None }
    }

    /// The claim made from `template` for `maker`: the one `made` names (a status entry
    /// naming none means no claim was needed: `None`), else as the resourceclaim controller
    /// would make it (see [`DraCatalog::pod_claims`]). Not shared.
    fn templated(
        &self,
        at: &Entry<'_>,
        template: &str,
        made: Option<Option<&str>>,
        maker: Maker<'_>,
    ) -> Option<PodClaim> {
        let template_spec = self.template(at.namespace, template);
        let (key, spec, allocation) = match made {
            Some(claim) => {
                let key = ClaimKey::new(at.namespace, claim?);
                match (self.claims.get(&key), template_spec) {
                    (Some(entry), _) => (key, entry.spec.clone(), entry.allocation.clone()),
                    (None, Some(spec)) if !self.waits_for_controller => (key, spec.clone(), None),
                    (None, _) => (key, Err(self.missing_claim(key)), None),
                }
            }
            None if self.waits_for_controller => {
                let key = ClaimKey::new(at.namespace, &format!("{}-{}", maker.name(), at.name));
                let why = format!(
                    "waiting for resourceclaim of entry {:?} to be created from resourceclaimtemplate {}/{template}{} \
                     ({} names none yet)",
                    at.name,
                    at.namespace,
                    maker.for_whom(at.namespace),
                    maker.status_field()
                );
                (key, Err(Arc::from(why)), None)
            }
            None => {
                let key = ClaimKey::new(at.namespace, &format!("{}-{}", maker.name(), at.name));
                let missing = || Arc::from(format!("resourceclaimtemplate {}/{template} not found", at.namespace));
                (key, template_spec.cloned().unwrap_or_else(|| Err(missing())), None)
            }
        };
        Some(PodClaim { name: Sym::new(at.name), key, spec, shared: false, allocation, group: None })
    }

    /// Entry `at` of a pod of PodGroup `group`, matching one of the group's entries: the
    /// group's claim, which every pod of the group shares.
    fn group_claim(&self, at: &Entry<'_>, source: Source<'_>, group: &GroupClaims) -> Option<PodClaim> {
        let claim = match source {
            Source::Claim(claim) => self.standalone(at, claim),
            Source::Template(template) => {
                let made = group.made.iter().find(|s| s.name == at.name).map(|s| non_empty(&s.resource_claim_name));
                self.templated(at, template, made, Maker::Group(group.group.name))?
            }
        };
        Some(PodClaim { shared: true, group: Some(group.group.clone()), ..claim })
    }
}

/// The PodGroup (`scheduling.k8s.io`) whose `spec.resourceClaims` the pod's entries may
/// match: `spec.schedulingGroup.podGroupName` (a coscheduling PodGroup has no claims).
pub fn claim_group_name(p: &core::Pod) -> Option<&str> {
    let group = p.spec.as_ref().and_then(|s| s.scheduling_group.as_ref());
    group.and_then(|g| g.pod_group_name.as_deref()).filter(|g| !g.is_empty())
}

/// A PodGroup's `spec.resourceClaims`, and the claims its status says were made for them.
#[derive(Clone, Debug, PartialEq)]
struct GroupClaims {
    /// The group, as its pods' claims name it.
    group: Arc<ClaimGroup>,
    /// `spec.resourceClaims`, each with a name and exactly one source (see [`group_entries`]).
    entries: Vec<sched::PodGroupResourceClaim>,
    /// `status.resourceClaimStatuses`.
    made: Vec<sched::PodGroupResourceClaimStatus>,
}

impl GroupClaims {
    /// Whether the group lists a claim equal in every field to the pod's entry `name` with
    /// `source`.
    fn lists(&self, name: &str, source: Source<'_>) -> bool {
        self.entries.iter().any(|e| {
            let claim = non_empty(&e.resource_claim_name);
            let template = non_empty(&e.resource_claim_template_name);
            e.name == name && Some(source) == Source::of_fields(claim, template)
        })
    }
}

/// Checks a PodGroup's `resourceClaims` (under `at`) as a pod's are checked: a unique name,
/// and exactly one source each.
fn group_entries(entries: &[sched::PodGroupResourceClaim], at: &str) -> Result<(), FieldError> {
    for (i, e) in entries.iter().enumerate() {
        let path = format!("{at}.resourceClaims[{i}]");
        let name = required(&e.name, &format!("{path}.name"))?;
        if entries[..i].iter().any(|other| other.name == e.name) {
            return Err(FieldError::invalid(format!("{path}.name"), name, "must be unique in the podgroup"));
        }
        Source::of(&e.resource_claim_name, &e.resource_claim_template_name, &path)?;
    }
    Ok(())
}

/// Where a claim entry's claim comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source<'a> {
    /// `resourceClaimName`.
    Claim(&'a str),
    /// `resourceClaimTemplateName`.
    Template(&'a str),
}

impl<'a> Source<'a> {
    /// The source of the entry at `path`, which must set exactly one of the two fields.
    fn of(claim: &'a Option<String>, template: &'a Option<String>, path: &str) -> Result<Source<'a>, FieldError> {
        Source::of_fields(non_empty(claim), non_empty(template)).ok_or_else(|| {
            let rule = "exactly one of resourceClaimName and resourceClaimTemplateName must be set";
            FieldError::new(path, FieldProblem::Rule(rule))
        })
    }

    /// The source of the (non-empty) fields given, if exactly one is.
    fn of_fields(claim: Option<&'a str>, template: Option<&'a str>) -> Option<Source<'a>> {
        match (claim, template) {
            (Some(claim), None) => Some(Source::Claim(claim)),
            (None, Some(template)) => Some(Source::Template(template)),
            _ => None,
        }
    }
}

/// Whom the resourceclaim controller makes a template's claim for.
#[derive(Clone, Copy)]
enum Maker<'a> {
    /// The pod of this name.
    Pod(&'a str),
    /// The PodGroup of this name.
    Group(Sym),
}

impl Maker<'_> {
    /// The name the claim's name starts with.
    fn name(&self) -> &str {
        match self {
            Maker::Pod(name) => name,
            Maker::Group(name) => name.as_str(),
        }
    }

    /// ` for podgroup ns/name` for a group, nothing for a pod (the pod is the one waiting).
    fn for_whom(&self, namespace: &str) -> String {
        match self {
            Maker::Pod(_) => String::new(),
            Maker::Group(name) => format!(" for podgroup {namespace}/{name}"),
        }
    }

    /// The status field that records the claim made.
    fn status_field(&self) -> &'static str {
        match self {
            Maker::Pod(_) => "pod.status.resourceClaimStatuses",
            Maker::Group(_) => "podgroup.status.resourceClaimStatuses",
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// A pod's claim entry: its name and the pod's namespace.
struct Entry<'a> {
    name: &'a str,
    namespace: &'a str,
}

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default")
}

#[cfg(test)]
#[path = "dra_tests.rs"]
mod tests;
