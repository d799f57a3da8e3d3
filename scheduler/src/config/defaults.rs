//! Upstream's defaults: scalar settings and the default `multiPoint` plugin list.

/// `apiVersion` of the only configuration version accepted.
pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
/// `kind` of the document.
pub const KIND: &str = "KubeSchedulerConfiguration";
/// `schedulerName` given to a lone profile that does not name itself.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// `parallelism` when unset.
pub const DEFAULT_PARALLELISM: u32 = 16;
/// `podInitialBackoffSeconds` when unset.
pub const DEFAULT_POD_INITIAL_BACKOFF_SECONDS: u64 = 1;
/// `podMaxBackoffSeconds` when unset.
pub const DEFAULT_POD_MAX_BACKOFF_SECONDS: u64 = 10;

/// The default `multiPoint` list: upstream v1.37's (`getDefaultPlugins` with the default feature
/// gates, which put `DynamicResources` before `DefaultPreemption`), in order, with the score
/// weights upstream gives, plus Tessera's GpuTopology after NodeResourcesFit. The defaults of a profile are this list restricted to the names the
/// registry has, so a plugin Tessera adds later (DefaultPreemption, DynamicResources) joins the
/// defaults in upstream's position without touching this module.
pub const DEFAULT_MULTI_POINT: &[(&str, Option<i64>)] = &[
    ("SchedulingGates", None),
    ("PrioritySort", None),
    ("NodeUnschedulable", None),
    ("NodeName", None),
    ("TaintToleration", Some(3)),
    ("NodeAffinity", Some(2)),
    ("NodePorts", None),
    ("NodeResourcesFit", Some(1)),
    // Tessera's addition: GPU devices are checked right after resources, as counts are.
    ("GpuTopology", Some(1)),
    ("VolumeRestrictions", None),
    ("NodeVolumeLimits", None),
    ("VolumeBinding", None),
    ("VolumeZone", None),
    ("PodTopologySpread", Some(2)),
    ("InterPodAffinity", Some(2)),
    ("DynamicResources", None),
    ("DefaultPreemption", None),
    ("NodeResourcesBalancedAllocation", Some(1)),
    ("ImageLocality", Some(1)),
    ("DefaultBinder", None),
];

/// Upstream in-tree plugin names, including ones removed upstream that old configurations
/// still disable. Disabling one of these that Tessera lacks is a no-op worth a warning, not an
/// error: upstream configurations routinely disable them and should carry over.
pub const UPSTREAM_PLUGIN_NAMES: &[&str] = &[
    "SchedulingGates",
    "PrioritySort",
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "VolumeRestrictions",
    "NodeVolumeLimits",
    "EBSLimits",
    "GCEPDLimits",
    "AzureDiskLimits",
    "CinderLimits",
    "VolumeBinding",
    "VolumeZone",
    "PodTopologySpread",
    "InterPodAffinity",
    "DynamicResources",
    "DefaultPreemption",
    "NodeResourcesBalancedAllocation",
    "ImageLocality",
    "DefaultBinder",
    "SelectorSpread",
];
