//! Gang definitions into [`PodGroup`]s, from the three APIs that define them: Kubernetes' own
//! `scheduling.k8s.io/v1alpha3` PodGroup (and the Workload whose templates a controller turns
//! into PodGroups), scheduler-plugins coscheduling's `scheduling.x-k8s.io/v1alpha1` PodGroup,
//! so that clusters already on coscheduling work unchanged, and Volcano's
//! `scheduling.volcano.sh/v1beta1` PodGroup, so that a dump of a Volcano cluster simulates
//! with its gangs (the simulator only: `tessera run` does not watch Volcano's groups).
//!
//! Pods find their group by name in their own namespace (see [`super::pod`]), whichever API
//! defined it; the API only decides which fields there are to read.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use k8s_openapi::api::scheduling::v1alpha3 as sched;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{DisruptionMode, GroupKey, MAX_MIN_COUNT, PodGroup, PodGroupApi};

use super::dra::DraCatalog;
use super::error::{FieldError, FieldProblem, IngestError, ObjectRef};
use super::pod::PodContext;
use super::quantities::{ResourceList, resource_list};
use super::yaml::Objects;

/// `apiVersion` of Kubernetes' own PodGroup and Workload.
pub const KUBERNETES_API_VERSION: &str = "scheduling.k8s.io/v1alpha3";
/// `apiVersion` of scheduler-plugins coscheduling's PodGroup.
pub const COSCHEDULING_API_VERSION: &str = "scheduling.x-k8s.io/v1alpha1";
/// `apiVersion` of Volcano's PodGroup.
pub const VOLCANO_API_VERSION: &str = "scheduling.volcano.sh/v1beta1";

/// A PodGroup as read from YAML, of any of the three APIs. They share `kind: PodGroup`, so the
/// reader keeps them in one list in input order: that order decides which of two groups with
/// the same name wins (see [`pod_groups`]).
#[derive(Clone, Debug)]
pub enum PodGroupObject {
    /// `scheduling.k8s.io/v1alpha3`.
    Kubernetes(Box<sched::PodGroup>),
    /// `scheduling.x-k8s.io/v1alpha1`.
    Coscheduling(Box<tessera_crds::PodGroup>),
    /// `scheduling.volcano.sh/v1beta1`.
    Volcano(Box<VolcanoPodGroup>),
}

/// The parts of a Volcano PodGroup the simulator reads. Its other fields (`queue`,
/// `priorityClassName`, `minTaskMember`, `networkTopology`, the status) are accepted and
/// ignored: queues are Volcano's own admission, which Tessera does not model.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct VolcanoPodGroup {
    /// The group's name and namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the gang needs.
    #[serde(default)]
    pub spec: VolcanoPodGroupSpec,
}

/// `spec` of a Volcano PodGroup, as far as it is read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolcanoPodGroupSpec {
    /// Pods that must be placed together (0 when absent, which is refused as coscheduling's is).
    #[serde(default)]
    pub min_member: i32,
    /// The least the cluster must have free before the gang is tried.
    #[serde(default)]
    pub min_resources: Option<ResourceList>,
}

// The custom resource's derive gives no `PartialEq`, and `Objects` (which holds these) is
// compared in tests; its parts all compare.
impl PartialEq for PodGroupObject {
    fn eq(&self, other: &PodGroupObject) -> bool {
        match (self, other) {
            (PodGroupObject::Kubernetes(a), PodGroupObject::Kubernetes(b)) => a == b,
            (PodGroupObject::Coscheduling(a), PodGroupObject::Coscheduling(b)) => {
                a.metadata == b.metadata && a.spec == b.spec && a.status == b.status
            }
            (PodGroupObject::Volcano(a), PodGroupObject::Volcano(b)) => a == b,
            _ => false,
        }
    }
}

impl PodGroupObject {
    /// Converts the group, resolving a Kubernetes group's `priorityClassName` through `cx`.
    pub fn convert(&self, cx: &PodContext) -> Result<PodGroup, IngestError> {
        match self {
            PodGroupObject::Kubernetes(pg) => kubernetes_pod_group(pg, cx),
            PodGroupObject::Coscheduling(pg) => coscheduling_pod_group(pg),
            PodGroupObject::Volcano(pg) => volcano_pod_group(pg),
        }
    }

    /// The group's `metadata`, whichever its API.
    fn metadata(&self) -> &ObjectMeta {
        match self {
            PodGroupObject::Kubernetes(pg) => &pg.metadata,
            PodGroupObject::Coscheduling(pg) => &pg.metadata,
            PodGroupObject::Volcano(pg) => &pg.metadata,
        }
    }
}

/// Converts a Kubernetes PodGroup: `spec.schedulingPolicy.gang.minCount` (or 1 for the
/// `basic` policy, which has no gang semantics), the topology constraint, and the priority
/// (`spec.priority`, else `spec.priorityClassName` resolved through `cx`; neither leaves it
/// unset rather than applying the global default, so that the members' own priorities decide).
///
/// Upstream validation allows one topology constraint; more than one is rejected here as
/// there, rather than silently keeping the first.
pub fn kubernetes_pod_group(pg: &sched::PodGroup, cx: &PodContext) -> Result<PodGroup, IngestError> {
    let namespace = namespace_of(&pg.metadata);
    let convert = || {
        let name = required_name(&pg.metadata)?;
        let spec = &pg.spec;
        let gang = Gang {
            policy: &spec.scheduling_policy,
            constraints: spec.scheduling_constraints.as_ref(),
            priority: spec.priority,
            priority_class_name: spec.priority_class_name.as_deref(),
            disruption: spec.disruption_mode.as_ref(),
        };
        gang.convert(namespace, name, "spec", cx)
    };
    convert().map_err(|e| e.on(ObjectRef::namespaced("PodGroup", namespace, pg.metadata.name.as_deref())))
}

/// Converts a scheduler-plugins PodGroup: `minMember`, `minResources` and
/// `scheduleTimeoutSeconds` (0 means the scheduler's default there, so it is left unset as when
/// absent). Coscheduling has no topology constraint.
pub fn coscheduling_pod_group(pg: &tessera_crds::PodGroup) -> Result<PodGroup, IngestError> {
    let namespace = namespace_of(&pg.metadata);
    let convert = || {
        let name = required_name(&pg.metadata)?;
        let spec = &pg.spec;
        let min_count = min_count(spec.min_member, "spec.minMember")?;
        let min_resources = resource_list(spec.min_resources.as_ref(), "spec.minResources")?;
        let schedule_timeout_s = match spec.schedule_timeout_seconds {
            Some(s) if s < 0 => {
                let problem = FieldProblem::TooSmall { min: 0, got: i64::from(s) };
                return Err(FieldError::new("spec.scheduleTimeoutSeconds", problem));
            }
            Some(s) if s > 0 => Some(f64::from(s)),
            _ => None,
        };
        Ok(PodGroup {
            key: GroupKey::new(namespace, name),
            api: PodGroupApi::Coscheduling,
            min_count,
            topology_key: None,
            schedule_timeout_s,
            priority: None,
            min_resources: (!min_resources.present.is_empty()).then_some(min_resources.values),
            disruption: DisruptionMode::All,
        })
    };
    convert().map_err(|e| e.on(ObjectRef::namespaced("PodGroup", namespace, pg.metadata.name.as_deref())))
}

/// Converts a Volcano PodGroup: `minMember` and `minResources`. Volcano has no schedule
/// timeout nor topology constraint at this level; its `queue` and `priorityClassName` are
/// ignored (the members' own priorities order the gang).
pub fn volcano_pod_group(pg: &VolcanoPodGroup) -> Result<PodGroup, IngestError> {
    let namespace = namespace_of(&pg.metadata);
    let convert = || -> Result<PodGroup, FieldError> {
        let name = required_name(&pg.metadata)?;
        let min_count = min_count(pg.spec.min_member, "spec.minMember")?;
        let min_resources = resource_list(pg.spec.min_resources.as_ref(), "spec.minResources")?;
        Ok(PodGroup {
            key: GroupKey::new(namespace, name),
            api: PodGroupApi::Volcano,
            min_count,
            topology_key: None,
            schedule_timeout_s: None,
            priority: None,
            min_resources: (!min_resources.present.is_empty()).then_some(min_resources.values),
            disruption: DisruptionMode::All,
        })
    };
    convert().map_err(|e| e.on(ObjectRef::namespaced("PodGroup", namespace, pg.metadata.name.as_deref())))
}

/// The PodGroups a controller would create from a Workload: one per `spec.podGroupTemplates`
/// entry, named `<workload name>-<template name>` in the Workload's namespace, in template
/// order, converted as [`kubernetes_pod_group`] converts a PodGroup (fields of template `i` are
/// named `spec.podGroupTemplates[i]...` in errors). `compositePodGroupTemplates` (a
/// feature-gated hierarchy of groups) yield nothing: the simulator does not model composite
/// groups, and their leaf PodGroups can be written out explicitly.
pub fn workload_pod_groups(w: &sched::Workload, cx: &PodContext) -> Result<Vec<PodGroup>, IngestError> {
    let namespace = namespace_of(&w.metadata);
    let convert = || -> Result<Vec<PodGroup>, FieldError> {
        let workload = required_name(&w.metadata)?;
        let templates = w.spec.pod_group_templates.iter().flatten().enumerate();
        templates
            .map(|(i, t)| {
                let at = format!("spec.podGroupTemplates[{i}]");
                let template =
                    non_empty(&t.name).ok_or_else(|| FieldError::new(format!("{at}.name"), FieldProblem::Missing))?;
                let gang = Gang {
                    policy: &t.scheduling_policy,
                    constraints: t.scheduling_constraints.as_ref(),
                    priority: t.priority,
                    priority_class_name: t.priority_class_name.as_deref(),
                    disruption: t.disruption_mode.as_ref(),
                };
                gang.convert(namespace, &format!("{workload}-{template}"), &at, cx)
            })
            .collect()
    };
    convert().map_err(|e| e.on(ObjectRef::namespaced("Workload", namespace, w.metadata.name.as_deref())))
}

/// Every gang of `objects`: the PodGroups of the three APIs, then the groups materialized
/// from Workloads.
///
/// Upstream, a controller creates PodGroups from a Workload's templates; the simulator stands
/// in for it, materializing template `t` of Workload `w` as `<w>-<t>` only when the input
/// holds no PodGroup (of any API) of that name in the Workload's namespace, and no
/// Kubernetes PodGroup whose `spec.workloadRef` already points at that template (a dump of a
/// real cluster, where the controller chose its own names). An explicit PodGroup always beats a
/// template.
///
/// Two groups with the same `namespace/name` (one of each API, say): the later one in input
/// order wins, keeping the earlier one's position in the list.
pub fn pod_groups(objects: &Objects, cx: &PodContext) -> Result<Vec<PodGroup>, IngestError> {
    let mut groups = Groups::default();
    for object in &objects.pod_groups {
        groups.put(object.convert(cx)?);
    }
    let materialized = Materialized::of(objects);
    for w in &objects.workloads {
        let templates = w.spec.pod_group_templates.iter().flatten();
        for (group, t) in workload_pod_groups(w, cx)?.into_iter().zip(templates) {
            if materialized.wants(w, t) {
                groups.put(group);
            }
        }
    }
    Ok(groups.list)
}

/// Which Workload templates the simulator makes PodGroups of (see [`pod_groups`]).
struct Materialized<'a> {
    /// The PodGroups of any API the input holds.
    explicit: HashSet<GroupKey>,
    /// (namespace, workload, template) a Kubernetes PodGroup's `spec.workloadRef` points at.
    instantiated: HashSet<(&'a str, &'a str, &'a str)>,
}

impl<'a> Materialized<'a> {
    fn of(objects: &'a Objects) -> Materialized<'a> {
        let mut explicit = HashSet::new();
        let mut instantiated = HashSet::new();
        for object in &objects.pod_groups {
            let meta = object.metadata();
            explicit.insert(GroupKey::new(namespace_of(meta), meta.name.as_deref().unwrap_or_default()));
            if let PodGroupObject::Kubernetes(pg) = object
                && let Some(r) = &pg.spec.workload_ref
            {
                instantiated.insert((namespace_of(&pg.metadata), r.workload_name.as_str(), r.template_name.as_str()));
            }
        }
        Materialized { explicit, instantiated }
    }

    /// Whether template `t` of Workload `w` becomes the PodGroup `<w>-<t>`.
    fn wants(&self, w: &sched::Workload, t: &sched::PodGroupTemplate) -> bool {
        let namespace = namespace_of(&w.metadata);
        let workload = w.metadata.name.as_deref().unwrap_or_default();
        let made = self.instantiated.contains(&(namespace, workload, t.name.as_str()));
        !made && !self.explicit.contains(&GroupKey::new(namespace, &format!("{workload}-{}", t.name)))
    }
}

/// Adds the `resourceClaims` of the gangs [`pod_groups`] makes to `catalog`: every Kubernetes
/// PodGroup's, in input order, so that a later group of the same name (of any API)
/// replaces an earlier one's claims as it replaces the group, then those of the Workload
/// templates made into PodGroups (as upstream's controller copies them into the PodGroup it
/// creates; with no uid, as no API server gave one).
pub fn add_group_claims(objects: &Objects, catalog: &mut DraCatalog) -> Result<(), IngestError> {
    for object in &objects.pod_groups {
        match object {
            PodGroupObject::Kubernetes(pg) => {
                catalog.put_pod_group(pg)?;
            }
            PodGroupObject::Coscheduling(_) | PodGroupObject::Volcano(_) => {
                let meta = object.metadata();
                catalog.remove_pod_group(namespace_of(meta), meta.name.as_deref().unwrap_or(""));
            }
        }
    }
    let materialized = Materialized::of(objects);
    for w in &objects.workloads {
        let namespace = namespace_of(&w.metadata);
        let object = || ObjectRef::namespaced("Workload", namespace, w.metadata.name.as_deref());
        let workload = required_name(&w.metadata).map_err(|e| e.on(object()))?;
        for (i, t) in w.spec.pod_group_templates.iter().flatten().enumerate() {
            if !materialized.wants(w, t) {
                continue;
            }
            let key = GroupKey::new(namespace, &format!("{workload}-{}", t.name));
            let entries = t.resource_claims.as_deref().unwrap_or_default();
            let at = format!("spec.podGroupTemplates[{i}]");
            catalog.put_group_claims(key, "", entries, &[], &at).map_err(|e| e.on(object()))?;
        }
    }
    Ok(())
}

/// Groups in first-seen order, a later group replacing an earlier one of the same key.
#[derive(Default)]
struct Groups {
    list: Vec<PodGroup>,
    index: HashMap<GroupKey, usize>,
}

impl Groups {
    fn put(&mut self, group: PodGroup) {
        match self.index.entry(group.key) {
            Entry::Occupied(e) => self.list[*e.get()] = group,
            Entry::Vacant(e) => {
                e.insert(self.list.len());
                self.list.push(group);
            }
        }
    }
}

/// The fields a Kubernetes PodGroup and a Workload's PodGroup template share.
struct Gang<'a> {
    policy: &'a sched::PodGroupSchedulingPolicy,
    constraints: Option<&'a sched::PodGroupSchedulingConstraints>,
    priority: Option<i32>,
    priority_class_name: Option<&'a str>,
    disruption: Option<&'a sched::DisruptionMode>,
}

impl Gang<'_> {
    /// The group `namespace/name`, its fields found under `at`.
    fn convert(&self, namespace: &str, name: &str, at: &str, cx: &PodContext) -> Result<PodGroup, FieldError> {
        let min_count = match (&self.policy.basic, &self.policy.gang) {
            (None, Some(gang)) => min_count(gang.min_count, &format!("{at}.schedulingPolicy.gang.minCount"))?,
            (Some(_), None) => 1,
            _ => {
                let rule = FieldProblem::Rule("exactly one of basic and gang must be set");
                return Err(FieldError::new(format!("{at}.schedulingPolicy"), rule));
            }
        };
        Ok(PodGroup {
            key: GroupKey::new(namespace, name),
            api: PodGroupApi::Kubernetes,
            min_count,
            topology_key: topology_key(self.constraints, at)?,
            schedule_timeout_s: None,
            priority: self.priority(at, cx)?,
            min_resources: None,
            disruption: self.disruption(at)?,
        })
    }

    /// `disruptionMode`: exactly one of `all` and `single` when set; `single` when not, the
    /// API's default.
    fn disruption(&self, at: &str) -> Result<DisruptionMode, FieldError> {
        match self.disruption.map(|d| (d.all.is_some(), d.single.is_some())) {
            Some((true, false)) => Ok(DisruptionMode::All),
            None | Some((false, true)) => Ok(DisruptionMode::Single),
            Some(_) => Err(FieldError::new(
                format!("{at}.disruptionMode"),
                FieldProblem::Rule("exactly one of all and single must be set"),
            )),
        }
    }

    fn priority(&self, at: &str, cx: &PodContext) -> Result<Option<i32>, FieldError> {
        if self.priority.is_some() {
            return Ok(self.priority);
        }
        let Some(class) = self.priority_class_name.filter(|c| !c.is_empty()) else { return Ok(None) };
        let not_found = || {
            let problem = FieldProblem::NotFound { kind: "PriorityClass", name: class.to_string() };
            FieldError::new(format!("{at}.priorityClassName"), problem)
        };
        cx.priority_class(class).map(Some).ok_or_else(not_found)
    }
}

/// The key of the one topology constraint under `at.schedulingConstraints`, if any.
fn topology_key(
    constraints: Option<&sched::PodGroupSchedulingConstraints>,
    at: &str,
) -> Result<Option<Sym>, FieldError> {
    let topology = constraints.and_then(|c| c.topology.as_deref()).unwrap_or_default();
    match topology {
        [] => Ok(None),
        [one] => non_empty(&one.key).map(|k| Some(Sym::new(k))).ok_or_else(|| {
            FieldError::new(format!("{at}.schedulingConstraints.topology[0].key"), FieldProblem::Missing)
        }),
        _ => Err(FieldError::new(
            format!("{at}.schedulingConstraints.topology"),
            FieldProblem::Rule("at most one topology constraint may be set"),
        )),
    }
}

/// `minCount` / `minMember`, which must be positive and at most [`MAX_MIN_COUNT`].
fn min_count(value: i32, field: &str) -> Result<u32, FieldError> {
    u32::try_from(value).ok().filter(|n| (1..=MAX_MIN_COUNT).contains(n)).ok_or_else(|| {
        let problem = FieldProblem::OutOfRange { min: 1, max: i64::from(MAX_MIN_COUNT), got: i64::from(value) };
        FieldError::new(field, problem)
    })
}

/// The namespace, `default` when unset, as the API server defaults it.
fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default")
}

fn required_name(meta: &ObjectMeta) -> Result<&str, FieldError> {
    meta.name.as_deref().and_then(non_empty).ok_or_else(|| FieldError::new("metadata.name", FieldProblem::Missing))
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

#[cfg(test)]
#[path = "pod_group_tests.rs"]
mod tests;
