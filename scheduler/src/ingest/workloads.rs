//! Controllers into the pods they would create, for the simulator: users' YAML holds
//! Deployments and Jobs, not Pods, and there is no controller manager to expand them.
//!
//! Reading and expanding are two steps. [`Controller::read`] decodes and validates a
//! controller where it is read, so that an error names its file and document. Its pods are
//! stamped only once the whole input is known ([`super::owners`]): a dump of a real cluster
//! also lists the pods (and a Deployment's ReplicaSets) the controller already has, and those
//! must not be created a second time. [`Controller::expand`] adds what [`Listed`] says is
//! missing, so expanding cannot fail:
//!
//! | kind | pods added | pod name | labels added |
//! | --- | --- | --- | --- |
//! | Deployment | `replicas` minus the active pods of its ReplicaSets; owned by its current ReplicaSet, the listed one or else `<deployment>-<hash>` | `<replicaset>-<index>` | `pod-template-hash` |
//! | ReplicaSet | `replicas` minus its active pods; none when a listed Deployment owns it | `<replicaset>-<index>` | |
//! | StatefulSet | the ordinals no listed pod holds | `<statefulset>-<ordinal>` | `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`, `controller-revision-hash` |
//! | Job | `parallelism` capped by the completions left, minus its active pods; none while suspended or once finished | `<job>-<index>` | `batch.kubernetes.io/job-name`, `job-name`, and `batch.kubernetes.io/job-completion-index` when Indexed |
//! | DaemonSet | one per node of the input it selects and tolerates ([`super::daemon_sets`]) that none of its active pods is for, pinned by node affinity | `<daemonset>-<node>` | `controller-revision-hash` |
//!
//! Names are deterministic, so that a simulation replays; an index whose name a listed pod
//! already has is skipped. Each pod gets the template's labels, annotations and spec, the
//! controller's namespace and an owner reference. The controller's [`ARRIVAL_ANNOTATION`]
//! and [`DURATION_ANNOTATION`] are copied to pods whose template does not set them, so that
//! one line times a workload. A StatefulSet's pods also get a volume per `volumeClaimTemplates`
//! entry naming the claim `<template>-<pod>`, and [`Expansion::claims`] holds those claims.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::{
    Node, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use serde_json::Value;
use tessera_plugins::default_selector::{ControllerKind, ControllerRef, SourceChange};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::{self, Operator, Requirement};
use thiserror::Error;

use super::daemon_sets::{Placement, add_daemon_tolerations, pin_to_node};
use super::duration::{ARRIVAL_ANNOTATION, DURATION_ANNOTATION, go_duration};
use super::error::{FieldError, FieldProblem};
use super::selectors::{label_selector, label_set};

/// Label with the Deployment's template hash, shared by its ReplicaSet and pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Label with a StatefulSet pod's own name.
pub const STATEFULSET_POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Label with a StatefulSet's revision (`<statefulset>-<hash>`) or a DaemonSet's (`<hash>`).
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
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

impl WorkloadKind {
    /// Every workload kind.
    pub const ALL: [WorkloadKind; 5] = [
        WorkloadKind::Deployment,
        WorkloadKind::ReplicaSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::Job,
        WorkloadKind::DaemonSet,
    ];

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
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::Job => "batch/v1",
            _ => "apps/v1",
        }
    }

    /// Decodes `value` as an object of this kind and expands it into all its pods, as if the
    /// input listed none of them (nor any node: a DaemonSet expands to no pod).
    pub fn expand(self, value: Value) -> Result<Expansion, WorkloadError> {
        Ok(Controller::read(self, value)?.expand(&Listed::default()))
    }
}

/// The pods one controller adds, and the selector of the controller that owns them (a
/// Deployment's through its ReplicaSet), which their default spreading reads. A Job's pods
/// have none: upstream's default spreading ignores Jobs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expansion {
    /// The pods, in index order.
    pub pods: Vec<Pod>,
    /// The owning controller's selector.
    pub controller: Option<SourceChange>,
    /// The PersistentVolumeClaims a StatefulSet's `volumeClaimTemplates` make for the pods it
    /// adds (`<template>-<pod>`), as its controller creates them; a claim the input lists wins.
    pub claims: Vec<PersistentVolumeClaim>,
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

/// A controller as read: validated, and holding what its pods need.
#[derive(Clone, Debug, PartialEq)]
pub struct Controller {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its namespace (`default` when unset).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `metadata.uid`, when the input kept it (`kubectl get -o yaml` does).
    pub uid: Option<String>,
    /// The object's own controller owner reference: a ReplicaSet's Deployment.
    pub owner: Option<OwnerReference>,
    stamp: Stamp,
    spec: Spec,
}

/// The kind-specific part of a [`Controller`].
#[derive(Clone, Debug, PartialEq)]
enum Spec {
    /// `hash` is ours, for naming a ReplicaSet the input does not have.
    Deployment {
        replicas: i32,
        selector: Option<labels::LabelSelector>,
        hash: String,
    },
    ReplicaSet {
        replicas: i32,
        selector: Option<labels::LabelSelector>,
    },
    StatefulSet {
        replicas: i32,
        start: i32,
        revision: String,
        service: Option<String>,
        selector: Option<labels::LabelSelector>,
        /// `spec.volumeClaimTemplates`, each with a name.
        claim_templates: Vec<PersistentVolumeClaim>,
    },
    Job(JobSpec),
    /// `revision` is ours, as `hash` is a Deployment's.
    DaemonSet {
        placement: Placement,
        revision: String,
    },
}

/// A Job's counts and how far it got (its `status`, as a dump has it).
#[derive(Clone, Debug, PartialEq)]
struct JobSpec {
    parallelism: i32,
    completions: Option<i32>,
    indexed: bool,
    /// Suspended, or finished (a `Complete` or `Failed` condition): runs no more pods.
    stopped: bool,
    /// `status.succeeded`.
    succeeded: i32,
    /// The indexes `status.completedIndexes` lists.
    completed: BTreeSet<i32>,
}

/// What the input already holds of one controller's pods, found by [`super::owners`]; what
/// [`Controller::expand`] adds is the rest. The default is nothing: every pod is created.
#[derive(Clone, Debug, Default)]
pub struct Listed<'a> {
    /// Its pods that still run or wait (not `Succeeded` or `Failed`, not being deleted): the
    /// ones a ReplicaSet or Job counts. A Deployment's are those of all its ReplicaSets.
    pub active: usize,
    /// Its `Succeeded` pods (a Job's).
    pub succeeded: usize,
    /// The ordinals (a StatefulSet's) or completion indexes (an Indexed Job's) its pods hold.
    pub indexes: BTreeSet<i32>,
    /// A Deployment's current ReplicaSet, when the input has it or its pods name it.
    pub replica_set: Option<ReplicaSetRef>,
    /// Pod names taken in the controller's namespace, which created pods must not reuse.
    pub taken: Option<&'a HashSet<&'a str>>,
    /// The input's nodes, on each of which a DaemonSet may run a pod.
    pub nodes: &'a [Node],
    /// The nodes a DaemonSet's active pods are for, which get no other.
    pub daemon_nodes: HashSet<&'a str>,
}

/// The ReplicaSet a Deployment's new pods belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSetRef {
    /// Its name.
    pub name: String,
    /// Its uid (empty when unknown).
    pub uid: String,
    /// The `pod-template-hash` its pods carry, if known (else the Deployment's own is used).
    pub hash: Option<String>,
    /// Whether the input lists it, so that it records its own selector.
    pub listed: bool,
}

impl Controller {
    /// Decodes `value` as a controller of `kind` and checks what its pods will need.
    pub fn read(kind: WorkloadKind, value: Value) -> Result<Controller, WorkloadError> {
        check_count_types(kind, &value)?;
        let controller = match kind {
            WorkloadKind::Deployment => Controller::deployment(decode(value)?)?,
            WorkloadKind::ReplicaSet => Controller::replica_set(decode(value)?)?,
            WorkloadKind::StatefulSet => Controller::stateful_set(decode(value)?)?,
            WorkloadKind::Job => Controller::job(decode(value)?)?,
            WorkloadKind::DaemonSet => Controller::daemon_set(decode(value)?)?,
        };
        Ok(controller)
    }

    fn deployment(d: Deployment) -> Result<Controller, FieldError> {
        required_name(&d.metadata)?;
        let spec = d.spec;
        let template = template(Some(spec.template))?;
        check_selector(Some(&spec.selector), &template)?;
        let replicas = count(spec.replicas, 1, "spec.replicas")?;
        let hash = template_hash(&template)?;
        let selector = label_selector(Some(&spec.selector), "spec.selector")?;
        Controller::new(WorkloadKind::Deployment, d.metadata, template, Spec::Deployment { replicas, selector, hash })
    }

    fn replica_set(rs: ReplicaSet) -> Result<Controller, FieldError> {
        required_name(&rs.metadata)?;
        let spec = rs.spec;
        let template = template(spec.template)?;
        check_selector(Some(&spec.selector), &template)?;
        let replicas = count(spec.replicas, 1, "spec.replicas")?;
        let selector = label_selector(Some(&spec.selector), "spec.selector")?;
        Controller::new(WorkloadKind::ReplicaSet, rs.metadata, template, Spec::ReplicaSet { replicas, selector })
    }

    fn stateful_set(s: StatefulSet) -> Result<Controller, FieldError> {
        let name = required_name(&s.metadata)?.to_string();
        let spec = s.spec;
        let template = template(Some(spec.template))?;
        check_selector(Some(&spec.selector), &template)?;
        let replicas = count(spec.replicas, 1, "spec.replicas")?;
        let start = count(spec.ordinals.as_ref().and_then(|o| o.start), 0, "spec.ordinals.start")?;
        let revision = format!("{name}-{}", template_hash(&template)?);
        let service = spec.service_name.filter(|s| !s.is_empty());
        let selector = label_selector(Some(&spec.selector), "spec.selector")?;
        let claim_templates = spec.volume_claim_templates.unwrap_or_default();
        for (i, t) in claim_templates.iter().enumerate() {
            if t.metadata.name.as_deref().is_none_or(str::is_empty) {
                let field = format!("spec.volumeClaimTemplates[{i}].metadata.name");
                return Err(FieldError::new(field, FieldProblem::Missing));
            }
        }
        let spec = Spec::StatefulSet { replicas, start, revision, service, selector, claim_templates };
        Controller::new(WorkloadKind::StatefulSet, s.metadata, template, spec)
    }

    fn job(j: Job) -> Result<Controller, FieldError> {
        required_name(&j.metadata)?;
        let spec = j.spec.unwrap_or_default();
        let template = template(Some(spec.template))?;
        check_selector(spec.selector.as_ref(), &template)?;
        let parallelism = count(spec.parallelism, 1, "spec.parallelism")?;
        let completions = spec.completions.map(|c| count(Some(c), 0, "spec.completions")).transpose()?;
        let indexed = match spec.completion_mode.as_deref() {
            None | Some("NonIndexed") => false,
            Some("Indexed") => true,
            Some(other) => return Err(FieldError::unsupported("spec.completionMode", other, "NonIndexed, Indexed")),
        };
        if indexed && completions.is_none() {
            // Upstream validation: an index needs a range.
            return Err(FieldError::new("spec.completions", FieldProblem::Missing));
        }
        let status = j.status.unwrap_or_default();
        let stopped = spec.suspend.unwrap_or(false) || finished(&status);
        let succeeded = status.succeeded.unwrap_or(0).max(0);
        let completed = status.completed_indexes.as_deref().map(index_set).unwrap_or_default();
        let spec = Spec::Job(JobSpec { parallelism, completions, indexed, stopped, succeeded, completed });
        Controller::new(WorkloadKind::Job, j.metadata, template, spec)
    }

    /// A DaemonSet, whose template gets the tolerations its controller adds to every pod
    /// before deciding where the pods may run.
    fn daemon_set(ds: DaemonSet) -> Result<Controller, FieldError> {
        required_name(&ds.metadata)?;
        let spec = ds.spec;
        let mut template = template(Some(spec.template))?;
        check_selector(Some(&spec.selector), &template)?;
        let revision = template_hash(&template)?;
        let pod_spec = template.spec.get_or_insert_default();
        add_daemon_tolerations(pod_spec);
        let placement = Placement::read(pod_spec)?;
        Controller::new(WorkloadKind::DaemonSet, ds.metadata, template, Spec::DaemonSet { placement, revision })
    }

    fn new(
        kind: WorkloadKind,
        meta: ObjectMeta,
        template: PodTemplateSpec,
        spec: Spec,
    ) -> Result<Controller, FieldError> {
        let name = required_name(&meta)?.to_string();
        let owner = meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)).cloned();
        Ok(Controller {
            kind,
            namespace: namespace_of(&meta).to_string(),
            name,
            uid: meta.uid.clone().filter(|u| !u.is_empty()),
            owner,
            stamp: Stamp::new(meta, template)?,
            spec,
        })
    }

    /// When the object was created, if the input says.
    pub fn created(&self) -> Option<&Time> {
        self.stamp.created.as_ref()
    }

    /// The label the pod template sets for `key`.
    pub fn template_label(&self, key: &str) -> Option<&str> {
        self.stamp.template.metadata.as_ref()?.labels.as_ref()?.get(key).map(String::as_str)
    }

    /// Whether `other`'s pod template is this one's but for `pod-template-hash`: how the
    /// Deployment controller recognizes its current ReplicaSet.
    pub fn same_template(&self, other: &Controller) -> bool {
        without_hash(&self.stamp.template) == without_hash(&other.stamp.template)
    }

    /// The selector this controller records for the pods it owns (a ReplicaSet's or
    /// StatefulSet's own), whether or not it adds any.
    pub fn own_selector(&self) -> Option<SourceChange> {
        match &self.spec {
            Spec::ReplicaSet { selector, .. } => {
                Some(self.source(ControllerKind::ReplicaSet, &self.name, selector.clone()))
            }
            Spec::StatefulSet { selector, .. } => {
                Some(self.source(ControllerKind::StatefulSet, &self.name, selector.clone()))
            }
            Spec::Deployment { .. } | Spec::Job(_) | Spec::DaemonSet { .. } => None,
        }
    }

    /// The pods this controller adds to those `listed`, and its owner's selector.
    pub fn expand(&self, listed: &Listed) -> Expansion {
        match &self.spec {
            Spec::Deployment { replicas, selector, hash } => self.deployment_pods(*replicas, selector, hash, listed),
            Spec::ReplicaSet { replicas, .. } => {
                let missing = missing(*replicas, listed.active);
                let owner = self.own_ref();
                let pods = free_names(&self.name, missing, listed.taken).map(|n| self.stamp.pod(n, &owner, &[]));
                Expansion { pods: pods.collect(), controller: self.own_selector(), claims: Vec::new() }
            }
            Spec::StatefulSet { replicas, start, revision, service, claim_templates, .. } => {
                let ordinals = *start..start.saturating_add(*replicas);
                let pods: Vec<Pod> = ordinals
                    .filter(|o| !listed.indexes.contains(o))
                    .map(|o| (o, format!("{}-{o}", self.name)))
                    .filter(|(_, n)| !is_taken(listed.taken, n))
                    .map(|(o, n)| self.stateful_set_pod(o, n, revision, service.as_ref(), claim_templates))
                    .collect();
                let claims = pods.iter().flat_map(|p| self.pod_claims(p, claim_templates)).collect();
                Expansion { pods, controller: self.own_selector(), claims }
            }
            Spec::Job(job) => Expansion { pods: self.job_pods(job, listed), ..Expansion::default() },
            Spec::DaemonSet { placement, revision } => {
                Expansion { pods: self.daemon_pods(placement, revision, listed), ..Expansion::default() }
            }
        }
    }

    /// A DaemonSet's pods: one for each node it admits that none of its listed pods is for,
    /// in the nodes' order, each pinned to its node.
    fn daemon_pods(&self, placement: &Placement, revision: &str, listed: &Listed) -> Vec<Pod> {
        let owner = self.own_ref();
        let labels = [(CONTROLLER_REVISION_HASH_LABEL, revision.to_string())];
        let mut seen = HashSet::new();
        let nodes = listed.nodes.iter().filter_map(|n| Some((n.metadata.name.as_deref()?, n)));
        let wanted = nodes
            .filter(|(name, _)| !listed.daemon_nodes.contains(name) && seen.insert(*name))
            .filter(|(name, node)| placement.admits(name, node));
        let pods = wanted.map(|(node, _)| {
            let wanted = format!("{}-{node}", self.name);
            let name = if is_taken(listed.taken, &wanted) {
                free_names(&wanted, 1, listed.taken).next().unwrap_or_default()
            } else {
                wanted
            };
            let mut pod = self.stamp.pod(name, &owner, &labels);
            if let Some(spec) = pod.spec.as_mut() {
                pin_to_node(spec, node);
            }
            pod
        });
        pods.collect()
    }

    /// A Deployment's missing pods, owned by its current ReplicaSet: the listed one, else
    /// the one its pods name, else `<deployment>-<hash>` as its controller would create it.
    fn deployment_pods(
        &self,
        replicas: i32,
        selector: &Option<labels::LabelSelector>,
        hash: &str,
        listed: &Listed,
    ) -> Expansion {
        let rs = listed.replica_set.clone().unwrap_or_else(|| ReplicaSetRef {
            name: format!("{}-{hash}", self.name),
            uid: String::new(),
            hash: None,
            listed: false,
        });
        let hash = rs.hash.as_deref().unwrap_or(hash);
        let owner = owner_ref(WorkloadKind::ReplicaSet, &rs.name, rs.uid.clone());
        let labels = [(POD_TEMPLATE_HASH_LABEL, hash.to_string())];
        let missing = missing(replicas, listed.active);
        let pods = free_names(&rs.name, missing, listed.taken).map(|n| self.stamp.pod(n, &owner, &labels));
        // A listed ReplicaSet records its own selector; one that is not gets the Deployment's
        // plus pod-template-hash, as the Deployment controller makes it.
        let controller = (!rs.listed).then(|| {
            let selector = selector.clone().map(|s| with_hash(s, hash));
            self.source(ControllerKind::ReplicaSet, &rs.name, selector)
        });
        Expansion { pods: pods.collect(), controller, claims: Vec::new() }
    }

    fn stateful_set_pod(
        &self,
        ordinal: i32,
        name: String,
        revision: &str,
        service: Option<&String>,
        claim_templates: &[PersistentVolumeClaim],
    ) -> Pod {
        let labels = [
            (STATEFULSET_POD_NAME_LABEL, name.clone()),
            (POD_INDEX_LABEL, ordinal.to_string()),
            (CONTROLLER_REVISION_HASH_LABEL, revision.to_string()),
        ];
        let owner = self.own_ref();
        let mut pod = self.stamp.pod(name.clone(), &owner, &labels);
        // The stable network identity that is a StatefulSet's reason to exist.
        if let Some(spec) = pod.spec.as_mut() {
            // Its stable storage: a volume per claim template, replacing a template volume of
            // the same name (upstream's `updateStorage`).
            let mut volumes: Vec<Volume> = claim_templates
                .iter()
                .map(|t| {
                    let template = t.metadata.name.clone().unwrap_or_default();
                    let claim_name = format!("{template}-{name}");
                    let source = PersistentVolumeClaimVolumeSource { claim_name, read_only: None };
                    Volume { name: template, persistent_volume_claim: Some(source), ..Volume::default() }
                })
                .collect();
            let own = spec.volumes.take().unwrap_or_default();
            volumes.extend(
                own.into_iter().filter(|v| !claim_templates.iter().any(|t| t.metadata.name.as_ref() == Some(&v.name))),
            );
            spec.volumes = (!volumes.is_empty()).then_some(volumes);
            spec.hostname = Some(name);
            spec.subdomain = service.cloned();
        }
        pod
    }

    /// The claims of a StatefulSet pod `pod`, one per template: `<template>-<pod>` in the
    /// StatefulSet's namespace, with the template's spec.
    fn pod_claims<'a>(
        &'a self,
        pod: &'a Pod,
        claim_templates: &'a [PersistentVolumeClaim],
    ) -> impl Iterator<Item = PersistentVolumeClaim> + 'a {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        claim_templates.iter().map(move |t| {
            let template = t.metadata.name.as_deref().unwrap_or_default();
            let metadata = ObjectMeta {
                name: Some(format!("{template}-{pod_name}")),
                namespace: self.stamp.namespace.clone(),
                labels: t.metadata.labels.clone(),
                annotations: t.metadata.annotations.clone(),
                ..ObjectMeta::default()
            };
            PersistentVolumeClaim { metadata, spec: t.spec.clone(), status: None }
        })
    }

    /// The pods a Job adds: it runs `parallelism` pods at once, never more than the
    /// completions left, counting those already running; an Indexed Job's go to the lowest
    /// indexes neither done nor held.
    fn job_pods(&self, job: &JobSpec, listed: &Listed) -> Vec<Pod> {
        let succeeded = job.succeeded.max(i32::try_from(listed.succeeded).unwrap_or(i32::MAX));
        let want = match job.completions {
            _ if job.stopped => 0,
            Some(c) => job.parallelism.min(c.saturating_sub(succeeded).max(0)),
            // Without completions, the first success means the work is done: upstream starts
            // no new pod after it.
            None if succeeded > 0 => 0,
            None => job.parallelism,
        };
        let n = missing(want, listed.active);
        let owner = self.own_ref();
        let base = [(JOB_NAME_LABEL, self.name.clone()), (LEGACY_JOB_NAME_LABEL, self.name.clone())];
        if !job.indexed {
            return free_names(&self.name, n, listed.taken).map(|name| self.stamp.pod(name, &owner, &base)).collect();
        }
        let held = |i: &i32| listed.indexes.contains(i) || job.completed.contains(i);
        let free = (0..job.completions.unwrap_or(0)).filter(|i| !held(i));
        let named = free.map(|i| (i, format!("{}-{i}", self.name))).filter(|(_, name)| !is_taken(listed.taken, name));
        let pods = named.take(n).map(|(i, name)| {
            let mut labels = base.to_vec();
            labels.push((JOB_COMPLETION_INDEX, i.to_string()));
            let mut pod = self.stamp.pod(name, &owner, &labels);
            // The Job controller sets the index as an annotation too (older readers use it).
            pod.metadata.annotations.get_or_insert_default().insert(JOB_COMPLETION_INDEX.to_string(), i.to_string());
            pod
        });
        pods.collect()
    }

    /// The owner reference this controller's own pods carry.
    fn own_ref(&self) -> OwnerReference {
        owner_ref(self.kind, &self.name, self.uid.clone().unwrap_or_default())
    }

    fn source(&self, kind: ControllerKind, name: &str, selector: Option<labels::LabelSelector>) -> SourceChange {
        let controller = ControllerRef { kind, name: Sym::new(name) };
        SourceChange::Controller { namespace: Sym::new(&self.namespace), controller, selector }
    }
}

/// A controller owner reference to the `kind` named `name`.
fn owner_ref(kind: WorkloadKind, name: &str, uid: String) -> OwnerReference {
    OwnerReference {
        api_version: kind.api_version().to_string(),
        kind: kind.name().to_string(),
        name: name.to_string(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether a Job's status says it is over: a `Complete` or `Failed` condition that holds.
fn finished(status: &JobStatus) -> bool {
    status.conditions.iter().flatten().any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

/// The indexes of a `completedIndexes` list such as `1,3-5`. A part that is not an index or
/// a range is skipped: status is the controller's bookkeeping, not the user's input, and
/// what it gets wrong costs at most one pod too many.
fn index_set(text: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(first), Ok(last)) = (first.parse::<i32>(), last.parse::<i32>())
            && (0..=MAX_PODS_PER_WORKLOAD).contains(&last)
        {
            out.extend(first.max(0)..=last);
        }
    }
    out
}

/// How many of `want` pods the `have` listed ones leave to create.
fn missing(want: i32, have: usize) -> usize {
    usize::try_from(want).unwrap_or(0).saturating_sub(have)
}

/// `<prefix>-0`, `<prefix>-1`, ...: the first `n` of them that no listed pod has.
fn free_names<'a>(prefix: &'a str, n: usize, taken: Option<&'a HashSet<&'a str>>) -> impl Iterator<Item = String> + 'a {
    (0u64..).map(move |i| format!("{prefix}-{i}")).filter(move |name| !is_taken(taken, name)).take(n)
}

fn is_taken(taken: Option<&HashSet<&str>>, name: &str) -> bool {
    taken.is_some_and(|t| t.contains(name))
}

/// A Deployment's selector as its ReplicaSet has it: plus `pod-template-hash`, which
/// replaces whatever the Deployment said about that label.
fn with_hash(mut selector: labels::LabelSelector, hash: &str) -> labels::LabelSelector {
    let key = Sym::new(POD_TEMPLATE_HASH_LABEL);
    selector.requirements.retain(|r| r.key != key);
    selector.requirements.push(Requirement { key, op: Operator::In, values: vec![Sym::new(hash)], bound: 0 });
    selector
}

/// The template without `pod-template-hash`, for comparing a Deployment's with its
/// ReplicaSets' as upstream's `EqualIgnoreHash` does.
fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    t
}

/// What every pod of one controller shares; `pod` adds the per-pod name, owner and labels.
#[derive(Clone, Debug, PartialEq)]
struct Stamp {
    template: PodTemplateSpec,
    /// The controller's namespace as written (`None` stays `None`, as for a pod without one).
    namespace: Option<String>,
    /// The controller's creation time, which its pods take.
    created: Option<Time>,
    /// The controller's timing annotations, for pods whose template lacks them.
    inherited: Vec<(&'static str, String)>,
}

impl Stamp {
    fn new(controller: ObjectMeta, template: PodTemplateSpec) -> Result<Stamp, FieldError> {
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
        Ok(Stamp { template, namespace: controller.namespace, created: controller.creation_timestamp, inherited })
    }

    fn pod(&self, name: String, owner: &OwnerReference, labels: &[(&str, String)]) -> Pod {
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
            namespace: self.namespace.clone(),
            uid: None,
            resource_version: None,
            // Pods are created when their controller is: the best creation time the input has.
            creation_timestamp: self.created.clone(),
            labels: non_empty(all_labels),
            annotations: non_empty(annotations),
            owner_references: Some(vec![owner.clone()]),
            ..meta
        };
        Pod { metadata, spec: self.template.spec.clone(), status: None }
    }
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

/// The namespace the controller's pods land in (`default` when unset).
fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default")
}

fn required_name(meta: &ObjectMeta) -> Result<&str, FieldError> {
    meta.name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| FieldError::new("metadata.name", FieldProblem::Missing))
}

/// The template, which must have a pod spec.
fn template(t: Option<PodTemplateSpec>) -> Result<PodTemplateSpec, FieldError> {
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
        WorkloadKind::DaemonSet => &[],
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
