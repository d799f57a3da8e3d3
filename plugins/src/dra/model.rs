//! DRA objects (`resource.k8s.io/v1`) reduced to what allocation reads: devices with their
//! attributes and capacity, the classes and requests that select them, and the allocations
//! that hold them.
//!
//! Built by `tessera-scheduler`'s ingest from the API types; CEL selectors arrive compiled
//! ([`Selector`]) and classes arrive resolved into the requests that name them, so the
//! allocator never looks anything up by name and never parses.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::dra::cel::Selector;
use crate::intern::Sym;
use crate::labels::NodeSelector;
use crate::model::TaintEffect;

/// A typed device attribute value (`DeviceAttribute`: exactly one of its fields is set).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrValue {
    /// `int`.
    Int(i64),
    /// `bool`.
    Bool(bool),
    /// `string`.
    String(Arc<str>),
    /// `version`: a semantic version string (`1.2.3`).
    Version(Arc<str>),
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::String(s) | AttrValue::Version(s) => write!(f, "{s}"),
        }
    }
}

/// A device capacity: the quantity as written (CEL's `quantity` type keeps it) and its value
/// in milli-units, which comparisons and consumable capacity use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Capacity {
    /// As written (`80Gi`).
    pub text: Arc<str>,
    /// In milli-units (upstream `MilliValue()`).
    pub milli: i64,
    /// `requestPolicy`: how much of it one allocation of a device that allows multiple
    /// allocations consumes.
    pub policy: Option<Arc<CapacityPolicy>>,
}

impl Capacity {
    /// What one allocation of a device allowing multiple allocations consumes of this
    /// capacity when its request asks `requested` (`None`: the request does not name it), or
    /// `None` when the policy cannot grant it (upstream's `calculateConsumedCapacity`): without
    /// a policy, what is asked, or the whole capacity; with one, the policy's default when not
    /// asked, else the smallest valid value at least as large, or the amount rounded up into
    /// the valid range.
    pub fn consumption(&self, requested: Option<i64>) -> Option<i64> {
        let Some(policy) = &self.policy else { return Some(requested.unwrap_or(self.milli)) };
        let Some(asked) = requested else { return Some(policy.default.unwrap_or(self.milli)) };
        if !policy.valid_values.is_empty() {
            return policy.valid_values.iter().copied().find(|&v| v >= asked);
        }
        let Some(range) = &policy.valid_range else { return Some(asked) };
        let mut amount = asked.max(range.min);
        if let Some(step) = range.step.filter(|&s| s > 0) {
            let over = (amount - range.min) % step;
            if over != 0 {
                amount = amount.checked_add(step - over)?;
            }
        }
        range.max.is_none_or(|max| amount <= max).then_some(amount)
    }
}

/// `DeviceCapacity.requestPolicy`, in milli-units.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapacityPolicy {
    /// `default`: consumed by a request that does not name the capacity.
    pub default: Option<i64>,
    /// `validValues`, ascending.
    pub valid_values: Vec<i64>,
    /// `validRange`.
    pub valid_range: Option<CapacityRange>,
}

/// `CapacityRequestPolicyRange`, in milli-units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapacityRange {
    /// `min`: a smaller request is raised to it.
    pub min: i64,
    /// `max`: a larger (rounded) request cannot be granted.
    pub max: Option<i64>,
    /// `step`: a request is rounded up to `min + n * step`.
    pub step: Option<i64>,
}

/// A named set of counters a pool's partitionable devices draw on (`CounterSet`, in a
/// ResourceSlice's `sharedCounters`): a device takes its share when allocated, and devices
/// whose shares would exceed a counter cannot all be allocated (the partitions of one GPU).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CounterSet {
    /// `name`, unique in the pool.
    pub name: Sym,
    /// `counters`: name to value, in milli-units.
    pub counters: BTreeMap<Arc<str>, i64>,
}

/// What a device draws on a counter set of its pool when allocated (`consumesCounters`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CounterConsumption {
    /// `counterSet`.
    pub counter_set: Sym,
    /// `counters`: name to amount, in milli-units.
    pub counters: BTreeMap<Arc<str>, i64>,
}

/// A taint on a device (`DeviceTaint`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeviceTaint {
    /// `key`.
    pub key: Sym,
    /// `value` (empty symbol when none).
    pub value: Sym,
    /// `effect`: NoSchedule or NoExecute (both keep untolerating claims off the device).
    pub effect: TaintEffect,
}

/// A toleration of device taints in a request (`DeviceToleration`), with the node
/// toleration's semantics.
pub type DeviceToleration = crate::model::Toleration;

/// One device a driver publishes.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// Process-unique: caches of selector results are keyed by it, and a device republished
    /// in a new slice generation gets a new one.
    pub uid: u64,
    /// `name`, unique within its pool.
    pub name: Sym,
    /// The driver (`gpu.nvidia.com`).
    pub driver: Sym,
    /// The pool.
    pub pool: Sym,
    /// `attributes`, keyed by fully qualified name (`gpu.nvidia.com/model`; a name without a
    /// domain is qualified with the driver's, as upstream's CEL environment does).
    pub attributes: BTreeMap<Arc<str>, AttrValue>,
    /// `capacity`, keyed by fully qualified name.
    pub capacity: BTreeMap<Arc<str>, Capacity>,
    /// `taints`.
    pub taints: Vec<DeviceTaint>,
    /// `allowMultipleAllocations`: several claims may hold the device (consumable capacity).
    pub allow_multiple_allocations: bool,
    /// `consumesCounters`: what it draws on its pool's counter sets when allocated.
    pub consumes_counters: Vec<CounterConsumption>,
}

impl Device {
    /// A new process-unique [`Device::uid`]: every device built anywhere takes its uid from
    /// here, so that selector caches never mistake one device for another.
    pub fn next_uid() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// `driver/pool/device`, as `placements.csv` and messages print a device.
    pub fn id(&self) -> DeviceId {
        DeviceId { driver: self.driver, pool: self.pool, device: self.name }
    }

    /// The attribute named `name` (fully qualified).
    pub fn attribute(&self, name: &str) -> Option<&AttrValue> {
        self.attributes.get(name)
    }
}

/// A device's identity in the cluster.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId {
    /// The driver.
    pub driver: Sym,
    /// The pool.
    pub pool: Sym,
    /// The device's name in the pool.
    pub device: Sym,
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.driver, self.pool, self.device)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Which nodes a slice's devices are reachable from.
#[derive(Clone, Debug, PartialEq)]
pub enum SliceNodes {
    /// `nodeName`: the devices are local to one node.
    Node(Sym),
    /// `nodeSelector`: reachable from every matching node.
    Selector(NodeSelector),
    /// `allNodes`.
    All,
}

/// A `ResourceSlice`.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceSlice {
    /// `metadata.name`.
    pub name: Arc<str>,
    /// `spec.driver`.
    pub driver: Sym,
    /// `spec.pool.name`.
    pub pool: Sym,
    /// `spec.pool.generation`: only slices of a pool's newest generation count.
    pub generation: i64,
    /// `spec.pool.resourceSliceCount`: a pool with fewer slices seen is incomplete and unused.
    pub slice_count: u32,
    /// Where the devices can be used from.
    pub nodes: SliceNodes,
    /// `spec.devices`.
    pub devices: Vec<Arc<Device>>,
    /// `spec.sharedCounters` (a slice has these or devices, not both).
    pub shared_counters: Vec<CounterSet>,
}

/// A `DeviceClass`, with its selectors compiled.
#[derive(Clone, Debug)]
pub struct DeviceClass {
    /// `metadata.name`.
    pub name: Sym,
    /// `spec.selectors[].cel.expression`, compiled: a device of the class satisfies all.
    pub selectors: Vec<Arc<Selector>>,
    /// `spec.config[].opaque`, copied into the allocation result.
    pub config: Vec<OpaqueConfig>,
}

/// Opaque driver configuration (`DeviceConfiguration.opaque`), passed through.
#[derive(Clone, Debug, PartialEq)]
pub struct OpaqueConfig {
    /// `driver`.
    pub driver: Sym,
    /// `parameters`, as JSON text.
    pub parameters: Arc<str>,
    /// `requests` it applies to; empty means all.
    pub requests: Vec<Arc<str>>,
}

/// How many devices a request wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocationMode {
    /// `ExactCount` with `count`.
    ExactCount(u32),
    /// `All`: every matching device of the node (at least one), all of them free.
    All,
}

/// What one request (or sub-request) asks for: `ExactDeviceRequest` / `DeviceSubRequest`.
#[derive(Clone, Debug)]
pub struct ExactRequest {
    /// The class, resolved.
    pub class: Arc<DeviceClass>,
    /// `selectors`, compiled; a device must satisfy the class's and these.
    pub selectors: Vec<Arc<Selector>>,
    /// `allocationMode` and `count`.
    pub mode: AllocationMode,
    /// `adminAccess`: the devices are granted even if already allocated, and stay free for
    /// others.
    pub admin_access: bool,
    /// `tolerations` of device taints.
    pub tolerations: Vec<DeviceToleration>,
    /// `capacity.requests` on consumable-capacity devices, by qualified name, in milli-units.
    pub capacity: BTreeMap<Arc<str>, i64>,
}

/// One `DeviceRequest`.
#[derive(Clone, Debug)]
pub struct DeviceRequest {
    /// `name`, referenced by constraints and in the result.
    pub name: Arc<str>,
    /// `exactly`, or `firstAvailable` sub-requests tried in order.
    pub kind: RequestKind,
}

/// The two shapes of a request.
#[derive(Clone, Debug)]
pub enum RequestKind {
    /// `exactly`.
    Exactly(ExactRequest),
    /// `firstAvailable`: the first sub-request (name, request) that can be satisfied wins.
    FirstAvailable(Vec<(Arc<str>, ExactRequest)>),
}

/// A `DeviceConstraint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Constraint {
    /// `matchAttribute`: every device of `requests` (all requests when empty) has the
    /// attribute, with one value.
    MatchAttribute {
        /// `requests` (a sub-request is named `request/sub`).
        requests: Vec<Arc<str>>,
        /// The fully qualified attribute.
        attribute: Arc<str>,
    },
    /// `distinctAttribute`: every device of `requests` has the attribute, with pairwise
    /// distinct values.
    DistinctAttribute {
        /// As for `MatchAttribute`.
        requests: Vec<Arc<str>>,
        /// The fully qualified attribute.
        attribute: Arc<str>,
    },
}

/// A claim's `spec.devices`, resolved and compiled. Shared (`Arc`) by every claim made from
/// one template, which is what lets pods of one workload share Filter work.
#[derive(Clone, Debug)]
pub struct ClaimSpec {
    /// `requests`.
    pub requests: Vec<DeviceRequest>,
    /// `constraints`.
    pub constraints: Vec<Constraint>,
    /// `config[].opaque`, with the classes' config prepended in the result.
    pub config: Vec<OpaqueConfig>,
}

/// A `ResourceClaim`'s identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClaimKey {
    /// The namespace.
    pub namespace: Sym,
    /// The name.
    pub name: Sym,
}

impl ClaimKey {
    /// Builds a key from strings.
    pub fn new(namespace: &str, name: &str) -> ClaimKey {
        ClaimKey { namespace: Sym::new(namespace), name: Sym::new(name) }
    }
}

impl fmt::Display for ClaimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl fmt::Debug for ClaimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// One device of an allocation result (`DeviceRequestAllocationResult`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AllocatedDevice {
    /// The request it satisfies (`request` or `request/sub`).
    pub request: Arc<str>,
    /// The device.
    pub device: DeviceId,
    /// Granted with `adminAccess`: does not hold the device.
    pub admin_access: bool,
    /// `consumedCapacity`: what the allocation takes of a device that allows multiple
    /// allocations, by qualified capacity name, in milli-units (empty for other devices).
    pub consumed: BTreeMap<Arc<str>, i64>,
}

/// A claim's allocation (`AllocationResult`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimAllocation {
    /// The claim.
    pub claim: ClaimKey,
    /// The devices, in request order.
    pub devices: Vec<AllocatedDevice>,
    /// The node the devices are local to (`nodeSelector` matching that node's name); `None`
    /// when every device comes from a slice for a `nodeSelector` or `allNodes`, whose nodes
    /// then all reach the allocation.
    pub node: Option<Sym>,
    /// The classes' and the claim's opaque config, in that order.
    pub config: Vec<OpaqueConfig>,
}

/// Why a pod's claim cannot be allocated at all, whatever the node: the pod stays pending with
/// this reason, naming the object and request.
pub type ClaimProblem = Arc<str>;

/// One entry of `pod.spec.resourceClaims`, resolved to its `ResourceClaim`.
#[derive(Clone, Debug)]
pub struct PodClaim {
    /// The entry's `name` in the pod.
    pub name: Sym,
    /// The claim (`resourceClaimName`, or the one made from `resourceClaimTemplateName`).
    pub key: ClaimKey,
    /// The claim's spec, or why there is none usable (missing claim, template or class; a
    /// selector that does not compile).
    pub spec: Result<Arc<ClaimSpec>, ClaimProblem>,
    /// Other pods may use the claim too: a claim named directly, not made for this pod.
    pub shared: bool,
    /// The allocation the claim's status already records, if any.
    pub allocation: Option<Arc<ClaimAllocation>>,
    /// The PodGroup whose claim this is (the group's `spec.resourceClaims` entry the pod's
    /// entry matches): every pod of the group shares it, and `reservedFor` names the group
    /// rather than each pod.
    pub group: Option<Arc<ClaimGroup>>,
}

/// The PodGroup a claim is reserved for (`scheduling.k8s.io` PodGroup `resourceClaims`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClaimGroup {
    /// The PodGroup's name (in the claim's namespace).
    pub name: Sym,
    /// Its `metadata.uid`, which `reservedFor` records (empty in the simulator).
    pub uid: Arc<str>,
}

impl PartialEq for PodClaim {
    /// Equal when they name the same claim with the same (pointer-equal) spec and allocation:
    /// pods of one template compare equal per entry only through [`PodClaim::same_needs`].
    fn eq(&self, other: &PodClaim) -> bool {
        self.name == other.name && self.key == other.key && self.same_needs(other)
    }
}

impl PodClaim {
    /// Whether two entries ask a node the same: the same spec (one template's claims share
    /// it), neither shared nor allocated yet. Shared or allocated claims depend on where the
    /// claim is held, so they are equal only for the same claim.
    pub fn same_needs(&self, other: &PodClaim) -> bool {
        let spec = match (&self.spec, &other.spec) {
            (Ok(a), Ok(b)) => Arc::ptr_eq(a, b),
            (Err(a), Err(b)) => a == b,
            _ => false,
        };
        spec && (!(self.held() || other.held()) || (self.key == other.key && self.allocation == other.allocation))
    }

    /// Whether where the claim is held matters (shared or allocated already).
    fn held(&self) -> bool {
        self.shared || self.allocation.is_some()
    }

    /// Hashes what [`PodClaim::same_needs`] compares: equal needs, equal hashes.
    pub fn hash_needs<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        match &self.spec {
            Ok(spec) => (Arc::as_ptr(spec) as usize).hash(h),
            Err(problem) => problem.hash(h),
        }
        if self.held() {
            self.key.hash(h);
        }
    }
}
