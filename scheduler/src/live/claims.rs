//! DynamicResources' PreBind: a bound pod's DRA claims carry their allocation and name the pod
//! among their users before the pod is bound, as kube-scheduler writes them.
//!
//! For each claim the engine placed the pod with ([`super::feed::BindItem::claims`]), the
//! claim is read and its status written back with the claim's resourceVersion
//! (`PUT resourceclaims/{name}/status`): an unallocated claim gets the allocation
//! (`devices.results`, `devices.config` with the classes' configuration first, `nodeSelector`
//! naming the node by `metadata.name`) and the pod in `reservedFor`; a claim allocated already
//! with exactly these devices only gets the pod in `reservedFor` (nothing is written when the
//! pod is there). A 409 means the claim changed since it was read: it is read again and judged
//! again. A claim allocated to other devices (another scheduler won it) refuses the pod, and
//! what this pod's PreBind wrote to its other claims is given back ([`unreserve`]). 5xx, 429
//! and broken connections are retried as bindings are.
//!
//! Upstream also puts its `resource.kubernetes.io/delete-protection` finalizer on a claim it
//! allocates; Tessera does not (it writes only the status), so the resourceclaim controller's
//! own bookkeeping is what keeps an allocated claim.

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::api::resource::v1::{
    AllocationResult, DeviceAllocationConfiguration, DeviceAllocationResult, DeviceRequestAllocationResult,
    OpaqueDeviceConfiguration, ResourceClaim, ResourceClaimConsumerReference,
};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, PostParams};
use tessera_plugins::dra::model::{ClaimAllocation, ClaimKey};
use tessera_plugins::model::{Pod, PodKey};

use crate::ingest::dra::claim_allocation;

use super::bind::{Attempt, BindContext, BindError, retry};
use super::feed::BindItem;

/// How often a claim is read again after its write met a newer version (409).
const MAX_CONFLICTS: u32 = 8;

/// What a pod's PreBind wrote to one claim, so that it can be given back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The claim.
    pub claim: ClaimKey,
    /// The allocation was written by this PreBind (the claim was unallocated).
    pub allocated: bool,
}

/// Writes the allocation and reservation of each of `item`'s claims. On a refusal, what was
/// written already is given back before the error is returned.
pub async fn reserve(cx: &BindContext, item: &BindItem) -> Result<Vec<Written>, BindError> {
    let mut written = Vec::with_capacity(item.claims.len());
    for allocation in &item.claims {
        match reserve_one(cx, &item.pod, allocation).await {
            Ok(Some(w)) => written.push(w),
            Ok(None) => {}
            Err(e) => {
                unreserve(cx, &item.pod, &written).await;
                return Err(e);
            }
        }
    }
    Ok(written)
}

/// Gives back what `pod`'s PreBind wrote to the claims `written`: the pod leaves each claim's
/// `reservedFor`, and a claim left with no user loses its allocation. Best effort: a claim
/// that cannot be written is logged (the resourceclaim controller drops users that are gone).
pub async fn unreserve(cx: &BindContext, pod: &Pod, written: &[Written]) {
    for w in written {
        if let Err(e) = unreserve_one(cx, pod, w).await {
            tracing::warn!("giving back resourceclaim {} for pod {}: {e}", w.claim, pod.key());
        }
    }
}

/// Reserves one claim for `pod`; `None` when the claim was allocated and reserved for it
/// already.
async fn reserve_one(cx: &BindContext, pod: &Pod, chosen: &ClaimAllocation) -> Result<Option<Written>, BindError> {
    let key = pod.key();
    let api: Api<ResourceClaim> = Api::namespaced(cx.client.clone(), chosen.claim.namespace.as_str());
    for _ in 0..MAX_CONFLICTS {
        let mut claim = read(cx, &api, &key, chosen.claim).await?;
        let status = claim.status.get_or_insert_with(Default::default);
        let allocated = match &status.allocation {
            None => false,
            Some(existing) => {
                let same = claim_allocation(chosen.claim, existing)
                    .is_ok_and(|a| a.devices == chosen.devices && a.node == chosen.node);
                if !same {
                    let message = format!(
                        "resourceclaim {} was allocated elsewhere in the meantime (status.allocation differs from \
                         the devices chosen on node {})",
                        chosen.claim,
                        chosen.node.map_or("?", |n| n.as_str())
                    );
                    return Err(refused(&key, 409, message));
                }
                true
            }
        };
        let reserved_for = status.reserved_for.get_or_insert_with(Vec::new);
        let reserved = reserved_for.iter().any(|r| is_pod(r, pod));
        if allocated && reserved {
            return Ok(None);
        }
        if !reserved {
            reserved_for.push(ResourceClaimConsumerReference {
                api_group: None,
                resource: "pods".into(),
                name: pod.name.to_string(),
                uid: pod.uid.to_string(),
            });
        }
        if !allocated {
            status.allocation = Some(allocation_result(chosen, pod));
        }
        match write_status(cx, &api, &key, &claim).await {
            Ok(()) => return Ok(Some(Written { claim: chosen.claim, allocated: !allocated })),
            Err(BindError::Refused { status: 409, .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(BindError::Exhausted { pod: key, last: format!("resourceclaim {}: {MAX_CONFLICTS} conflicts", chosen.claim) })
}

async fn unreserve_one(cx: &BindContext, pod: &Pod, w: &Written) -> Result<(), BindError> {
    let key = pod.key();
    let api: Api<ResourceClaim> = Api::namespaced(cx.client.clone(), w.claim.namespace.as_str());
    for _ in 0..MAX_CONFLICTS {
        let mut claim = match read(cx, &api, &key, w.claim).await {
            Ok(c) => c,
            Err(BindError::Refused { status: 404, .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(status) = claim.status.as_mut() else { return Ok(()) };
        let users = status.reserved_for.take().unwrap_or_default();
        let before = users.len();
        let users: Vec<_> = users.into_iter().filter(|r| !is_pod(r, pod)).collect();
        if users.len() == before {
            // Not a user (any more): nothing of this pod's to give back.
            return Ok(());
        }
        if users.is_empty() {
            status.allocation = None;
        } else {
            status.reserved_for = Some(users);
        }
        match write_status(cx, &api, &key, &claim).await {
            Ok(()) => return Ok(()),
            Err(BindError::Refused { status: 409, .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(BindError::Exhausted { pod: key, last: format!("resourceclaim {}: {MAX_CONFLICTS} conflicts", w.claim) })
}

/// Whether a `reservedFor` entry names `pod` (by uid when the pod has one).
fn is_pod(r: &ResourceClaimConsumerReference, pod: &Pod) -> bool {
    r.resource == "pods"
        && r.api_group.as_deref().is_none_or(str::is_empty)
        && if pod.uid.is_empty() { r.name == *pod.name } else { r.uid == *pod.uid }
}

fn refused(pod: &PodKey, status: u16, message: String) -> BindError {
    BindError::Refused { pod: pod.clone(), node: "(writing resourceclaims)".into(), status, message }
}

/// Reads claim `claim`; a claim that is gone refuses the pod (404), which is queued again.
async fn read(
    cx: &BindContext,
    api: &Api<ResourceClaim>,
    pod: &PodKey,
    claim: ClaimKey,
) -> Result<ResourceClaim, BindError> {
    let got = retry(cx, pod, || async {
        match api.get(claim.name.as_str()).await {
            Ok(c) => Attempt::Done(c),
            Err(kube::Error::Api(r)) => Attempt::from_status(r.code, None, r.message),
            Err(kube::Error::SerdeError(e)) => {
                Attempt::Refused(422, format!("resourceclaim {claim} could not be decoded: {e}"))
            }
            Err(e) => Attempt::Transient(e.to_string(), None),
        }
    })
    .await;
    match got {
        Err(BindError::Gone(_)) => Err(refused(pod, 404, format!("resourceclaim {claim} is gone"))),
        Err(BindError::Refused { status, message, .. }) => {
            Err(refused(pod, status, format!("reading resourceclaim {claim}: {message}")))
        }
        other => other,
    }
}

/// Writes `claim`'s status, guarded by the resourceVersion it was read at.
async fn write_status(
    cx: &BindContext,
    api: &Api<ResourceClaim>,
    pod: &PodKey,
    claim: &ResourceClaim,
) -> Result<(), BindError> {
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    let key = format!("{}/{name}", api.namespace().unwrap_or_default());
    let written = retry(cx, pod, || async {
        match api.replace_status(name, &PostParams::default(), claim).await {
            Ok(_) => Attempt::Done(()),
            Err(kube::Error::Api(r)) => Attempt::from_status(r.code, None, r.message),
            // Accepted (2xx), only the answer did not decode: written all the same.
            Err(kube::Error::SerdeError(_)) => Attempt::Done(()),
            Err(e) => Attempt::Transient(e.to_string(), None),
        }
    })
    .await;
    match written {
        Err(BindError::Gone(_)) => Err(refused(pod, 404, format!("resourceclaim {key} is gone"))),
        Err(BindError::Refused { status, message, .. }) => {
            Err(refused(pod, status, format!("writing resourceclaim {key} status: {message}")))
        }
        other => other,
    }
}

/// The `status.allocation` for `chosen`, as upstream's allocator writes it. The classes'
/// configuration comes first in the model's allocation and the claim's own last, so the
/// last as many entries as the pod's claim spec has are `FromClaim`, the others `FromClass`.
pub fn allocation_result(chosen: &ClaimAllocation, pod: &Pod) -> AllocationResult {
    let from_claim = pod
        .claims
        .iter()
        .find(|pc| pc.key == chosen.claim)
        .and_then(|pc| pc.spec.as_ref().ok())
        .map_or(0, |spec| spec.config.len())
        .min(chosen.config.len());
    let from_class = chosen.config.len() - from_claim;
    let results = chosen
        .devices
        .iter()
        .map(|d| DeviceRequestAllocationResult {
            request: d.request.to_string(),
            driver: d.device.driver.to_string(),
            pool: d.device.pool.to_string(),
            device: d.device.device.to_string(),
            admin_access: d.admin_access.then_some(true),
            ..Default::default()
        })
        .collect();
    let config: Vec<DeviceAllocationConfiguration> = chosen
        .config
        .iter()
        .enumerate()
        .map(|(i, c)| DeviceAllocationConfiguration {
            source: if i < from_class { "FromClass" } else { "FromClaim" }.into(),
            requests: (!c.requests.is_empty()).then(|| c.requests.iter().map(|r| r.to_string()).collect()),
            opaque: Some(OpaqueDeviceConfiguration {
                driver: c.driver.to_string(),
                parameters: RawExtension(
                    serde_json::from_str(&c.parameters)
                        .unwrap_or_else(|_| serde_json::Value::String(c.parameters.to_string())),
                ),
            }),
        })
        .collect();
    AllocationResult {
        allocation_timestamp: None,
        devices: Some(DeviceAllocationResult {
            results: Some(results),
            config: (!config.is_empty()).then_some(config),
        }),
        node_selector: chosen.node.map(|node| NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![NodeSelectorRequirement {
                    key: "metadata.name".into(),
                    operator: "In".into(),
                    values: Some(vec![node.to_string()]),
                }]),
            }],
        }),
    }
}
