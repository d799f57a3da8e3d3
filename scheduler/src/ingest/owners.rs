//! What each controller of the input already has, so that expanding it adds only what the
//! cluster would still create: `tessera simulate --cluster dump.yaml` on `kubectl get -o yaml`
//! of a real cluster sees Deployments *and* their ReplicaSets *and* their pods, and must
//! simulate each pod once.
//!
//! Ownership is read from each object's controller owner reference (`controller: true`),
//! matched by uid when both sides have one (a controller deleted and created again under the
//! same name owns nothing of the old one), else by kind, name and namespace (hand-written
//! input, or a dump whose uids were stripped, as `tessera snapshot` strips them). Then:
//!
//! - A ReplicaSet owned by a listed Deployment belongs to it and adds no pods of its own, but
//!   still records its selector for the pods it owns (default spreading). The Deployment's
//!   current ReplicaSet, which its new pods join, is the oldest whose template is the
//!   Deployment's but for `pod-template-hash` (upstream's `FindNewReplicaSet`), else the
//!   newest it owns: a real cluster's hash is not ours, so the ReplicaSet is found by owner
//!   reference, never by recomputing its name.
//! - A Deployment's pods are those of all its ReplicaSets, also of one the input does not
//!   list: a pod owned by ReplicaSet `<deployment>-<h>` whose `pod-template-hash` is `h` is
//!   the Deployment's, as only the Deployment controller names ReplicaSets so. When no
//!   ReplicaSet is listed, the newest such pod's ReplicaSet is the current one.
//! - Pods count while they run or wait: a `Succeeded` or `Failed` pod, or one being deleted,
//!   is replaced by its ReplicaSet or Job (upstream's `FilterActivePods`), and a Job counts
//!   its succeeded pods against its completions. A StatefulSet's listed pods hold their
//!   ordinals whatever their phase, since it replaces a failed pod under the same name.
//! - A DaemonSet's active pods count for the node each is for (bound to, or pinned to by
//!   node affinity): it adds pods only on the other nodes it admits. One on a node it no
//!   longer admits, or that the input does not list, stays as listed.
//! - Created pods never take a name a listed pod has in their namespace.

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::daemon_sets::target_node;
use super::workloads::{
    Controller, Expansion, JOB_COMPLETION_INDEX, Listed, POD_INDEX_LABEL, POD_TEMPLATE_HASH_LABEL, ReplicaSetRef,
    WorkloadKind,
};

/// What each of `controllers` adds to the `pods` the input lists, in the controllers' order;
/// a DaemonSet's pods go to the listed `nodes`.
pub fn expand(pods: &[Pod], nodes: &[Node], controllers: &[&Controller]) -> Vec<Expansion> {
    let pods = PodIndex::new(pods, controllers);
    let families = Families::new(controllers);
    let expand_one = |(i, c): (usize, &&Controller)| {
        if families.deployment_of[i].is_some() {
            return Expansion { controller: c.own_selector(), ..Expansion::default() };
        }
        let listed = match c.kind {
            WorkloadKind::Deployment => pods.deployment(c, &families.replica_sets[i], controllers),
            WorkloadKind::ReplicaSet => pods.replica_set(c),
            WorkloadKind::StatefulSet => pods.stateful_set(c),
            WorkloadKind::Job => pods.job(c),
            WorkloadKind::DaemonSet => pods.daemon_set(c, nodes),
        };
        c.expand(&listed)
    };
    controllers.iter().enumerate().map(expand_one).collect()
}

/// Which listed ReplicaSets belong to which listed Deployment, both ways, by index into the
/// controllers.
struct Families {
    /// For each controller, the Deployment owning it (ReplicaSets only).
    deployment_of: Vec<Option<usize>>,
    /// For each controller, the ReplicaSets it owns (Deployments only).
    replica_sets: Vec<Vec<usize>>,
}

impl Families {
    fn new(controllers: &[&Controller]) -> Families {
        let is_rs = |c: &Controller| c.kind == WorkloadKind::ReplicaSet;
        let refs = controllers.iter().map(|c| (c.namespace.as_str(), c.owner.as_ref().filter(|_| is_rs(c))));
        let owners = OwnerIndex::new(refs);
        let mut families = Families {
            deployment_of: vec![None; controllers.len()],
            replica_sets: vec![Vec::new(); controllers.len()],
        };
        for (d, c) in controllers.iter().enumerate().filter(|(_, c)| c.kind == WorkloadKind::Deployment) {
            let owned = owners.owned(c);
            for &rs in &owned {
                families.deployment_of[rs].get_or_insert(d);
            }
            families.replica_sets[d] = owned;
        }
        families
    }
}

/// The listed pods, indexed for the questions expansion asks.
struct PodIndex<'a> {
    pods: &'a [Pod],
    /// By the controller their controller owner reference names.
    owners: OwnerIndex<'a>,
    /// Pod names in use, by namespace.
    names: HashMap<&'a str, HashSet<&'a str>>,
    /// Pods owned by a ReplicaSet the input does not list but whose name says which
    /// Deployment made it, by namespace and Deployment name.
    by_deployment: HashMap<(&'a str, &'a str), Vec<usize>>,
}

impl<'a> PodIndex<'a> {
    fn new(pods: &'a [Pod], controllers: &[&Controller]) -> PodIndex<'a> {
        let listed_rs: HashSet<(&str, &str)> = controllers
            .iter()
            .filter(|c| c.kind == WorkloadKind::ReplicaSet)
            .map(|c| (c.namespace.as_str(), c.name.as_str()))
            .collect();
        let owners = OwnerIndex::new(pods.iter().map(|p| (namespace(&p.metadata), controller_ref(&p.metadata))));
        let mut names: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut by_deployment: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (i, p) in pods.iter().enumerate() {
            let ns = namespace(&p.metadata);
            if let Some(name) = p.metadata.name.as_deref() {
                names.entry(ns).or_default().insert(name);
            }
            if let Some((deployment, rs)) = deployment_by_name(&p.metadata)
                && !listed_rs.contains(&(ns, rs))
            {
                by_deployment.entry((ns, deployment)).or_default().push(i);
            }
        }
        PodIndex { pods, owners, names, by_deployment }
    }

    /// A Deployment's pods: those of its listed ReplicaSets and those whose unlisted
    /// ReplicaSet its name shows it made; its new pods join the current ReplicaSet.
    fn deployment(&self, d: &Controller, replica_sets: &[usize], controllers: &[&Controller]) -> Listed<'_> {
        let mut owned: BTreeSet<usize> =
            replica_sets.iter().flat_map(|&rs| self.owners.owned(controllers[rs])).collect();
        let unlisted = self.by_deployment.get(&(d.namespace.as_str(), d.name.as_str()));
        owned.extend(unlisted.into_iter().flatten());
        let current = current_replica_set(d, replica_sets, controllers)
            .or_else(|| unlisted.and_then(|pods| self.newest_replica_set(pods)));
        Listed {
            active: owned.iter().filter(|&&i| is_active(&self.pods[i])).count(),
            replica_set: current,
            ..self.base(d)
        }
    }

    fn replica_set(&self, rs: &Controller) -> Listed<'_> {
        let owned = self.owners.owned(rs);
        Listed { active: owned.iter().filter(|&&i| is_active(&self.pods[i])).count(), ..self.base(rs) }
    }

    fn stateful_set(&self, s: &Controller) -> Listed<'_> {
        let owned = self.owners.owned(s);
        let indexes = owned.iter().filter_map(|&i| ordinal(&self.pods[i].metadata, &s.name)).collect();
        Listed { indexes, ..self.base(s) }
    }

    fn job(&self, j: &Controller) -> Listed<'_> {
        let owned: Vec<&Pod> = self.owners.owned(j).into_iter().map(|i| &self.pods[i]).collect();
        let succeeded = owned.iter().filter(|p| phase(p) == Some("Succeeded")).count();
        let counting = owned.iter().filter(|p| is_active(p) || phase(p) == Some("Succeeded"));
        let indexes = counting.filter_map(|p| completion_index(&p.metadata)).collect();
        Listed { active: owned.iter().filter(|p| is_active(p)).count(), succeeded, indexes, ..self.base(j) }
    }

    /// A DaemonSet's: the nodes its active pods are for, and the nodes to run pods on.
    fn daemon_set<'n>(&'n self, ds: &Controller, nodes: &'n [Node]) -> Listed<'n> {
        let owned = self.owners.owned(ds).into_iter().map(|i| &self.pods[i]);
        let daemon_nodes = owned.filter(|p| is_active(p)).filter_map(target_node).collect();
        Listed { nodes, daemon_nodes, ..self.base(ds) }
    }

    /// What every controller's [`Listed`] has: the names taken in its namespace.
    fn base(&self, c: &Controller) -> Listed<'_> {
        Listed { taken: self.names.get(c.namespace.as_str()), ..Listed::default() }
    }

    /// The ReplicaSet of the most recently created of `pods` (later in the input on a tie).
    fn newest_replica_set(&self, pods: &[usize]) -> Option<ReplicaSetRef> {
        let newest = pods.iter().max_by_key(|&&i| (self.pods[i].metadata.creation_timestamp.as_ref(), i))?;
        let meta = &self.pods[*newest].metadata;
        let owner = controller_ref(meta)?;
        Some(ReplicaSetRef {
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            hash: label(meta, POD_TEMPLATE_HASH_LABEL).map(str::to_string),
            listed: false,
        })
    }
}

/// A Deployment's current ReplicaSet among the listed `replica_sets` it owns: the oldest
/// with its template, else the newest.
fn current_replica_set(d: &Controller, replica_sets: &[usize], controllers: &[&Controller]) -> Option<ReplicaSetRef> {
    let mut owned: Vec<(usize, &Controller)> = replica_sets.iter().map(|&i| (i, controllers[i])).collect();
    owned.sort_by(|(i, a), (j, b)| a.created().cmp(&b.created()).then(i.cmp(j)));
    let (_, rs) = owned.iter().find(|(_, rs)| d.same_template(rs)).or_else(|| owned.last())?;
    Some(ReplicaSetRef {
        name: rs.name.clone(),
        uid: rs.uid.clone().unwrap_or_default(),
        hash: rs.template_label(POD_TEMPLATE_HASH_LABEL).map(str::to_string),
        listed: true,
    })
}

/// Objects (pods, or ReplicaSets) by the controller their controller owner reference names,
/// by index into the list they were built from.
#[derive(Default)]
struct OwnerIndex<'a> {
    /// By the owner's uid, for references that have one.
    by_uid: HashMap<&'a str, Vec<usize>>,
    /// By the owner's kind, namespace and name, each with whether its reference has a uid.
    by_name: HashMap<OwnerName<'a>, Vec<(usize, bool)>>,
}

/// An owner's kind, namespace and name.
type OwnerName<'a> = (&'a str, &'a str, &'a str);

impl<'a> OwnerIndex<'a> {
    /// Indexes each object's namespace and controller owner reference, if it has one.
    fn new(objects: impl Iterator<Item = (&'a str, Option<&'a OwnerReference>)>) -> OwnerIndex<'a> {
        let mut index = OwnerIndex::default();
        for (i, (namespace, owner)) in objects.enumerate() {
            let Some(owner) = owner else { continue };
            let has_uid = !owner.uid.is_empty();
            if has_uid {
                index.by_uid.entry(owner.uid.as_str()).or_default().push(i);
            }
            let key = (owner.kind.as_str(), namespace, owner.name.as_str());
            index.by_name.entry(key).or_default().push((i, has_uid));
        }
        index
    }

    /// The objects `c` owns, in input order: by uid when both sides have one, else by kind,
    /// name and namespace.
    fn owned(&self, c: &Controller) -> Vec<usize> {
        let key = (c.kind.name(), c.namespace.as_str(), c.name.as_str());
        let by_name = self.by_name.get(&key).into_iter().flatten();
        let mut owned: Vec<usize> = match c.uid.as_deref() {
            Some(uid) => {
                let by_uid = self.by_uid.get(uid).into_iter().flatten().copied();
                by_name.filter(|(_, has_uid)| !has_uid).map(|(i, _)| *i).chain(by_uid).collect()
            }
            None => by_name.map(|(i, _)| *i).collect(),
        };
        owned.sort_unstable();
        owned
    }
}

/// The object's controller owner reference.
fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.iter().flatten().find(|o| o.controller == Some(true))
}

/// The namespace (`default` when unset, as the API server would set it).
fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default")
}

fn label<'m>(meta: &'m ObjectMeta, key: &str) -> Option<&'m str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

/// Whether the pod still runs or waits, so that its controller counts it.
fn is_active(p: &Pod) -> bool {
    !matches!(phase(p), Some("Succeeded" | "Failed")) && p.metadata.deletion_timestamp.is_none()
}

/// `(deployment, replicaset)` when the pod's controller is a ReplicaSet named
/// `<deployment>-<the pod's pod-template-hash>`, as the Deployment controller names them.
fn deployment_by_name(meta: &ObjectMeta) -> Option<(&str, &str)> {
    let owner = controller_ref(meta).filter(|o| o.kind == "ReplicaSet")?;
    let hash = label(meta, POD_TEMPLATE_HASH_LABEL).filter(|h| !h.is_empty())?;
    let deployment = owner.name.strip_suffix(hash)?.strip_suffix('-').filter(|d| !d.is_empty())?;
    Some((deployment, owner.name.as_str()))
}

/// A StatefulSet pod's ordinal: its `apps.kubernetes.io/pod-index` label, else the number
/// after `<statefulset>-` in its name (older clusters set no label).
fn ordinal(meta: &ObjectMeta, stateful_set: &str) -> Option<i32> {
    let from_name = || meta.name.as_deref()?.strip_prefix(stateful_set)?.strip_prefix('-');
    label(meta, POD_INDEX_LABEL).or_else(from_name)?.parse().ok()
}

/// An Indexed Job pod's completion index, from its label or (older pods) its annotation.
fn completion_index(meta: &ObjectMeta) -> Option<i32> {
    let annotation = || meta.annotations.as_ref()?.get(JOB_COMPLETION_INDEX).map(String::as_str);
    label(meta, JOB_COMPLETION_INDEX).or_else(annotation)?.parse().ok()
}

#[cfg(test)]
#[path = "owners_tests.rs"]
mod tests;
