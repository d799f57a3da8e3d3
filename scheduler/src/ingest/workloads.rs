//! Controllers into the pods their controllers would create, for the simulator: users' YAML
//! holds Deployments and Jobs, not Pods, and there is no controller manager to expand them.
//!
//! Names and labels follow the controllers, made deterministic so that a simulation replays:
//!
//! | kind | pod name | labels added |
//! | --- | --- | --- |
//! | Deployment | `<deployment>-<hash>-<index>` (owned by ReplicaSet `<deployment>-<hash>`) | `pod-template-hash` |
//! | ReplicaSet | `<replicaset>-<index>` | |
//! | StatefulSet | `<statefulset>-<ordinal>` | `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`, `controller-revision-hash` |
//! | Job | `<job>-<index>` | `batch.kubernetes.io/job-name`, `job-name`, and `batch.kubernetes.io/job-completion-index` when Indexed |
//!
//! Each pod gets the template's labels, annotations and spec, the controller's namespace and
//! an owner reference. The controller's [`ARRIVAL_ANNOTATION`] and [`DURATION_ANNOTATION`]
//! are copied to pods whose template does not set them, so that one line times a workload.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::Value;
use tessera_plugins::default_selector::{ControllerKind, SourceChange};
use tessera_plugins::intern::Sym;
use thiserror::Error;

use super::duration::{ARRIVAL_ANNOTATION, DURATION_ANNOTATION, go_duration};
use super::error::{FieldError, FieldProblem};
use super::selector_sources::controller_change;
use super::selectors::{label_selector, label_set};

/// Label with the Deployment's template hash, shared by its ReplicaSet and pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Label with a StatefulSet pod's own name.
pub const STATEFULSET_POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Label with a StatefulSet's revision (`<statefulset>-<hash>`).
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// Label and annotation with an Indexed Job pod's completion index.
pub const JOB_COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Label with the Job's name (the API server adds it to Job templates).
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The older, unprefixed job-name label, still added by the API server.
const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// Most pods one controller may expand to: a typo of a few digits should be an error, not an
/// out-of-memory abort.
pub const MAX_PODS_PER_WORKLOAD: i32 = 1_000_000;

/// A controller kind that is expanded into pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` ReplicaSet.
    ReplicaSet,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `batch/v1` Job.
    Job,
}

impl WorkloadKind {
    /// Every workload kind.
    pub const ALL: [WorkloadKind; 4] =
        [WorkloadKind::Deployment, WorkloadKind::ReplicaSet, WorkloadKind::StatefulSet, WorkloadKind::Job];

    /// The kind named `kind` (as in a manifest's `kind:`), if it is a workload kind.
    pub fn parse(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.name() == kind)
    }

    /// The kind's name, as in a manifest.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Job => "Job",
        }
    }

    /// Decodes `value` as an object of this kind and expands it into its pods.
    pub fn expand(self, value: Value) -> Result<Expansion, WorkloadError> {
        check_count_types(self, &value)?;
        let expansion = match self {
            WorkloadKind::Deployment => deployment_pods(&decode(value)?)?,
            WorkloadKind::ReplicaSet => replica_set_pods(&decode(value)?)?,
            WorkloadKind::StatefulSet => stateful_set_pods(&decode(value)?)?,
            WorkloadKind::Job => Expansion { pods: job_pods(&decode(value)?)?, controller: None },
        };
        Ok(expansion)
    }
}

/// The pods of one workload, and the selector of the controller that owns them (a
/// Deployment's through its ReplicaSet), which their default spreading reads. A Job's pods
/// have none: upstream's default spreading ignores Jobs.
#[derive(Clone, Debug, PartialEq)]
pub struct Expansion {
    /// The pods, in index order.
    pub pods: Vec<Pod>,
    /// The owning controller's selector.
    pub controller: Option<SourceChange>,
}

/// Why a workload could not be expanded. The caller names the object (and file); the
/// message names the field.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WorkloadError {
    /// The object does not decode as its kind (a field of the wrong type).
    #[error("not a valid object of its kind: {0}")]
    Decode(String),
    /// A field is missing or invalid.
    #[error("{}: {}", .0.field, .0.problem)]
    Field(FieldError),
}

impl From<FieldError> for WorkloadError {
    fn from(e: FieldError) -> WorkloadError {
        WorkloadError::Field(e)
    }
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, WorkloadError> {
    serde_json::from_value(value).map_err(|e| WorkloadError::Decode(e.to_string()))
}

/// The pods of a Deployment: those of its current ReplicaSet, `<deployment>-<hash>`, whose
/// selector is the Deployment's plus `pod-template-hash`, as the Deployment controller makes it.
pub fn deployment_pods(d: &Deployment) -> Result<Expansion, FieldError> {
    let name = required_name(&d.metadata)?;
    let template = template(Some(&d.spec.template))?;
    check_selector(Some(&d.spec.selector), template)?;
    let replicas = count(d.spec.replicas, 1, "spec.replicas")?;
    let hash = template_hash(template)?;
    let rs_name = format!("{name}-{hash}");
    // Deployments own their pods through the ReplicaSet; the ReplicaSet is not in the input,
    // so its uid is unknown.
    let owner = OwnerReference { uid: String::new(), ..owner("apps/v1", "ReplicaSet", &rs_name, &d.metadata) };
    let stamp = Stamp::new(&d.metadata, template, owner)?;
    let pods = (0..replicas).map(|i| stamp.pod(format!("{rs_name}-{i}"), &[(POD_TEMPLATE_HASH_LABEL, hash.clone())]));
    let mut rs_selector = d.spec.selector.clone();
    rs_selector.match_labels.get_or_insert_default().insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
    let controller =
        controller_change(namespace_of(&d.metadata), ControllerKind::ReplicaSet, &rs_name, Some(&rs_selector))?;
    Ok(Expansion { pods: pods.collect(), controller: Some(controller) })
}

/// The pods of a ReplicaSet.
pub fn replica_set_pods(rs: &ReplicaSet) -> Result<Expansion, FieldError> {
    let name = required_name(&rs.metadata)?;
    let template = template(rs.spec.template.as_ref())?;
    check_selector(Some(&rs.spec.selector), template)?;
    let replicas = count(rs.spec.replicas, 1, "spec.replicas")?;
    let stamp = Stamp::new(&rs.metadata, template, owner("apps/v1", "ReplicaSet", name, &rs.metadata))?;
    let pods = (0..replicas).map(|i| stamp.pod(format!("{name}-{i}"), &[])).collect();
    let controller =
        controller_change(namespace_of(&rs.metadata), ControllerKind::ReplicaSet, name, Some(&rs.spec.selector))?;
    Ok(Expansion { pods, controller: Some(controller) })
}

/// The pods of a StatefulSet, ordinals from `spec.ordinals.start` (default 0).
pub fn stateful_set_pods(s: &StatefulSet) -> Result<Expansion, FieldError> {
    let name = required_name(&s.metadata)?;
    let spec = &s.spec;
    let template = template(Some(&spec.template))?;
    check_selector(Some(&spec.selector), template)?;
    let replicas = count(spec.replicas, 1, "spec.replicas")?;
    let start = count(spec.ordinals.as_ref().and_then(|o| o.start), 0, "spec.ordinals.start")?;
    let revision = format!("{name}-{}", template_hash(template)?);
    let service = spec.service_name.clone().filter(|s| !s.is_empty());
    let stamp = Stamp::new(&s.metadata, template, owner("apps/v1", "StatefulSet", name, &s.metadata))?;
    let pods = (start..start.saturating_add(replicas)).map(|ordinal| {
        let pod_name = format!("{name}-{ordinal}");
        let labels = [
            (STATEFULSET_POD_NAME_LABEL, pod_name.clone()),
            (POD_INDEX_LABEL, ordinal.to_string()),
            (CONTROLLER_REVISION_HASH_LABEL, revision.clone()),
        ];
        let mut pod = stamp.pod(pod_name.clone(), &labels);
        // The stable network identity that is a StatefulSet's reason to exist.
        if let Some(spec) = pod.spec.as_mut() {
            spec.hostname = Some(pod_name);
            spec.subdomain = service.clone();
        }
        pod
    });
    let controller =
        controller_change(namespace_of(&s.metadata), ControllerKind::StatefulSet, name, Some(&spec.selector))?;
    Ok(Expansion { pods: pods.collect(), controller: Some(controller) })
}

/// The pods a Job runs at once: `parallelism` (default 1), capped by `completions` when set;
/// none while suspended.
pub fn job_pods(j: &Job) -> Result<Vec<Pod>, FieldError> {
    let name = required_name(&j.metadata)?;
    let spec = j.spec.as_ref();
    let template = template(spec.map(|s| &s.template))?;
    check_selector(spec.and_then(|s| s.selector.as_ref()), template)?;
    let parallelism = count(spec.and_then(|s| s.parallelism), 1, "spec.parallelism")?;
    let completions = spec.and_then(|s| s.completions);
    let completions = completions.map(|c| count(Some(c), 0, "spec.completions")).transpose()?;
    let indexed = match spec.and_then(|s| s.completion_mode.as_deref()) {
        None | Some("NonIndexed") => false,
        Some("Indexed") => true,
        Some(other) => return Err(FieldError::unsupported("spec.completionMode", other, "NonIndexed, Indexed")),
    };
    if indexed && completions.is_none() {
        // Upstream validation: an index needs a range.
        return Err(FieldError::new("spec.completions", FieldProblem::Missing));
    }
    let suspended = spec.and_then(|s| s.suspend).unwrap_or(false);
    let n = if suspended { 0 } else { completions.map_or(parallelism, |c| c.min(parallelism)) };
    let stamp = Stamp::new(&j.metadata, template, owner("batch/v1", "Job", name, &j.metadata))?;
    let pods = (0..n).map(|i| {
        let mut labels = vec![(JOB_NAME_LABEL, name.to_string()), (LEGACY_JOB_NAME_LABEL, name.to_string())];
        if indexed {
            labels.push((JOB_COMPLETION_INDEX, i.to_string()));
        }
        let mut pod = stamp.pod(format!("{name}-{i}"), &labels);
        if indexed {
            // The Job controller sets the index as an annotation too (older readers use it).
            pod.metadata.annotations.get_or_insert_default().insert(JOB_COMPLETION_INDEX.to_string(), i.to_string());
        }
        pod
    });
    Ok(pods.collect())
}

/// What every pod of one controller shares; `pod` adds the per-pod name and labels.
struct Stamp<'a> {
    template: &'a PodTemplateSpec,
    controller: &'a ObjectMeta,
    owner: OwnerReference,
    /// The controller's timing annotations, for pods whose template lacks them.
    inherited: Vec<(&'static str, String)>,
}

impl<'a> Stamp<'a> {
    fn new(
        controller: &'a ObjectMeta,
        template: &'a PodTemplateSpec,
        owner: OwnerReference,
    ) -> Result<Stamp<'a>, FieldError> {
        let mut inherited = Vec::new();
        for key in [ARRIVAL_ANNOTATION, DURATION_ANNOTATION] {
            if let Some(value) = controller.annotations.as_ref().and_then(|a| a.get(key)) {
                // Checked here so that a typo names the controller the user wrote.
                go_duration(value).map_err(|_| {
                    FieldError::invalid(
                        format!("metadata.annotations.{key}"),
                        value,
                        "must be a Go duration such as 90s, 2h or 1h30m",
                    )
                })?;
                inherited.push((key, value.clone()));
            }
        }
        Ok(Stamp { template, controller, owner, inherited })
    }

    fn pod(&self, name: String, labels: &[(&str, String)]) -> Pod {
        let meta = self.template.metadata.clone().unwrap_or_default();
        let mut all_labels = meta.labels.clone().unwrap_or_default();
        // Controller labels win: the controller, not the template, decides them.
        all_labels.extend(labels.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let mut annotations = meta.annotations.clone().unwrap_or_default();
        for (key, value) in &self.inherited {
            annotations.entry(key.to_string()).or_insert_with(|| value.clone());
        }
        let metadata = ObjectMeta {
            name: Some(name),
            generate_name: None,
            namespace: self.controller.namespace.clone(),
            uid: None,
            resource_version: None,
            // Pods are created when their controller is: the best creation time the input has.
            creation_timestamp: self.controller.creation_timestamp.clone(),
            labels: non_empty(all_labels),
            annotations: non_empty(annotations),
            owner_references: Some(vec![self.owner.clone()]),
            ..meta
        };
        Pod { metadata, spec: self.template.spec.clone(), status: None }
    }
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

fn owner(api_version: &str, kind: &str, name: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The namespace the controller's pods land in (`default` when unset).
fn namespace_of(meta: &ObjectMeta) -> Sym {
    Sym::new(meta.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default"))
}

fn required_name(meta: &ObjectMeta) -> Result<&str, FieldError> {
    meta.name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| FieldError::new("metadata.name", FieldProblem::Missing))
}

/// The template, which must have a pod spec.
fn template(t: Option<&PodTemplateSpec>) -> Result<&PodTemplateSpec, FieldError> {
    match t {
        Some(t) if t.spec.is_some() => Ok(t),
        // A template with metadata only is a template whose spec was forgotten.
        Some(PodTemplateSpec { metadata: Some(_), .. }) => {
            Err(FieldError::new("spec.template.spec", FieldProblem::Missing))
        }
        _ => Err(FieldError::new("spec.template", FieldProblem::Missing)),
    }
}

/// A replica count: `default` when unset, else between 0 and [`MAX_PODS_PER_WORKLOAD`].
fn count(value: Option<i32>, default: i32, field: &str) -> Result<i32, FieldError> {
    let n = value.unwrap_or(default);
    if (0..=MAX_PODS_PER_WORKLOAD).contains(&n) {
        Ok(n)
    } else {
        Err(FieldError::invalid(field, n, "must be between 0 and 1000000"))
    }
}

/// Counts of the wrong type, checked before decoding because the decoder's message cannot
/// say which field it was.
fn check_count_types(kind: WorkloadKind, value: &Value) -> Result<(), FieldError> {
    let fields: &[&[&str]] = match kind {
        WorkloadKind::Job => &[&["spec", "parallelism"], &["spec", "completions"]],
        WorkloadKind::StatefulSet => &[&["spec", "replicas"], &["spec", "ordinals", "start"]],
        WorkloadKind::Deployment | WorkloadKind::ReplicaSet => &[&["spec", "replicas"]],
    };
    for path in fields {
        let found = path.iter().try_fold(value, |v, key| v.get(key));
        match found {
            None | Some(Value::Null) => {}
            Some(v) if v.as_i64().is_some_and(|n| (0..=i64::from(i32::MAX)).contains(&n)) => {}
            Some(v) => {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                return Err(FieldError::invalid(path.join("."), text, "must be a non-negative integer"));
            }
        }
    }
    Ok(())
}

/// A non-empty selector must select the template's pods, as upstream validation requires, or
/// the controller would never see its own pods. A missing selector (hand-written input often
/// leaves it out) is taken to be the template's labels.
fn check_selector(selector: Option<&LabelSelector>, template: &PodTemplateSpec) -> Result<(), FieldError> {
    let Some(selector) = selector.filter(|s| s.match_labels.is_some() || s.match_expressions.is_some()) else {
        return Ok(());
    };
    let labels = label_set(template.metadata.as_ref().and_then(|m| m.labels.as_ref()));
    match label_selector(Some(selector), "spec.selector")? {
        Some(s) if !s.matches(&labels) => {
            let shown = serde_json::to_string(selector).unwrap_or_default();
            Err(FieldError::invalid("spec.selector", shown, "does not match the template's labels"))
        }
        _ => Ok(()),
    }
}

/// Ten hex digits of the 64-bit FNV-1a hash of the template's JSON: stable across runs and
/// platforms (k8s-openapi serializes fields in a fixed order and maps sorted), and changed by
/// any change to the template, as upstream's `pod-template-hash` is.
fn template_hash(template: &PodTemplateSpec) -> Result<String, FieldError> {
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    serde_json::to_writer(&mut hasher, template)
        .map_err(|_| FieldError::invalid("spec.template", "<template>", "cannot be serialized"))?;
    Ok(format!("{:010x}", hasher.0 & 0xff_ffff_ffff))
}

/// FNV-1a, fed by a writer so that the template's JSON is never held whole.
struct Fnv1a(u64);

impl std::io::Write for Fnv1a {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "workloads_tests.rs"]
mod tests;
