//! What the simulator replays: nodes, pods with arrival and run times, and the objects
//! scheduling depends on, read from Kubernetes YAML or openb CSV, detected by content.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use tessera_plugins::default_selector::SourceChange;
use tessera_plugins::disruption::Budgets;
use tessera_plugins::dra::inventory::NodeDevices;
use tessera_plugins::dra::model::{ResourceSlice, SliceNodes};
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{GPU_MILLI, Gpu, GpuRequest, Node, Pod, PodGroup};
use tessera_plugins::plugins::volumes::index::VolumeObjects;
use tessera_plugins::resources::ResourceVec;
use thiserror::Error;

use super::openb::{self, TraceError, TraceNode, TracePod};
use crate::ingest::duration::go_duration;
use crate::ingest::{self, IngestError, Objects, PodContext};

/// Annotation: when the pod arrives, as a Go duration from the start (`90s`, `2h`).
pub const ARRIVAL_ANNOTATION: &str = "tessera.io/arrival";
/// Annotation: how long the pod runs once bound (`30m`); without it, it never leaves.
pub const DURATION_ANNOTATION: &str = "tessera.io/duration";
/// Annotation: how long after its arrival a pod's `spec.schedulingGates` are removed (`30s`),
/// as the controller owning the gates would; without it, gates stay for the whole replay.
pub const GATES_REMOVED_AFTER_ANNOTATION: &str = "tessera.io/scheduling-gates-removed-after";
/// Label openb nodes carry with their GPU model.
pub const OPENB_MODEL_LABEL: &str = "alibabacloud.com/gpu-card-model";

/// Why the simulator's input cannot be used.
#[derive(Debug, Error)]
pub enum InputError {
    /// A file could not be read.
    #[error("{file}: {message}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        message: String,
    },
    /// A Kubernetes object is malformed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// A trace CSV is malformed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A simulator annotation is malformed.
    #[error("Pod {pod}: metadata.annotations.{annotation}: {message}")]
    Annotation {
        /// `namespace/name`.
        pod: String,
        /// The annotation.
        annotation: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Two or more pods share `namespace/name`.
    #[error(
        "Pod {pod} is given more than once: {}; pods are told apart by namespace/name, so no two may share one{}",
        duplicates::places_text(.places),
        duplicates::others_text(*.others)
    )]
    DuplicatePod {
        /// `namespace/name`.
        pod: String,
        /// Where its copies are: `file: line N`, `file: document N (Kind name)`.
        places: Vec<String>,
        /// How many other names are given more than once.
        others: usize,
    },
    /// The files hold no object at all (empty, or only comments and `---`).
    #[error("no objects in {}: the simulator needs Nodes and pods (Kubernetes YAML or openb CSV)", .files.join(", "))]
    Empty {
        /// The files given.
        files: Vec<String>,
    },
    /// The files hold objects but no Node (or only Nodes left out as invalid): there is no
    /// cluster to place pods on.
    #[error(
        "no Node in {}: the simulator needs a cluster to place pods on (kind: Node, or an openb node CSV, with --cluster){}",
        .files.join(", "),
        skipped_text(*.skipped)
    )]
    NoNodes {
        /// The files given.
        files: Vec<String>,
        /// How many Nodes were left out as invalid (`--skip-invalid`).
        skipped: usize,
    },
    /// An error about one pod or Node, after where it is given (its document, or for a pod its
    /// controller's).
    #[error("{place}: {source}")]
    InFile {
        /// `file: document N (Kind name)`.
        place: String,
        /// The error.
        source: Box<InputError>,
    },
}

/// `; N Nodes were left out as invalid`, or nothing.
fn skipped_text(skipped: usize) -> String {
    match skipped {
        0 => String::new(),
        1 => "; 1 Node was left out as invalid".to_string(),
        n => format!("; {n} Nodes were left out as invalid"),
    }
}

/// A pod as the simulator plays it.
#[derive(Clone, Debug)]
pub struct SimPod {
    /// The pod.
    pub pod: Arc<Pod>,
    /// Arrival, seconds from the start.
    pub arrival: f64,
    /// Run time once bound; `None` runs forever.
    pub duration: Option<f64>,
    /// Seconds after arrival when its scheduling gates are removed
    /// ([`GATES_REMOVED_AFTER_ANNOTATION`]); `None` leaves them.
    pub gates_removed_after: Option<f64>,
}

/// What to do with a Node or Pod that cannot be understood (a bad quantity, an unknown
/// operator, a malformed selector or annotation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnInvalid {
    /// Stop with the error (the default: a what-if on a silently shrunk input misleads).
    #[default]
    Stop,
    /// Report it in [`SimInput::skipped`] and go on without it, as a live scheduler goes on
    /// past one bad object (`--skip-invalid`).
    Skip,
}

/// Everything the simulator needs.
#[derive(Clone, Debug, Default)]
pub struct SimInput {
    /// The cluster.
    pub nodes: Vec<Node>,
    /// Pods to schedule, in input order.
    pub pods: Vec<SimPod>,
    /// Pods already running on their `spec.nodeName` at t=0. Pods with
    /// `spec.schedulingGates` are among [`SimInput::pods`]: the SchedulingGates plugin keeps
    /// them waiting.
    pub running: Vec<Arc<Pod>>,
    /// Namespace labels.
    pub namespaces: HashMap<Sym, LabelSet>,
    /// Selectors of Services and of the controllers owning pods, for default spreading.
    pub selector_sources: Vec<SourceChange>,
    /// Gangs: PodGroups of the three APIs and those materialized from Workloads, one per
    /// `namespace/name` (of two with one name, the later in input order wins; see
    /// [`ingest::pod_groups`]).
    pub pod_groups: Vec<PodGroup>,
    /// PodDisruptionBudgets, which preemption respects where it can.
    pub budgets: Budgets,
    /// PersistentVolumes, PersistentVolumeClaims, StorageClasses and CSINodes, which the
    /// volume plugins read.
    pub volumes: Arc<VolumeObjects>,
    /// Kinds nobody understands, with counts (reported once, skipped).
    pub unknown_kinds: BTreeMap<String, usize>,
    /// The files read.
    pub sources: Vec<String>,
    /// Nodes and pods left out under [`OnInvalid::Skip`], with why (naming object and field).
    pub skipped: Vec<String>,
    /// Pods of the input that already ran to completion (`Succeeded`, `Failed`): they hold
    /// nothing and are left out, as a live scheduler counts them.
    pub finished: usize,
}

/// Reads every file and assembles the input.
pub fn load(paths: &[PathBuf], on_invalid: OnInvalid) -> Result<SimInput, InputError> {
    let mut objects = Objects::default();
    let mut trace_nodes = Vec::new();
    let mut trace_pods = Vec::new();
    let mut sources = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::Io { file: path.display().to_string(), message: e.to_string() })?;
        sources.push(path.display().to_string());
        let first = text.lines().next().unwrap_or("");
        if openb::is_node_list(first) {
            trace_nodes.extend(openb::parse_nodes(path, &text)?);
        } else if openb::is_pod_list(first) {
            trace_pods.extend(openb::parse_pods(path, &text)?);
        } else {
            objects.extend(ingest::read_objects(&path.display().to_string(), &text)?);
        }
    }
    if objects.is_empty() && objects.unknown_kinds.is_empty() && trace_nodes.is_empty() && trace_pods.is_empty() {
        return Err(InputError::Empty { files: sources });
    }
    let mut input = from_objects(&objects, on_invalid).map_err(|e| duplicates::with_place(e, paths))?;
    input.nodes.extend(trace_nodes.iter().map(trace_node));
    input.pods.extend(trace_pods.iter().map(trace_pod));
    duplicates::reject_duplicate_pods(paths, &input)?;
    if input.nodes.is_empty() {
        let skipped = objects.nodes.len();
        return Err(InputError::NoNodes { files: sources, skipped });
    }
    input.sources = sources;
    Ok(input)
}

/// Assembles the input from Kubernetes objects (the bundled sample goes through here too).
pub fn from_objects(objects: &Objects, on_invalid: OnInvalid) -> Result<SimInput, InputError> {
    let cx = PodContext::from_objects(objects)?;
    let mut input = SimInput {
        unknown_kinds: objects.unknown_kinds.clone(),
        namespaces: cx.namespaces().clone(),
        selector_sources: objects.selector_sources.iter().chain(&objects.controller_selectors).cloned().collect(),
        pod_groups: ingest::pod_groups(objects, &cx)?,
        budgets: budgets(objects)?,
        ..SimInput::default()
    };
    let invalid = |e: InputError, skipped: &mut Vec<String>| match on_invalid {
        OnInvalid::Stop => Err(e),
        OnInvalid::Skip => {
            skipped.push(e.to_string());
            Ok(())
        }
    };
    let mut slices = Vec::with_capacity(objects.resource_slices.len());
    for s in &objects.resource_slices {
        match ingest::dra::resource_slice(s) {
            Ok(slice) => slices.push(Arc::new(slice)),
            Err(e) => invalid(e.into(), &mut input.skipped)?,
        }
    }
    let slices = SlicesByNode::new(slices);
    input.volumes = Arc::new(volume_objects(objects, &mut |e| invalid(e, &mut input.skipped))?);
    for n in &objects.nodes {
        let node = match ingest::node(n) {
            // A node whose GPU wiring annotation is malformed stays, placed by GPU count only.
            Err(e) if on_invalid == OnInvalid::Skip && ingest::gpu::is_wiring_error(&e) => {
                input.skipped.push(format!("{e} (the node's GPUs are placed by count only)"));
                ingest::node(&ingest::gpu::without_wiring(n))
            }
            other => other,
        };
        match node {
            Ok(node) => input.nodes.push(Node { devices: slices.devices(node.name, &node.labels), ..node }),
            Err(e) => invalid(e.into(), &mut input.skipped)?,
        }
    }
    for p in &objects.pods {
        if ingest::pod::is_finished(p) {
            input.finished += 1;
            continue;
        }
        match sim_pod(p, &cx) {
            Ok(pod) if pod.pod.node_name.is_some() => input.running.push(pod.pod),
            Ok(pod) => input.pods.push(pod),
            Err(e) => invalid(e, &mut input.skipped)?,
        }
    }
    Ok(input)
}

/// The storage objects of the input; an invalid one goes to `invalid` (which stops or
/// skips it).
fn volume_objects(
    objects: &Objects,
    invalid: &mut dyn FnMut(InputError) -> Result<(), InputError>,
) -> Result<VolumeObjects, InputError> {
    use ingest::volumes;
    let mut out = VolumeObjects::default();
    for c in &objects.storage_classes {
        match volumes::storage_class(c) {
            Ok(class) => out.set_class(class.name, Some(class)),
            Err(e) => invalid(e.into())?,
        }
    }
    let default = volumes::default_class(&objects.storage_classes);
    for v in &objects.persistent_volumes {
        match volumes::persistent_volume(v) {
            Ok(pv) => out.set_pv(pv.name, Some(pv)),
            Err(e) => invalid(e.into())?,
        }
    }
    for c in &objects.persistent_volume_claims {
        match volumes::persistent_volume_claim(c, default) {
            Ok(pvc) => out.set_pvc(pvc.key, Some(pvc)),
            Err(e) => invalid(e.into())?,
        }
    }
    // What the StatefulSet and ephemeral volume controllers would create: the claims of the
    // pods the input has that it does not list.
    let made = objects.controller_claims.iter().cloned().chain(objects.pods.iter().flat_map(volumes::ephemeral_claims));
    for c in made {
        match volumes::persistent_volume_claim(&c, default) {
            Ok(pvc) if out.pvc(&pvc.key).is_none() => out.set_pvc(pvc.key, Some(pvc)),
            Ok(_) => {}
            Err(e) => invalid(e.into())?,
        }
    }
    for c in &objects.csi_nodes {
        match volumes::csi_node(c) {
            Ok(csi) => out.set_csi_node(csi.node, Some(csi)),
            Err(e) => invalid(e.into())?,
        }
    }
    Ok(out)
}

/// ResourceSlices by the node their devices are local to, so that each node's inventory
/// reads only its own slices and those for a `nodeSelector` or `allNodes`.
struct SlicesByNode {
    local: HashMap<Sym, Vec<Arc<ResourceSlice>>>,
    /// Slices not local to one node, which every node's inventory considers.
    shared: Vec<Arc<ResourceSlice>>,
}

impl SlicesByNode {
    fn new(slices: Vec<Arc<ResourceSlice>>) -> SlicesByNode {
        let mut by_node = SlicesByNode { local: HashMap::new(), shared: Vec::new() };
        for slice in slices {
            match slice.nodes {
                SliceNodes::Node(node) => by_node.local.entry(node).or_default().push(slice),
                _ => by_node.shared.push(slice),
            }
        }
        by_node
    }

    /// The devices of node `node`, which has `labels`.
    fn devices(&self, node: Sym, labels: &LabelSet) -> Arc<NodeDevices> {
        let local = self.local.get(&node).map_or(&[][..], Vec::as_slice);
        if local.is_empty() && self.shared.is_empty() {
            return Arc::default();
        }
        let slices: Vec<Arc<ResourceSlice>> = local.iter().chain(&self.shared).cloned().collect();
        Arc::new(NodeDevices::for_node(node, labels, &slices))
    }
}

/// One pod with its arrival and run time.
fn sim_pod(p: &core::Pod, cx: &PodContext) -> Result<SimPod, InputError> {
    let pod = Arc::new(ingest::pod(p, cx)?);
    let arrival = annotation_seconds(p, &pod, ARRIVAL_ANNOTATION)?.unwrap_or(0.0);
    let duration = annotation_seconds(p, &pod, DURATION_ANNOTATION)?;
    let gates_removed_after = annotation_seconds(p, &pod, GATES_REMOVED_AFTER_ANNOTATION)?;
    Ok(SimPod { pod, arrival, duration, gates_removed_after })
}

fn annotation_seconds(p: &core::Pod, pod: &Pod, annotation: &'static str) -> Result<Option<f64>, InputError> {
    let Some(v) = p.metadata.annotations.as_ref().and_then(|a| a.get(annotation)) else { return Ok(None) };
    go_duration(v).map(Some).map_err(|message| InputError::Annotation {
        pod: pod.key().to_string(),
        annotation,
        message,
    })
}

const MIB: i64 = 1 << 20;

fn trace_node(n: &TraceNode) -> Node {
    let mut labels = LabelSet::from_pairs([("kubernetes.io/hostname", n.name.as_str())]);
    if !n.model.is_empty() {
        labels.insert(Sym::new(OPENB_MODEL_LABEL), Sym::new(&n.model));
    }
    let model = Sym::new(&n.model);
    Node {
        name: Sym::new(&n.name),
        labels,
        taints: Vec::new(),
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(n.cpu_milli, n.memory_mib * MIB),
        // The trace gives no pod limit; nodes take the kubelet's default.
        allowed_pods: 110,
        images: Vec::new(),
        gpus: (0..n.gpus).map(|_| Gpu::new(model, 0)).collect(),
        devices: Default::default(),
    }
}

fn trace_pod(p: &TracePod) -> SimPod {
    let mut pod = Pod::new("default", &p.name, ResourceVec::cpu_mem(p.cpu_milli, p.memory_mib * MIB));
    pod.scheduler_name = Sym::new(crate::config::DEFAULT_SCHEDULER_NAME);
    if p.num_gpu > 0 {
        // A multi-GPU pod's gpu_milli is 1000; a zero share on a GPU pod means whole GPUs.
        let milli = if p.gpu_milli == 0 { GPU_MILLI } else { p.gpu_milli };
        pod.gpu =
            Some(GpuRequest { count: p.num_gpu, milli, models: p.gpu_spec.iter().map(|m| Sym::new(m)).collect() });
    }
    pod.creation_s = p.creation_s.unwrap_or(0.0);
    let arrival = p.creation_s.unwrap_or(0.0);
    let duration = p.deletion_s.map(|d| (d - arrival).max(0.0));
    SimPod { pod: Arc::new(pod), arrival, duration, gates_removed_after: None }
}

/// Pods given twice: found in one pass, then located in the files for the message.
mod duplicates {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use serde::Deserialize;
    use serde_json::Value;
    use tessera_plugins::model::PodKey;

    use super::openb::{self, TracePod};
    use super::{InputError, SimInput};
    use crate::ingest::{self, error::DocLocation};

    /// Fails when two pods share `namespace/name`, the key the engine tracks pods by: a second
    /// copy would be accounted on top of the first (a node past 100% CPU) and their placements
    /// mixed. Finding one takes a pass over `input`; naming where the copies are reads `paths`
    /// again, which only a failing run pays.
    pub(super) fn reject_duplicate_pods(paths: &[PathBuf], input: &SimInput) -> Result<(), InputError> {
        let keys = || input.running.iter().chain(input.pods.iter().map(|p| &p.pod)).map(|p| p.key());
        let mut counts: HashMap<PodKey, usize> = HashMap::with_capacity(input.running.len() + input.pods.len());
        for key in keys() {
            *counts.entry(key).or_default() += 1;
        }
        let Some(first) = keys().find(|k| counts.get(k).is_some_and(|n| *n > 1)) else { return Ok(()) };
        let others = counts.values().filter(|n| **n > 1).count() - 1;
        Err(InputError::DuplicatePod { pod: first.to_string(), places: places_of(&first, paths), others })
    }

    /// `e`, after the place of the pod or Node it is about when one file holds it, so that
    /// every error names its file; other errors as they are.
    pub(super) fn with_place(e: InputError, paths: &[PathBuf]) -> InputError {
        let places = match &e {
            InputError::Ingest(ingest::IngestError::Field { object, .. }) if object.kind == "Pod" => {
                object.namespace.as_deref().map(|ns| places_of(&PodKey::new(ns, &object.name), paths))
            }
            InputError::Ingest(ingest::IngestError::Field { object, .. }) if object.kind == "Node" => {
                Some(node_places_of(&object.name, paths))
            }
            InputError::Annotation { pod, .. } => {
                pod.split_once('/').map(|(ns, name)| places_of(&PodKey::new(ns, name), paths))
            }
            _ => None,
        };
        match places.as_deref() {
            Some([place]) => InputError::InFile { place: place.clone(), source: Box::new(e) },
            _ => e,
        }
    }

    /// Where Node `name` is given in the YAML files of `paths` (`<unnamed>` finds the Nodes
    /// without a name, as [`ingest::error::ObjectRef`] names them). Trace nodes are never
    /// invalid, so node CSVs are not read.
    fn node_places_of(name: &str, paths: &[PathBuf]) -> Vec<String> {
        let named_so = |n: &k8s_openapi::api::core::v1::Node| {
            n.metadata.name.as_deref().filter(|n| !n.is_empty()).unwrap_or("<unnamed>") == name
        };
        let is_node = |objects: &ingest::Objects| objects.nodes.iter().any(named_so);
        let mut places = Vec::new();
        for path in paths {
            let Ok(text) = std::fs::read_to_string(path) else { continue };
            let first = text.lines().next().unwrap_or("");
            if !openb::is_pod_list(first) && !openb::is_node_list(first) {
                let file = path.display().to_string();
                places.extend(yaml_places_where(&is_node, &text).into_iter().map(|at| format!("{file}: {at}")));
            }
        }
        places
    }

    /// Where pod `key` is given in `paths`: `file: line N` for a trace row, `file: document N
    /// (Kind name)` for a YAML object that is the pod or a controller expanding to it. A file that
    /// cannot be read twice (a pipe) has no place.
    fn places_of(key: &PodKey, paths: &[PathBuf]) -> Vec<String> {
        let mut places = Vec::new();
        for path in paths {
            let Ok(text) = std::fs::read_to_string(path) else { continue };
            let file = path.display().to_string();
            let first = text.lines().next().unwrap_or("");
            if openb::is_pod_list(first) {
                // Trace pods live in `default`, as trace_pod makes them.
                let rows = openb::parse_pods(path, &text).unwrap_or_default();
                let same = |p: &&TracePod| key.namespace.as_str() == "default" && *p.name == *key.name;
                places.extend(rows.iter().filter(same).map(|p| format!("{file}: line {}", p.line)));
            } else if !openb::is_node_list(first) {
                places.extend(yaml_places_of(key, &text).into_iter().map(|at| format!("{file}: {at}")));
            }
        }
        places
    }

    /// The documents (and `kind: List` items) of `text` that are, or expand to, pod `key`.
    fn yaml_places_of(key: &PodKey, text: &str) -> Vec<DocLocation> {
        yaml_places_where(&|objects| yields_pod(objects, key), text)
    }

    /// The documents (and `kind: List` items) of `text` whose objects, read alone, satisfy
    /// `wanted`.
    fn yaml_places_where(wanted: &dyn Fn(&ingest::Objects) -> bool, text: &str) -> Vec<DocLocation> {
        let is = |document: &Value| ingest::read_objects("", &document.to_string()).is_ok_and(|o| wanted(&o));
        let mut places = Vec::new();
        for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let Ok(value) = Value::deserialize(document) else { continue };
            let at = DocLocation { document: i + 1, ..DocLocation::default() };
            let is_list = value.get("kind").and_then(|k| k.as_str()).is_some_and(|k| k.ends_with("List"));
            match value {
                Value::Object(mut list) if is_list => {
                    let items = match list.remove("items") {
                        Some(Value::Array(items)) => items,
                        _ => Vec::new(),
                    };
                    // Each item alone in a copy of its list, so typed lists lend it their kind.
                    let shell = Value::Object(list);
                    let typed = shell["kind"].as_str().and_then(|k| k.strip_suffix("List")).filter(|k| !k.is_empty());
                    for (j, item) in items.into_iter().enumerate() {
                        let mut one = shell.clone();
                        one["items"] = Value::Array(vec![item]);
                        if is(&one) {
                            let mut place = named(&one["items"][0], at.clone());
                            place.kind = place.kind.or_else(|| typed.map(String::from));
                            places.push(DocLocation { item: Some(j + 1), ..place });
                        }
                    }
                }
                value if is(&value) => places.push(named(&value, at)),
                _ => {}
            }
        }
        places
    }

    /// Whether `objects` (one document's) hold pod `key`, listed or expanded from a controller.
    fn yields_pod(objects: &ingest::Objects, key: &PodKey) -> bool {
        objects.pods.iter().any(|p| {
            let namespace = p.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
            namespace == key.namespace.as_str() && p.metadata.name.as_deref() == Some(&*key.name)
        })
    }

    /// `at` with the kind and name of `object`, as errors about documents name them.
    fn named(object: &Value, at: DocLocation) -> DocLocation {
        let kind = object.get("kind").and_then(|k| k.as_str()).map(String::from);
        let metadata = object.get("metadata");
        let field = |f: &str| metadata.and_then(|m| m.get(f)).and_then(|v| v.as_str());
        let name = field("name").map(|n| field("namespace").map_or_else(|| n.to_string(), |ns| format!("{ns}/{n}")));
        DocLocation { kind, name, ..at }
    }

    /// At most this many places are listed in one message.
    const PLACES_SHOWN: usize = 4;

    /// `at A, at B and at C`, the first [`PLACES_SHOWN`] places and a count of the rest.
    pub(super) fn places_text(places: &[String]) -> String {
        let shown: Vec<String> = places.iter().take(PLACES_SHOWN).map(|p| format!("at {p}")).collect();
        let text = match shown.as_slice() {
            [] => return "in files that cannot be read a second time (pipes)".to_string(),
            [one] => return format!("{one} and in a file that cannot be read a second time (a pipe)"),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        };
        match places.len().saturating_sub(PLACES_SHOWN) {
            0 => text,
            rest => format!("{text} (and {rest} more)"),
        }
    }

    /// ` (N more pods are given more than once)`, or nothing.
    pub(super) fn others_text(others: usize) -> String {
        match others {
            0 => String::new(),
            1 => " (1 more pod is given more than once)".to_string(),
            n => format!(" ({n} more pods are given more than once)"),
        }
    }
}

#[cfg(test)]
mod duplicate_tests {
    use std::path::Path;

    use super::*;

    /// A fresh folder for one test's files.
    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tessera-input-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const NODE: &str =
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {allocatable: {cpu: 4, memory: 8Gi}}\n";

    fn pod(namespace: &str, name: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {{containers: [{{name: c}}]}}\n"
        )
    }

    const TRACE: &str = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,1024,0,0\nweb,1000,1024,0,0\n";

    #[test]
    fn an_error_in_a_pod_names_its_file_and_document() {
        let dir = folder("bad-quantity");
        let bad = pod("shop", "web").replace("[{name: c}]", "[{name: c, resources: {requests: {cpu: abc}}}]");
        let yaml = write(&dir, "w.yaml", &format!("{NODE}---\n{bad}"));
        let e = load(std::slice::from_ref(&yaml), OnInvalid::Stop).unwrap_err().to_string();
        let want = format!(
            "{}: document 2 (Pod shop/web): Pod shop/web: spec.containers[0].resources.requests.cpu: ",
            yaml.display()
        );
        assert!(e.starts_with(&want), "{e}");
        // A controller's template: the controller's document is named.
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: shop}\n\
                          spec: {selector: {matchLabels: {app: api}}, template: {metadata: {labels: {app: api}}, \
                          spec: {containers: [{name: c, resources: {requests: {memory: lots}}}]}}}\n";
        let yaml = write(&dir, "d.yaml", &format!("{NODE}---\n{deployment}"));
        let e = load(std::slice::from_ref(&yaml), OnInvalid::Stop).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: document 2 (Deployment shop/api): Pod shop/api-", yaml.display())), "{e}");
    }

    #[test]
    fn an_error_in_a_node_names_its_file_and_document() {
        let dir = folder("bad-node");
        let bad = NODE.replace("{name: n1}", "{name: n2}").replace("cpu: 4", "cpu: abc");
        let list =
            "apiVersion: v1\nkind: NodeList\nitems:\n- metadata: {name: n3}\n  status: {allocatable: {cpu: x}}\n";
        let yaml = write(&dir, "c.yaml", &format!("{NODE}---\n{bad}---\n{}", pod("shop", "web")));
        let e = load(std::slice::from_ref(&yaml), OnInvalid::Stop).unwrap_err().to_string();
        let want = format!("{}: document 2 (Node n2): Node n2: status.allocatable.cpu: ", yaml.display());
        assert!(e.starts_with(&want), "{e}");
        // An item of a typed list: the item is named.
        let yaml = write(&dir, "l.yaml", &format!("{NODE}---\n{list}"));
        let e = load(std::slice::from_ref(&yaml), OnInvalid::Stop).unwrap_err().to_string();
        let want = format!("{}: document 2, item 1 (Node n3): Node n3: status.allocatable.cpu: ", yaml.display());
        assert!(e.starts_with(&want), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_with_no_objects_stop_the_run_naming_them() {
        let dir = folder("empty");
        let empty = write(&dir, "empty.yaml", "");
        let comments = write(&dir, "comments.yaml", "# nothing yet\n---\n---\n");
        let e = load(&[empty.clone(), comments.clone()], OnInvalid::Stop).unwrap_err();
        assert!(matches!(e, InputError::Empty { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "no objects in {}, {}: the simulator needs Nodes and pods (Kubernetes YAML or openb CSV)",
                empty.display(),
                comments.display()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_cluster_with_no_node_stops_the_run_naming_the_files() {
        let dir = folder("no-nodes");
        let yaml = write(&dir, "w.yaml", &pod("shop", "web"));
        let e = load(std::slice::from_ref(&yaml), OnInvalid::Stop).unwrap_err();
        assert!(matches!(e, InputError::NoNodes { skipped: 0, .. }), "{e:?}");
        assert!(e.to_string().starts_with(&format!("no Node in {}: ", yaml.display())), "{e}");
        // Every Node left out as invalid leaves no cluster either, and the message says why.
        let bad = NODE.replace("cpu: 4", "cpu: abc");
        let yaml = write(&dir, "c.yaml", &format!("{bad}---\n{}", pod("shop", "web")));
        let e = load(std::slice::from_ref(&yaml), OnInvalid::Skip).unwrap_err();
        assert!(matches!(e, InputError::NoNodes { skipped: 1, .. }), "{e:?}");
        assert!(e.to_string().ends_with("; 1 Node was left out as invalid"), "{e}");
        // A trace's nodes are a cluster.
        let nodes = write(&dir, "nodes.csv", "sn,cpu_milli,memory_mib,gpu,model\nn1,4000,8192,0,\n");
        let csv = write(&dir, "t.csv", TRACE);
        assert!(load(&[nodes, csv], OnInvalid::Stop).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pod_given_in_yaml_and_in_a_trace_names_both_places() {
        let dir = folder("yaml-and-csv");
        let yaml = write(&dir, "w.yaml", &format!("{NODE}---\n{}---\n{}", pod("shop", "web"), pod("default", "web")));
        let csv = write(&dir, "t.csv", TRACE);
        let e = load(&[yaml.clone(), csv.clone()], OnInvalid::Stop).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Pod default/web is given more than once: at {}: document 3 (Pod default/web) and at {}: line 3; \
                 pods are told apart by namespace/name, so no two may share one",
                yaml.display(),
                csv.display()
            )
        );
        // shop/web is another pod: namespaces keep names apart.
        let yaml = write(&dir, "w.yaml", &format!("{NODE}---\n{}", pod("shop", "web")));
        let input = load(&[yaml, csv], OnInvalid::Stop).unwrap();
        assert_eq!(input.pods.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn copies_within_one_trace_or_list_name_their_lines_and_items() {
        let dir = folder("one-file");
        let csv = write(&dir, "t.csv", &format!("{TRACE}p1,1,1,0,0\np0,2000,1024,0,0\nweb,1,1,0,0\n"));
        let e = load(std::slice::from_ref(&csv), OnInvalid::Stop).unwrap_err();
        let at = |line: u32| format!("{}: line {line}", csv.display());
        assert!(
            e.to_string().starts_with(&format!(
                "Pod default/p0 is given more than once: at {} and at {};",
                at(2),
                at(5)
            )),
            "{e}"
        );
        assert!(e.to_string().ends_with("(1 more pod is given more than once)"), "{e}");

        let item = |name: &str| {
            format!("{{apiVersion: v1, kind: Pod, metadata: {{name: {name}}}, spec: {{containers: [{{name: c}}]}}}}")
        };
        let list =
            format!("{NODE}---\napiVersion: v1\nkind: List\nitems: [{}, {}, {}]\n", item("a"), item("b"), item("a"));
        let yaml = write(&dir, "list.yaml", &list);
        let e = load(std::slice::from_ref(&yaml), OnInvalid::Stop).unwrap_err();
        let at = |item: u32| format!("{}: document 2, item {item} (Pod a)", yaml.display());
        assert!(
            e.to_string().starts_with(&format!(
                "Pod default/a is given more than once: at {} and at {};",
                at(1),
                at(3)
            )),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_running_pod_and_a_pending_copy_are_duplicates_too() {
        let dir = folder("running");
        let running = pod("default", "web").replace("spec: {", "spec: {nodeName: n1, ");
        let yaml = write(&dir, "w.yaml", &format!("{NODE}---\n{running}---\n{}", pod("default", "web")));
        let e = load(&[yaml], OnInvalid::Stop).unwrap_err();
        assert!(e.to_string().starts_with("Pod default/web is given more than once: at "), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The input's PodDisruptionBudgets, each keeping its rule for the engine to apply.
fn budgets(objects: &Objects) -> Result<Budgets, InputError> {
    let budgets = objects
        .disruption_budgets
        .iter()
        .map(|p| ingest::disruption::budget(p, ingest::disruption::Source::Rule))
        .collect::<Result<_, _>>()?;
    Ok(Budgets { budgets })
}

/// A synthetic replay input for benchmarks: `bench`'s cluster and mixed workload, with pods
/// arriving uniformly over a day and running from ten minutes to six hours.
pub fn synthetic(nodes: usize, pods: usize, seed: u64) -> SimInput {
    use crate::bench::synth::{self, Mix};
    let mut rng = crate::engine::rng::Rng::new(seed);
    let cluster = synth::cluster(nodes, Mix::Mixed, &mut rng);
    let workload = synth::workload(pods, Mix::Mixed, &mut rng);
    let day = 86_400.0;
    let count = workload.len();
    let pods: Vec<SimPod> = workload
        .into_iter()
        .enumerate()
        .map(|(i, pod)| {
            let arrival = (day * i as f64 / count.max(1) as f64).floor();
            let duration = Some((600.0 + rng.unit() * 21_000.0).floor());
            SimPod { pod, arrival, duration, gates_removed_after: None }
        })
        .collect();
    let sources = vec![format!("synthetic: {nodes} nodes, {} pods", pods.len())];
    SimInput { nodes: cluster, pods, sources, ..SimInput::default() }
}

#[cfg(test)]
mod tests {
    use tessera_plugins::model::{GroupKey, PodGroupApi};

    use super::*;

    const GANGS: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {rack: r1}}
status: {allocatable: {cpu: 4, memory: 8Gi}}
---
apiVersion: scheduling.x-k8s.io/v1alpha1
kind: PodGroup
metadata: {name: etl, namespace: batch}
spec: {minMember: 2, scheduleTimeoutSeconds: 60}
---
apiVersion: scheduling.k8s.io/v1alpha3
kind: PodGroup
metadata: {name: train, namespace: ml}
spec: {schedulingPolicy: {gang: {minCount: 4}}, schedulingConstraints: {topology: [{key: rack}]}}
---
apiVersion: scheduling.k8s.io/v1alpha3
kind: Workload
metadata: {name: serve, namespace: ml}
spec: {podGroupTemplates: [{name: replicas, schedulingPolicy: {gang: {minCount: 2}}}]}
---
apiVersion: v1
kind: Pod
metadata: {name: etl-0, namespace: batch, labels: {scheduling.x-k8s.io/pod-group: etl}}
spec: {containers: [{name: c}]}
"#;

    #[test]
    fn pods_that_already_finished_hold_nothing_and_are_left_out() {
        let pod = |name: &str, node: Option<&str>, phase: &str| {
            let node = node.map_or(String::new(), |n| format!(", nodeName: {n}"));
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n\
                 spec: {{containers: [{{name: c, resources: {{requests: {{cpu: '1'}}}}}}]{node}}}\n\
                 status: {{phase: {phase}}}\n"
            )
        };
        let yaml = [
            pod("done", Some("n1"), "Succeeded"),
            pod("crashed", Some("n1"), "Failed"),
            pod("evicted", None, "Failed"),
            pod("web", Some("n1"), "Running"),
            pod("new", None, "Pending"),
        ]
        .join("---\n");
        let input = from_objects(&ingest::read_objects("dump.yaml", &yaml).unwrap(), OnInvalid::Stop).unwrap();
        let names = |pods: Vec<&Pod>| pods.iter().map(|p| p.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names(input.running.iter().map(|p| p.as_ref()).collect()), ["web"]);
        assert_eq!(names(input.pods.iter().map(|p| p.pod.as_ref()).collect()), ["new"]);
        assert_eq!(input.finished, 3);
    }

    #[test]
    fn gated_pods_carry_their_gates_and_when_they_are_removed() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: held, annotations: \
                    {tessera.io/scheduling-gates-removed-after: 30s}}\n\
                    spec: {containers: [{name: c}], schedulingGates: [{name: example.com/quota}]}\n---\n\
                    apiVersion: v1\nkind: Pod\nmetadata: {name: free}\nspec: {containers: [{name: c}], schedulingGates: []}\n";
        let input = from_objects(&ingest::read_objects("w.yaml", yaml).unwrap(), OnInvalid::Stop).unwrap();
        let pods: Vec<(&str, usize, Option<f64>)> =
            input.pods.iter().map(|p| (&*p.pod.name, p.pod.scheduling_gates.len(), p.gates_removed_after)).collect();
        assert_eq!(pods, [("held", 1, Some(30.0)), ("free", 0, None)], "an empty gate list gates nothing");
    }

    #[test]
    fn pod_groups_of_both_apis_and_workloads_are_loaded() {
        let input = from_objects(&ingest::read_objects("gangs.yaml", GANGS).unwrap(), OnInvalid::Stop).unwrap();
        let groups: Vec<_> = input.pod_groups.iter().map(|g| (g.key.to_string(), g.api, g.min_count)).collect();
        assert_eq!(
            groups,
            vec![
                ("batch/etl".to_string(), PodGroupApi::Coscheduling, 2),
                ("ml/train".to_string(), PodGroupApi::Kubernetes, 4),
                ("ml/serve-replicas".to_string(), PodGroupApi::Kubernetes, 2),
            ]
        );
        assert_eq!(input.pod_groups[0].schedule_timeout_s, Some(60.0));
        assert_eq!(input.pod_groups[1].topology_key, Some(Sym::new("rack")));
        assert_eq!(input.pods[0].pod.group_key(), Some(GroupKey::new("batch", "etl")));
        assert!(input.unknown_kinds.is_empty());
    }

    /// Nodes, slices, a class, a template, an allocated claim, a running pod and a Job.
    const DRA: &str = include_str!("../../../tests/fixtures/sim/dra.yaml");

    #[test]
    fn nodes_get_their_local_devices_and_pods_their_claims() {
        let input = from_objects(&ingest::read_objects("dra.yaml", DRA).unwrap(), OnInvalid::Stop).unwrap();
        let devices = |node: usize| {
            let d = &input.nodes[node].devices.devices;
            d.iter().map(|d| d.id().to_string()).collect::<Vec<_>>()
        };
        // gpu-a: its newest generation, both slices of it; the stale slice's gpu-9 is gone.
        assert_eq!(
            devices(0),
            [
                "fabric.example.com/fabric/link-0",
                "gpu.example.com/gpu-a/gpu-0",
                "gpu.example.com/gpu-a/gpu-1",
                "gpu.example.com/gpu-a/gpu-2"
            ]
        );
        // The allNodes slice's device is every node's, marked as not local.
        assert_eq!(devices(1), ["fabric.example.com/fabric/link-0", "gpu.example.com/gpu-b/gpu-0"]);
        assert_eq!(input.nodes[1].devices.remote.iter().collect::<Vec<_>>(), [0]);
        assert!(input.unknown_kinds.is_empty());

        let notebook = &input.running[0];
        let allocation = notebook.claims[0].allocation.as_ref().unwrap();
        assert_eq!(allocation.node, Some(Sym::new("gpu-a")));
        assert_eq!(allocation.devices[0].device.to_string(), "gpu.example.com/gpu-a/gpu-0");
        assert!(notebook.claims[0].shared);

        let train: Vec<_> = input.pods.iter().map(|p| &p.pod.claims[0]).collect();
        let keys: Vec<String> = train.iter().map(|c| c.key.to_string()).collect();
        assert_eq!(keys, ["ml/train-0-gpu", "ml/train-1-gpu"]);
        assert!(Arc::ptr_eq(train[0].spec.as_ref().unwrap(), train[1].spec.as_ref().unwrap()));
    }

    /// A gang of three whose PodGroup claims an IMEX channel for all of them.
    const DRA_GROUP: &str = include_str!("../../../tests/fixtures/sim/dra-group.yaml");

    #[test]
    fn the_members_of_a_pod_group_share_its_claim_and_keep_their_own() {
        let input = from_objects(&ingest::read_objects("dra-group.yaml", DRA_GROUP).unwrap(), OnInvalid::Stop).unwrap();
        assert_eq!(input.pod_groups.len(), 1);
        assert_eq!(input.pod_groups[0].min_count, 3);
        let members: Vec<&Pod> = input.pods.iter().map(|p| p.pod.as_ref()).collect();
        assert_eq!(members.len(), 3);
        let imex: Vec<_> = members.iter().map(|p| &p.claims[0]).collect();
        for c in &imex {
            assert_eq!(c.key.to_string(), "ml/train-imex", "one claim for the group");
            assert!(c.shared && c.allocation.is_none());
            assert_eq!(c.group.as_ref().map(|g| (g.name, &*g.uid)), Some((Sym::new("train"), "")));
            assert!(Arc::ptr_eq(c.spec.as_ref().unwrap(), imex[0].spec.as_ref().unwrap()));
        }
        let gpus: Vec<String> = members.iter().map(|p| p.claims[1].key.to_string()).collect();
        assert_eq!(gpus, ["ml/train-0-gpu", "ml/train-1-gpu", "ml/train-2-gpu"]);
        assert!(members.iter().all(|p| !p.claims[1].shared && p.claims[1].group.is_none()));
        // The channels are reachable from the nodes of rack r1, from none of them locally.
        let channels = |node: usize| {
            let remote = input.nodes[node].devices.remote_devices();
            remote.map(|(_, d)| d.id().to_string()).collect::<Vec<_>>()
        };
        assert_eq!(channels(0), ["imex.example.com/imex-r1/channel-0", "imex.example.com/imex-r1/channel-1"]);
        assert!(channels(3).is_empty(), "rack r2 reaches no channel");
    }

    #[test]
    fn a_bad_slice_stops_the_input_or_is_skipped() {
        let bad = DRA.replace("{memory: {value: 24Gi}}", "{memory: {value: lots}}");
        let objects = ingest::read_objects("dra.yaml", &bad).unwrap();
        let e = from_objects(&objects, OnInvalid::Stop).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "ResourceSlice gpu-b-gpu.example.com: spec.devices[0].capacity.memory.value: quantity \"lots\""
            ),
            "{e}"
        );
        let input = from_objects(&objects, OnInvalid::Skip).unwrap();
        assert_eq!(input.skipped.len(), 1);
        let left: Vec<String> = input.nodes[1].devices.devices.iter().map(|d| d.id().to_string()).collect();
        assert_eq!(left, ["fabric.example.com/fabric/link-0"], "only the allNodes device is left");
    }

    #[test]
    fn a_malformed_gpu_wiring_stops_the_input_or_leaves_count_only_placement() {
        let yaml = "kind: Node\napiVersion: v1\nmetadata:\n  name: gpu-7\n  annotations:\n    \
                    tessera.io/gpu-topology: '{\"gpus\": [{\"nvlink\": {\"1\": 2}}, {\"nvlink\": {\"0\": 4}}]}'\n\
                    status:\n  allocatable: {cpu: \"8\", memory: 8Gi, nvidia.com/gpu: \"2\"}\n";
        let objects = ingest::read_objects("nodes.yaml", yaml).unwrap();
        let e = from_objects(&objects, OnInvalid::Stop).unwrap_err().to_string();
        assert_eq!(
            e,
            "Node gpu-7: metadata.annotations.tessera.io/gpu-topology: gpus[0].nvlink.1 is 2 but gpus[1].nvlink.0 is 4"
        );
        let input = from_objects(&objects, OnInvalid::Skip).unwrap();
        assert_eq!(input.nodes.len(), 1, "the node stays");
        assert_eq!(input.nodes[0].gpus.len(), 2);
        assert!(input.nodes[0].gpus[0].wiring.is_none(), "placed by count only");
        assert_eq!(input.skipped, vec![format!("{e} (the node's GPUs are placed by count only)")]);
    }

    #[test]
    fn an_invalid_pod_group_fails_the_input() {
        let bad = GANGS.replace("minMember: 2", "minMember: 0");
        let e = from_objects(&ingest::read_objects("gangs.yaml", &bad).unwrap(), OnInvalid::Stop).unwrap_err();
        assert!(matches!(e, InputError::Ingest(_)), "{e:?}");
        assert_eq!(e.to_string(), "PodGroup batch/etl: spec.minMember: must be between 1 and 100000, got 0");
    }
}
