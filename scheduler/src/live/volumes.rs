//! Volumes in `tessera run`: the storage objects the watches send to the engine, and the
//! PreBind that writes a placement's volume bindings to the API, as kube-scheduler's
//! VolumeBinding does (`bindAPIUpdate`).
//!
//! A claim bound to an existing volume is written on the volume: `spec.claimRef` naming the
//! claim, and the annotation `pv.kubernetes.io/bound-by-controller` as upstream's
//! `BindVolumeToClaim` sets it; the PV controller then completes the binding on the claim
//! (`spec.volumeName`, phases). A claim to be provisioned gets the annotation
//! `volume.kubernetes.io/selected-node` naming the pod's node, which the external provisioner
//! waits for. Both are merge patches. Unlike upstream, PreBind does not wait for the PV
//! controller and the provisioner to finish (upstream polls up to `bindTimeoutSeconds`): the
//! pod is bound right after, and the kubelet waits for its volumes to attach as it does for any
//! pod. Writes are not undone when the pod is not bound after all; neither does upstream, whose
//! unreserve only forgets its assumptions (the engine forgets its own when it takes the pod
//! back).

use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, Patch, PatchParams};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::PodKey;
use tessera_plugins::plugins::volumes::index::{Binding, VolumeObjects};
use tessera_plugins::plugins::volumes::model::{
    CsiNode, PersistentVolume, PersistentVolumeClaim, PvcKey, StorageClass,
};

use crate::ingest::volumes::SELECTED_NODE_ANNOTATION;

use super::bind::{Attempt, BindContext, BindError, retry};
use super::feed::BindItem;

/// The annotation the PV controller (and upstream's binder) sets on a volume it bound.
pub const BOUND_BY_CONTROLLER_ANNOTATION: &str = "pv.kubernetes.io/bound-by-controller";

/// A storage object added, changed (`Some`) or gone (`None`).
#[derive(Clone, Debug, PartialEq)]
pub enum VolumeChange {
    /// A PersistentVolume, by name.
    Volume(Sym, Option<PersistentVolume>),
    /// A PersistentVolumeClaim, by `namespace/name`.
    Claim(PvcKey, Option<PersistentVolumeClaim>),
    /// A StorageClass, by name.
    Class(Sym, Option<StorageClass>),
    /// A CSINode, by its node's name.
    CsiNode(Sym, Option<CsiNode>),
}

impl VolumeChange {
    /// Applies the change to `objects`.
    pub fn apply(self, objects: &mut VolumeObjects) {
        match self {
            VolumeChange::Volume(name, pv) => objects.set_pv(name, pv),
            VolumeChange::Claim(key, pvc) => objects.set_pvc(key, pvc),
            VolumeChange::Class(name, class) => objects.set_class(name, class),
            VolumeChange::CsiNode(node, csi) => objects.set_csi_node(node, csi),
        }
    }
}

/// Writes `item`'s volume bindings (see the module docs).
pub(super) async fn write_bindings(cx: &BindContext, item: &BindItem) -> Result<(), BindError> {
    let key = item.pod.key();
    for (claim, binding) in &item.volumes {
        match binding {
            Binding::Volume(pv) => bind_volume(cx, &key, *claim, *pv).await?,
            Binding::Provision(node) => select_node(cx, &key, *claim, *node).await?,
        }
    }
    Ok(())
}

/// Sets `spec.claimRef` of volume `pv` to `claim`.
async fn bind_volume(cx: &BindContext, pod: &PodKey, claim: PvcKey, pv: Sym) -> Result<(), BindError> {
    let patch = serde_json::json!({
        "metadata": {"annotations": {BOUND_BY_CONTROLLER_ANNOTATION: "yes"}},
        "spec": {"claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": claim.namespace.as_str(),
            "name": claim.name.as_str(),
        }},
    });
    let api: Api<core::PersistentVolume> = Api::all(cx.client.clone());
    let what = format!("(binding persistentvolume {pv} to claim {claim})");
    patch_object(cx, pod, what, &api, pv.as_str(), &patch).await
}

/// Annotates `claim` with the node its volume is to be provisioned on.
async fn select_node(cx: &BindContext, pod: &PodKey, claim: PvcKey, node: Sym) -> Result<(), BindError> {
    let patch = serde_json::json!({"metadata": {"annotations": {SELECTED_NODE_ANNOTATION: node.as_str()}}});
    let api: Api<core::PersistentVolumeClaim> = Api::namespaced(cx.client.clone(), claim.namespace.as_str());
    let what = format!("(selecting node {node} for claim {claim})");
    patch_object(cx, pod, what, &api, claim.name.as_str(), &patch).await
}

/// Merge-patches object `name` under the executor's retries; a refusal names `what` was
/// written in place of the node.
async fn patch_object<K>(
    cx: &BindContext,
    pod: &PodKey,
    what: String,
    api: &Api<K>,
    name: &str,
    patch: &serde_json::Value,
) -> Result<(), BindError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let result = retry(cx, pod, || async {
        match api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
            Ok(_) => Attempt::Done(()),
            Err(kube::Error::Api(r)) => Attempt::from_status(r.code, None, r.message),
            Err(e) => Attempt::Transient(e.to_string(), None),
        }
    })
    .await;
    result.map_err(|e| match e {
        BindError::Refused { pod, status, message, .. } => BindError::Refused { pod, node: what, status, message },
        // A volume or claim that is gone refuses the pod; the pod itself is not gone.
        BindError::Gone(pod) => BindError::Refused { pod, node: what, status: 404, message: "not found".into() },
        e => e,
    })
}
