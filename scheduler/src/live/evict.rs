//! Evicting preemption's victims through the API, as upstream's `prepareCandidate` does: a
//! `DisruptionTarget` condition telling the victim's owner why (best effort), then a graceful
//! delete, then a `Preempted` event on the victim.
//!
//! The victim keeps its room in the engine until its deletion event arrives
//! ([`crate::engine::Eviction::ByApi`]): the kubelet may take its whole grace period to stop
//! it, and the preemptor, nominated to the node, waits for that. A delete the API refuses
//! leaves the victim running: the engine is told, stops waiting for it, and its preemptor may
//! preempt again. A victim already gone (404) counts as evicted.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod as K8sPod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{Pod, PodKey};

use super::bind::{Attempt, BindContext, BindError, retry};
use super::report::Report;
use super::watch::Change;

/// Evicts `victim` from `node` for preemptor `by`. See the module docs.
pub async fn evict(cx: BindContext, victim: Arc<Pod>, node: Sym, by: PodKey) {
    let key = victim.key();
    let api: Api<K8sPod> = Api::namespaced(cx.client.clone(), victim.namespace.as_str());
    let note = format!("Preempted by pod {by} on node {node}");
    let condition = serde_json::json!({"status": {"conditions": [{
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "PreemptionByScheduler",
        "message": format!("{}: preempting to accommodate a higher priority pod", victim.scheduler_name),
        "lastTransitionTime": Timestamp::now().to_string(),
    }]}});
    if let Err(e) = api.patch_status(&victim.name, &PatchParams::default(), &Patch::Strategic(&condition)).await {
        tracing::debug!("pod {key}: writing DisruptionTarget: {e}");
    }
    let params = DeleteParams {
        preconditions: (!victim.uid.is_empty())
            .then(|| Preconditions { uid: Some(victim.uid.to_string()), resource_version: None }),
        ..DeleteParams::default()
    };
    let deleted = retry(&cx, &key, || async {
        match api.delete(&victim.name, &params).await {
            Ok(_) => Attempt::Done(()),
            Err(kube::Error::Api(r)) => Attempt::from_status(r.code, None, r.message),
            Err(e) => Attempt::Transient(e.to_string(), None),
        }
    })
    .await;
    match deleted {
        Ok(()) | Err(BindError::Gone(_)) => {
            tracing::info!("pod {key}: {note}");
            let _ = cx.reports.try_send(Report::Preempted { pod: victim, note });
        }
        Err(e) => {
            tracing::warn!("pod {key}: evicting it for {by}: {e}");
            let _ = cx.changes.send(Change::EvictionFailed(key));
        }
    }
}
