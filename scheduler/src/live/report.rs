//! Telling people why, as kube-scheduler does: a pending pod's `PodScheduled` condition (False,
//! `Unschedulable`, the engine's "0/N nodes are available: ..." message) written through
//! `pods/status`, and `events.k8s.io/v1` Events `Scheduled` and `FailedScheduling` with
//! upstream's wording.
//!
//! A gang's PodGroup gets its status in its own API's terms (`PodGroupInitiallyScheduled` for
//! Kubernetes' PodGroup, the phase and `scheduled` count for scheduler-plugins'), written when
//! it changes.
//!
//! Reports are best effort and never slow binding: they have their own rate limit and a bounded
//! queue (a full queue drops reports and counts them). A pod's condition and event are written
//! again only when its message changes, and a gang that does not fit gets one event on its first
//! member, naming how many pods wait with it, rather than one per member: a stuck gang of 1,000
//! pods is one event, not an event storm.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod as K8sPod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::scheduling::v1alpha3 as native;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use tessera_plugins::model::{Pod, PodGroupApi, PodKey};
use tokio::sync::mpsc;

use super::ratelimit::RateLimiter;
use crate::engine::gang::GangRecord;
use crate::engine::gang::status as gang_status;

/// Something to tell the API about.
#[derive(Debug)]
pub enum Report {
    /// Pods (one, or a gang's members) that fit nowhere, and why.
    Unschedulable {
        /// The pods.
        pods: Vec<Arc<Pod>>,
        /// The message.
        message: String,
        /// For each pod (in order; empty when none is), the node preemption nominated it to
        /// (`status.nominatedNodeName`).
        nominated: Vec<Option<String>>,
    },
    /// A pod was evicted to make room for a preemptor.
    Preempted {
        /// The victim.
        pod: Arc<Pod>,
        /// Who for, and where.
        note: String,
    },
    /// A gang's PodGroup status changed (phase, counts, or why it does not fit).
    Group {
        /// `namespace/name` of the PodGroup.
        key: tessera_plugins::model::GroupKey,
        /// What became of the gang.
        record: GangRecord,
    },
    /// A pending pod was deleted: forget what it was last told.
    Forget(PodKey),
    /// A pod was bound.
    Scheduled {
        /// The pod.
        pod: Arc<Pod>,
        /// Its node.
        node: String,
    },
    /// Something is wrong with a Node object that the scheduler works around (a malformed
    /// `tessera.io/gpu-topology`: its GPUs are placed by count only). Written once per message.
    NodeWarning {
        /// The node's name.
        node: String,
        /// Its uid, when known.
        uid: Option<String>,
        /// The event's reason (`InvalidGPUTopology`).
        reason: &'static str,
        /// What is wrong and what the scheduler does about it.
        note: String,
    },
}

/// Writes reports; see the module docs.
pub struct Reporter {
    client: Client,
    limiter: RateLimiter,
    /// Who reports: `reportingInstance` of the events.
    identity: String,
    /// Hash of the message last written per pending pod.
    written: Mutex<HashMap<PodKey, u64>>,
    /// Hash of the warning last written per node: a node object is updated often, its warning
    /// is written once.
    node_warnings: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter").field("identity", &self.identity).finish_non_exhaustive()
    }
}

/// How many reports may wait before new ones are dropped.
pub const REPORT_QUEUE: usize = 100_000;

impl Reporter {
    /// A reporter writing through `client` at most `qps` (with `burst`) requests a second.
    pub fn new(client: Client, qps: f64, burst: u32, identity: String) -> Arc<Reporter> {
        Arc::new(Reporter {
            client,
            limiter: RateLimiter::new(qps, burst),
            identity,
            written: Mutex::default(),
            node_warnings: Mutex::default(),
        })
    }

    /// Writes every report received until the channel closes.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Report>) {
        let tasks = Arc::new(tokio::sync::Semaphore::new(16));
        while let Some(report) = rx.recv().await {
            let Ok(permit) = tasks.clone().acquire_owned().await else { return };
            let me = self.clone();
            tokio::spawn(async move {
                me.write(report).await;
                drop(permit);
            });
        }
    }

    async fn write(&self, report: Report) {
        match report {
            Report::Scheduled { pod, node } => {
                self.written.lock().remove(&pod.key());
                let note = format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name);
                self.event(&pod, "Normal", "Scheduled", "Binding", note).await;
            }
            Report::Forget(key) => {
                self.written.lock().remove(&key);
            }
            Report::Group { key, record } => self.group_status(key, &record).await,
            Report::Preempted { pod, note } => {
                self.event(&pod, "Normal", "Preempted", "Preempting", note).await;
            }
            Report::NodeWarning { node, uid, reason, note } => {
                let hash = hash_of(&note);
                if self.node_warnings.lock().insert(node.clone(), hash) == Some(hash) {
                    return;
                }
                let regarding = ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    uid,
                    ..ObjectReference::default()
                };
                // Events about cluster-scoped objects live in `default`, as the kubelet's do.
                let event = self.new_event(regarding, "default", "tessera", ("Warning", reason, "Scheduling"), note);
                self.post(event, &format!("node {node}")).await;
            }
            Report::Unschedulable { pods, message, nominated } => {
                let node_of = |i: usize| nominated.get(i).cloned().flatten();
                let mut fresh: Vec<&Arc<Pod>> = Vec::new();
                for (i, pod) in pods.iter().enumerate() {
                    let shown = match node_of(i) {
                        Some(node) => format!("{message}\u{0}{node}"),
                        None => message.clone(),
                    };
                    if self.changed(pod, &shown) {
                        self.condition(pod, &message, node_of(i).as_deref()).await;
                        fresh.push(pod);
                    }
                }
                if let Some(first) = fresh.first() {
                    let note = match pods.len() {
                        1 => message.clone(),
                        n => format!("{message} ({n} pods of this gang wait together)"),
                    };
                    self.event(first, "Warning", "FailedScheduling", "Scheduling", note).await;
                }
            }
        }
    }

    /// Whether `message` differs from what `pod` shows; records it as shown.
    fn changed(&self, pod: &Pod, message: &str) -> bool {
        let hash = hash_of(message);
        self.written.lock().insert(pod.key(), hash) != Some(hash)
    }

    /// Writes the pod's `PodScheduled` condition and its `nominatedNodeName` (removed when
    /// `None`: preemption gave up on the node).
    async fn condition(&self, pod: &Pod, message: &str, nominated: Option<&str>) {
        let patch = serde_json::json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": Timestamp::now().to_string(),
        }], "nominatedNodeName": nominated}});
        self.limiter.acquire().await;
        let api: Api<K8sPod> = Api::namespaced(self.client.clone(), pod.namespace.as_str());
        if let Err(e) = api.patch_status(&pod.name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
            tracing::debug!("pod {}: writing PodScheduled: {e}", pod.key());
        }
    }

    /// Writes a PodGroup's status in its API's own terms (`engine::gang::status`). The patch
    /// names only the fields the scheduler owns, so the counts a controller keeps (running,
    /// succeeded) are left alone.
    async fn group_status(&self, key: tessera_plugins::model::GroupKey, record: &GangRecord) {
        let now = Time(Timestamp::now());
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        self.limiter.acquire().await;
        let result = match record.api {
            Some(PodGroupApi::Kubernetes) => {
                let status = gang_status::native_status(record, None, now);
                let api: Api<native::PodGroup> = Api::namespaced(self.client.clone(), ns);
                let patch = serde_json::json!({"status": status});
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
            }
            Some(PodGroupApi::Coscheduling) => {
                let status = gang_status::coscheduling_status(record, None);
                let patch = serde_json::json!({"status": {"phase": status.phase, "scheduled": status.scheduled}});
                let api: Api<tessera_crds::PodGroup> = Api::namespaced(self.client.clone(), ns);
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
            }
            // Volcano's PodGroups are read by the simulator only: a live gang is never one.
            Some(PodGroupApi::Volcano) | None => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!("PodGroup {key}: writing status: {e}");
        }
    }

    async fn event(&self, pod: &Pod, type_: &str, reason: &str, action: &str, note: String) {
        let regarding = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(pod.namespace.as_str().to_string()),
            name: Some(pod.name.to_string()),
            uid: (!pod.uid.is_empty()).then(|| pod.uid.to_string()),
            ..ObjectReference::default()
        };
        let namespace = pod.namespace.as_str();
        let event = self.new_event(regarding, namespace, pod.scheduler_name.as_str(), (type_, reason, action), note);
        self.post(event, &format!("pod {}", pod.key())).await;
    }

    /// An `events.k8s.io/v1` Event about `regarding`, in `namespace`, from `controller`;
    /// `(type, reason, action)` as upstream spells them.
    fn new_event(
        &self,
        regarding: ObjectReference,
        namespace: &str,
        controller: &str,
        (type_, reason, action): (&str, &str, &str),
        note: String,
    ) -> Event {
        let now = Timestamp::now();
        let name = regarding.name.as_deref().unwrap_or("object");
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(type_.to_string()),
            reason: Some(reason.to_string()),
            action: Some(action.to_string()),
            note: Some(note),
            reporting_controller: Some(controller.to_string()),
            reporting_instance: Some(self.identity.clone()),
            regarding: Some(regarding),
            ..Event::default()
        }
    }

    /// Creates `event` under the rate limit; a failure is only logged (`about` names whom it
    /// was about), since reports are best effort.
    async fn post(&self, event: Event, about: &str) {
        self.limiter.acquire().await;
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!("{about}: writing event {}: {e}", event.reason.as_deref().unwrap_or_default());
        }
    }
}

fn hash_of(message: &str) -> u64 {
    let mut h = DefaultHasher::new();
    message.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reporter whose API calls fail at once (nothing listens on port 1): only its memory
    /// of what each pod was told is under test.
    fn reporter() -> Arc<Reporter> {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        Reporter::new(Client::try_from(config).unwrap(), 1000.0, 1000, "test".into())
    }

    #[tokio::test]
    async fn a_pending_pod_deleted_is_forgotten() {
        let r = reporter();
        let pod = Arc::new(Pod::new("ns", "p", tessera_plugins::resources::ResourceVec::default()));
        r.write(Report::Unschedulable { pods: vec![pod.clone()], message: "0/1 nodes".into(), nominated: Vec::new() })
            .await;
        assert!(!r.changed(&pod, "0/1 nodes"), "the same message is not written twice");
        r.write(Report::Forget(pod.key())).await;
        assert!(r.written.lock().is_empty(), "nothing is kept for a deleted pod");
    }
}
