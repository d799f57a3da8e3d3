//! The storage objects the volume plugins read, reduced to what scheduling needs: a pod's
//! volumes, PersistentVolumes, PersistentVolumeClaims, StorageClasses and CSINodes' attach
//! limits.
//!
//! Built by `tessera-scheduler`'s ingest, with the API's defaulting applied there (a claim's
//! class from the beta annotation, a class's binding mode `Immediate`, a volume's mode
//! `Filesystem`), so that Filter compares symbols and integers only.

use std::fmt;
use std::sync::Arc;

use crate::intern::Sym;
use crate::labels::{LabelSelector, LabelSet, NodeSelector, NodeSelectorTerm};

/// The label keys VolumeZone matches a volume's labels against a node's (upstream's
/// `topologyLabels`): the legacy beta keys first, then the GA ones.
pub const ZONE_LABELS: [&str; 4] = [
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
];

/// The provisioner name that means "no dynamic provisioning" (local volumes' classes).
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// A PersistentVolumeClaim's identity: `namespace/name`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PvcKey {
    /// The namespace.
    pub namespace: Sym,
    /// The name.
    pub name: Sym,
}

impl PvcKey {
    /// Builds a key from strings.
    pub fn new(namespace: &str, name: &str) -> PvcKey {
        PvcKey { namespace: Sym::new(namespace), name: Sym::new(name) }
    }
}

impl fmt::Display for PvcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl fmt::Debug for PvcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A set of access modes, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccessModes(u8);

impl AccessModes {
    /// `ReadWriteOnce`.
    pub const READ_WRITE_ONCE: AccessModes = AccessModes(1);
    /// `ReadOnlyMany`.
    pub const READ_ONLY_MANY: AccessModes = AccessModes(2);
    /// `ReadWriteMany`.
    pub const READ_WRITE_MANY: AccessModes = AccessModes(4);
    /// `ReadWriteOncePod`: one pod in the whole cluster may use the claim.
    pub const READ_WRITE_ONCE_POD: AccessModes = AccessModes(8);

    /// The mode named `s` as the API spells it.
    pub fn parse(s: &str) -> Option<AccessModes> {
        Some(match s {
            "ReadWriteOnce" => AccessModes::READ_WRITE_ONCE,
            "ReadOnlyMany" => AccessModes::READ_ONLY_MANY,
            "ReadWriteMany" => AccessModes::READ_WRITE_MANY,
            "ReadWriteOncePod" => AccessModes::READ_WRITE_ONCE_POD,
            _ => return None,
        })
    }

    /// The union of both sets.
    pub fn with(self, other: AccessModes) -> AccessModes {
        AccessModes(self.0 | other.0)
    }

    /// Whether every mode of `other` is in this set (upstream `CheckAccessModes`, a claim's
    /// modes against a volume's).
    pub fn contains(self, other: AccessModes) -> bool {
        self.0 & other.0 == other.0
    }
}

/// `volumeMode`: a volume and a claim bind only when they agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VolumeMode {
    /// A filesystem (the API's default).
    #[default]
    Filesystem,
    /// A raw block device.
    Block,
}

/// One of a pod's `spec.volumes` that some volume plugin looks at; the others (configMaps,
/// emptyDirs, ...) are left out at ingest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PodVolume {
    /// A PersistentVolumeClaim in the pod's namespace: `persistentVolumeClaim.claimName`, or
    /// for a generic ephemeral volume the claim its controller makes, `<pod>-<volume>`.
    Claim {
        /// The claim's name.
        claim: Sym,
        /// A generic ephemeral volume (whose claim the pod must own).
        ephemeral: bool,
    },
    /// `gcePersistentDisk`.
    GcePersistentDisk {
        /// `pdName`.
        pd_name: Sym,
        /// `readOnly`.
        read_only: bool,
    },
    /// `awsElasticBlockStore`.
    AwsElasticBlockStore {
        /// `volumeID`.
        volume_id: Sym,
    },
    /// `rbd`.
    Rbd {
        /// `monitors`.
        monitors: Arc<[Sym]>,
        /// `pool` (default `rbd`).
        pool: Sym,
        /// `image`.
        image: Sym,
        /// `readOnly`.
        read_only: bool,
    },
    /// `iscsi`.
    Iscsi {
        /// `iqn`.
        iqn: Sym,
        /// `readOnly`.
        read_only: bool,
    },
}

impl PodVolume {
    /// The claim's name, for a volume backed by a PersistentVolumeClaim.
    pub fn claim(&self) -> Option<Sym> {
        match self {
            PodVolume::Claim { claim, .. } => Some(*claim),
            _ => None,
        }
    }

    /// Whether two inline disks may not be mounted on one node at once (upstream
    /// `isVolumeConflict`): the same GCE PD or iSCSI disk unless both are read-only, the same
    /// EBS volume always, the same RBD image of an overlapping monitor set unless both are
    /// read-only.
    pub fn conflicts(&self, other: &PodVolume) -> bool {
        use PodVolume::*;
        match (self, other) {
            (GcePersistentDisk { pd_name: a, read_only: ra }, GcePersistentDisk { pd_name: b, read_only: rb }) => {
                a == b && !(*ra && *rb)
            }
            (AwsElasticBlockStore { volume_id: a }, AwsElasticBlockStore { volume_id: b }) => a == b,
            (Iscsi { iqn: a, read_only: ra }, Iscsi { iqn: b, read_only: rb }) => a == b && !(*ra && *rb),
            (
                Rbd { monitors: ma, pool: pa, image: ia, read_only: ra },
                Rbd { monitors: mb, pool: pb, image: ib, read_only: rb },
            ) => ma.iter().any(|m| mb.contains(m)) && pa == pb && ia == ib && !(*ra && *rb),
            _ => false,
        }
    }

    /// Whether VolumeRestrictions checks this volume for disk conflicts.
    pub fn is_inline_disk(&self) -> bool {
        !matches!(self, PodVolume::Claim { .. })
    }
}

/// A CSI volume's driver and handle: NodeVolumeLimits counts volumes per driver, one per
/// distinct handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CsiVolume {
    /// `csi.driver`.
    pub driver: Sym,
    /// `csi.volumeHandle`.
    pub handle: Sym,
}

/// A PersistentVolume.
#[derive(Clone, Debug, PartialEq)]
pub struct PersistentVolume {
    /// `metadata.name`.
    pub name: Sym,
    /// `metadata.labels`: VolumeZone reads the zone and region labels, a claim's selector
    /// all of them.
    pub labels: LabelSet,
    /// `spec.capacity.storage`, in bytes.
    pub capacity: i64,
    /// `spec.accessModes`.
    pub access_modes: AccessModes,
    /// `spec.volumeMode`.
    pub volume_mode: VolumeMode,
    /// `spec.storageClassName` (empty: no class).
    pub storage_class: Sym,
    /// `spec.nodeAffinity.required`: the nodes that can reach the volume.
    pub node_affinity: Option<NodeSelector>,
    /// `spec.claimRef`: the claim it is bound, or pre-bound, to.
    pub claim_ref: Option<PvcKey>,
    /// `spec.csi`, for a CSI volume.
    pub csi: Option<CsiVolume>,
    /// `status.phase` is `Available` (a volume listed without a status counts as available
    /// unless it names a claim): only such volumes are matched to new claims.
    pub available: bool,
    /// `metadata.deletionTimestamp` is set: never matched.
    pub deleting: bool,
}

impl PersistentVolume {
    /// Whether a node with these labels and this name can reach the volume (upstream
    /// `CheckNodeAffinity`; a volume without affinity is reachable everywhere).
    pub fn reachable_from(&self, labels: &LabelSet, node: Sym) -> bool {
        self.node_affinity.as_ref().is_none_or(|a| a.matches(labels, node))
    }
}

/// A PersistentVolumeClaim.
#[derive(Clone, Debug, PartialEq)]
pub struct PersistentVolumeClaim {
    /// `namespace/name`.
    pub key: PvcKey,
    /// `metadata.uid`, which an ephemeral volume's pod names as its owner.
    pub uid: Arc<str>,
    /// The uid of the controller that owns the claim (`metadata.ownerReferences`), if any.
    pub owner_uid: Option<Arc<str>>,
    /// The class: the beta annotation `volume.beta.kubernetes.io/storage-class`, else
    /// `spec.storageClassName` (empty: no class).
    pub storage_class: Sym,
    /// `spec.resources.requests.storage`, in bytes.
    pub request: i64,
    /// `spec.accessModes`.
    pub access_modes: AccessModes,
    /// `spec.volumeMode`.
    pub volume_mode: VolumeMode,
    /// `spec.selector`: only volumes it matches are bound to the claim.
    pub selector: Option<LabelSelector>,
    /// `spec.volumeName`: the volume it is bound (or pre-bound) to.
    pub volume_name: Option<Sym>,
    /// `status.phase` is `Lost` (its volume is gone).
    pub lost: bool,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// The annotation `volume.kubernetes.io/selected-node`: provisioning was asked for on
    /// this node.
    pub selected_node: Option<Sym>,
}

/// A StorageClass.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageClass {
    /// `metadata.name`.
    pub name: Sym,
    /// `provisioner`.
    pub provisioner: Sym,
    /// `volumeBindingMode` is `WaitForFirstConsumer`: claims are bound once a pod using them
    /// is scheduled, on that pod's node.
    pub wait_for_first_consumer: bool,
    /// `allowedTopologies`, each term's `matchLabelExpressions` as `In` requirements: where
    /// the provisioner may create volumes (no term: anywhere).
    pub allowed_topologies: Vec<NodeSelectorTerm>,
}

impl StorageClass {
    /// Whether the class provisions volumes dynamically at all.
    pub fn provisions(&self) -> bool {
        !self.provisioner.as_str().is_empty() && self.provisioner.as_str() != NO_PROVISIONER
    }

    /// Whether a node with `labels` is in the allowed topologies (upstream
    /// `MatchTopologySelectorTerms`: no terms allow every node; an empty term allows none).
    pub fn allows(&self, labels: &LabelSet, node: Sym) -> bool {
        self.allowed_topologies.is_empty() || self.allowed_topologies.iter().any(|t| t.matches(labels, node))
    }
}

/// A CSINode: how many volumes of each driver the node can attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsiNode {
    /// `metadata.name`, the node's name.
    pub node: Sym,
    /// `spec.drivers[].allocatable.count` by `spec.drivers[].name`; drivers without a count
    /// are unlimited and left out.
    pub limits: Vec<(Sym, u32)>,
}

impl CsiNode {
    /// The attach limit of `driver`, if the node has one.
    pub fn limit(&self, driver: Sym) -> Option<u32> {
        self.limits.iter().find(|(d, _)| *d == driver).map(|(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gce(name: &str, read_only: bool) -> PodVolume {
        PodVolume::GcePersistentDisk { pd_name: Sym::new(name), read_only }
    }

    #[test]
    fn inline_disks_conflict_as_upstream_says() {
        assert!(gce("a", false).conflicts(&gce("a", true)));
        assert!(!gce("a", true).conflicts(&gce("a", true)), "both read-only share");
        assert!(!gce("a", false).conflicts(&gce("b", false)));
        let ebs = |id: &str| PodVolume::AwsElasticBlockStore { volume_id: Sym::new(id) };
        assert!(ebs("v").conflicts(&ebs("v")));
        let rbd = |mons: &[&str], ro: bool| PodVolume::Rbd {
            monitors: mons.iter().map(|m| Sym::new(m)).collect(),
            pool: Sym::new("rbd"),
            image: Sym::new("img"),
            read_only: ro,
        };
        assert!(rbd(&["m1", "m2"], false).conflicts(&rbd(&["m2"], true)));
        assert!(!rbd(&["m1"], false).conflicts(&rbd(&["m2"], false)), "no monitor in common");
        assert!(!gce("a", false).conflicts(&ebs("a")), "different kinds never conflict");
    }

    #[test]
    fn access_modes_of_a_claim_must_all_be_offered() {
        let rwo = AccessModes::READ_WRITE_ONCE;
        let both = rwo.with(AccessModes::READ_ONLY_MANY);
        assert!(both.contains(rwo) && !rwo.contains(both));
        assert_eq!(AccessModes::parse("ReadWriteOncePod"), Some(AccessModes::READ_WRITE_ONCE_POD));
        assert_eq!(AccessModes::parse("rwo"), None);
    }
}
