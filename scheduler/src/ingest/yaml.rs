//! Reading Kubernetes YAML: multi-document files and `kind: List` documents, into typed
//! objects by kind. `PodGroup` is three kinds under one name (Kubernetes', scheduler-plugins'
//! and Volcano's), told apart by `apiVersion`.
//!
//! Workload controllers (Deployments, Jobs, ...) are validated where they are read
//! ([`super::workloads::Controller::read`]), so that an error names the file and document, and
//! kept in [`Objects`]. The pods they add are derived from the whole input
//! ([`super::owners`]): a dump of a cluster lists a controller's pods too, maybe in another
//! file, and those are not created again. [`Objects::pods`] therefore always holds the listed
//! pods and what the controllers read so far add to them, in input order (a controller's
//! pods where the controller was); reading a file and [`Objects::extend`] derive it afresh.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::resource::v1::{DeviceClass, ResourceClaim, ResourceClaimTemplate, ResourceSlice};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::scheduling::v1alpha3::Workload;
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tessera_plugins::default_selector::SourceChange;

use super::error::{DocLocation, IngestError};
use super::owners;
use super::pod_group::{COSCHEDULING_API_VERSION, KUBERNETES_API_VERSION, PodGroupObject, VOLCANO_API_VERSION};
use super::selector_sources;
use super::volumes;
use super::workloads::{Controller, WorkloadKind};

/// The API version of the StorageClasses and CSINodes read.
pub const STORAGE_API_VERSION: &str = "storage.k8s.io/v1";

/// The API version of the DRA kinds read ([`Objects::device_classes`] and the others).
pub const DRA_API_VERSION: &str = "resource.k8s.io/v1";

/// The objects of one or more YAML files, by kind, in input order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Objects {
    /// `Node`s.
    pub nodes: Vec<Node>,
    /// `Pod`s, those listed and those the controllers add to them, in input order.
    pub pods: Vec<Pod>,
    /// `PriorityClass`es.
    pub priority_classes: Vec<PriorityClass>,
    /// `Namespace`s.
    pub namespaces: Vec<Namespace>,
    /// `RuntimeClass`es.
    pub runtime_classes: Vec<RuntimeClass>,
    /// `PodGroup`s of the three APIs, in input order (which decides between two of one name).
    pub pod_groups: Vec<PodGroupObject>,
    /// Kubernetes `Workload`s (`scheduling.k8s.io`), whose PodGroup templates
    /// [`super::pod_group::pod_groups`] materializes. Workloads of other API groups (Kueue's)
    /// are unknown kinds.
    pub workloads: Vec<Workload>,
    /// Selectors of Services and ReplicationControllers, which default spreading reads.
    pub selector_sources: Vec<SourceChange>,
    /// Selectors of the ReplicaSets and StatefulSets that own pods, listed or added (a
    /// Deployment's through its ReplicaSet), derived with the pods; default spreading reads
    /// them too.
    pub controller_selectors: Vec<SourceChange>,
    /// DRA `DeviceClass`es, which the requests of claims name.
    pub device_classes: Vec<DeviceClass>,
    /// DRA `ResourceSlice`s: the devices drivers publish.
    pub resource_slices: Vec<ResourceSlice>,
    /// DRA `ResourceClaim`s, standalone or made from templates, with their allocations.
    pub resource_claims: Vec<ResourceClaim>,
    /// DRA `ResourceClaimTemplate`s, which claims for pods are made from.
    pub resource_claim_templates: Vec<ResourceClaimTemplate>,
    /// `PodDisruptionBudget`s (`policy/v1`), which preemption respects.
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    /// `PersistentVolume`s.
    pub persistent_volumes: Vec<PersistentVolume>,
    /// `PersistentVolumeClaim`s.
    pub persistent_volume_claims: Vec<PersistentVolumeClaim>,
    /// The claims StatefulSets make for the pods they add (`volumeClaimTemplates`), derived
    /// with the pods; a claim of the same name in `persistent_volume_claims` wins.
    pub controller_claims: Vec<PersistentVolumeClaim>,
    /// `StorageClass`es (`storage.k8s.io/v1`).
    pub storage_classes: Vec<StorageClass>,
    /// `CSINode`s (`storage.k8s.io/v1`): per-driver attach limits of nodes.
    pub csi_nodes: Vec<CSINode>,
    /// How many objects of each kind nobody understands were skipped; the caller reports
    /// them once.
    pub unknown_kinds: BTreeMap<String, usize>,
    /// How many pods the workloads of each kind (`Deployment`, `Job`, ...) added, for
    /// summaries (listed pods they already had are not counted); the pods are in `pods`.
    pub expanded: BTreeMap<String, usize>,
    /// The workload controllers read, in input order.
    controllers: Vec<Placed>,
    /// Which of `pods` the controllers added (the rest were listed); shorter when pods were
    /// pushed by hand, which then count as listed.
    added: Vec<bool>,
}

/// A controller, and how many listed pods were read before it: where its pods go.
#[derive(Clone, Debug, PartialEq)]
struct Placed {
    listed_before: usize,
    controller: Controller,
}

impl Objects {
    /// Appends the objects of `more` (another file) to these, and derives the controllers'
    /// pods again: a controller here may own pods there, and the other way round.
    pub fn extend(&mut self, mut more: Objects) {
        if *self == Objects::default() {
            // The first file: its pods were derived when it was read.
            *self = more;
            return;
        }
        self.drop_added();
        more.drop_added();
        let listed_before = self.pods.len();
        self.nodes.extend(more.nodes);
        self.pods.extend(more.pods);
        self.controllers.extend(
            more.controllers.into_iter().map(|p| Placed { listed_before: p.listed_before + listed_before, ..p }),
        );
        self.priority_classes.extend(more.priority_classes);
        self.namespaces.extend(more.namespaces);
        self.runtime_classes.extend(more.runtime_classes);
        self.pod_groups.extend(more.pod_groups);
        self.workloads.extend(more.workloads);
        self.selector_sources.extend(more.selector_sources);
        self.device_classes.extend(more.device_classes);
        self.resource_slices.extend(more.resource_slices);
        self.resource_claims.extend(more.resource_claims);
        self.resource_claim_templates.extend(more.resource_claim_templates);
        self.disruption_budgets.extend(more.disruption_budgets);
        self.persistent_volumes.extend(more.persistent_volumes);
        self.persistent_volume_claims.extend(more.persistent_volume_claims);
        self.storage_classes.extend(more.storage_classes);
        self.csi_nodes.extend(more.csi_nodes);
        for (kind, n) in more.unknown_kinds {
            *self.unknown_kinds.entry(kind).or_default() += n;
        }
        self.expand_workloads();
    }

    /// The workload controllers read, in input order.
    pub fn controllers(&self) -> impl Iterator<Item = &Controller> {
        self.controllers.iter().map(|p| &p.controller)
    }

    /// Derives what the controllers add (`pods`, `controller_selectors`, `expanded`) from
    /// the listed pods and the controllers, dropping what an earlier derivation added.
    fn expand_workloads(&mut self) {
        self.drop_added();
        if self.controllers.is_empty() {
            return;
        }
        let controllers: Vec<&Controller> = self.controllers.iter().map(|p| &p.controller).collect();
        let expansions = owners::expand(&self.pods, &self.nodes, &controllers);
        let mut listed = std::mem::take(&mut self.pods).into_iter();
        let mut placed_so_far = 0;
        for (placed, expansion) in self.controllers.iter().zip(expansions) {
            let before = placed.listed_before.saturating_sub(placed_so_far);
            placed_so_far += before;
            for pod in listed.by_ref().take(before) {
                self.pods.push(pod);
                self.added.push(false);
            }
            let kind = placed.controller.kind.name().to_string();
            *self.expanded.entry(kind).or_default() += expansion.pods.len();
            self.added.extend(expansion.pods.iter().map(|_| true));
            self.pods.extend(expansion.pods);
            self.controller_selectors.extend(expansion.controller);
            self.controller_claims.extend(expansion.claims);
        }
        self.added.extend(listed.as_slice().iter().map(|_| false));
        self.pods.extend(listed);
    }

    /// Removes what the controllers added, leaving the listed pods.
    fn drop_added(&mut self) {
        let mut added = std::mem::take(&mut self.added).into_iter();
        self.pods.retain(|_| !added.next().unwrap_or(false));
        self.controller_selectors.clear();
        self.controller_claims.clear();
        self.expanded.clear();
    }

    /// How many objects were kept (unknown kinds excluded).
    pub fn len(&self) -> usize {
        self.nodes.len()
            + self.pods.len()
            + self.priority_classes.len()
            + self.namespaces.len()
            + self.runtime_classes.len()
            + self.pod_groups.len()
            + self.workloads.len()
            + self.selector_sources.len()
            + self.controllers.len()
            + self.device_classes.len()
            + self.resource_slices.len()
            + self.resource_claims.len()
            + self.resource_claim_templates.len()
            + self.persistent_volumes.len()
            + self.persistent_volume_claims.len()
            + self.storage_classes.len()
            + self.csi_nodes.len()
    }

    /// Whether no object was kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads every document of `text`; `source` names the file in messages. Empty documents are
/// skipped; the first document that is not valid YAML or not a valid object of its kind
/// fails the whole read, naming its position.
pub fn read_objects(source: &str, text: &str) -> Result<Objects, IngestError> {
    super::depth::check(source, text)?;
    let mut out = Objects::default();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let location = DocLocation { document: i + 1, ..DocLocation::default() };
        let value = Value::deserialize(document).map_err(|e| IngestError::Yaml {
            file: source.to_string(),
            location: Box::new(location.clone()),
            message: e.to_string(),
        })?;
        if !value.is_null() {
            Reader { file: source, out: &mut out }.document(value, location)?;
        }
    }
    out.expand_workloads();
    Ok(out)
}

/// Sorts the documents of one file into `out`.
struct Reader<'a> {
    file: &'a str,
    out: &'a mut Objects,
}

impl Reader<'_> {
    fn document(&mut self, value: Value, location: DocLocation) -> Result<(), IngestError> {
        let (kind, location) = self.kind_of(&value, location)?;
        match list_kind(&kind, &value) {
            Some(item_kind) => self.list(value, item_kind, location),
            None => self.object(&kind, value, location),
        }
    }

    fn list(&mut self, value: Value, item_kind: Option<String>, location: DocLocation) -> Result<(), IngestError> {
        let api_version = value.get("apiVersion").cloned();
        let items = match value {
            Value::Object(mut map) => map.remove("items").unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let items = match items {
            Value::Null => Vec::new(),
            Value::Array(items) => items,
            _ => return Err(self.error(location, "`items` must be a list of objects".to_string())),
        };
        for (j, mut item) in items.into_iter().enumerate() {
            let at = DocLocation { document: location.document, item: Some(j + 1), ..DocLocation::default() };
            // Typed lists (`PodList`) leave kind and apiVersion off their items.
            if let (Some(kind), Value::Object(map)) = (&item_kind, &mut item) {
                fill_missing(map, "kind", Value::String(kind.clone()));
                fill_missing(map, "apiVersion", api_version.clone().unwrap_or(Value::Null));
            }
            let (kind, at) = self.kind_of(&item, at)?;
            if list_kind(&kind, &item).is_some() {
                return Err(self.error(at, "a List cannot contain another List".to_string()));
            }
            self.object(&kind, item, at)?;
        }
        Ok(())
    }

    fn object(&mut self, kind: &str, value: Value, location: DocLocation) -> Result<(), IngestError> {
        if let Some(workload) = WorkloadKind::parse(kind) {
            return self.workload(workload, value, location);
        }
        match kind {
            "Node" => self.out.nodes.push(self.decode(value, location)?),
            "Pod" => self.out.pods.push(self.decode(value, location)?),
            "PriorityClass" => self.out.priority_classes.push(self.decode(value, location)?),
            "Namespace" => self.out.namespaces.push(self.decode(value, location)?),
            "RuntimeClass" => self.out.runtime_classes.push(self.decode(value, location)?),
            "PodGroup" => self.pod_group(value, location)?,
            "Workload" => self.scheduling_workload(value, location)?,
            "Service" => {
                let svc = self.decode(value, location.clone())?;
                let change = selector_sources::service(&svc).map_err(|e| self.error(location, e.to_string()))?;
                self.out.selector_sources.push(change);
            }
            "ReplicationController" => {
                let rc = self.decode(value, location.clone())?;
                let change =
                    selector_sources::replication_controller(&rc).map_err(|e| self.error(location, e.to_string()))?;
                self.out.selector_sources.push(change);
            }
            "PodDisruptionBudget" => self.out.disruption_budgets.push(self.decode(value, location)?),
            "DeviceClass" | "ResourceSlice" | "ResourceClaim" | "ResourceClaimTemplate" => {
                self.dra(kind, value, location)?;
            }
            "PersistentVolume" | "PersistentVolumeClaim" | "StorageClass" | "CSINode" => {
                self.storage(kind, value, location)?;
            }
            unknown => *self.out.unknown_kinds.entry(unknown.to_string()).or_default() += 1,
        }
        Ok(())
    }

    /// A controller, kept for [`Objects::expand_workloads`] once the file is read.
    fn workload(&mut self, kind: WorkloadKind, value: Value, location: DocLocation) -> Result<(), IngestError> {
        let controller = Controller::read(kind, value).map_err(|e| self.error(location, e.to_string()))?;
        // Nothing is added while a file is read: every pod so far was listed.
        self.out.controllers.push(Placed { listed_before: self.out.pods.len(), controller });
        Ok(())
    }

    /// A PodGroup of whichever API its `apiVersion` names. Another scheduler's (KAI's) counts
    /// as an unknown kind, so a dump of a cluster running it still simulates (one note per
    /// kind says what was skipped); any other version of the three APIs (a typo) is an error,
    /// since its pods would silently lose their gang.
    fn pod_group(&mut self, value: Value, location: DocLocation) -> Result<(), IngestError> {
        let object = match value.get("apiVersion").and_then(Value::as_str) {
            Some(KUBERNETES_API_VERSION) => PodGroupObject::Kubernetes(Box::new(self.decode(value, location)?)),
            Some(COSCHEDULING_API_VERSION) => PodGroupObject::Coscheduling(Box::new(self.decode(value, location)?)),
            Some(VOLCANO_API_VERSION) => PodGroupObject::Volcano(Box::new(self.decode(value, location)?)),
            Some(other) if !is_gang_api_group(other) => {
                *self.out.unknown_kinds.entry(format!("PodGroup ({other})")).or_default() += 1;
                return Ok(());
            }
            other => {
                let supported = format!(
                    "{KUBERNETES_API_VERSION} (Kubernetes), {COSCHEDULING_API_VERSION} (scheduler-plugins \
                     coscheduling), {VOLCANO_API_VERSION} (Volcano)"
                );
                return Err(self.error(location, unsupported_api_version(other, "PodGroup", &supported)));
            }
        };
        self.out.pod_groups.push(object);
        Ok(())
    }

    /// A DRA object of `resource.k8s.io/v1`. The same kind in another API group (a CRD of
    /// that name) counts as an unknown kind; another version of `resource.k8s.io` is an error,
    /// since its fields differ (v1beta1's requests have no `exactly`).
    fn dra(&mut self, kind: &str, value: Value, location: DocLocation) -> Result<(), IngestError> {
        match value.get("apiVersion").and_then(Value::as_str) {
            Some(DRA_API_VERSION) => {}
            Some(other) if !other.starts_with("resource.k8s.io/") => {
                *self.out.unknown_kinds.entry(format!("{kind} ({other})")).or_default() += 1;
                return Ok(());
            }
            other => return Err(self.error(location, unsupported_api_version(other, kind, DRA_API_VERSION))),
        }
        match kind {
            "DeviceClass" => self.out.device_classes.push(self.decode(value, location)?),
            "ResourceSlice" => self.out.resource_slices.push(self.decode(value, location)?),
            "ResourceClaim" => self.out.resource_claims.push(self.decode(value, location)?),
            _ => self.out.resource_claim_templates.push(self.decode(value, location)?),
        }
        Ok(())
    }

    /// A storage object, checked here so that an error names the file and document (a
    /// claim's default class is applied later, once every class is known). A StorageClass or
    /// CSINode of another API group counts as an unknown kind; another version of
    /// `storage.k8s.io` is an error.
    fn storage(&mut self, kind: &str, value: Value, location: DocLocation) -> Result<(), IngestError> {
        if matches!(kind, "StorageClass" | "CSINode") {
            match value.get("apiVersion").and_then(Value::as_str) {
                Some(STORAGE_API_VERSION) => {}
                Some(other) if !other.starts_with("storage.k8s.io/") => {
                    *self.out.unknown_kinds.entry(format!("{kind} ({other})")).or_default() += 1;
                    return Ok(());
                }
                other => return Err(self.error(location, unsupported_api_version(other, kind, STORAGE_API_VERSION))),
            }
        }
        let checked = |r: Result<(), IngestError>| r.map_err(|e| self.error(location.clone(), e.to_string()));
        match kind {
            "PersistentVolume" => {
                let pv = self.decode(value, location.clone())?;
                checked(volumes::persistent_volume(&pv).map(drop))?;
                self.out.persistent_volumes.push(pv);
            }
            "PersistentVolumeClaim" => {
                let pvc = self.decode(value, location.clone())?;
                checked(volumes::persistent_volume_claim(&pvc, None).map(drop))?;
                self.out.persistent_volume_claims.push(pvc);
            }
            "StorageClass" => {
                let class = self.decode(value, location.clone())?;
                checked(volumes::storage_class(&class).map(drop))?;
                self.out.storage_classes.push(class);
            }
            _ => {
                let csi = self.decode(value, location.clone())?;
                checked(volumes::csi_node(&csi).map(drop))?;
                self.out.csi_nodes.push(csi);
            }
        }
        Ok(())
    }

    /// A Kubernetes Workload. Kueue also has a `kind: Workload` (its admission unit, nothing
    /// the scheduler reads): other API groups count as unknown kinds, by kind and apiVersion.
    fn scheduling_workload(&mut self, value: Value, location: DocLocation) -> Result<(), IngestError> {
        match value.get("apiVersion").and_then(Value::as_str) {
            Some(KUBERNETES_API_VERSION) => self.out.workloads.push(self.decode(value, location)?),
            Some(other) if !other.starts_with("scheduling.k8s.io/") => {
                *self.out.unknown_kinds.entry(format!("Workload ({other})")).or_default() += 1;
            }
            other => {
                return Err(self.error(location, unsupported_api_version(other, "Workload", KUBERNETES_API_VERSION)));
            }
        }
        Ok(())
    }

    /// The object's kind, with the location completed by kind and name for messages.
    fn kind_of(&self, value: &Value, mut location: DocLocation) -> Result<(String, DocLocation), IngestError> {
        let Value::Object(map) = value else {
            let message = format!("expected a Kubernetes object (a mapping), found {}", type_name(value));
            return Err(self.error(location, message));
        };
        location.name = object_name(map);
        match map.get("kind") {
            Some(Value::String(kind)) if !kind.is_empty() => {
                location.kind = Some(kind.clone());
                Ok((kind.clone(), location))
            }
            None => Err(self.error(location, "missing `kind`".to_string())),
            Some(other) => Err(self.error(location, format!("`kind` must be a non-empty string, found {other}"))),
        }
    }

    fn decode<T: DeserializeOwned>(&self, value: Value, location: DocLocation) -> Result<T, IngestError> {
        serde_json::from_value(value).map_err(|e| self.error(location, format!("not a valid object of its kind: {e}")))
    }

    fn error(&self, location: DocLocation, message: String) -> IngestError {
        IngestError::Document { file: self.file.to_string(), location: Box::new(location), message }
    }
}

/// Whether `api_version` is in the group of a PodGroup API Tessera reads (`scheduling.k8s.io`,
/// `scheduling.x-k8s.io`, `scheduling.volcano.sh`), whatever its version.
fn is_gang_api_group(api_version: &str) -> bool {
    matches!(
        api_version.split_once('/').map(|(group, _)| group),
        Some("scheduling.k8s.io" | "scheduling.x-k8s.io" | "scheduling.volcano.sh")
    )
}

/// `Some(item kind)` when the document is a list: `List` (items carry their kinds) or a typed
/// `<Kind>List` with `items` (`Some(Some(kind))`).
fn list_kind(kind: &str, value: &Value) -> Option<Option<String>> {
    if kind == "List" {
        return Some(None);
    }
    let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty())?;
    value.get("items").map(|_| Some(item_kind.to_string()))
}

fn unsupported_api_version(found: Option<&str>, kind: &str, supported: &str) -> String {
    match found {
        Some(v) => format!("unsupported apiVersion {v:?} for {kind}: supported: {supported}"),
        None => format!("missing `apiVersion` (a string), which {kind} needs: supported: {supported}"),
    }
}

fn fill_missing(map: &mut Map<String, Value>, key: &str, value: Value) {
    if !value.is_null() && !map.contains_key(key) {
        map.insert(key.to_string(), value);
    }
}

/// `namespace/name` or `name`, if the object has a name.
fn object_name(map: &Map<String, Value>) -> Option<String> {
    let meta = map.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) => Some(format!("{ns}/{name}")),
        None => Some(name.to_string()),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
#[path = "yaml_tests.rs"]
mod tests;
