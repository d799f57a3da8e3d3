//! What a pod's *default* spreading selects: upstream's `DefaultSelector`.
//!
//! A pod with no topology spread constraints of its own gets the cluster's default ones, and
//! they need a selector saying which pods count as "its" pods. Upstream takes it from the
//! objects that group pods: the selectors of every Service in the pod's namespace that selects
//! the pod, merged, plus the selector of the ReplicationController, ReplicaSet or StatefulSet
//! that controls it (its controller owner reference). A pod that no Service selects and no such
//! controller owns — a bare pod, a Job's pod — gets no default constraints at all.
//!
//! [`SelectorSources`] keeps just those selectors, fed by the simulator's input or the live
//! watches, and answers [`SelectorSources::default_selector`] per pod.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::intern::Sym;
use crate::labels::{LabelSelector, LabelSet, Operator, Requirement};
use crate::model::Pod;
use crate::topology::FxMap;

/// The controller kinds whose selector joins a pod's default selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ControllerKind {
    /// `v1` ReplicationController.
    ReplicationController,
    /// `apps/v1` ReplicaSet (a Deployment's pods are owned by one).
    ReplicaSet,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

impl ControllerKind {
    /// The kind an owner reference with `api_version` and `kind` names, if it is one of these.
    pub fn of_owner(api_version: &str, kind: &str) -> Option<ControllerKind> {
        match (api_version, kind) {
            ("v1", "ReplicationController") => Some(ControllerKind::ReplicationController),
            ("apps/v1", "ReplicaSet") => Some(ControllerKind::ReplicaSet),
            ("apps/v1", "StatefulSet") => Some(ControllerKind::StatefulSet),
            _ => None,
        }
    }
}

/// The controller a pod names in its controller owner reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ControllerRef {
    /// Its kind.
    pub kind: ControllerKind,
    /// Its name, in the pod's namespace.
    pub name: Sym,
}

/// A change to one selector source; `None` selectors remove it (object deleted, or a Service
/// without a selector, which selects nothing).
#[derive(Clone, Debug, PartialEq)]
pub enum SourceChange {
    /// A Service's `spec.selector`.
    Service {
        /// Its namespace.
        namespace: Sym,
        /// Its name.
        name: Arc<str>,
        /// Its selector.
        selector: Option<LabelSet>,
    },
    /// A controller's selector (`spec.selector`; a ReplicationController's map as `In`
    /// requirements).
    Controller {
        /// Its namespace.
        namespace: Sym,
        /// Its kind and name.
        controller: ControllerRef,
        /// Its selector.
        selector: Option<LabelSelector>,
    },
}

/// The Services' and controllers' selectors, by namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SelectorSources {
    /// Per namespace, Services that have a selector, by name (ordered, so that merging is
    /// deterministic).
    services: FxMap<Sym, BTreeMap<Arc<str>, LabelSet>>,
    controllers: FxMap<(Sym, ControllerRef), LabelSelector>,
}

impl SelectorSources {
    /// Applies `change`; whether anything changed (a controller's status update changes
    /// nothing here).
    pub fn apply(&mut self, change: SourceChange) -> bool {
        if !self.changes(&change) {
            return false;
        }
        match change {
            SourceChange::Service { namespace, name, selector: Some(s) } => {
                self.services.entry(namespace).or_default().insert(name, s);
            }
            SourceChange::Service { namespace, name, selector: None } => {
                if let Some(in_ns) = self.services.get_mut(&namespace) {
                    in_ns.remove(&name);
                    if in_ns.is_empty() {
                        self.services.remove(&namespace);
                    }
                }
            }
            SourceChange::Controller { namespace, controller, selector: Some(s) } => {
                self.controllers.insert((namespace, controller), s);
            }
            SourceChange::Controller { namespace, controller, selector: None } => {
                self.controllers.remove(&(namespace, controller));
            }
        }
        true
    }

    /// Whether applying `change` would change anything.
    pub fn changes(&self, change: &SourceChange) -> bool {
        match change {
            SourceChange::Service { namespace, name, selector } => {
                self.services.get(namespace).and_then(|in_ns| in_ns.get(name)) != selector.as_ref()
            }
            SourceChange::Controller { namespace, controller, selector } => {
                self.controllers.get(&(*namespace, *controller)) != selector.as_ref()
            }
        }
    }

    /// Whether there is no selector at all (no pod gets default constraints).
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.controllers.is_empty()
    }

    /// The selector default constraints use for `pod`, or `None` when it would be empty (then
    /// the pod gets no default constraints, as upstream).
    pub fn default_selector(&self, pod: &Pod) -> Option<LabelSelector> {
        let mut merged = LabelSet::default();
        for selector in self.services.get(&pod.namespace).into_iter().flat_map(BTreeMap::values) {
            // Every Service here selects the pod, so their selectors cannot disagree.
            if pod.labels.contains_all(selector) {
                for (k, v) in selector.iter() {
                    merged.insert(k, v);
                }
            }
        }
        let mut requirements: Vec<Requirement> =
            merged.iter().map(|(key, v)| Requirement { key, op: Operator::In, values: vec![v], bound: 0 }).collect();
        if let Some(owner) = pod.controller
            && let Some(selector) = self.controllers.get(&(pod.namespace, owner))
        {
            for r in &selector.requirements {
                if !requirements.contains(r) {
                    requirements.push(r.clone());
                }
            }
        }
        (!requirements.is_empty()).then_some(LabelSelector { requirements })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: &[(&str, &str)], controller: Option<ControllerRef>) -> Pod {
        let mut p = Pod::new("ns", "p", crate::resources::ResourceVec::default());
        p.labels = LabelSet::from_pairs(labels.iter().copied());
        p.controller = controller;
        p
    }

    fn service(name: &str, ns: &str, selector: Option<&[(&str, &str)]>) -> SourceChange {
        SourceChange::Service {
            namespace: Sym::new(ns),
            name: Arc::from(name),
            selector: selector.map(|s| LabelSet::from_pairs(s.iter().copied())),
        }
    }

    fn rs(name: &str) -> ControllerRef {
        ControllerRef { kind: ControllerKind::ReplicaSet, name: Sym::new(name) }
    }

    fn keys(s: &LabelSelector) -> Vec<&str> {
        let mut k: Vec<&str> = s.requirements.iter().map(|r| r.key.as_str()).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn a_bare_labelled_pod_gets_no_selector() {
        let sources = SelectorSources::default();
        assert_eq!(sources.default_selector(&pod(&[("app", "web")], None)), None);
    }

    #[test]
    fn services_that_select_the_pod_are_merged_and_others_ignored() {
        let mut s = SelectorSources::default();
        assert!(s.apply(service("web", "ns", Some(&[("app", "web")]))));
        assert!(s.apply(service("tier", "ns", Some(&[("tier", "front")]))));
        assert!(s.apply(service("db", "ns", Some(&[("app", "db")]))));
        assert!(s.apply(service("elsewhere", "other", Some(&[("app", "web")]))));
        let p = pod(&[("app", "web"), ("tier", "front"), ("pod", "p-1")], None);
        let selector = s.default_selector(&p).unwrap();
        assert_eq!(keys(&selector), ["app", "tier"]);
        assert!(selector.matches(&p.labels));
        assert!(!selector.matches(&LabelSet::from_pairs([("app", "web")])));
    }

    #[test]
    fn the_owning_controllers_requirements_are_added() {
        let mut s = SelectorSources::default();
        let sel = LabelSelector {
            requirements: vec![
                Requirement { key: Sym::new("app"), op: Operator::In, values: vec![Sym::new("web")], bound: 0 },
                Requirement { key: Sym::new("pod-template-hash"), op: Operator::Exists, values: vec![], bound: 0 },
            ],
        };
        let change =
            SourceChange::Controller { namespace: Sym::new("ns"), controller: rs("web-abc"), selector: Some(sel) };
        assert!(s.apply(change.clone()));
        assert!(!s.apply(change), "the same selector again changes nothing");
        s.apply(service("web", "ns", Some(&[("app", "web")])));
        let owned = pod(&[("app", "web"), ("pod-template-hash", "abc")], Some(rs("web-abc")));
        let selector = s.default_selector(&owned).unwrap();
        assert_eq!(keys(&selector), ["app", "pod-template-hash"], "app=web once, not twice");
        let unknown_owner = pod(&[("app", "db")], Some(rs("db-xyz")));
        assert_eq!(s.default_selector(&unknown_owner), None);
    }

    #[test]
    fn removing_a_service_or_its_selector_forgets_it() {
        let mut s = SelectorSources::default();
        s.apply(service("web", "ns", Some(&[("app", "web")])));
        let p = pod(&[("app", "web")], None);
        assert!(s.default_selector(&p).is_some());
        assert!(s.apply(service("web", "ns", None)));
        assert_eq!(s.default_selector(&p), None);
        assert!(s.is_empty());
    }

    #[test]
    fn owner_kinds_are_recognised_by_api_version_and_kind() {
        assert_eq!(ControllerKind::of_owner("apps/v1", "ReplicaSet"), Some(ControllerKind::ReplicaSet));
        assert_eq!(
            ControllerKind::of_owner("v1", "ReplicationController"),
            Some(ControllerKind::ReplicationController)
        );
        assert_eq!(ControllerKind::of_owner("apps/v1", "StatefulSet"), Some(ControllerKind::StatefulSet));
        assert_eq!(ControllerKind::of_owner("batch/v1", "Job"), None);
        assert_eq!(ControllerKind::of_owner("extensions/v1beta1", "ReplicaSet"), None);
    }
}
