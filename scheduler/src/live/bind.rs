//! The bind executor: writes the engine's placements to the API server, as kube-scheduler's
//! DefaultBinder does, with bounded concurrency, the client-side rate limit, and retries.
//!
//! A pod's GPUs are written first (annotation `tessera.io/gpu-ids`, see
//! [`crate::ingest::gpu::GPU_IDS_ANNOTATION`]) so that the devices it
//! holds are read back after a restart, its volume bindings ([`super::volumes`]), and its DRA
//! claims' allocations and reservations ([`super::claims`]); then `POST pods/{name}/binding` with the pod's uid as
//! precondition. 429 waits out `Retry-After`; 5xx, timeouts and broken connections retry with
//! backoff; 409 (bound already, or a uid that no longer matches) and other refusals hand the pod
//! back to the engine (and with it every member of its gang still in flight); 404 means the pod
//! is gone and is forgotten. The API server is the arbiter of "never bound twice": it refuses a
//! second binding of a pod with 409, and the engine only ever learns where a pod runs from it.
//!
//! This is the I/O of the DefaultBinder plugin, the one Bind plugin Tessera has: `tessera run`
//! refuses to start with a profile whose Bind plugins do not include it ([`check_profiles`]),
//! so every pod it places is bound this way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use http::StatusCode;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod as K8sPod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::client::Body;
use tessera_plugins::framework::Profile;
use tessera_plugins::model::{GPU_MILLI, Pod, PodKey};
use tessera_plugins::plugins::default_binder;
use thiserror::Error;
use tokio::sync::Semaphore;

use crate::ingest::gpu::{GPU_IDS_ANNOTATION, format_gpu_ids};

use super::claims;
use super::dra::DraObjects;
use super::feed::BindItem;
use super::metrics::{BindResult, Metrics};
use super::ratelimit::RateLimiter;
use super::report::Report;
use super::volumes;
use super::watch::Change;

/// How often a transient failure is retried before the pod goes back to the queue.
const MAX_TRIES: u32 = 8;

/// Why a binding did not happen.
#[derive(Debug, Error)]
pub enum BindError {
    /// The pod no longer exists (404).
    #[error("pod {0} is gone")]
    Gone(PodKey),
    /// The API server refused: the pod is bound already, its uid changed, or the request was
    /// invalid.
    #[error("binding pod {pod} to {node} was refused: {status} {message}")]
    Refused {
        /// The pod.
        pod: PodKey,
        /// The node.
        node: String,
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// Transient failures outlasted every retry.
    #[error("binding pod {pod} failed {MAX_TRIES} times, last: {last}")]
    Exhausted {
        /// The pod.
        pod: PodKey,
        /// The last failure.
        last: String,
    },
    /// This replica lost the leader lease: it binds nothing more.
    #[error("not the leader")]
    NotLeader,
    /// Not attempted: another member of its gang failed PreBind, so none is bound.
    #[error("not bound: another member of its gang could not be prepared")]
    NotBound,
}

/// Whether `profile`'s pods are bound by writing their Binding: its Bind plugins include
/// DefaultBinder.
pub fn binds_through_api(profile: &Profile) -> bool {
    profile.bind.iter().any(|p| p.name() == default_binder::NAME)
}

/// A profile whose pods this executor cannot bind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "profile {profile:?}: its Bind plugins ({plugins}) do not include DefaultBinder, the only binder tessera run executes"
)]
pub struct NoBinder {
    /// The profile's `schedulerName`.
    pub profile: String,
    /// Its Bind plugins, comma-separated (empty when it has none).
    pub plugins: String,
}

/// Refuses a configuration with a profile whose pods would never be bound.
pub fn check_profiles(profiles: &[Profile]) -> Result<(), NoBinder> {
    match profiles.iter().find(|p| !binds_through_api(p)) {
        None => Ok(()),
        Some(p) => Err(NoBinder {
            profile: p.scheduler_name.clone(),
            plugins: p.bind.iter().map(|b| b.name()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// What the executor shares between its tasks.
#[derive(Clone)]
pub struct BindContext {
    /// The API client.
    pub client: Client,
    /// `clientConnection`'s limit for bindings.
    pub limiter: Arc<RateLimiter>,
    /// Bounds bindings in flight.
    pub concurrency: Arc<Semaphore>,
    /// Where results go back to the engine thread.
    pub changes: Sender<Change>,
    /// Whether this replica may bind.
    pub leading: Arc<AtomicBool>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Where `Scheduled` events go.
    pub reports: tokio::sync::mpsc::Sender<Report>,
    /// The watches' DRA objects: where an allocated device can be used from.
    pub dra: Arc<parking_lot::Mutex<DraObjects>>,
}

impl std::fmt::Debug for BindContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindContext").field("limiter", &self.limiter).finish_non_exhaustive()
    }
}

/// Binds one job (a pod, or a gang's members placed together) and reports each result back.
///
/// Every member's PreBind (its GPU annotation, its DRA claims' allocations) is written before
/// any member is bound: a member refused there takes the whole job back with nothing bound,
/// and the claims the others' PreBind wrote are given back ([`claims::unreserve`]), rather
/// than leaving a gang half bound. Only a refusal of the binding itself, after the others were
/// bound, can still do that; that member's claims are given back too, unless the refusal is a
/// 409 (the pod may be bound already, by an earlier try whose answer was lost).
pub async fn bind_job(cx: BindContext, job: Vec<BindItem>) {
    let pre_bound = futures::future::join_all(job.iter().map(|item| pre_bind(&cx, item))).await;
    if pre_bound.iter().any(Result::is_err) {
        let undo = job
            .iter()
            .zip(&pre_bound)
            .filter_map(|(item, r)| Some(claims::unreserve(&cx, &item.pod, r.as_ref().ok()?)));
        futures::future::join_all(undo).await;
        report(&cx, &job, pre_bound.into_iter().map(|r| r.and(Err(BindError::NotBound))));
        return;
    }
    let written: Vec<Vec<claims::Written>> = pre_bound.into_iter().map(Result::unwrap_or_default).collect();
    let results = futures::future::join_all(job.iter().map(|item| bind_item(&cx, item))).await;
    let undo = job.iter().zip(&results).zip(&written).filter_map(|((item, r), w)| match r {
        Err(BindError::Refused { status: 409, .. }) | Ok(()) => None,
        Err(_) => Some(claims::unreserve(&cx, &item.pod, w)),
    });
    futures::future::join_all(undo).await;
    report(&cx, &job, results.into_iter());
}

/// Sends each member's result to the engine thread (and `Scheduled` events to the reporter).
fn report(cx: &BindContext, job: &[BindItem], results: impl Iterator<Item = Result<(), BindError>>) {
    let mut failed = Vec::new();
    for (item, result) in job.iter().zip(results) {
        let key = item.pod.key();
        match result {
            Ok(()) => {
                let _ = cx.changes.send(Change::BindSucceeded(key));
                let _ =
                    cx.reports.try_send(Report::Scheduled { pod: item.pod.clone(), node: item.node.as_str().into() });
            }
            Err(BindError::Gone(_)) => {
                let _ = cx.changes.send(Change::BindFailed { pods: vec![key], gone: true });
            }
            Err(e) => {
                if !matches!(e, BindError::NotLeader | BindError::NotBound) {
                    tracing::warn!("{e}");
                }
                failed.push(key);
            }
        }
    }
    if !failed.is_empty() {
        let _ = cx.changes.send(Change::BindFailed { pods: failed, gone: false });
    }
}

/// What must be written before the pod is bound: the GPUs chosen for it (on the pod), its
/// volume bindings (on the volumes and claims, [`volumes::write_bindings`]) and its DRA
/// claims' allocations and reservations (on the claims). The DRA claims written, to give back
/// if the pod is not bound after all.
async fn pre_bind(cx: &BindContext, item: &BindItem) -> Result<Vec<claims::Written>, BindError> {
    if item.gpus == 0 && item.claims.is_empty() && item.volumes.is_empty() {
        return Ok(Vec::new());
    }
    let _permit = cx.concurrency.acquire().await.map_err(|_| BindError::NotLeader)?;
    if item.gpus != 0 {
        write_gpu_ids(cx, &item.pod, item.gpus).await?;
    }
    if !item.volumes.is_empty() {
        volumes::write_bindings(cx, item).await?;
    }
    claims::reserve(cx, item).await
}

async fn bind_item(cx: &BindContext, item: &BindItem) -> Result<(), BindError> {
    let _permit = cx.concurrency.acquire().await.map_err(|_| BindError::NotLeader)?;
    let started = Instant::now();
    let result = post_binding(cx, item).await;
    let label = match &result {
        Ok(()) => BindResult::Success,
        Err(BindError::Gone(_)) => BindResult::NotFound,
        Err(BindError::Refused { status: 409, .. }) => BindResult::Conflict,
        Err(_) => BindResult::Error,
    };
    cx.metrics.bind_request(label, started.elapsed().as_secs_f64());
    result
}

async fn write_gpu_ids(cx: &BindContext, pod: &Pod, mask: u64) -> Result<(), BindError> {
    let milli = pod.gpu.as_ref().map_or(GPU_MILLI, |g| g.milli);
    let patch = serde_json::json!({"metadata": {"annotations": {GPU_IDS_ANNOTATION: format_gpu_ids(mask, milli)}}});
    let api: Api<K8sPod> = Api::namespaced(cx.client.clone(), pod.namespace.as_str());
    let key = pod.key();
    retry(cx, &key, || async {
        match api.patch(&pod.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Attempt::Done(()),
            Err(kube::Error::Api(r)) => Attempt::from_status(r.code, None, r.message),
            Err(e) => Attempt::Transient(e.to_string(), None),
        }
    })
    .await
    .map_err(|e| match e {
        BindError::Refused { pod, status, message, .. } => {
            BindError::Refused { pod, node: "(annotating GPUs)".into(), status, message }
        }
        e => e,
    })
}

async fn post_binding(cx: &BindContext, item: &BindItem) -> Result<(), BindError> {
    let pod = &item.pod;
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name.to_string()),
            namespace: Some(pod.namespace.as_str().to_string()),
            uid: (!pod.uid.is_empty()).then(|| pod.uid.to_string()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(item.node.as_str().to_string()),
            ..Default::default()
        },
    };
    let body =
        serde_json::to_vec(&binding).map_err(|e| BindError::Exhausted { pod: pod.key(), last: e.to_string() })?;
    let url = format!("/api/v1/namespaces/{}/pods", pod.namespace.as_str());
    let request = kube::core::Request::new(url);
    let key = pod.key();
    retry(cx, &key, || {
        let req = request.create_subresource("binding", &pod.name, &PostParams::default(), body.clone());
        async move {
            let req = match req {
                Ok(r) => r.map(Body::from),
                Err(e) => return Attempt::Transient(e.to_string(), None),
            };
            match cx.client.send(req).await {
                Ok(res) if res.status().is_success() => Attempt::Done(()),
                Ok(res) => {
                    let status = res.status().as_u16();
                    let retry_after = retry_after(res.headers());
                    let message = res.into_body().collect_bytes().await.map_or_else(
                        |e| e.to_string(),
                        |b| {
                            serde_json::from_slice::<serde_json::Value>(&b)
                                .ok()
                                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
                                .unwrap_or_else(|| String::from_utf8_lossy(&b).into_owned())
                        },
                    );
                    Attempt::from_status(status, retry_after, message)
                }
                Err(e) => Attempt::Transient(e.to_string(), None),
            }
        }
    })
    .await
    .map_err(|e| match e {
        BindError::Refused { pod, status, message, .. } => {
            BindError::Refused { pod, node: item.node.as_str().to_string(), status, message }
        }
        e => e,
    })
}

fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

/// One try's verdict.
pub(super) enum Attempt<T = ()> {
    Done(T),
    Gone,
    Refused(u16, String),
    /// Worth another try, after the server's `Retry-After` when it gave one.
    Transient(String, Option<Duration>),
}

impl<T> Attempt<T> {
    pub(super) fn from_status(status: u16, retry_after: Option<Duration>, message: String) -> Attempt<T> {
        match StatusCode::from_u16(status) {
            Ok(StatusCode::NOT_FOUND) => Attempt::Gone,
            Ok(StatusCode::TOO_MANY_REQUESTS) => {
                Attempt::Transient(message, Some(retry_after.unwrap_or(Duration::from_secs(1))))
            }
            Ok(s) if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => Attempt::Transient(message, None),
            _ => Attempt::Refused(status, message),
        }
    }
}

/// Runs `attempt` under the rate limit until it is done, refused, or out of tries.
pub(super) async fn retry<T, F, Fut>(cx: &BindContext, pod: &PodKey, mut attempt: F) -> Result<T, BindError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt<T>>,
{
    let mut backoff = Duration::from_millis(100);
    let mut last = String::new();
    for _ in 0..MAX_TRIES {
        if !cx.leading.load(Ordering::Acquire) {
            return Err(BindError::NotLeader);
        }
        cx.limiter.acquire().await;
        match attempt().await {
            Attempt::Done(value) => return Ok(value),
            Attempt::Gone => return Err(BindError::Gone(pod.clone())),
            Attempt::Refused(status, message) => {
                return Err(BindError::Refused { pod: pod.clone(), node: String::new(), status, message });
            }
            Attempt::Transient(message, wait) => {
                cx.metrics.bind_request(BindResult::Retry, 0.0);
                tokio::time::sleep(wait.unwrap_or(backoff)).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                last = message;
            }
        }
    }
    Err(BindError::Exhausted { pod: pod.clone(), last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_sort_into_retry_refuse_and_gone() {
        let verdict = |status, wait| Attempt::<()>::from_status(status, wait, String::new());
        assert!(matches!(verdict(404, None), Attempt::Gone));
        assert!(matches!(verdict(409, None), Attempt::Refused(409, _)));
        assert!(matches!(verdict(503, None), Attempt::Transient(_, None)));
        let wait = Some(Duration::from_secs(3));
        assert!(matches!(verdict(429, wait), Attempt::Transient(_, Some(d)) if d.as_secs() == 3));
    }

    #[test]
    fn only_profiles_binding_through_default_binder_are_run() {
        let registry = tessera_plugins::registry::Registry::builtin();
        let Ok(binder) = registry.make(default_binder::NAME, None) else { panic!("DefaultBinder is built in") };
        let bound = Profile { scheduler_name: "a".into(), bind: vec![binder], ..Profile::default() };
        assert!(check_profiles(std::slice::from_ref(&bound)).is_ok());
        let none = Profile { scheduler_name: "b".into(), ..Profile::default() };
        let e = check_profiles(&[bound, none]).unwrap_err();
        assert_eq!(e.profile, "b");
        assert!(e.to_string().starts_with("profile \"b\": its Bind plugins () do not include DefaultBinder"), "{e}");
    }
}
