//! Informers: one kube-runtime watcher per kind, each turning the API server's objects into the
//! compact model in its own task, so decoding and conversion run beside the engine rather than
//! on its thread.
//!
//! Objects are watched as `DynamicObject`s and decoded one by one: a single malformed object
//! is reported (log and `tessera_malformed_objects_total{kind}`, naming the object and field)
//! and skipped, where a typed watcher would fail the whole page and stall the kind. Each task
//! remembers the keys it has passed on, so a relist (after 410 Gone or a broken watch) reports
//! exactly the objects that vanished meanwhile: nothing is lost, nothing counted twice.

use std::collections::HashSet;
use std::sync::Arc;

use crossbeam_channel::Sender;
use futures::StreamExt;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::scheduling::v1 as sched_v1;
use k8s_openapi::api::scheduling::v1alpha3 as sched;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use tessera_plugins::model::{Node, Pod, PodGroup};

use crate::ingest::{self, PodContext, PodGroupObject};

use super::metrics::Metrics;

/// The kinds the live scheduler watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `v1` Node.
    Node,
    /// `v1` Pod.
    Pod,
    /// `v1` Namespace (labels, for namespace selectors).
    Namespace,
    /// `scheduling.k8s.io/v1` PriorityClass.
    PriorityClass,
    /// `node.k8s.io/v1` RuntimeClass (pod overhead).
    RuntimeClass,
    /// `scheduling.k8s.io/v1alpha3` PodGroup.
    PodGroup,
    /// `scheduling.k8s.io/v1alpha3` Workload (its templates become PodGroups).
    Workload,
    /// scheduler-plugins' `scheduling.x-k8s.io/v1alpha1` PodGroup.
    CoschedulingPodGroup,
}

impl Kind {
    /// Every kind, in the order their watches start: what pods are resolved against first.
    pub const ALL: [Kind; 8] = [
        Kind::Namespace,
        Kind::PriorityClass,
        Kind::RuntimeClass,
        Kind::Node,
        Kind::PodGroup,
        Kind::Workload,
        Kind::CoschedulingPodGroup,
        Kind::Pod,
    ];

    /// The kind's name in logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::Namespace => "Namespace",
            Kind::PriorityClass => "PriorityClass",
            Kind::RuntimeClass => "RuntimeClass",
            Kind::PodGroup => "PodGroup",
            Kind::Workload => "Workload",
            Kind::CoschedulingPodGroup => "PodGroup.scheduling.x-k8s.io",
        }
    }

    /// The kind's API coordinates.
    fn resource(self) -> ApiResource {
        match self {
            Kind::Node => ApiResource::erase::<core::Node>(&()),
            Kind::Pod => ApiResource::erase::<core::Pod>(&()),
            Kind::Namespace => ApiResource::erase::<core::Namespace>(&()),
            Kind::PriorityClass => ApiResource::erase::<sched_v1::PriorityClass>(&()),
            Kind::RuntimeClass => ApiResource::erase::<RuntimeClass>(&()),
            Kind::PodGroup => ApiResource::erase::<sched::PodGroup>(&()),
            Kind::Workload => ApiResource::erase::<sched::Workload>(&()),
            Kind::CoschedulingPodGroup => ApiResource::erase::<tessera_crds::PodGroup>(&()),
        }
    }
}

/// A pod as the engine needs to know it, converted in the watch task.
#[derive(Clone, Debug)]
pub struct PodUpdate {
    /// The compact model.
    pub pod: Pod,
    /// `status.phase` is Succeeded or Failed: the pod holds nothing any more.
    pub finished: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// `spec.schedulingGates` is not empty: the pod waits, and is not counted unschedulable.
    pub gated: bool,
}

/// One change from the API server, in the order its watch delivered it.
#[derive(Debug)]
pub enum Change {
    /// A node was added or changed.
    Node(Node),
    /// A node is gone.
    NodeGone(String),
    /// A pod was added or changed.
    Pod(Box<PodUpdate>),
    /// A pod is gone.
    PodGone {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The namespace table changed (for namespace selectors).
    Namespaces(std::collections::HashMap<tessera_plugins::intern::Sym, tessera_plugins::labels::LabelSet>),
    /// A PodGroup (of either API, or a Workload's template) was added or changed.
    Group(PodGroup),
    /// A PodGroup is gone.
    GroupGone(tessera_plugins::model::GroupKey),
    /// The first complete list of `kind` arrived: the cache holds all of it.
    Synced(Kind),
    /// A binding the executor gave up on, or that the server refused (see `super::bind`).
    BindFailed {
        /// The pods to take back (a whole gang's members not yet bound).
        pods: Vec<tessera_plugins::model::PodKey>,
        /// The pod is gone from the API: forget it instead of queueing it again.
        gone: bool,
    },
    /// The API accepted a binding.
    BindSucceeded(tessera_plugins::model::PodKey),
}

/// What every watch task shares.
#[derive(Clone, Debug)]
pub struct WatchContext {
    /// Changes go here, to the engine thread.
    pub changes: Sender<Change>,
    /// PriorityClasses, RuntimeClasses and Namespaces that pods are resolved against; written by
    /// those kinds' tasks, read by the pod and PodGroup tasks.
    pub pods: Arc<RwLock<PodContext>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Starts one watch task per kind on the current tokio runtime.
pub fn spawn_all(client: &Client, cx: &WatchContext) -> Vec<tokio::task::JoinHandle<()>> {
    Kind::ALL.iter().map(|&kind| tokio::spawn(watch_kind(client.clone(), kind, cx.clone()))).collect()
}

/// Page size of the initial list and of every relist (kube-runtime's default too).
const PAGE_SIZE: u32 = 500;

async fn watch_kind(client: Client, kind: Kind, cx: WatchContext) {
    let api: Api<DynamicObject> = Api::all_with(client, &kind.resource());
    let config = watcher::Config::default().page_size(PAGE_SIZE);
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut known: HashSet<String> = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut synced = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(Event::Init) => seen.clear(),
            Ok(Event::InitApply(obj)) => {
                seen.insert(key_of(&obj));
                apply(kind, obj, &cx, &mut known);
            }
            Ok(Event::InitDone) => {
                for gone in known.difference(&seen).cloned().collect::<Vec<_>>() {
                    delete(kind, &gone, &cx, &mut known);
                }
                seen = HashSet::new();
                if !synced {
                    synced = true;
                    let _ = cx.changes.send(Change::Synced(kind));
                }
            }
            Ok(Event::Apply(obj)) => apply(kind, obj, &cx, &mut known),
            Ok(Event::Delete(obj)) => delete(kind, &key_of(&obj), &cx, &mut known),
            Err(e) => {
                cx.metrics.watch_restart(kind.name());
                if is_not_served(&e) {
                    // The cluster has no such API (no PodGroup CRD, an older server): there is
                    // nothing to wait for. The watcher keeps retrying with backoff, so the kind
                    // is picked up if the API appears later.
                    if !synced {
                        tracing::info!(kind = kind.name(), "the API server does not serve this kind; not watching it");
                        synced = true;
                        let _ = cx.changes.send(Change::Synced(kind));
                    }
                } else {
                    tracing::warn!(kind = kind.name(), error = %e, "watch failed; relisting after backoff");
                }
            }
        }
    }
}

fn is_not_served(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::InitialListFailed(kube::Error::Api(r)) | watcher::Error::WatchStartFailed(kube::Error::Api(r)) if r.code == 404)
}

fn key_of(obj: &DynamicObject) -> String {
    match &obj.metadata.namespace {
        Some(ns) => format!("{ns}/{}", obj.metadata.name.as_deref().unwrap_or_default()),
        None => obj.metadata.name.clone().unwrap_or_default(),
    }
}

/// Decodes `obj` as `K`; a failure is reported as a malformed object and yields `None`.
fn decode<K: DeserializeOwned>(kind: Kind, obj: DynamicObject, cx: &WatchContext) -> Option<K> {
    let key = key_of(&obj);
    let value = match serde_json::to_value(obj) {
        Ok(v) => v,
        Err(e) => return malformed(kind, &key, &e.to_string(), cx),
    };
    match serde_json::from_value::<K>(value) {
        Ok(k) => Some(k),
        Err(e) => malformed(kind, &key, &e.to_string(), cx),
    }
}

fn malformed<T>(kind: Kind, key: &str, why: &str, cx: &WatchContext) -> Option<T> {
    cx.metrics.malformed_object(kind.name());
    tracing::warn!("skipping malformed {} {key}: {why}", kind.name());
    None
}

fn apply(kind: Kind, obj: DynamicObject, cx: &WatchContext, known: &mut HashSet<String>) {
    cx.metrics.watch_event(kind.name());
    // `None`: nothing to pass on (a malformed object, already reported, or a table updated in place).
    let _ = apply_known(kind, obj, cx, known);
}

fn apply_known(kind: Kind, obj: DynamicObject, cx: &WatchContext, known: &mut HashSet<String>) -> Option<()> {
    let key = key_of(&obj);
    let change = match kind {
        Kind::Node => decode::<core::Node>(kind, obj, cx)
            .and_then(|n| convert(kind, &key, ingest::node(&n), cx))
            .map(Change::Node),
        Kind::Pod => decode::<core::Pod>(kind, obj, cx).and_then(|p| pod_update(&key, &p, cx)),
        Kind::Namespace => decode::<core::Namespace>(kind, obj, cx).and_then(|ns| {
            let mut pods = cx.pods.write();
            convert(kind, &key, pods.add_namespace(&ns), cx)?;
            Some(Change::Namespaces(pods.namespaces().clone()))
        }),
        Kind::PriorityClass => {
            let pc = decode::<sched_v1::PriorityClass>(kind, obj, cx)?;
            convert(kind, &key, cx.pods.write().add_priority_class(&pc), cx);
            None
        }
        Kind::RuntimeClass => {
            let rc = decode::<RuntimeClass>(kind, obj, cx)?;
            convert(kind, &key, cx.pods.write().add_runtime_class(&rc), cx);
            None
        }
        Kind::PodGroup => decode::<sched::PodGroup>(kind, obj, cx)
            .and_then(|pg| group(kind, &key, &PodGroupObject::Kubernetes(Box::new(pg)), cx)),
        Kind::CoschedulingPodGroup => decode::<tessera_crds::PodGroup>(kind, obj, cx)
            .and_then(|pg| group(kind, &key, &PodGroupObject::Coscheduling(Box::new(pg)), cx)),
        Kind::Workload => {
            let w = decode::<sched::Workload>(kind, obj, cx)?;
            let groups = convert(kind, &key, ingest::pod_group::workload_pod_groups(&w, &cx.pods.read()), cx)?;
            known.insert(key);
            for g in groups {
                let _ = cx.changes.send(Change::Group(g));
            }
            return Some(());
        }
    };
    known.insert(key);
    let _ = cx.changes.send(change?);
    Some(())
}

fn convert<T>(kind: Kind, key: &str, result: Result<T, ingest::IngestError>, cx: &WatchContext) -> Option<T> {
    result.map_err(|e| malformed::<()>(kind, key, &e.to_string(), cx)).ok()
}

fn group(kind: Kind, key: &str, obj: &PodGroupObject, cx: &WatchContext) -> Option<Change> {
    convert(kind, key, obj.convert(&cx.pods.read()), cx).map(Change::Group)
}

fn pod_update(key: &str, p: &core::Pod, cx: &WatchContext) -> Option<Change> {
    let pod = convert(Kind::Pod, key, ingest::pod(p, &cx.pods.read()), cx)?;
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    Some(Change::Pod(Box::new(PodUpdate {
        pod,
        finished: matches!(phase, Some("Succeeded" | "Failed")),
        terminating: p.metadata.deletion_timestamp.is_some(),
        gated: p.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref()).is_some_and(|g| !g.is_empty()),
    })))
}

fn delete(kind: Kind, key: &str, cx: &WatchContext, known: &mut HashSet<String>) {
    if !known.remove(key) {
        return;
    }
    cx.metrics.watch_event(kind.name());
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    let change = match kind {
        Kind::Node => Change::NodeGone(name.to_string()),
        Kind::Pod => Change::PodGone { namespace: namespace.to_string(), name: name.to_string() },
        Kind::PodGroup | Kind::CoschedulingPodGroup => {
            Change::GroupGone(tessera_plugins::model::GroupKey::new(namespace, name))
        }
        // Cluster-wide tables that are only added to: a deleted class leaves pods that named
        // it resolved as they were, as admission already resolved them on a real cluster.
        Kind::Namespace | Kind::PriorityClass | Kind::RuntimeClass | Kind::Workload => return,
    };
    let _ = cx.changes.send(change);
}
