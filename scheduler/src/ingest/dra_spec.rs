//! A claim's `spec.devices` resolved against the DeviceClasses into a [`ClaimSpec`], and a
//! claim's `status.allocation` into a [`ClaimAllocation`].
//!
//! Resolution checks the whole spec for structural garbage (a [`FieldError`]) even after it
//! met a problem that only makes the claim unsatisfiable (a missing class, a selector that
//! does not compile, a bad count): which of the two a claim gets must not depend on the order
//! of its requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::resource::v1 as api;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tessera_plugins::dra::cel::Selector;
use tessera_plugins::dra::model::{
    AllocatedDevice, AllocationMode, ClaimAllocation, ClaimKey, ClaimSpec, Constraint, DeviceClass, DeviceId,
    DeviceRequest, DeviceToleration, ExactRequest, OpaqueConfig, RequestKind,
};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::TaintEffect;
use tessera_plugins::quantity::parse_milli;

use super::Resolved;
use crate::ingest::error::{FieldError, FieldProblem};
use crate::ingest::pod::{TolerationFields, toleration_of};
use tessera_plugins::dra::cel::compile_cached;

/// Resolves claim specs against the classes, remembering the first problem met.
pub(super) struct Resolver<'a> {
    /// The classes by name, each usable or with why not.
    pub classes: &'a HashMap<String, Resolved<DeviceClass>>,
    /// The first problem met: the claim cannot be satisfied, whatever the node.
    problem: Option<String>,
}

impl<'a> Resolver<'a> {
    /// A resolver over `classes`.
    pub fn new(classes: &'a HashMap<String, Resolved<DeviceClass>>) -> Resolver<'a> {
        Resolver { classes, problem: None }
    }

    /// `devices` (at field path `base`) of the claim messages call `object`
    /// (`resourceclaim ns/name`): the spec, or why it cannot be satisfied.
    pub fn resolve(mut self, devices: Option<&api::DeviceClaim>, base: &str, object: &str) -> ResolvedSpec {
        let empty = api::DeviceClaim::default();
        let spec = self.spec(devices.unwrap_or(&empty), base)?;
        Ok(match (self.problem, spec) {
            (None, Some(spec)) => Ok(Arc::new(spec)),
            (Some(problem), _) => Err(Arc::from(format!("{object}: {problem}"))),
            (None, None) => Err(Arc::from(format!("{object}: cannot be resolved"))),
        })
    }

    fn spec(&mut self, devices: &api::DeviceClaim, base: &str) -> Result<Option<ClaimSpec>, FieldError> {
        let mut requests = Vec::new();
        for (i, r) in devices.requests.iter().flatten().enumerate() {
            requests.push(self.request(r, &format!("{base}.requests[{i}]"))?);
        }
        let names = request_names(devices.requests.as_deref().unwrap_or_default());
        let constraints = devices
            .constraints
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| constraint(c, &names, &format!("{base}.constraints[{i}]")))
            .collect::<Result<_, _>>()?;
        let config = devices
            .config
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| opaque(c.opaque.as_ref(), c.requests.as_deref(), &format!("{base}.config[{i}]")))
            .collect::<Result<_, _>>()?;
        let requests = requests.into_iter().collect::<Option<Vec<_>>>();
        Ok(requests.map(|requests| ClaimSpec { requests, constraints, config }))
    }

    fn request(&mut self, r: &api::DeviceRequest, path: &str) -> Result<Option<DeviceRequest>, FieldError> {
        let name = required(&r.name, &format!("{path}.name"))?;
        let kind = match (&r.exactly, r.first_available.as_deref()) {
            (Some(e), None) => self.exact(&Exact::of(e), name, &format!("{path}.exactly"))?.map(RequestKind::Exactly),
            (None, Some(subs)) if !subs.is_empty() => self.first_available(subs, name, path)?,
            _ => return Err(rule(path, "exactly one of exactly and firstAvailable must be set")),
        };
        Ok(kind.map(|kind| DeviceRequest { name: Arc::from(name), kind }))
    }

    fn first_available(
        &mut self,
        subs: &[api::DeviceSubRequest],
        request: &str,
        path: &str,
    ) -> Result<Option<RequestKind>, FieldError> {
        let mut out = Vec::with_capacity(subs.len());
        for (j, s) in subs.iter().enumerate() {
            let path = format!("{path}.firstAvailable[{j}]");
            let name = required(&s.name, &format!("{path}.name"))?;
            let sub = self.exact(&Exact::of_sub(s), &format!("{request}/{name}"), &path)?;
            out.push(sub.map(|e| (Arc::from(name), e)));
        }
        Ok(out.into_iter().collect::<Option<Vec<_>>>().map(RequestKind::FirstAvailable))
    }

    /// One exact request (or sub-request) named `request` in messages: structure first, then
    /// the problems in the order a person would fix them (class, count, selectors).
    fn exact(&mut self, e: &Exact<'_>, request: &str, path: &str) -> Result<Option<ExactRequest>, FieldError> {
        let class_name = required(e.class, &format!("{path}.deviceClassName"))?;
        let mode = allocation_mode(e.mode, e.count, &format!("{path}.allocationMode"))?;
        let tolerations = e
            .tolerations
            .iter()
            .enumerate()
            .map(|(i, t)| toleration(t, &format!("{path}.tolerations[{i}]")))
            .collect::<Result<_, _>>()?;
        let capacity = capacity_requests(e.capacity, &format!("{path}.capacity.requests"))?;
        let expressions = e
            .selectors
            .iter()
            .enumerate()
            .map(|(i, s)| cel_expression(s, &format!("{path}.selectors[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let class = match self.classes.get(class_name) {
            Some(Ok(class)) => Some(class.clone()),
            Some(Err(why)) => self.fail(request, why),
            None => self.fail(request, &format!("deviceclass {class_name:?} not found")),
        };
        let mode = match mode {
            Ok(mode) => Some(mode),
            Err(why) => self.fail(request, &why),
        };
        let selectors = self.compile_all(&expressions, request);
        let (Some(class), Some(mode), Some(selectors)) = (class, mode, selectors) else { return Ok(None) };
        Ok(Some(ExactRequest { class, selectors, mode, admin_access: e.admin_access, tolerations, capacity }))
    }

    /// Notes that `request` cannot be satisfied, for `why`.
    fn fail<T>(&mut self, request: &str, why: &str) -> Option<T> {
        self.problem.get_or_insert_with(|| format!("request {request:?}: {why}"));
        None
    }

    fn compile_all(&mut self, expressions: &[&str], request: &str) -> Option<Vec<Arc<Selector>>> {
        let mut out = Vec::with_capacity(expressions.len());
        for expression in expressions {
            match compile_cached(expression) {
                Ok(selector) => out.push(selector),
                Err(e) => return self.fail(request, &format!("selector {expression:?} does not compile: {e}")),
            }
        }
        Some(out)
    }
}

/// A resolved spec, or why it cannot be satisfied; a [`FieldError`] for structural garbage.
pub(super) type ResolvedSpec = Result<Resolved<ClaimSpec>, FieldError>;

/// The fields `ExactDeviceRequest` and `DeviceSubRequest` share.
struct Exact<'a> {
    class: &'a str,
    selectors: &'a [api::DeviceSelector],
    mode: Option<&'a str>,
    count: Option<i64>,
    admin_access: bool,
    tolerations: &'a [api::DeviceToleration],
    capacity: Option<&'a BTreeMap<String, Quantity>>,
}

impl<'a> Exact<'a> {
    fn of(e: &'a api::ExactDeviceRequest) -> Exact<'a> {
        Exact {
            class: &e.device_class_name,
            selectors: e.selectors.as_deref().unwrap_or_default(),
            mode: e.allocation_mode.as_deref(),
            count: e.count,
            admin_access: e.admin_access == Some(true),
            tolerations: e.tolerations.as_deref().unwrap_or_default(),
            capacity: e.capacity.as_ref().and_then(|c| c.requests.as_ref()),
        }
    }

    /// A sub-request has no `adminAccess`.
    fn of_sub(s: &'a api::DeviceSubRequest) -> Exact<'a> {
        Exact {
            class: &s.device_class_name,
            selectors: s.selectors.as_deref().unwrap_or_default(),
            mode: s.allocation_mode.as_deref(),
            count: s.count,
            admin_access: false,
            tolerations: s.tolerations.as_deref().unwrap_or_default(),
            capacity: s.capacity.as_ref().and_then(|c| c.requests.as_ref()),
        }
    }
}

/// `allocationMode` and `count`: an unknown mode is structural; a count that cannot be
/// satisfied (below 1, or set with `All`) is a problem of the claim.
fn allocation_mode(
    mode: Option<&str>,
    count: Option<i64>,
    path: &str,
) -> Result<Result<AllocationMode, String>, FieldError> {
    Ok(match (mode.unwrap_or(""), count) {
        ("" | "ExactCount", None) => Ok(AllocationMode::ExactCount(1)),
        ("" | "ExactCount", Some(n)) => match u32::try_from(n) {
            Ok(n) if n >= 1 => Ok(AllocationMode::ExactCount(n)),
            _ => Err(format!("count must be between 1 and {}, got {n}", u32::MAX)),
        },
        ("All", None) => Ok(AllocationMode::All),
        ("All", Some(n)) => Err(format!("count must not be set with allocationMode All, got {n}")),
        (other, _) => return Err(FieldError::unsupported(path, other, "ExactCount, All")),
    })
}

/// A device toleration: as a pod's, but only the effects devices have.
fn toleration(t: &api::DeviceToleration, path: &str) -> Result<DeviceToleration, FieldError> {
    let fields = TolerationFields {
        key: t.key.as_deref(),
        operator: t.operator.as_deref(),
        value: t.value.as_deref(),
        effect: t.effect.as_deref(),
    };
    toleration_of(fields, path, (&[TaintEffect::NoSchedule, TaintEffect::NoExecute], "NoSchedule, NoExecute"))
}

/// `capacity.requests` in milli-units, keyed as written: a request names no driver, so a bare
/// name stands for the capacity of that name in the domain of whichever device's driver.
fn capacity_requests(
    requests: Option<&BTreeMap<String, Quantity>>,
    path: &str,
) -> Result<BTreeMap<Arc<str>, i64>, FieldError> {
    let mut out = BTreeMap::new();
    for (name, q) in requests.into_iter().flatten() {
        let milli = parse_milli(&q.0).map_err(|e| FieldError::new(format!("{path}.{name}"), e))?;
        out.insert(Arc::from(name.as_str()), milli);
    }
    Ok(out)
}

/// `selectors[i].cel.expression`.
pub(super) fn cel_expression<'s>(s: &'s api::DeviceSelector, path: &str) -> Result<&'s str, FieldError> {
    let cel = s.cel.as_ref().ok_or_else(|| FieldError::new(format!("{path}.cel"), FieldProblem::Missing))?;
    required(&cel.expression, &format!("{path}.cel.expression"))
}

/// Every name a constraint may list: each request, and each `request/sub`.
fn request_names(requests: &[api::DeviceRequest]) -> Vec<String> {
    let mut names = Vec::new();
    for r in requests {
        names.push(r.name.clone());
        names.extend(r.first_available.iter().flatten().map(|s| format!("{}/{}", r.name, s.name)));
    }
    names
}

/// A constraint; its attribute must be fully qualified, as upstream validation requires (a
/// constraint spans drivers, so there is no driver to qualify a bare name with).
fn constraint(c: &api::DeviceConstraint, names: &[String], path: &str) -> Result<Constraint, FieldError> {
    let requests = c.requests.as_deref().unwrap_or_default();
    for (i, r) in requests.iter().enumerate() {
        if !names.contains(r) {
            return Err(FieldError::invalid(format!("{path}.requests[{i}]"), r, "must name a request of the claim"));
        }
    }
    let requests = requests.iter().map(|r| Arc::from(r.as_str())).collect();
    let (attribute, field) = match (&c.match_attribute, &c.distinct_attribute) {
        (Some(a), None) => (a, "matchAttribute"),
        (None, Some(a)) => (a, "distinctAttribute"),
        _ => return Err(rule(path, "exactly one of matchAttribute and distinctAttribute must be set")),
    };
    if !is_qualified(attribute) {
        let reason = "must be a fully qualified attribute name (domain/name)";
        return Err(FieldError::invalid(format!("{path}.{field}"), attribute, reason));
    }
    let attribute = Arc::from(attribute.as_str());
    Ok(match field {
        "matchAttribute" => Constraint::MatchAttribute { requests, attribute },
        _ => Constraint::DistinctAttribute { requests, attribute },
    })
}

fn is_qualified(name: &str) -> bool {
    name.split_once('/').is_some_and(|(domain, name)| !domain.is_empty() && !name.is_empty())
}

/// An `opaque` configuration at `path` (its `.opaque` is required), applying to `requests`.
pub(super) fn opaque(
    opaque: Option<&api::OpaqueDeviceConfiguration>,
    requests: Option<&[String]>,
    path: &str,
) -> Result<OpaqueConfig, FieldError> {
    let opaque = opaque.ok_or_else(|| FieldError::new(format!("{path}.opaque"), FieldProblem::Missing))?;
    let driver = required(&opaque.driver, &format!("{path}.opaque.driver"))?;
    Ok(OpaqueConfig {
        driver: Sym::new(driver),
        parameters: Arc::from(opaque.parameters.0.to_string()),
        requests: requests.unwrap_or_default().iter().map(|r| Arc::from(r.as_str())).collect(),
    })
}

/// A claim's `status.allocation`.
pub(super) fn allocation(claim: ClaimKey, a: &api::AllocationResult) -> Result<ClaimAllocation, FieldError> {
    let base = "status.allocation.devices";
    let devices = a.devices.as_ref();
    let results = devices.and_then(|d| d.results.as_deref()).unwrap_or_default();
    let devices_out = results
        .iter()
        .enumerate()
        .map(|(i, r)| allocated_device(r, &format!("{base}.results[{i}]")))
        .collect::<Result<_, _>>()?;
    let config = devices
        .and_then(|d| d.config.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, c)| opaque(c.opaque.as_ref(), c.requests.as_deref(), &format!("{base}.config[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(ClaimAllocation { claim, devices: devices_out, node: allocated_node(a.node_selector.as_ref()), config })
}

fn allocated_device(r: &api::DeviceRequestAllocationResult, path: &str) -> Result<AllocatedDevice, FieldError> {
    let field = |value: &str, name: &str| required(value, &format!("{path}.{name}")).map(Sym::new);
    let device = DeviceId {
        driver: field(&r.driver, "driver")?,
        pool: field(&r.pool, "pool")?,
        device: field(&r.device, "device")?,
    };
    let request = Arc::from(required(&r.request, &format!("{path}.request"))?);
    let consumed = consumed_capacity(r.consumed_capacity.as_ref(), device.driver, &format!("{path}.consumedCapacity"))?;
    Ok(AllocatedDevice { request, device, admin_access: r.admin_access == Some(true), consumed })
}

/// A result's `consumedCapacity` at `path`, in milli-units, each name qualified with the
/// result's `driver` as the device's capacity names are (see [`super::qualify`]).
fn consumed_capacity(
    consumed: Option<&BTreeMap<String, Quantity>>,
    driver: Sym,
    path: &str,
) -> Result<BTreeMap<Arc<str>, i64>, FieldError> {
    let mut out = BTreeMap::new();
    for (name, q) in consumed.into_iter().flatten() {
        let milli = parse_milli(&q.0).map_err(|e| FieldError::new(format!("{path}.{name}"), e))?;
        out.insert(super::qualify(driver, name), milli);
    }
    Ok(out)
}

/// The node an allocation's devices are local to: a `nodeSelector` of exactly one term with
/// one `matchFields` requirement `metadata.name In [node]`, what upstream's allocator writes
/// as soon as one device comes from a slice for one node. Any other selector is the
/// intersection of the `nodeSelector`s of the slices the devices come from, and no selector
/// means they all are for `allNodes`: the devices are not local to any node (even a selector
/// naming a single node by label is a slice's, reachable from whichever nodes carry it).
fn allocated_node(selector: Option<&core::NodeSelector>) -> Option<Sym> {
    let [term] = selector?.node_selector_terms.as_slice() else { return None };
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let ([single], []) = (term.match_fields.as_deref().unwrap_or_default(), expressions) else { return None };
    match (single.key.as_str(), single.operator.as_str(), single.values.as_deref()) {
        ("metadata.name", "In", Some([node])) => Some(Sym::new(node)),
        _ => None,
    }
}

/// `value`, which must not be empty.
pub(super) fn required<'s>(value: &'s str, path: &str) -> Result<&'s str, FieldError> {
    Some(value).filter(|v| !v.is_empty()).ok_or_else(|| FieldError::new(path, FieldProblem::Missing))
}

fn rule(path: &str, rule: &'static str) -> FieldError {
    FieldError::new(path, FieldProblem::Rule(rule))
}
