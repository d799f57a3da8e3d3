//! DynamicResources' PreBind: a bound pod's DRA claims carry their allocation and name the pod
//! among their users before the pod is bound, as kube-scheduler writes them.
//!
//! For each claim the engine placed the pod with ([`super::feed::BindItem::claims`]), the
//! claim is read and its status written back with the claim's resourceVersion
//! (`PUT resourceclaims/{name}/status`): an unallocated claim gets the allocation
//! (`devices.results`, `devices.config` with the classes' configuration first, and the
//! `nodeSelector` upstream's allocator writes, see [`node_selector`]) and the pod in
//! `reservedFor`; a claim allocated already with exactly these devices only gets the pod in
//! `reservedFor` (nothing is written when the pod is there). A 409 means the claim changed
//! since it was read: it is read again and judged again. A claim allocated to other devices
//! (another scheduler won it) refuses the pod, and what this pod's PreBind wrote to its other
//! claims is given back ([`unreserve`]). 5xx, 429 and broken connections are retried as
//! bindings are.
//!
//! A claim that is its PodGroup's ([`PodClaim::group`], `DRAWorkloadResourceClaims`) is
//! reserved for the group instead (`scheduling.k8s.io` `podgroups`), once: a later member finds
//! the group there and writes nothing (a claim allocated to other devices still refuses it).
//! Giving back never removes the group, nor the allocation it holds: other members may be
//! bound on the claim already, and whether any still needs it is more than the executor knows
//! (upstream removes the group only when none of its pods is active any more).
//!
//! Upstream also puts its `resource.kubernetes.io/delete-protection` finalizer on a claim it
//! allocates; Tessera does not (it writes only the status), so the resourceclaim controller's
//! own bookkeeping is what keeps an allocated claim.

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::api::resource::v1::{
    AllocationResult, DeviceAllocationConfiguration, DeviceAllocationResult, DeviceRequestAllocationResult,
    OpaqueDeviceConfiguration, ResourceClaim, ResourceClaimConsumerReference, ResourceClaimStatus,
};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, PostParams};
#[cfg(doc)]
use tessera_plugins::dra::model::PodClaim;
use tessera_plugins::dra::model::{ClaimAllocation, ClaimKey, DeviceId};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{Pod, PodKey};
use thiserror::Error;

use crate::ingest::dra::claim_allocation;

use super::bind::{Attempt, BindContext, BindError, retry};
use super::dra::Reach;
use super::feed::BindItem;

/// The API group of a PodGroup consumer in `reservedFor`.
const POD_GROUP_API_GROUP: &str = "scheduling.k8s.io";

/// How often a claim is read again after its write met a newer version (409).
const MAX_CONFLICTS: u32 = 8;

/// Why PreBind cannot write a claim as the engine chose it: the pod is refused and queued
/// again.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Someone else allocated the claim to other devices since the engine saw it.
    #[error(
        "resourceclaim {claim} was allocated elsewhere in the meantime (status.allocation differs from the \
         devices chosen for node {node})"
    )]
    AllocatedElsewhere {
        /// The claim.
        claim: ClaimKey,
        /// The pod's node.
        node: Sym,
    },
    /// No ResourceSlice publishes an allocated device any more (and it was not local to the
    /// pod's node): where it can be used from is unknown.
    #[error("resourceclaim {claim}: no ResourceSlice publishes device {device} any more")]
    SliceGone {
        /// The claim.
        claim: ClaimKey,
        /// The device.
        device: DeviceId,
    },
    /// The `nodeSelector` of an allocated device's slice has several terms, which validation
    /// forbids and upstream's allocator refuses to combine.
    #[error("resourceclaim {claim}: the ResourceSlice of device {device} has a nodeSelector of {terms} terms, not one")]
    SelectorTerms {
        /// The claim.
        claim: ClaimKey,
        /// The device.
        device: DeviceId,
        /// How many.
        terms: usize,
    },
}

impl Refusal {
    /// The HTTP-like status the refusal is reported with.
    fn status(&self) -> u16 {
        match self {
            Refusal::AllocatedElsewhere { .. } | Refusal::SliceGone { .. } => 409,
            Refusal::SelectorTerms { .. } => 422,
        }
    }
}

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
        match reserve_one(cx, &item.pod, item.node, allocation).await {
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

/// Reserves one claim for `pod` on `node`; `None` when the claim was allocated and reserved for
/// it (or its PodGroup) already.
async fn reserve_one(
    cx: &BindContext,
    pod: &Pod,
    node: Sym,
    chosen: &ClaimAllocation,
) -> Result<Option<Written>, BindError> {
    let key = pod.key();
    let api: Api<ResourceClaim> = Api::namespaced(cx.client.clone(), chosen.claim.namespace.as_str());
    let consumer = consumer_of(pod, chosen.claim);
    for _ in 0..MAX_CONFLICTS {
        let mut claim = read(cx, &api, &key, chosen.claim).await?;
        let status = claim.status.get_or_insert_with(Default::default);
        let allocate = || {
            let dra = cx.dra.lock();
            let selector = node_selector(chosen, |id| dra.reach_of(id, Some(node)))?;
            Ok(allocation_result(chosen, pod, selector))
        };
        let allocated = match plan(status, chosen, node, &consumer, allocate) {
            Ok(Some(allocated)) => allocated,
            Ok(None) => return Ok(None),
            Err(e) => return Err(refused(&key, e.status(), e.to_string())),
        };
        match write_status(cx, &api, &key, &claim).await {
            Ok(()) => return Ok(Some(Written { claim: chosen.claim, allocated })),
            Err(BindError::Refused { status: 409, .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(BindError::Exhausted { pod: key, last: format!("resourceclaim {}: {MAX_CONFLICTS} conflicts", chosen.claim) })
}

/// Changes the `status` of a claim as read so that it holds `chosen` (made by `allocate` when
/// the claim has no allocation) and names `consumer` in `reservedFor`. `Ok(None)` when there
/// is nothing to write; `Ok(Some(allocated))` when the status is to be written, `allocated`
/// telling whether the allocation is this write's. A claim allocated to other devices
/// refuses, whoever it is reserved for.
pub fn plan(
    status: &mut ResourceClaimStatus,
    chosen: &ClaimAllocation,
    node: Sym,
    consumer: &ResourceClaimConsumerReference,
    allocate: impl FnOnce() -> Result<AllocationResult, Refusal>,
) -> Result<Option<bool>, Refusal> {
    let allocated = match &status.allocation {
        None => false,
        Some(existing) => {
            if !claim_allocation(chosen.claim, existing).is_ok_and(|a| same_allocation(&a, chosen)) {
                return Err(Refusal::AllocatedElsewhere { claim: chosen.claim, node });
            }
            true
        }
    };
    let reserved_for = status.reserved_for.get_or_insert_with(Vec::new);
    let reserved = reserved_for.iter().any(|r| same_consumer(r, consumer));
    if allocated && reserved {
        return Ok(None);
    }
    if !allocated {
        status.allocation = Some(allocate()?);
    }
    if !reserved {
        status.reserved_for.get_or_insert_with(Vec::new).push(consumer.clone());
    }
    Ok(Some(!allocated))
}

/// Whether two allocations of a claim hold the same devices (in the same order, for the same
/// requests), and the same node when both are local to one: an allocation read back from a
/// `nodeSelector` that names no single node has none, whatever this scheduler chose it on.
pub fn same_allocation(a: &ClaimAllocation, b: &ClaimAllocation) -> bool {
    a.devices == b.devices && (a.node.is_none() || b.node.is_none() || a.node == b.node)
}

/// Who `pod`'s PreBind reserves claim `claim` for: the pod's PodGroup when the claim is the
/// group's, otherwise the pod.
pub fn consumer_of(pod: &Pod, claim: ClaimKey) -> ResourceClaimConsumerReference {
    match pod.claims.iter().find(|pc| pc.key == claim).and_then(|pc| pc.group.as_deref()) {
        Some(group) => ResourceClaimConsumerReference {
            api_group: Some(POD_GROUP_API_GROUP.into()),
            resource: "podgroups".into(),
            name: group.name.to_string(),
            uid: group.uid.to_string(),
        },
        None => pod_consumer(pod),
    }
}

fn pod_consumer(pod: &Pod) -> ResourceClaimConsumerReference {
    ResourceClaimConsumerReference {
        api_group: None,
        resource: "pods".into(),
        name: pod.name.to_string(),
        uid: pod.uid.to_string(),
    }
}

/// Whether the `reservedFor` entry `r` names `consumer` (by uid when it has one).
fn same_consumer(r: &ResourceClaimConsumerReference, consumer: &ResourceClaimConsumerReference) -> bool {
    r.resource == consumer.resource
        && r.api_group.as_deref().unwrap_or_default() == consumer.api_group.as_deref().unwrap_or_default()
        && if consumer.uid.is_empty() { r.name == consumer.name } else { r.uid == consumer.uid }
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

/// Whether a `reservedFor` entry names `pod` itself (by uid when the pod has one).
fn is_pod(r: &ResourceClaimConsumerReference, pod: &Pod) -> bool {
    same_consumer(r, &pod_consumer(pod))
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

/// The `status.allocation` for `chosen` with `node_selector`, as upstream's allocator writes
/// it. The classes' configuration comes first in the model's allocation and the claim's own
/// last, so the last as many entries as the pod's claim spec has are `FromClaim`, the others
/// `FromClass`.
pub fn allocation_result(chosen: &ClaimAllocation, pod: &Pod, node_selector: Option<NodeSelector>) -> AllocationResult {
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
        node_selector,
    }
}

/// `status.allocation.nodeSelector` for `chosen`, as upstream's allocator writes it
/// (`createNodeSelector`), with `reach` telling where each device's slice makes it usable: the
/// node by `metadata.name` as soon as one device is local to it; otherwise one term holding
/// the requirements of every device's slice's single `nodeSelector` term, each once; none at
/// all when every device is for `allNodes`. A device no slice publishes any more counts as
/// local to the allocation's node when it has one.
pub fn node_selector(
    chosen: &ClaimAllocation,
    reach: impl Fn(&DeviceId) -> Option<Reach>,
) -> Result<Option<NodeSelector>, Refusal> {
    let mut term = NodeSelectorTerm::default();
    for d in &chosen.devices {
        let selector = match (reach(&d.device), chosen.node) {
            (Some(Reach::Node(local)), _) | (None, Some(local)) => return Ok(Some(naming(local))),
            (None, None) => return Err(Refusal::SliceGone { claim: chosen.claim, device: d.device }),
            (Some(Reach::All), _) => continue,
            (Some(Reach::Selector(selector)), _) => selector,
        };
        match selector.node_selector_terms.as_slice() {
            [] => {}
            [only] => {
                add_new(&mut term.match_fields, only.match_fields.as_deref());
                add_new(&mut term.match_expressions, only.match_expressions.as_deref());
            }
            terms => return Err(Refusal::SelectorTerms { claim: chosen.claim, device: d.device, terms: terms.len() }),
        }
    }
    let empty = |r: &Option<Vec<NodeSelectorRequirement>>| r.as_ref().is_none_or(Vec::is_empty);
    if empty(&term.match_fields) && empty(&term.match_expressions) {
        return Ok(None);
    }
    Ok(Some(NodeSelector { node_selector_terms: vec![term] }))
}

/// Appends to `to` each requirement of `from` it does not hold yet.
fn add_new(to: &mut Option<Vec<NodeSelectorRequirement>>, from: Option<&[NodeSelectorRequirement]>) {
    for r in from.unwrap_or_default() {
        let to = to.get_or_insert_with(Vec::new);
        if !to.contains(r) {
            to.push(r.clone());
        }
    }
}

/// The selector of node `node` alone, by `metadata.name`.
fn naming(node: Sym) -> NodeSelector {
    NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
        }],
    }
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
