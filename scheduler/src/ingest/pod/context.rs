//! What converting a pod needs from other objects: PriorityClasses, RuntimeClasses,
//! Namespaces and DRA's classes and claims, each converted once when added.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::node::v1::{RuntimeClass, Scheduling};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::Toleration;
use tessera_plugins::resources::ResourceVec;

use super::tolerations::toleration;

use crate::ingest::dra::DraCatalog;
use crate::ingest::error::{FieldError, FieldProblem, IngestError, ObjectRef};
use crate::ingest::quantities::{Amounts, resource_list};
use crate::ingest::selectors::label_set;
use crate::ingest::yaml::Objects;

/// The classes every API server creates at startup, so that pods may name them without the
/// input defining them.
const SYSTEM_PRIORITY_CLASSES: [(&str, i32); 2] =
    [("system-node-critical", 2_000_001_000), ("system-cluster-critical", 2_000_000_000)];

/// Priority classes, runtime classes, namespace labels and DRA claims that pods are resolved
/// against.
#[derive(Clone, Debug)]
pub struct PodContext {
    priority_classes: HashMap<String, i32>,
    /// Classes whose `preemptionPolicy` is `Never`: admission copies it into their pods.
    never_preempt: HashSet<String>,
    /// The `globalDefault` class: (name, value).
    global_default: Option<(String, i32)>,
    runtime_overheads: HashMap<String, Amounts>,
    /// Each RuntimeClass's `scheduling`, for the classes that set one.
    runtime_scheduling: HashMap<String, RuntimeScheduling>,
    namespaces: HashMap<Sym, LabelSet>,
    dra: DraCatalog,
    /// Whether pods join Volcano's PodGroups through its annotation (see
    /// [`PodContext::volcano_groups`]).
    volcano_groups: bool,
}

impl Default for PodContext {
    fn default() -> PodContext {
        PodContext::new()
    }
}

impl PodContext {
    /// A context knowing only the built-in `system-node-critical` and
    /// `system-cluster-critical` priority classes.
    pub fn new() -> PodContext {
        let priority_classes = SYSTEM_PRIORITY_CLASSES.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        PodContext {
            priority_classes,
            never_preempt: HashSet::new(),
            global_default: None,
            runtime_overheads: HashMap::new(),
            runtime_scheduling: HashMap::new(),
            namespaces: HashMap::new(),
            dra: DraCatalog::default(),
            volcano_groups: false,
        }
    }

    /// A context holding every PriorityClass, RuntimeClass, Namespace, DeviceClass,
    /// ResourceClaimTemplate and ResourceClaim of `objects` (classes before what names them),
    /// and the claims of its PodGroups (see [`crate::ingest::pod_group::add_group_claims`]).
    /// Pods join Volcano's PodGroups through its annotation here, as the simulator reads
    /// those groups.
    pub fn from_objects(objects: &Objects) -> Result<PodContext, IngestError> {
        let mut cx = PodContext { volcano_groups: true, ..PodContext::new() };
        for pc in &objects.priority_classes {
            cx.add_priority_class(pc)?;
        }
        for rc in &objects.runtime_classes {
            cx.add_runtime_class(rc)?;
        }
        for ns in &objects.namespaces {
            cx.add_namespace(ns)?;
        }
        for class in &objects.device_classes {
            cx.dra.add_class(class)?;
        }
        for template in &objects.resource_claim_templates {
            cx.dra.add_template(template)?;
        }
        for claim in &objects.resource_claims {
            cx.dra.add_claim(claim)?;
        }
        crate::ingest::pod_group::add_group_claims(objects, &mut cx.dra)?;
        Ok(cx)
    }

    /// Adds (or replaces) a priority class. With several `globalDefault` classes the one of
    /// lowest value is the default, as upstream's Priority admission picks.
    pub fn add_priority_class(&mut self, pc: &PriorityClass) -> Result<(), IngestError> {
        let object = || ObjectRef::cluster("PriorityClass", pc.metadata.name.as_deref());
        let name = required_name(pc.metadata.name.as_deref()).map_err(|e| e.on(object()))?;
        let value = pc.value.ok_or_else(|| FieldError::new("value", FieldProblem::Missing).on(object()))?;
        self.priority_classes.insert(name.to_string(), value);
        if pc.preemption_policy.as_deref() == Some("Never") {
            self.never_preempt.insert(name.to_string());
        } else {
            self.never_preempt.remove(name);
        }
        if self.global_default.as_ref().is_some_and(|(n, _)| n == name) {
            self.global_default = None;
        }
        if pc.global_default == Some(true) && self.global_default.as_ref().is_none_or(|(_, v)| value < *v) {
            self.global_default = Some((name.to_string(), value));
        }
        Ok(())
    }

    /// Adds (or replaces) a runtime class: its `overhead.podFixed`, and the
    /// `scheduling.nodeSelector` and `scheduling.tolerations` admission merges into its pods.
    pub fn add_runtime_class(&mut self, rc: &RuntimeClass) -> Result<(), IngestError> {
        let object = || ObjectRef::cluster("RuntimeClass", rc.metadata.name.as_deref());
        let name = required_name(rc.metadata.name.as_deref()).map_err(|e| e.on(object()))?;
        let fixed = rc.overhead.as_ref().and_then(|o| o.pod_fixed.as_ref());
        let overhead = resource_list(fixed, "overhead.podFixed").map_err(|e| e.on(object()))?;
        let scheduling = match &rc.scheduling {
            Some(s) => Some(RuntimeScheduling::of(s).map_err(|e| e.on(object()))?),
            None => None,
        };
        self.runtime_overheads.insert(name.to_string(), overhead);
        match scheduling.filter(|s| !s.is_empty()) {
            Some(s) => self.runtime_scheduling.insert(name.to_string(), s),
            None => self.runtime_scheduling.remove(name),
        };
        Ok(())
    }

    /// The `scheduling` of runtime class `name`, when it sets a node selector or tolerations.
    pub fn runtime_class_scheduling(&self, name: &str) -> Option<&RuntimeScheduling> {
        self.runtime_scheduling.get(name)
    }

    /// Adds (or replaces) a namespace and its labels.
    pub fn add_namespace(&mut self, ns: &Namespace) -> Result<(), IngestError> {
        let object = || ObjectRef::cluster("Namespace", ns.metadata.name.as_deref());
        let name = required_name(ns.metadata.name.as_deref()).map_err(|e| e.on(object()))?;
        self.namespaces.insert(Sym::new(name), label_set(ns.metadata.labels.as_ref()));
        Ok(())
    }

    /// The value of the priority class `name`.
    pub fn priority_class(&self, name: &str) -> Option<i32> {
        self.priority_classes.get(name).copied()
    }

    /// Whether the priority class `name` says `preemptionPolicy: Never`.
    pub fn class_never_preempts(&self, name: &str) -> bool {
        self.never_preempt.contains(name)
    }

    /// The name of the `globalDefault` priority class, if there is one.
    pub fn global_default_class(&self) -> Option<&str> {
        self.global_default.as_ref().map(|(n, _)| n.as_str())
    }

    /// The value of the `globalDefault` priority class, if there is one.
    pub fn global_default_priority(&self) -> Option<i32> {
        self.global_default.as_ref().map(|(_, v)| *v)
    }

    /// The pod overhead of the runtime class `name` (zero when it declares none).
    pub fn runtime_class_overhead(&self, name: &str) -> Option<&ResourceVec> {
        self.runtime_overheads.get(name).map(|a| &a.values)
    }

    /// The overhead with the names it lists, for the requests computation.
    pub(crate) fn runtime_overhead_amounts(&self, name: &str) -> Option<&Amounts> {
        self.runtime_overheads.get(name)
    }

    /// The labels of namespace `name`, if known.
    pub fn namespace_labels(&self, name: &str) -> Option<&LabelSet> {
        Sym::get(name).and_then(|ns| self.namespaces.get(&ns))
    }

    /// Whether a pod's annotation `scheduling.k8s.io/group-name` puts it in a Volcano
    /// PodGroup: true for a context made [`PodContext::from_objects`] (the simulator's, which
    /// reads Volcano's groups), false for [`PodContext::new`] (a live scheduler's, which does
    /// not watch them and would otherwise hold the pod for a group it never sees).
    pub fn volcano_groups(&self) -> bool {
        self.volcano_groups
    }

    /// The same context, with pods joining Volcano's PodGroups or not.
    #[cfg(test)]
    pub(crate) fn with_volcano_groups(self, volcano_groups: bool) -> PodContext {
        PodContext { volcano_groups, ..self }
    }

    /// The DRA classes, templates and claims pods' `spec.resourceClaims` resolve against.
    pub fn dra(&self) -> &DraCatalog {
        &self.dra
    }

    /// The DRA catalog, to add classes, templates and claims to (classes first).
    pub fn dra_mut(&mut self) -> &mut DraCatalog {
        &mut self.dra
    }

    /// Every known namespace with its labels: the table the snapshot matches namespace
    /// selectors against. Pod conversion itself leaves namespace selectors unresolved, since
    /// namespace labels can change after a pod is converted.
    pub fn namespaces(&self) -> &HashMap<Sym, LabelSet> {
        &self.namespaces
    }
}

/// A RuntimeClass's `scheduling`: what upstream's RuntimeClass admission merges into the pods
/// that name the class, so that they land on nodes running its handler.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimeScheduling {
    /// `scheduling.nodeSelector`, in key order.
    pub node_selector: Vec<(String, String)>,
    /// `scheduling.tolerations`, converted.
    pub tolerations: Vec<Toleration>,
}

impl RuntimeScheduling {
    fn of(s: &Scheduling) -> Result<RuntimeScheduling, FieldError> {
        let node_selector = s.node_selector.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
        let tolerations = s
            .tolerations
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| toleration(t, &format!("scheduling.tolerations[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(RuntimeScheduling { node_selector, tolerations })
    }

    fn is_empty(&self) -> bool {
        self.node_selector.is_empty() && self.tolerations.is_empty()
    }
}

fn required_name(name: Option<&str>) -> Result<&str, FieldError> {
    name.filter(|n| !n.is_empty()).ok_or_else(|| FieldError::new("metadata.name", FieldProblem::Missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priority_class(name: &str, value: i32, global_default: bool) -> PriorityClass {
        let yaml = format!("metadata: {{name: {name}}}\nvalue: {value}\nglobalDefault: {global_default}");
        serde_yaml_ng::from_str(&yaml).unwrap()
    }

    #[test]
    fn system_classes_are_built_in() {
        let cx = PodContext::new();
        assert_eq!(cx.priority_class("system-node-critical"), Some(2_000_001_000));
        assert_eq!(cx.priority_class("system-cluster-critical"), Some(2_000_000_000));
        assert_eq!(cx.global_default_priority(), None);
    }

    #[test]
    fn lowest_global_default_wins_and_replacing_a_class_updates_it() {
        let mut cx = PodContext::new();
        cx.add_priority_class(&priority_class("high", 1000, true)).unwrap();
        cx.add_priority_class(&priority_class("low", 10, true)).unwrap();
        cx.add_priority_class(&priority_class("plain", 5, false)).unwrap();
        assert_eq!(cx.global_default_priority(), Some(10));
        cx.add_priority_class(&priority_class("low", 10, false)).unwrap();
        assert_eq!(cx.global_default_priority(), None);
        assert_eq!(cx.priority_class("plain"), Some(5));
    }

    #[test]
    fn runtime_class_overhead_and_namespaces_are_converted_once() {
        let mut cx = PodContext::new();
        let rc: RuntimeClass = serde_yaml_ng::from_str(
            "metadata: {name: kata}\nhandler: kata\noverhead: {podFixed: {cpu: 250m, memory: 120Mi}}",
        )
        .unwrap();
        cx.add_runtime_class(&rc).unwrap();
        assert_eq!(cx.runtime_class_overhead("kata"), Some(&ResourceVec::cpu_mem(250, 120 << 20)));
        let ns: Namespace = serde_yaml_ng::from_str("metadata: {name: team-a, labels: {env: prod}}").unwrap();
        cx.add_namespace(&ns).unwrap();
        let labels = cx.namespace_labels("team-a").unwrap();
        assert_eq!(labels.get(Sym::new("env")), Some(Sym::new("prod")));
        assert_eq!(cx.namespaces().len(), 1);
    }

    #[test]
    fn bad_classes_name_object_and_field() {
        let mut cx = PodContext::new();
        let pc: PriorityClass = serde_yaml_ng::from_str("metadata: {name: p}").unwrap();
        assert_eq!(
            cx.add_priority_class(&pc).unwrap_err().to_string(),
            "PriorityClass p: value: required field is missing"
        );
        let rc: RuntimeClass =
            serde_yaml_ng::from_str("metadata: {name: r}\nhandler: h\noverhead: {podFixed: {cpu: x}}").unwrap();
        let e = cx.add_runtime_class(&rc).unwrap_err().to_string();
        assert!(e.starts_with("RuntimeClass r: overhead.podFixed.cpu: quantity \"x\""), "{e}");
    }
}
