//! The compact, immutable model of nodes and pods that plugins read.
//!
//! Built once per object from the Kubernetes types (see `tessera-scheduler`'s `ingest`), so that
//! Filter and Score never parse a quantity, hash a string or walk a container list.

use std::fmt;
use std::sync::Arc;

use crate::default_selector::ControllerRef;
use crate::dra::inventory::NodeDevices;
use crate::dra::model::PodClaim;
use crate::gpu_wiring::GpuWiring;
use crate::intern::Sym;
use crate::labels::{LabelSelector, LabelSet, NodeSelector, NodeSelectorTerm};
use crate::plugins::volumes::model::PodVolume;
use crate::resources::ResourceVec;

/// Default CPU request assumed for scoring a container that requests none (upstream: 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Default memory request assumed for scoring a container that requests none (upstream: 200Mi).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A node: what it offers and how it is labelled and tainted.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// `metadata.name`.
    pub name: Sym,
    /// `metadata.labels`.
    pub labels: LabelSet,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// `status.allocatable`, without `pods`.
    pub allocatable: ResourceVec,
    /// `status.allocatable.pods`.
    pub allowed_pods: u32,
    /// `status.images`: image names with their sizes in bytes, for ImageLocality.
    pub images: Vec<(Arc<str>, i64)>,
    /// The node's GPUs, in device order.
    pub gpus: Vec<Gpu>,
    /// The DRA devices local to the node (from its ResourceSlices).
    pub devices: Arc<NodeDevices>,
}

/// One GPU of a node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Gpu {
    /// The GPU model (`A100`, `V100M32`, `G2`).
    pub model: Sym,
    /// The NVLink island (GPUs of one island talk over NVLink); 0 when unknown.
    pub island: u16,
    /// How the node's GPUs are wired (NVLink links, PCIe roots, NUMA nodes): the same `Arc`
    /// on every GPU of the node, and on every node wired alike. `None`: nothing is known
    /// beyond the islands, and whole GPUs go to the lowest free indices of one island.
    pub wiring: Option<Arc<GpuWiring>>,
}

impl Gpu {
    /// A GPU of `model` in NVLink island `island`, with no wiring known.
    pub fn new(model: Sym, island: u16) -> Gpu {
        Gpu { model, island, wiring: None }
    }
}

/// Milli-GPU in one whole GPU.
pub const GPU_MILLI: u32 = 1000;

/// What a pod asks of GPUs: `count` GPUs with `milli` thousandths of each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GpuRequest {
    /// How many GPUs.
    pub count: u32,
    /// Thousandths of each GPU (1000 = whole GPUs; less = a shared GPU).
    pub milli: u32,
    /// Acceptable GPU models; empty accepts any.
    pub models: Vec<Sym>,
}

impl GpuRequest {
    /// The request in milli-GPU.
    pub fn total_milli(&self) -> u64 {
        u64::from(self.count) * u64::from(self.milli)
    }

    /// Whether GPUs of `model` are acceptable.
    pub fn accepts(&self, model: Sym) -> bool {
        self.models.is_empty() || self.models.contains(&model)
    }
}

/// A taint effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    /// Do not schedule pods that do not tolerate it.
    NoSchedule,
    /// Try not to schedule pods that do not tolerate it.
    PreferNoSchedule,
    /// Do not schedule, and evict running pods that do not tolerate it.
    NoExecute,
}

impl TaintEffect {
    /// Parses an upstream effect name.
    pub fn parse(s: &str) -> Option<TaintEffect> {
        Some(match s {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            _ => return None,
        })
    }
}

/// A node taint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Taint {
    /// The key.
    pub key: Sym,
    /// The value (empty symbol when none).
    pub value: Sym,
    /// The effect.
    pub effect: TaintEffect,
}

/// A toleration operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TolerationOperator {
    /// Key and value must match.
    Equal,
    /// Key must match (an empty key matches every key).
    Exists,
}

/// A pod toleration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Toleration {
    /// The key; `None` with `Exists` tolerates everything.
    pub key: Option<Sym>,
    /// The operator.
    pub operator: TolerationOperator,
    /// The value for `Equal`.
    pub value: Sym,
    /// The effect; `None` matches every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Whether this toleration tolerates `taint` (upstream `ToleratesTaint`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if self.key.is_some_and(|k| k != taint.key) {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => true,
            TolerationOperator::Equal => self.value == taint.value,
        }
    }
}

/// A host port a container asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host IP; `None` stands for 0.0.0.0 (every address).
    pub ip: Option<Sym>,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: Sym,
    /// The port.
    pub port: u16,
}

impl HostPort {
    /// Whether two host ports collide (upstream `HostPortInfo` semantics: same protocol and
    /// port, and either IP is the wildcard or both are equal).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip.is_none() || other.ip.is_none() || self.ip == other.ip)
    }
}

/// What a spread constraint does when it cannot be satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WhenUnsatisfiable {
    /// A Filter: the pod stays pending.
    DoNotSchedule,
    /// A Score: placement is only preferred.
    ScheduleAnyway,
}

/// Whether a node's affinity or taints are honoured when counting spread domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InclusionPolicy {
    /// Only nodes the pod could go to (by affinity, or by taints) count.
    Honor,
    /// Every node counts.
    Ignore,
}

/// A `topologySpreadConstraints` entry, with `matchLabelKeys` already folded into the selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpreadConstraint {
    /// `maxSkew`.
    pub max_skew: i32,
    /// `topologyKey`.
    pub topology_key: Sym,
    /// `whenUnsatisfiable`.
    pub when_unsatisfiable: WhenUnsatisfiable,
    /// `labelSelector`; `None` matches no pod.
    pub selector: Option<LabelSelector>,
    /// `minDomains`.
    pub min_domains: Option<i32>,
    /// `nodeAffinityPolicy` (default Honor).
    pub node_affinity_policy: InclusionPolicy,
    /// `nodeTaintsPolicy` (default Ignore).
    pub node_taints_policy: InclusionPolicy,
}

/// Which namespaces an affinity term looks at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamespaceScope {
    /// Explicit `namespaces`; with no selector and an empty list, the pod's own namespace.
    pub names: Vec<Sym>,
    /// `namespaceSelector`; `Some(empty)` selects every namespace.
    pub selector: Option<LabelSelector>,
}

/// A pod (anti-)affinity term.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AffinityTerm {
    /// `labelSelector` (with `matchLabelKeys`/`mismatchLabelKeys` folded in); `None` matches
    /// no pod.
    pub selector: Option<LabelSelector>,
    /// The namespaces the term looks in.
    pub namespaces: NamespaceScope,
    /// `topologyKey`.
    pub topology_key: Sym,
}

/// A preferred term with its weight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WeightedAffinityTerm {
    /// `weight` (1–100).
    pub weight: i32,
    /// The term.
    pub term: AffinityTerm,
}

/// Pod affinity or anti-affinity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodAffinity {
    /// `requiredDuringSchedulingIgnoredDuringExecution`.
    pub required: Vec<AffinityTerm>,
    /// `preferredDuringSchedulingIgnoredDuringExecution`.
    pub preferred: Vec<WeightedAffinityTerm>,
}

impl PodAffinity {
    /// Whether there are no terms.
    pub fn is_empty(&self) -> bool {
        self.required.is_empty() && self.preferred.is_empty()
    }
}

/// A pod, reduced to what scheduling reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Pod {
    /// `metadata.namespace`.
    pub namespace: Sym,
    /// `metadata.name`.
    pub name: Arc<str>,
    /// `metadata.uid` (empty when unknown, as in a simulator input).
    pub uid: Arc<str>,
    /// `metadata.labels`.
    pub labels: LabelSet,
    /// Effective requests: the larger of the containers' sum (with restartable init containers,
    /// i.e. sidecars) and the largest init container, plus pod overhead.
    pub requests: ResourceVec,
    /// As `requests`, but CPU and memory of containers that request none count as the upstream
    /// defaults (100m, 200Mi): the amount scoring plugins use.
    pub non_zero_requests: ResourceVec,
    /// `spec.nodeName` when the pod names its node.
    pub node_name: Option<Sym>,
    /// `spec.nodeSelector`.
    pub node_selector: LabelSet,
    /// Required node affinity.
    pub required_node_affinity: Option<NodeSelector>,
    /// Preferred node affinity terms with weights.
    pub preferred_node_affinity: Vec<(i32, NodeSelectorTerm)>,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// Host ports of every container.
    pub host_ports: Vec<HostPort>,
    /// Resolved priority.
    pub priority: i32,
    /// `spec.priorityClassName` (empty when none), for reports per class.
    pub priority_class: Sym,
    /// `spec.preemptionPolicy`.
    pub preemption_policy: PreemptionPolicy,
    /// `spec.schedulerName`.
    pub scheduler_name: Sym,
    /// `spec.topologySpreadConstraints`.
    pub spread_constraints: Vec<SpreadConstraint>,
    /// `spec.affinity.podAffinity`.
    pub pod_affinity: PodAffinity,
    /// `spec.affinity.podAntiAffinity`.
    pub pod_anti_affinity: PodAffinity,
    /// Container images, for ImageLocality.
    pub images: Vec<Arc<str>>,
    /// GPUs the pod needs, if any.
    pub gpu: Option<GpuRequest>,
    /// The GPUs a bound pod holds (a bit set of device indices), as recorded on it when it was
    /// bound (`tessera.io/gpu-ids`), so that a restart puts it back on the same devices.
    pub gpu_ids: Option<u64>,
    /// The pod group (gang) the pod belongs to, if any.
    pub pod_group: Option<Sym>,
    /// `spec.resourceClaims`, resolved to their ResourceClaims (DRA).
    pub claims: Vec<PodClaim>,
    /// `spec.schedulingGates` names, in order: while any remain, the SchedulingGates plugin
    /// keeps the pod out of the queue (PreEnqueue); empty for a pod free to be scheduled.
    pub scheduling_gates: Vec<Arc<str>>,
    /// `spec.volumes` that the volume plugins read: PersistentVolumeClaims (ephemeral ones
    /// too) and the inline disks VolumeRestrictions checks; other kinds are left out.
    pub volumes: Vec<PodVolume>,
    /// The ReplicationController, ReplicaSet or StatefulSet that controls the pod, whose
    /// selector joins its default spreading selector ([`crate::default_selector`]).
    pub controller: Option<ControllerRef>,
    /// Creation time in seconds since an arbitrary epoch; orders pods of equal priority.
    pub creation_s: f64,
}

impl Pod {
    /// A pod with the given name and requests and every other field empty: the start of a
    /// builder chain in tests and synthetic workloads.
    pub fn new(namespace: &str, name: &str, requests: ResourceVec) -> Pod {
        Pod {
            namespace: Sym::new(namespace),
            name: Arc::from(name),
            uid: Arc::from(""),
            labels: LabelSet::default(),
            non_zero_requests: non_zero(requests.clone()),
            requests,
            node_name: None,
            node_selector: LabelSet::default(),
            required_node_affinity: None,
            preferred_node_affinity: Vec::new(),
            tolerations: Vec::new(),
            host_ports: Vec::new(),
            priority: 0,
            priority_class: Sym::new(""),
            preemption_policy: PreemptionPolicy::PreemptLowerPriority,
            scheduler_name: Sym::new("tessera"),
            spread_constraints: Vec::new(),
            pod_affinity: PodAffinity::default(),
            pod_anti_affinity: PodAffinity::default(),
            images: Vec::new(),
            gpu: None,
            gpu_ids: None,
            pod_group: None,
            claims: Vec::new(),
            scheduling_gates: Vec::new(),
            volumes: Vec::new(),
            controller: None,
            creation_s: 0.0,
        }
    }

    /// `namespace/name`, as events and messages print a pod.
    pub fn key(&self) -> PodKey {
        PodKey { namespace: self.namespace, name: self.name.clone() }
    }

    /// The gang the pod belongs to, if any.
    pub fn group_key(&self) -> Option<GroupKey> {
        self.pod_group.map(|name| GroupKey { namespace: self.namespace, name })
    }

    /// Whether the pod has constraints that depend on pods on *other* nodes (spread,
    /// inter-pod affinity, or PersistentVolumeClaims, whose volumes another pod's placement
    /// may take and whose ReadWriteOncePod mode another pod's use forbids): such a placement
    /// can be invalidated without its node changing.
    pub fn has_cross_node_constraints(&self) -> bool {
        !self.spread_constraints.is_empty()
            || !self.pod_affinity.required.is_empty()
            || !self.pod_anti_affinity.required.is_empty()
            || self.has_claims()
    }

    /// Whether some volume of the pod is a PersistentVolumeClaim.
    pub fn has_claims(&self) -> bool {
        self.volumes.iter().any(|v| v.claim().is_some())
    }
}

/// Whether a pod may preempt others (`spec.preemptionPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PreemptionPolicy {
    /// It may evict pods of lower priority to make room (the default).
    #[default]
    PreemptLowerPriority,
    /// It waits for room like any pod, only ahead of lower priorities in the queue.
    Never,
}

/// Replaces zero CPU and memory requests with the upstream scoring defaults. Applied to the
/// pod total; `ingest` applies it per container, which is what upstream does.
pub fn non_zero(mut requests: ResourceVec) -> ResourceVec {
    use crate::resources::ResourceId;
    if requests.get(ResourceId::CPU) == 0 {
        requests.set(ResourceId::CPU, DEFAULT_MILLI_CPU_REQUEST);
    }
    if requests.get(ResourceId::MEMORY) == 0 {
        requests.set(ResourceId::MEMORY, DEFAULT_MEMORY_REQUEST);
    }
    requests
}

/// A pod's identity: `namespace/name`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    /// The namespace.
    pub namespace: Sym,
    /// The name.
    pub name: Arc<str>,
}

impl PodKey {
    /// Builds a key from strings.
    pub fn new(namespace: &str, name: &str) -> PodKey {
        PodKey { namespace: Sym::new(namespace), name: Arc::from(name) }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl fmt::Debug for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A gang's identity: `namespace/name` of its PodGroup (a pod names the group in its own
/// namespace).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// The namespace.
    pub namespace: Sym,
    /// The PodGroup's name.
    pub name: Sym,
}

impl GroupKey {
    /// Builds a key from strings.
    pub fn new(namespace: &str, name: &str) -> GroupKey {
        GroupKey { namespace: Sym::new(namespace), name: Sym::new(name) }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Which API a PodGroup came from. All read into one [`PodGroup`]; pods join any the same way
/// as far as scheduling goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodGroupApi {
    /// Kubernetes' own `scheduling.k8s.io/v1alpha3` PodGroup (pods join through
    /// `spec.schedulingGroup.podGroupName`).
    Kubernetes,
    /// scheduler-plugins coscheduling, `scheduling.x-k8s.io/v1alpha1` (pods join through the
    /// label `scheduling.x-k8s.io/pod-group`).
    Coscheduling,
    /// Volcano, `scheduling.volcano.sh/v1beta1` (pods join through the annotation
    /// `scheduling.k8s.io/group-name`). Only the simulator reads it; `tessera run` does not
    /// watch Volcano's PodGroups.
    Volcano,
}

/// The most members a gang may require: far above any real training job, low enough that a
/// typo (`minMember: 1000000000`) is caught as one.
pub const MAX_MIN_COUNT: u32 = 100_000;

/// A gang: at least `min_count` of its pods are placed together or none is.
#[derive(Clone, Debug, PartialEq)]
pub struct PodGroup {
    /// `namespace/name`.
    pub key: GroupKey,
    /// The API it came from.
    pub api: PodGroupApi,
    /// Members that must be placed together: `gang.minCount` / `minMember`; 1 for a `basic`
    /// policy (no gang semantics).
    pub min_count: u32,
    /// Every member must land in one domain of this node label
    /// (`spec.schedulingConstraints.topology[].key`).
    pub topology_key: Option<Sym>,
    /// How long the gang may try before it backs off as timed out (`scheduleTimeoutSeconds`).
    pub schedule_timeout_s: Option<f64>,
    /// The group's priority, when it sets one; it orders the gang in the queue.
    pub priority: Option<i32>,
    /// The least the cluster must have free before the gang is tried (`minResources`).
    pub min_resources: Option<ResourceVec>,
    /// Whether preemption may evict its members one by one or only all together.
    pub disruption: DisruptionMode,
}

/// How preemption may evict the members of a group (`spec.disruptionMode` of Kubernetes'
/// PodGroup).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DisruptionMode {
    /// All its placed members together, or none: evicting part of a gang wastes what the rest
    /// holds. Kubernetes' `disruptionMode.all`, and always for scheduler-plugins' and
    /// Volcano's PodGroups, which have no such field and mean a gang.
    #[default]
    All,
    /// Each member on its own: Kubernetes' `disruptionMode.single`, its default.
    Single,
}

impl PodGroup {
    /// A gang of `min_count` with nothing else set, as tests and synthetic workloads start.
    pub fn new(namespace: &str, name: &str, min_count: u32) -> PodGroup {
        PodGroup {
            key: GroupKey::new(namespace, name),
            api: PodGroupApi::Kubernetes,
            min_count,
            topology_key: None,
            schedule_timeout_s: None,
            priority: None,
            min_resources: None,
            disruption: DisruptionMode::All,
        }
    }
}
