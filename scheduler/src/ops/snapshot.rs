//! `tessera snapshot`: the live cluster's scheduling-relevant objects as one YAML file.
//!
//! The output is what `tessera simulate --cluster FILE` reads ([`crate::ingest::read_objects`]):
//! multi-document YAML, one object per document, each with its `apiVersion` and `kind`. It
//! holds every kind the simulator uses (nodes, pods, namespaces, priority and runtime
//! classes, Services and ReplicationControllers for default spreading, both PodGroup APIs,
//! Workloads, DRA device classes, slices, claims and claim templates, PersistentVolumes and
//! their claims, StorageClasses and CSINodes), so a what-if (another
//! profile, more pods) starts from the cluster as it is. The workload controllers come too
//! (Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs): their selectors are what their
//! pods' default spreading reads, a what-if that adds nodes gets their DaemonSets' pods, and the
//! simulator creates only the pods a controller's listed pods do not already account for.
//! PodDisruptionBudgets come for preemption. Pods that finished (`Succeeded`,
//! `Failed`) hold no resources and are left out; bound pods come out with `spec.nodeName`
//! and the simulator places them as running.
//!
//! Lists are paginated (500 per page, as kubectl does) so a large cluster does not make the
//! API server build one huge response. A kind the cluster does not serve (a 404 on list: no
//! PodGroup CRD, an older release without `resource.k8s.io/v1`) is noted in
//! [`Snapshot::skipped`] and left out; any other failure stops the snapshot, since a silently
//! partial cluster would mislead the simulation. Bookkeeping fields that only bloat the file
//! (`managedFields`, `resourceVersion`, `uid`, the last-applied annotation) are stripped.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::resource::v1::{DeviceClass, ResourceClaim, ResourceClaimTemplate, ResourceSlice};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::scheduling::v1alpha3::{PodGroup, Workload};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{OpsError, object_name};

/// Objects per list request.
pub const PAGE_SIZE: u32 = 500;

/// Metadata fields that change on every write and mean nothing to a simulation.
const NOISE_FIELDS: [&str; 5] = ["managedFields", "resourceVersion", "uid", "generation", "selfLink"];
/// Annotations that repeat the whole object.
const NOISE_ANNOTATIONS: [&str; 1] = ["kubectl.kubernetes.io/last-applied-configuration"];

/// A snapshot and what went into it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The multi-document YAML.
    pub yaml: String,
    /// Objects written per kind (`apiVersion` `kind`), in the order listed.
    pub counts: Vec<(String, usize)>,
    /// Kinds the cluster does not serve, each with the reason, for a note on stderr.
    pub skipped: Vec<String>,
    /// Pods left out because they finished.
    pub finished_pods: usize,
}

impl Snapshot {
    /// Objects written in total.
    pub fn total(&self) -> usize {
        self.counts.iter().map(|(_, n)| n).sum()
    }

    /// The totals on one line (kinds with objects only), for a summary on stderr.
    pub fn summary(&self) -> String {
        let kinds: Vec<String> =
            self.counts.iter().filter(|(_, n)| *n > 0).map(|(kind, n)| format!("{n} {kind}")).collect();
        let mut out = format!("{} objects: {}", self.total(), kinds.join(", "));
        if self.finished_pods > 0 {
            out.push_str(&format!("; left out {} finished pod(s)", self.finished_pods));
        }
        out
    }
}

/// Lists the scheduling-relevant objects of the cluster behind `client` into a [`Snapshot`].
pub async fn snapshot(client: Client) -> Result<Snapshot, OpsError> {
    let mut out = Snapshot {
        yaml: "# Written by `tessera snapshot`; replay it with `tessera simulate --cluster FILE`.\n".to_string(),
        ..Snapshot::default()
    };
    add::<Namespace>(&client, &mut out, |_| true).await?;
    add::<PriorityClass>(&client, &mut out, |_| true).await?;
    add::<RuntimeClass>(&client, &mut out, |_| true).await?;
    add::<StorageClass>(&client, &mut out, |_| true).await?;
    add::<Node>(&client, &mut out, |_| true).await?;
    add::<CSINode>(&client, &mut out, |_| true).await?;
    add::<PersistentVolume>(&client, &mut out, |_| true).await?;
    add::<PersistentVolumeClaim>(&client, &mut out, |_| true).await?;
    add::<Service>(&client, &mut out, |_| true).await?;
    add::<ReplicationController>(&client, &mut out, |_| true).await?;
    add::<ReplicaSet>(&client, &mut out, |_| true).await?;
    add::<StatefulSet>(&client, &mut out, |_| true).await?;
    add::<Deployment>(&client, &mut out, |_| true).await?;
    add::<DaemonSet>(&client, &mut out, |_| true).await?;
    add::<Job>(&client, &mut out, |_| true).await?;
    add::<PodDisruptionBudget>(&client, &mut out, |_| true).await?;
    add::<DeviceClass>(&client, &mut out, |_| true).await?;
    add::<ResourceSlice>(&client, &mut out, |_| true).await?;
    add::<ResourceClaim>(&client, &mut out, |_| true).await?;
    add::<ResourceClaimTemplate>(&client, &mut out, |_| true).await?;
    add::<Workload>(&client, &mut out, |_| true).await?;
    add::<PodGroup>(&client, &mut out, |_| true).await?;
    add::<tessera_crds::PodGroup>(&client, &mut out, |_| true).await?;
    let mut finished = 0;
    add::<Pod>(&client, &mut out, |pod| {
        let done = crate::ingest::pod::is_finished(pod);
        finished += usize::from(done);
        !done
    })
    .await?;
    out.finished_pods = finished;
    Ok(out)
}

/// Lists every `K` and appends those `keep` accepts to `out`; a 404 skips the kind.
async fn add<K>(client: &Client, out: &mut Snapshot, mut keep: impl FnMut(&K) -> bool) -> Result<(), OpsError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize,
{
    let kind = format!("{} {}", K::api_version(&()), K::kind(&()));
    let items = match list_all::<K>(client).await {
        Ok(items) => items,
        Err(e) if e.is_not_found() => {
            out.skipped.push(format!("{kind}: not served by this cluster ({e})"));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for item in items.iter().filter(|item| keep(item)) {
        out.yaml.push_str("---\n");
        out.yaml.push_str(&document(item)?);
        n += 1;
    }
    out.counts.push((kind, n));
    Ok(())
}

/// Every `K` in the cluster (all namespaces), a page at a time.
pub async fn list_all<K>(client: &Client) -> Result<Vec<K>, OpsError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let api: Api<K> = Api::all(client.clone());
    let collection = format!("{} ({})", K::plural(&()), K::api_version(&()));
    let mut params = ListParams::default().limit(PAGE_SIZE);
    let mut items = Vec::new();
    loop {
        let page = api.list(&params).await.map_err(|e| OpsError::api("list (GET)", &collection, &e))?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}

/// One object as a YAML document with `apiVersion` and `kind` set (list items may lack them)
/// and the metadata noise removed.
pub fn document<K>(item: &K) -> Result<String, OpsError>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let meta = item.meta();
    let name = object_name(meta.namespace.as_deref(), meta.name.as_deref().unwrap_or(""));
    let encode = |message: String| OpsError::Encode { kind: K::kind(&()).to_string(), name: name.clone(), message };
    let mut value = serde_json::to_value(item).map_err(|e| encode(e.to_string()))?;
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".to_string(), Value::String(K::api_version(&()).to_string()));
        map.insert("kind".to_string(), Value::String(K::kind(&()).to_string()));
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            strip_noise(metadata);
        }
    }
    serde_yaml_ng::to_string(&value).map_err(|e| encode(e.to_string()))
}

fn strip_noise(metadata: &mut Map<String, Value>) {
    for field in NOISE_FIELDS {
        metadata.remove(field);
    }
    let now_empty = match metadata.get_mut("annotations") {
        Some(Value::Object(annotations)) => {
            for a in NOISE_ANNOTATIONS {
                annotations.remove(a);
            }
            annotations.is_empty()
        }
        _ => false,
    };
    if now_empty {
        metadata.remove("annotations");
    }
}
