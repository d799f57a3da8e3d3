//! Informers: one kube-runtime watcher per kind, each turning the API server's objects into the
//! compact model in its own task, so decoding and conversion run beside the engine rather than
//! on its thread.
//!
//! Objects are watched as [`Lenient`] objects of the kind's generated type, each decoded on its
//! own straight from the response text: a single malformed object is reported (log and
//! `tessera_malformed_objects_total{kind}`, naming the object and what is wrong with it) and
//! skipped, where a plainly typed watcher would fail the whole page and stall the kind. Each task
//! remembers the keys it has passed on, so a relist (after 410 Gone or a broken watch) reports
//! exactly the objects that vanished meanwhile: nothing is lost, nothing counted twice.

use std::collections::HashSet;
use std::sync::Arc;

use crossbeam_channel::Sender;
use futures::StreamExt;
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::resource::v1 as resource;
use k8s_openapi::api::scheduling::v1 as sched_v1;
use k8s_openapi::api::scheduling::v1alpha3 as sched;
use k8s_openapi::api::storage::v1 as storage;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use tessera_plugins::default_selector::SourceChange;
use tessera_plugins::disruption::DisruptionBudget;
use tessera_plugins::dra::inventory::NodeDevices;
use tessera_plugins::dra::model::{ClaimAllocation, ClaimKey};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GroupKey, Node, Pod, PodGroup};
use tessera_plugins::plugins::volumes::model::PvcKey;

use crate::ingest::{self, PodContext, PodGroupObject, selector_sources};

use super::dra::DraObjects;
use super::lenient::Lenient;
use super::metrics::Metrics;
use super::report::Report;
use super::volumes::VolumeChange;

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
    /// `v1` Service (its selector, for default spreading).
    Service,
    /// `v1` ReplicationController (its selector, for default spreading).
    ReplicationController,
    /// `apps/v1` ReplicaSet (its selector, for default spreading).
    ReplicaSet,
    /// `apps/v1` StatefulSet (its selector, for default spreading).
    StatefulSet,
    /// `resource.k8s.io/v1` DeviceClass (what DRA requests select from).
    DeviceClass,
    /// `resource.k8s.io/v1` ResourceClaim (what pods' claims resolve to, and their allocations).
    ResourceClaim,
    /// `resource.k8s.io/v1` ResourceSlice (the devices of nodes).
    ResourceSlice,
    /// `policy/v1` PodDisruptionBudget (what preemption respects).
    PodDisruptionBudget,
    /// `v1` PersistentVolume.
    PersistentVolume,
    /// `v1` PersistentVolumeClaim.
    PersistentVolumeClaim,
    /// `storage.k8s.io/v1` StorageClass.
    StorageClass,
    /// `storage.k8s.io/v1` CSINode (per-driver attach limits of nodes).
    CsiNode,
}

impl Kind {
    /// Every kind, in the order their watches start: what pods are resolved against first
    /// (DRA's claims and slices before nodes and pods, so that a restart finds the claims'
    /// allocations as it accounts bound pods; a pod listed before its claim is converted again
    /// when the claim arrives).
    ///
    /// ResourceClaimTemplates are not watched, as kube-scheduler does not: a pod's template
    /// entry is the claim the resourceclaim controller made from it and recorded in the pod's
    /// status, and until then the pod waits whatever the template says.
    pub const ALL: [Kind; 20] = [
        Kind::Namespace,
        Kind::PriorityClass,
        Kind::RuntimeClass,
        Kind::StorageClass,
        Kind::PersistentVolume,
        Kind::PersistentVolumeClaim,
        Kind::CsiNode,
        Kind::DeviceClass,
        Kind::ResourceClaim,
        Kind::ResourceSlice,
        Kind::Service,
        Kind::ReplicationController,
        Kind::ReplicaSet,
        Kind::StatefulSet,
        Kind::PodDisruptionBudget,
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
            Kind::Service => "Service",
            Kind::ReplicationController => "ReplicationController",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::StatefulSet => "StatefulSet",
            Kind::DeviceClass => "DeviceClass",
            Kind::ResourceClaim => "ResourceClaim",
            Kind::ResourceSlice => "ResourceSlice",
            Kind::PodDisruptionBudget => "PodDisruptionBudget",
            Kind::PersistentVolume => "PersistentVolume",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
            Kind::StorageClass => "StorageClass",
            Kind::CsiNode => "CSINode",
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
}

/// One change from the API server, in the order its watch delivered it.
#[derive(Debug)]
pub enum Change {
    /// A node was added or changed.
    Node(Node),
    /// A node is gone.
    NodeGone(String),
    /// The devices of node `node` changed (its ResourceSlices did); the node may not exist yet.
    NodeDevices {
        /// The node.
        node: Sym,
        /// Its devices now.
        devices: Arc<NodeDevices>,
    },
    /// What the API says of a claim's allocation: the allocation, and whether pods other than
    /// the one it was made for may use the claim; `None` when it is not (or no longer)
    /// allocated or the claim is gone.
    ClaimAllocation {
        /// The claim.
        key: ClaimKey,
        /// Its allocation, if any.
        pin: Option<(Arc<ClaimAllocation>, bool)>,
    },
    /// A pod was added or changed.
    Pod(Box<PodUpdate>),
    /// A pod is gone.
    PodGone {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A Service's or controller's selector changed or is gone (for default spreading).
    SelectorSource(SourceChange),
    /// A PodDisruptionBudget was added or changed.
    Budget(DisruptionBudget),
    /// A PodDisruptionBudget is gone.
    BudgetGone {
        /// Its namespace.
        namespace: Sym,
        /// Its name.
        name: Arc<str>,
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
    /// The API refused to evict a preemption victim (see `super::evict`): it runs on.
    EvictionFailed(tessera_plugins::model::PodKey),
    /// A PersistentVolume, claim, StorageClass or CSINode was added, changed or is gone.
    Volume(VolumeChange),
}

/// What every watch task shares.
#[derive(Clone, Debug)]
pub struct WatchContext {
    /// Changes go here, to the engine thread.
    pub changes: Sender<Change>,
    /// PriorityClasses, RuntimeClasses, Namespaces and the DRA catalog that pods are resolved
    /// against; written by those kinds' tasks, read by the pod and PodGroup tasks.
    pub pods: Arc<RwLock<PodContext>>,
    /// DRA objects as sent and the pods with claims (see [`super::dra`]); locked before
    /// `pods` by whoever takes both.
    pub dra: Arc<Mutex<DraObjects>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Warnings about objects the scheduler works around, to the reporter.
    pub reports: tokio::sync::mpsc::Sender<Report>,
}

/// Starts one watch task per kind on the current tokio runtime.
pub fn spawn_all(client: &Client, cx: &WatchContext) -> Vec<tokio::task::JoinHandle<()>> {
    Kind::ALL.iter().map(|&kind| spawn_kind(client.clone(), kind, cx.clone())).collect()
}

/// Starts `kind`'s watch task, decoding its objects as the kind's generated type.
fn spawn_kind(client: Client, kind: Kind, cx: WatchContext) -> tokio::task::JoinHandle<()> {
    match kind {
        Kind::Node => tokio::spawn(watch_kind::<core::Node>(client, cx)),
        Kind::Pod => tokio::spawn(watch_kind::<core::Pod>(client, cx)),
        Kind::Namespace => tokio::spawn(watch_kind::<core::Namespace>(client, cx)),
        Kind::PriorityClass => tokio::spawn(watch_kind::<sched_v1::PriorityClass>(client, cx)),
        Kind::RuntimeClass => tokio::spawn(watch_kind::<RuntimeClass>(client, cx)),
        Kind::PodGroup => tokio::spawn(watch_kind::<sched::PodGroup>(client, cx)),
        Kind::Workload => tokio::spawn(watch_kind::<sched::Workload>(client, cx)),
        Kind::CoschedulingPodGroup => tokio::spawn(watch_kind::<tessera_crds::PodGroup>(client, cx)),
        Kind::Service => tokio::spawn(watch_kind::<core::Service>(client, cx)),
        Kind::ReplicationController => tokio::spawn(watch_kind::<core::ReplicationController>(client, cx)),
        Kind::ReplicaSet => tokio::spawn(watch_kind::<apps::ReplicaSet>(client, cx)),
        Kind::StatefulSet => tokio::spawn(watch_kind::<apps::StatefulSet>(client, cx)),
        Kind::DeviceClass => tokio::spawn(watch_kind::<resource::DeviceClass>(client, cx)),
        Kind::ResourceClaim => tokio::spawn(watch_kind::<resource::ResourceClaim>(client, cx)),
        Kind::ResourceSlice => tokio::spawn(watch_kind::<resource::ResourceSlice>(client, cx)),
        Kind::PodDisruptionBudget => tokio::spawn(watch_kind::<PodDisruptionBudget>(client, cx)),
        Kind::PersistentVolume => tokio::spawn(watch_kind::<core::PersistentVolume>(client, cx)),
        Kind::PersistentVolumeClaim => tokio::spawn(watch_kind::<core::PersistentVolumeClaim>(client, cx)),
        Kind::StorageClass => tokio::spawn(watch_kind::<storage::StorageClass>(client, cx)),
        Kind::CsiNode => tokio::spawn(watch_kind::<storage::CSINode>(client, cx)),
    }
}

/// Page size of the initial list and of every relist (kube-runtime's default too).
const PAGE_SIZE: u32 = 500;

async fn watch_kind<K: Watched>(client: Client, cx: WatchContext) {
    let kind = K::KIND;
    let api: Api<Lenient<K>> = Api::all(client);
    let config = watcher::Config::default().page_size(PAGE_SIZE);
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut known: HashSet<String> = HashSet::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut synced = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(Event::Init) => seen.clear(),
            Ok(Event::InitApply(obj)) => {
                seen.insert(key_of(obj.meta()));
                apply(obj, &cx, &mut known);
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
            Ok(Event::Apply(obj)) => apply(obj, &cx, &mut known),
            Ok(Event::Delete(obj)) => delete(kind, &key_of(obj.meta()), &cx, &mut known),
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

fn key_of(meta: &ObjectMeta) -> String {
    match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        None => meta.name.clone().unwrap_or_default(),
    }
}

fn malformed(kind: Kind, key: &str, why: &str, cx: &WatchContext) {
    cx.metrics.malformed_object(kind.name());
    tracing::warn!("skipping malformed {} {key}: {why}", kind.name());
}

fn apply<K: Watched>(obj: Lenient<K>, cx: &WatchContext, known: &mut HashSet<String>) {
    cx.metrics.watch_event(K::KIND.name());
    let key = key_of(obj.meta());
    match obj {
        Lenient::Decoded(k) => {
            if k.pass_on(&key, cx).is_some() {
                known.insert(key);
            }
        }
        Lenient::Malformed { error, .. } => malformed(K::KIND, &key, &error, cx),
    }
}

/// A watched kind's generated type, and what its objects become.
trait Watched: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync + 'static {
    /// The kind this type is watched as.
    const KIND: Kind;

    /// Converts the object (keyed `key`) and sends what it changes. `Some` when its deletion is
    /// to be reported later; `None` when nothing was passed on (a conversion error, already
    /// reported) or the kind's deletions are ignored (a table updated in place).
    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()>;
}

impl Watched for core::Node {
    const KIND: Kind = Kind::Node;

    /// The DRA cache learns the node's labels first (a `nodeSelector` slice may reach it now
    /// or no longer), under its lock, so that no inventory sent by a slice's task overtakes it.
    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let node = convert(Self::KIND, key, node_or_count_only(&self, key, cx), cx)?;
        let mut dra = cx.dra.lock();
        if let Some(devices) = dra.put_node(node.name, &node.labels) {
            let _ = cx.changes.send(Change::NodeDevices { node: node.name, devices });
        }
        send(cx, Change::Node(node))
    }
}

impl Watched for core::Pod {
    const KIND: Kind = Kind::Pod;

    /// A pod with claims is remembered, and converted and sent under the DRA lock (see
    /// [`super::dra`]); `spec.resourceClaims` never changes on a pod, so one without stays
    /// clear of the lock.
    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let has_claims = self.spec.as_ref().and_then(|s| s.resource_claims.as_ref()).is_some_and(|c| !c.is_empty());
        if !has_claims {
            return send(cx, pod_update(key, &self, cx)?);
        }
        let mut dra = cx.dra.lock();
        let Some(update) = pod_update(key, &self, cx) else {
            dra.drop_pod(key);
            return None;
        };
        dra.put_pod(key, &self);
        send(cx, update)
    }
}

impl Watched for resource::DeviceClass {
    const KIND: Kind = Kind::DeviceClass;

    /// Every claim is resolved again, and every pod with claims.
    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let mut dra = cx.dra.lock();
        convert(Self::KIND, key, cx.pods.write().dra_mut().add_class(&self), cx)?;
        dra.put_class(key, self);
        class_changed(&dra, cx);
        Some(())
    }
}

impl Watched for resource::ResourceClaim {
    const KIND: Kind = Kind::ResourceClaim;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let mut dra = cx.dra.lock();
        convert(Self::KIND, key, cx.pods.write().dra_mut().add_claim(&self), cx)?;
        let claim = ClaimKey::new(
            self.metadata.namespace.as_deref().unwrap_or(""),
            self.metadata.name.as_deref().unwrap_or(""),
        );
        let allocation = cx.pods.read().dra().claim(&claim).and_then(|e| e.allocation.clone());
        // A claim the resourceclaim controller made for one pod is owned by that pod.
        let owned = self.metadata.owner_references.iter().flatten().any(|o| o.kind == "Pod");
        let _ = cx.changes.send(Change::ClaimAllocation { key: claim, pin: allocation.map(|a| (a, !owned)) });
        dra.put_claim(key, self);
        resolve_again(cx, pods_using_claim(&dra, cx, claim));
        Some(())
    }
}

impl Watched for resource::ResourceSlice {
    const KIND: Kind = Kind::ResourceSlice;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let slice = convert(Self::KIND, key, ingest::dra::resource_slice(&self), cx)?;
        let mut dra = cx.dra.lock();
        // Sent under the lock: a node's task sends inventories too.
        for (node, devices) in dra.put_slice(key, Arc::new(slice), &self) {
            let _ = cx.changes.send(Change::NodeDevices { node, devices });
        }
        Some(())
    }
}

/// Resolves every claim again after a DeviceClass changed, and sends every pod with claims
/// converted again.
fn class_changed(dra: &DraObjects, cx: &WatchContext) {
    {
        let mut pods = cx.pods.write();
        // Each was added before without error: a class changes what they resolve to, not
        // whether they are well formed.
        for c in dra.claims() {
            let _ = pods.dra_mut().add_claim(c);
        }
    }
    resolve_again(cx, dra.all_pods());
}

/// The pods to convert again after claim `key` changed: those naming it (by name or through
/// their status), and the members of the PodGroups whose claim it is.
fn pods_using_claim<'a>(dra: &'a DraObjects, cx: &WatchContext, key: ClaimKey) -> Vec<(&'a str, &'a core::Pod)> {
    let mut pods = dra.pods_naming_claim(&key.to_string());
    let groups = cx.pods.read().dra().groups_with_claim(&key);
    if groups.is_empty() {
        return pods;
    }
    let mut seen: HashSet<&str> = pods.iter().map(|(k, _)| *k).collect();
    for group in groups {
        pods.extend(group_members(dra, group).into_iter().filter(|(k, _)| seen.insert(k)));
    }
    pods
}

/// The pods with claims that belong to PodGroup `group` (`spec.schedulingGroup`), whose
/// claims they may share.
fn group_members(dra: &DraObjects, group: GroupKey) -> Vec<(&str, &core::Pod)> {
    let in_group = |p: &core::Pod| {
        let namespace = p.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
        namespace == group.namespace.as_str() && ingest::dra::claim_group_name(p) == Some(group.name.as_str())
    };
    dra.all_pods().into_iter().filter(|(_, p)| in_group(p)).collect()
}

/// Converts `pods` again (a claim they name changed) and sends them.
fn resolve_again(cx: &WatchContext, pods: Vec<(&str, &core::Pod)>) {
    for (key, p) in pods {
        if let Some(update) = pod_update(key, p, cx) {
            let _ = cx.changes.send(update);
        }
    }
}

/// A DRA object `key` of `kind` is gone: forgets it and sends what that changes.
fn dra_gone(kind: Kind, key: &str, cx: &WatchContext) {
    let mut dra = cx.dra.lock();
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    match kind {
        Kind::DeviceClass => {
            dra.drop_class(key);
            cx.pods.write().dra_mut().remove_class(key);
            class_changed(&dra, cx);
        }
        Kind::ResourceClaim => {
            let claim = ClaimKey::new(namespace, name);
            dra.drop_claim(key);
            cx.pods.write().dra_mut().remove_claim(&claim);
            let _ = cx.changes.send(Change::ClaimAllocation { key: claim, pin: None });
            resolve_again(cx, pods_using_claim(&dra, cx, claim));
        }
        Kind::ResourceSlice => {
            for (node, devices) in dra.drop_slice(key) {
                let _ = cx.changes.send(Change::NodeDevices { node, devices });
            }
        }
        _ => {}
    }
}

impl Watched for core::Namespace {
    const KIND: Kind = Kind::Namespace;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let table = {
            let mut pods = cx.pods.write();
            convert(Self::KIND, key, pods.add_namespace(&self), cx)?;
            pods.namespaces().clone()
        };
        send(cx, Change::Namespaces(table))
    }
}

impl Watched for sched_v1::PriorityClass {
    const KIND: Kind = Kind::PriorityClass;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        convert(Self::KIND, key, cx.pods.write().add_priority_class(&self), cx);
        None
    }
}

impl Watched for RuntimeClass {
    const KIND: Kind = Kind::RuntimeClass;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        convert(Self::KIND, key, cx.pods.write().add_runtime_class(&self), cx);
        None
    }
}

impl Watched for sched::PodGroup {
    const KIND: Kind = Kind::PodGroup;

    /// The group, and its claims into the DRA catalog: when they change (a claim made for a
    /// template entry appears in its status), its pods with claims are converted again.
    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let dra = cx.dra.lock();
        let group = convert(Self::KIND, key, ingest::pod_group::kubernetes_pod_group(&self, &cx.pods.read()), cx)?;
        let changed = convert(Self::KIND, key, cx.pods.write().dra_mut().put_pod_group(&self), cx)?;
        let members = group.key;
        send(cx, Change::Group(group));
        if changed {
            resolve_again(cx, group_members(&dra, members));
        }
        Some(())
    }
}

impl Watched for tessera_crds::PodGroup {
    const KIND: Kind = Kind::CoschedulingPodGroup;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        send(cx, group(Self::KIND, key, &PodGroupObject::Coscheduling(Box::new(self)), cx)?)
    }
}

impl Watched for sched::Workload {
    const KIND: Kind = Kind::Workload;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let groups = convert(Self::KIND, key, ingest::pod_group::workload_pod_groups(&self, &cx.pods.read()), cx)?;
        for g in groups {
            let _ = cx.changes.send(Change::Group(g));
        }
        Some(())
    }
}

impl Watched for core::Service {
    const KIND: Kind = Kind::Service;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        send(cx, Change::SelectorSource(convert(Self::KIND, key, selector_sources::service(&self), cx)?))
    }
}

impl Watched for core::ReplicationController {
    const KIND: Kind = Kind::ReplicationController;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let change = convert(Self::KIND, key, selector_sources::replication_controller(&self), cx)?;
        send(cx, Change::SelectorSource(change))
    }
}

impl Watched for apps::ReplicaSet {
    const KIND: Kind = Kind::ReplicaSet;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        send(cx, Change::SelectorSource(convert(Self::KIND, key, selector_sources::replica_set(&self), cx)?))
    }
}

impl Watched for apps::StatefulSet {
    const KIND: Kind = Kind::StatefulSet;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        send(cx, Change::SelectorSource(convert(Self::KIND, key, selector_sources::stateful_set(&self), cx)?))
    }
}

impl Watched for PodDisruptionBudget {
    const KIND: Kind = Kind::PodDisruptionBudget;

    /// The API's disruption controller keeps `status.disruptionsAllowed`: the budget is taken
    /// as it says.
    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let budget =
            convert(Self::KIND, key, ingest::disruption::budget(&self, ingest::disruption::Source::Status), cx)?;
        send(cx, Change::Budget(budget))
    }
}

impl Watched for core::PersistentVolume {
    const KIND: Kind = Kind::PersistentVolume;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let pv = convert(Self::KIND, key, ingest::volumes::persistent_volume(&self), cx)?;
        send(cx, Change::Volume(VolumeChange::Volume(pv.name, Some(pv))))
    }
}

impl Watched for core::PersistentVolumeClaim {
    const KIND: Kind = Kind::PersistentVolumeClaim;

    /// Admission has given a claim that names no class the default one already: no default
    /// is applied here.
    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let pvc = convert(Self::KIND, key, ingest::volumes::persistent_volume_claim(&self, None), cx)?;
        send(cx, Change::Volume(VolumeChange::Claim(pvc.key, Some(pvc))))
    }
}

impl Watched for storage::StorageClass {
    const KIND: Kind = Kind::StorageClass;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let class = convert(Self::KIND, key, ingest::volumes::storage_class(&self), cx)?;
        send(cx, Change::Volume(VolumeChange::Class(class.name, Some(class))))
    }
}

impl Watched for storage::CSINode {
    const KIND: Kind = Kind::CsiNode;

    fn pass_on(self, key: &str, cx: &WatchContext) -> Option<()> {
        let csi = convert(Self::KIND, key, ingest::volumes::csi_node(&self), cx)?;
        send(cx, Change::Volume(VolumeChange::CsiNode(csi.node, Some(csi))))
    }
}

/// Sends `change` to the engine thread; `Some` so that a conversion can end in it.
fn send(cx: &WatchContext, change: Change) -> Option<()> {
    // The engine thread is gone only when shutting down: nothing left to tell.
    let _ = cx.changes.send(change);
    Some(())
}

/// The node; one whose GPU wiring annotation is malformed is kept with its GPUs placed by
/// count only (dropping a GPU node for a typo in our own annotation would strand it), and the
/// problem is reported on the node.
fn node_or_count_only(n: &core::Node, key: &str, cx: &WatchContext) -> Result<Node, ingest::IngestError> {
    match ingest::node(n) {
        Err(e) if ingest::gpu::is_wiring_error(&e) => {
            cx.metrics.malformed_object(Kind::Node.name());
            tracing::warn!("node {key}: {e}; its GPUs are placed by count only");
            let _ = cx.reports.try_send(Report::NodeWarning {
                node: key.to_string(),
                uid: n.metadata.uid.clone(),
                reason: "InvalidGPUTopology",
                note: format!("{e}; its GPUs are placed by count only until the annotation is fixed"),
            });
            ingest::node(&ingest::gpu::without_wiring(n))
        }
        result => result,
    }
}

fn convert<T>(kind: Kind, key: &str, result: Result<T, ingest::IngestError>, cx: &WatchContext) -> Option<T> {
    result.map_err(|e| malformed(kind, key, &e.to_string(), cx)).ok()
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
    })))
}

fn delete(kind: Kind, key: &str, cx: &WatchContext, known: &mut HashSet<String>) {
    if !known.remove(key) {
        return;
    }
    cx.metrics.watch_event(kind.name());
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    let change = match kind {
        Kind::Node => {
            cx.dra.lock().drop_node(Sym::new(name));
            Change::NodeGone(name.to_string())
        }
        Kind::Pod => {
            let mut dra = cx.dra.lock();
            dra.drop_pod(key);
            // Sent under the lock: no conversion of the pod sent later can overtake it.
            let _ = cx.changes.send(Change::PodGone { namespace: namespace.to_string(), name: name.to_string() });
            return;
        }
        Kind::DeviceClass | Kind::ResourceClaim | Kind::ResourceSlice => {
            return dra_gone(kind, key, cx);
        }
        Kind::PodGroup => {
            let dra = cx.dra.lock();
            let had_claims = cx.pods.write().dra_mut().remove_pod_group(namespace, name);
            let group = GroupKey::new(namespace, name);
            let _ = cx.changes.send(Change::GroupGone(group));
            if had_claims {
                resolve_again(cx, group_members(&dra, group));
            }
            return;
        }
        Kind::CoschedulingPodGroup => Change::GroupGone(GroupKey::new(namespace, name)),
        Kind::PersistentVolume => Change::Volume(VolumeChange::Volume(Sym::new(name), None)),
        Kind::PersistentVolumeClaim => Change::Volume(VolumeChange::Claim(PvcKey::new(namespace, name), None)),
        Kind::StorageClass => Change::Volume(VolumeChange::Class(Sym::new(name), None)),
        Kind::CsiNode => Change::Volume(VolumeChange::CsiNode(Sym::new(name), None)),
        Kind::Service | Kind::ReplicationController | Kind::ReplicaSet | Kind::StatefulSet => {
            match selector_sources::removed(kind.name(), namespace, name) {
                Some(change) => Change::SelectorSource(change),
                None => return,
            }
        }
        Kind::PodDisruptionBudget => Change::BudgetGone { namespace: Sym::new(namespace), name: name.into() },
        // Cluster-wide tables that are only added to: a deleted class leaves pods that named
        // it resolved as they were, as admission already resolved them on a real cluster.
        Kind::Namespace | Kind::PriorityClass | Kind::RuntimeClass | Kind::Workload => return,
    };
    let _ = cx.changes.send(change);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::dra::DraCatalog;

    /// A context resolving pods as `tessera run` does, and what it sends.
    fn context() -> (WatchContext, crossbeam_channel::Receiver<Change>) {
        let (changes, sent) = crossbeam_channel::unbounded();
        let mut pods = PodContext::new();
        *pods.dra_mut() = DraCatalog::live();
        let cx = WatchContext {
            changes,
            pods: Arc::new(RwLock::new(pods)),
            dra: Arc::default(),
            metrics: Arc::new(Metrics::new()),
            reports: tokio::sync::mpsc::channel(16).0,
        };
        (cx, sent)
    }

    fn yaml<T: DeserializeOwned>(text: &str) -> T {
        serde_yaml_ng::from_str(text).unwrap()
    }

    /// What was sent since last asked: groups by name, pods with each claim's key, or its
    /// problem, and whether it is the group's.
    fn sent(rx: &crossbeam_channel::Receiver<Change>) -> Vec<String> {
        let claim = |c: &tessera_plugins::dra::model::PodClaim| match &c.spec {
            Ok(_) => format!("{}{}", c.key, if c.group.is_some() { " (group)" } else { "" }),
            Err(why) => why.to_string(),
        };
        rx.try_iter()
            .map(|change| match change {
                Change::Group(g) => format!("group {}", g.key),
                Change::GroupGone(g) => format!("group {} gone", g),
                Change::ClaimAllocation { key, .. } => format!("claim {key}"),
                Change::Pod(u) => {
                    format!("pod {}: {}", u.pod.name, u.pod.claims.iter().map(claim).collect::<Vec<_>>().join(", "))
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    const GROUP: &str = "metadata: {name: train, namespace: ml, uid: pg-1}\n\
                         spec: {schedulingPolicy: {gang: {minCount: 1}}, \
                         resourceClaims: [{name: imex, resourceClaimTemplateName: imex}]}\n";

    #[test]
    fn a_pod_groups_claim_converts_its_pods_again_as_it_is_made_and_found() {
        let (cx, rx) = context();
        let class: resource::DeviceClass = yaml("metadata: {name: imex.example.com}");
        class.pass_on("imex.example.com", &cx);
        let pod: core::Pod = yaml(
            "metadata: {name: w, namespace: ml}\nspec: {containers: [{name: c}], schedulingGroup: {podGroupName: train}, \
             resourceClaims: [{name: imex, resourceClaimTemplateName: imex}]}",
        );
        pod.pass_on("ml/w", &cx);
        let own = "pod w: waiting for resourceclaim of entry \"imex\" to be created from resourceclaimtemplate ml/imex \
                   (pod.status.resourceClaimStatuses names none yet)";
        assert_eq!(sent(&rx), [own]);

        yaml::<sched::PodGroup>(GROUP).pass_on("ml/train", &cx);
        assert_eq!(
            sent(&rx),
            [
                "group ml/train",
                "pod w: waiting for resourceclaim of entry \"imex\" to be created from resourceclaimtemplate ml/imex \
                 for podgroup ml/train (podgroup.status.resourceClaimStatuses names none yet)"
            ]
        );
        let made =
            format!("{GROUP}status: {{resourceClaimStatuses: [{{name: imex, resourceClaimName: train-imex-x1}}]}}");
        yaml::<sched::PodGroup>(&made).pass_on("ml/train", &cx);
        assert_eq!(sent(&rx), ["group ml/train", "pod w: waiting for resourceclaim ml/train-imex-x1 to be created"]);
        yaml::<sched::PodGroup>(&made).pass_on("ml/train", &cx);
        assert_eq!(sent(&rx), ["group ml/train"], "the claims did not change: the pods are not converted again");

        let claim: resource::ResourceClaim = yaml(
            "metadata: {name: train-imex-x1, namespace: ml, ownerReferences: \
             [{apiVersion: scheduling.k8s.io/v1alpha3, kind: PodGroup, name: train, uid: pg-1}]}\n\
             spec: {devices: {requests: [{name: channel, exactly: {deviceClassName: imex.example.com}}]}}",
        );
        claim.pass_on("ml/train-imex-x1", &cx);
        assert_eq!(sent(&rx), ["claim ml/train-imex-x1", "pod w: ml/train-imex-x1 (group)"]);

        let mut known: HashSet<String> = ["ml/train".to_string()].into();
        delete(Kind::PodGroup, "ml/train", &cx, &mut known);
        assert_eq!(sent(&rx), ["group ml/train gone", own]);
    }
}
