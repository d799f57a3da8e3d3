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
//! A claim this PreBind allocates first gets the finalizer [`FINALIZER`], as upstream's
//! DynamicResources PreBind adds it: in a write of the claim itself (`PUT resourceclaims/{name}`),
//! since a status write cannot change metadata, then the status. Giving back an allocation
//! this PreBind made removes the finalizer again if it added it (upstream leaves that to the
//! resourceclaim controller, which drops it from a claim that is no longer allocated).
//!
//! A device that allows multiple allocations gets, in its result, the capacity the allocation
//! consumes (`consumedCapacity`, from [`AllocatedDevice::consumed`]) and a `shareID` telling
//! this allocation of it from others ([`share_id`]).

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::api::resource::v1::{
    AllocationResult, DeviceAllocationConfiguration, DeviceAllocationResult, DeviceRequestAllocationResult,
    OpaqueDeviceConfiguration, ResourceClaim, ResourceClaimConsumerReference, ResourceClaimStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, PostParams};
#[cfg(doc)]
use tessera_plugins::dra::model::PodClaim;
use tessera_plugins::dra::model::{AllocatedDevice, ClaimAllocation, ClaimKey, DeviceId};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{Pod, PodKey};
use thiserror::Error;

use crate::ingest::dra::claim_allocation;

use super::bind::{Attempt, BindContext, BindError, retry};
use super::dra::Reach;
use super::feed::BindItem;

/// The API group of a PodGroup consumer in `reservedFor`.
const POD_GROUP_API_GROUP: &str = "scheduling.k8s.io";

/// The finalizer that keeps an allocated claim from being deleted while it is allocated
/// (upstream `resourceapi.Finalizer`).
pub const FINALIZER: &str = "resource.kubernetes.io/delete-protection";

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
    /// This PreBind added [`FINALIZER`] to the claim.
    pub finalized: bool,
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
/// it (or its PodGroup) already. A finalizer added on the way is removed again when the
/// claim is not written after all (and is still unallocated).
async fn reserve_one(
    cx: &BindContext,
    pod: &Pod,
    node: Sym,
    chosen: &ClaimAllocation,
) -> Result<Option<Written>, BindError> {
    let api: Api<ResourceClaim> = Api::namespaced(cx.client.clone(), chosen.claim.namespace.as_str());
    let mut finalized = false;
    let reserved = reserve_claim(cx, &api, pod, node, chosen, &mut finalized).await;
    if reserved.is_err()
        && finalized
        && let Err(e) = drop_finalizer(cx, &api, &pod.key(), chosen.claim).await
    {
        tracing::warn!("removing the finalizer of resourceclaim {} for pod {}: {e}", chosen.claim, pod.key());
    }
    reserved
}

/// [`reserve_one`]'s reads and writes; `finalized` is set once [`FINALIZER`] was added.
async fn reserve_claim(
    cx: &BindContext,
    api: &Api<ResourceClaim>,
    pod: &Pod,
    node: Sym,
    chosen: &ClaimAllocation,
    finalized: &mut bool,
) -> Result<Option<Written>, BindError> {
    let key = pod.key();
    let consumer = consumer_of(pod, chosen.claim);
    for _ in 0..MAX_CONFLICTS {
        let mut claim = read(cx, api, &key, chosen.claim).await?;
        let claim_id = claim_identity(&claim, chosen.claim);
        let status = claim.status.get_or_insert_with(Default::default);
        let allocate = || {
            let dra = cx.dra.lock();
            let selector = node_selector(chosen, |id| dra.reach_of(id, Some(node)))?;
            let shared = |id: &DeviceId| dra.device_of(id, Some(node)).is_some_and(|d| d.allow_multiple_allocations);
            Ok(allocation_result(chosen, pod, selector, &Sharing { claim: &claim_id, shared: &shared }))
        };
        let allocated = match plan(status, chosen, node, &consumer, allocate) {
            Ok(Some(allocated)) => allocated,
            Ok(None) => return Ok(None),
            Err(e) => return Err(refused(&key, e.status(), e.to_string())),
        };
        if allocated && !has_finalizer(&claim) {
            match add_finalizer(cx, api, &key, &mut claim).await {
                Ok(()) => *finalized = true,
                Err(BindError::Refused { status: 409, .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        match write_status(cx, api, &key, &claim).await {
            Ok(()) => return Ok(Some(Written { claim: chosen.claim, allocated, finalized: *finalized })),
            Err(BindError::Refused { status: 409, .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(BindError::Exhausted { pod: key, last: format!("resourceclaim {}: {MAX_CONFLICTS} conflicts", chosen.claim) })
}

/// What tells a claim apart in its shareIDs: its uid, or `namespace/name` when it has none.
fn claim_identity(claim: &ResourceClaim, key: ClaimKey) -> String {
    match claim.metadata.uid.as_deref().filter(|u| !u.is_empty()) {
        Some(uid) => uid.to_string(),
        None => key.to_string(),
    }
}

/// Whether `claim` carries [`FINALIZER`].
pub fn has_finalizer(claim: &ResourceClaim) -> bool {
    claim.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER)
}

/// Adds [`FINALIZER`] to `claim` as read, in a write of the claim itself guarded by its
/// resourceVersion; `claim` then carries the metadata written (its status is kept as
/// planned, for the status write that follows).
async fn add_finalizer(
    cx: &BindContext,
    api: &Api<ResourceClaim>,
    pod: &PodKey,
    claim: &mut ResourceClaim,
) -> Result<(), BindError> {
    let mut with = claim.clone();
    with.metadata.finalizers.get_or_insert_with(Vec::new).push(FINALIZER.to_string());
    claim.metadata = write_claim(cx, api, pod, &with).await?.unwrap_or(with.metadata);
    Ok(())
}

/// Removes [`FINALIZER`] from claim `key` if it is not allocated (an allocated claim keeps
/// it: someone else's allocation needs it). A claim that is gone needs nothing.
async fn drop_finalizer(
    cx: &BindContext,
    api: &Api<ResourceClaim>,
    pod: &PodKey,
    key: ClaimKey,
) -> Result<(), BindError> {
    for _ in 0..MAX_CONFLICTS {
        let mut claim = match read(cx, api, pod, key).await {
            Ok(c) => c,
            Err(BindError::Refused { status: 404, .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        if claim.status.as_ref().is_some_and(|s| s.allocation.is_some()) || !has_finalizer(&claim) {
            return Ok(());
        }
        if let Some(finalizers) = claim.metadata.finalizers.as_mut() {
            finalizers.retain(|f| f != FINALIZER);
        }
        match write_claim(cx, api, pod, &claim).await {
            Ok(_) => return Ok(()),
            Err(BindError::Refused { status: 409, .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(BindError::Exhausted { pod: pod.clone(), last: format!("resourceclaim {key}: {MAX_CONFLICTS} conflicts") })
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
        let deallocated = users.is_empty();
        if deallocated {
            status.allocation = None;
        } else {
            status.reserved_for = Some(users);
        }
        match write_status(cx, &api, &key, &claim).await {
            Ok(()) if deallocated && w.finalized => return drop_finalizer(cx, &api, &key, w.claim).await,
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

/// Writes `claim` itself (its metadata: the API server keeps the status), guarded by the
/// resourceVersion it was read at. Returns the metadata written, when the answer decoded.
async fn write_claim(
    cx: &BindContext,
    api: &Api<ResourceClaim>,
    pod: &PodKey,
    claim: &ResourceClaim,
) -> Result<Option<ObjectMeta>, BindError> {
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    let key = format!("{}/{name}", api.namespace().unwrap_or_default());
    let written = retry(cx, pod, || async {
        match api.replace(name, &PostParams::default(), claim).await {
            Ok(c) => Attempt::Done(Some(c.metadata)),
            Err(kube::Error::Api(r)) => Attempt::from_status(r.code, None, r.message),
            // Accepted (2xx), only the answer did not decode: written all the same.
            Err(kube::Error::SerdeError(_)) => Attempt::Done(None),
            Err(e) => Attempt::Transient(e.to_string(), None),
        }
    })
    .await;
    match written {
        Err(BindError::Gone(_)) => Err(refused(pod, 404, format!("resourceclaim {key} is gone"))),
        Err(BindError::Refused { status, message, .. }) => {
            Err(refused(pod, status, format!("writing resourceclaim {key}: {message}")))
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

/// Which devices of an allocation are shared, and of which claim: what a result's `shareID`
/// is made from.
pub struct Sharing<'a> {
    /// The claim's uid (or `namespace/name`), see [`share_id`].
    pub claim: &'a str,
    /// Whether a device allows multiple allocations (`allowMultipleAllocations`).
    pub shared: &'a dyn Fn(&DeviceId) -> bool,
}

impl std::fmt::Debug for Sharing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharing").field("claim", &self.claim).finish_non_exhaustive()
    }
}

/// The `status.allocation` for `chosen` with `node_selector`, as upstream's allocator writes
/// it. The classes' configuration comes first in the model's allocation and the claim's own
/// last, so the last as many entries as the pod's claim spec has are `FromClaim`, the others
/// `FromClass`. A device that `sharing` says is shared, or whose allocation consumes some of
/// its capacity, gets `consumedCapacity` and a `shareID` ([`device_result`]).
pub fn allocation_result(
    chosen: &ClaimAllocation,
    pod: &Pod,
    node_selector: Option<NodeSelector>,
    sharing: &Sharing<'_>,
) -> AllocationResult {
    let from_claim = pod
        .claims
        .iter()
        .find(|pc| pc.key == chosen.claim)
        .and_then(|pc| pc.spec.as_ref().ok())
        .map_or(0, |spec| spec.config.len())
        .min(chosen.config.len());
    let from_class = chosen.config.len() - from_claim;
    let results = chosen.devices.iter().map(|d| device_result(d, sharing)).collect();
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

/// One device's result. A shared one (by `sharing`, or because its allocation consumes
/// capacity) carries its `consumedCapacity`, each name as the device publishes it (without the
/// driver's domain, which [`AllocatedDevice::consumed`] qualifies it with), and its
/// [`share_id`].
pub fn device_result(d: &AllocatedDevice, sharing: &Sharing<'_>) -> DeviceRequestAllocationResult {
    let shared = (sharing.shared)(&d.device) || !d.consumed.is_empty();
    let consumed = d.consumed.iter().map(|(name, &milli)| (published_name(d.device.driver, name), quantity(milli)));
    DeviceRequestAllocationResult {
        request: d.request.to_string(),
        driver: d.device.driver.to_string(),
        pool: d.device.pool.to_string(),
        device: d.device.device.to_string(),
        admin_access: d.admin_access.then_some(true),
        consumed_capacity: (!d.consumed.is_empty()).then(|| consumed.collect()),
        share_id: shared.then(|| share_id(sharing.claim, &d.request, &d.device)),
        ..Default::default()
    }
}

/// A qualified capacity name as a device of `driver` publishes it: without the driver's
/// domain when it is the driver's.
fn published_name(driver: Sym, name: &str) -> String {
    name.strip_prefix(driver.as_str()).and_then(|rest| rest.strip_prefix('/')).unwrap_or(name).to_string()
}

/// `milli` thousandths as a quantity that parses back to exactly them: whole units with the
/// largest binary or decimal suffix that divides them (`80Gi`, `30G`), else `<milli>m`.
pub fn quantity(milli: i64) -> Quantity {
    if milli % 1000 != 0 {
        return Quantity(format!("{milli}m"));
    }
    let units = milli / 1000;
    if units == 0 {
        return Quantity("0".into());
    }
    const SUFFIXES: [(&str, i64); 12] = [
        ("Ei", 1 << 60),
        ("E", 1_000_000_000_000_000_000),
        ("Pi", 1 << 50),
        ("P", 1_000_000_000_000_000),
        ("Ti", 1 << 40),
        ("T", 1_000_000_000_000),
        ("Gi", 1 << 30),
        ("G", 1_000_000_000),
        ("Mi", 1 << 20),
        ("M", 1_000_000),
        ("Ki", 1 << 10),
        ("k", 1_000),
    ];
    match SUFFIXES.iter().find(|(_, size)| units % size == 0) {
        Some((suffix, size)) => Quantity(format!("{}{suffix}", units / size)),
        None => Quantity(units.to_string()),
    }
}

/// The `shareID` of the allocation of `device` for `request` of the claim `claim` (its uid,
/// or `namespace/name`): upstream validates it as a UUID in normalized form (lowercase hex,
/// `8-4-4-4-12`), and upstream's allocator draws a random one. This one is derived from
/// what it identifies (a 128-bit FNV-1a hash, with the version and variant bits of an
/// RFC 9562 version 8 UUID), so that a PreBind retried after a conflict writes the same id,
/// and two allocations of one device differ (they differ in claim or request).
pub fn share_id(claim: &str, request: &str, device: &DeviceId) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let text = format!("{claim}\n{request}\n{device}");
    let mut hash = OFFSET;
    for b in text.bytes() {
        hash ^= u128::from(b);
        hash = hash.wrapping_mul(PRIME);
    }
    // Version 8 (custom) and the RFC variant.
    hash = (hash & !(0xf << 76)) | (0x8 << 76);
    hash = (hash & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{hash:032x}");
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
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
