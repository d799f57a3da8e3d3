//! What the simulator replays: nodes, pods with arrival and run times, and the objects
//! scheduling depends on, read from Kubernetes YAML or openb CSV, detected by content.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use tessera_plugins::default_selector::SourceChange;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{GPU_MILLI, Gpu, GpuRequest, Node, Pod, PodGroup};
use tessera_plugins::resources::ResourceVec;
use thiserror::Error;

use super::openb::{self, TraceError, TraceNode, TracePod};
use crate::ingest::duration::go_duration;
use crate::ingest::{self, IngestError, Objects, PodContext};

/// Annotation: when the pod arrives, as a Go duration from the start (`90s`, `2h`).
pub const ARRIVAL_ANNOTATION: &str = "tessera.io/arrival";
/// Annotation: how long the pod runs once bound (`30m`); without it, it never leaves.
pub const DURATION_ANNOTATION: &str = "tessera.io/duration";
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
    /// Pods already running on their `spec.nodeName` at t=0.
    pub running: Vec<Arc<Pod>>,
    /// Namespace labels.
    pub namespaces: HashMap<Sym, LabelSet>,
    /// Selectors of Services and of the controllers owning pods, for default spreading.
    pub selector_sources: Vec<SourceChange>,
    /// Gangs: PodGroups of both APIs and those materialized from Workloads, one per
    /// `namespace/name` (of two with one name, the later in input order wins; see
    /// [`ingest::pod_groups`]).
    pub pod_groups: Vec<PodGroup>,
    /// Kinds nobody understands, with counts (reported once, skipped).
    pub unknown_kinds: BTreeMap<String, usize>,
    /// The files read.
    pub sources: Vec<String>,
    /// Nodes and pods left out under [`OnInvalid::Skip`], with why (naming object and field).
    pub skipped: Vec<String>,
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
    let mut input = from_objects(&objects, on_invalid)?;
    input.nodes.extend(trace_nodes.iter().map(trace_node));
    input.pods.extend(trace_pods.iter().map(trace_pod));
    input.sources = sources;
    Ok(input)
}

/// Assembles the input from Kubernetes objects (the bundled sample goes through here too).
pub fn from_objects(objects: &Objects, on_invalid: OnInvalid) -> Result<SimInput, InputError> {
    let cx = PodContext::from_objects(objects)?;
    let mut input = SimInput {
        unknown_kinds: objects.unknown_kinds.clone(),
        namespaces: cx.namespaces().clone(),
        selector_sources: objects.selector_sources.clone(),
        pod_groups: ingest::pod_groups(objects, &cx)?,
        ..SimInput::default()
    };
    let invalid = |e: InputError, skipped: &mut Vec<String>| match on_invalid {
        OnInvalid::Stop => Err(e),
        OnInvalid::Skip => {
            skipped.push(e.to_string());
            Ok(())
        }
    };
    for n in &objects.nodes {
        match ingest::node(n) {
            Ok(node) => input.nodes.push(node),
            Err(e) => invalid(e.into(), &mut input.skipped)?,
        }
    }
    for p in &objects.pods {
        match sim_pod(p, &cx) {
            Ok(pod) if pod.pod.node_name.is_some() => input.running.push(pod.pod),
            Ok(pod) => input.pods.push(pod),
            Err(e) => invalid(e, &mut input.skipped)?,
        }
    }
    Ok(input)
}

/// One pod with its arrival and run time.
fn sim_pod(p: &core::Pod, cx: &PodContext) -> Result<SimPod, InputError> {
    let pod = Arc::new(ingest::pod(p, cx)?);
    let arrival = annotation_seconds(p, &pod, ARRIVAL_ANNOTATION)?.unwrap_or(0.0);
    let duration = annotation_seconds(p, &pod, DURATION_ANNOTATION)?;
    Ok(SimPod { pod, arrival, duration })
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
        gpus: (0..n.gpus).map(|_| Gpu { model, island: 0 }).collect(),
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
    SimPod { pod: Arc::new(pod), arrival, duration }
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
            SimPod { pod, arrival, duration }
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

    #[test]
    fn an_invalid_pod_group_fails_the_input() {
        let bad = GANGS.replace("minMember: 2", "minMember: 0");
        let e = from_objects(&ingest::read_objects("gangs.yaml", &bad).unwrap(), OnInvalid::Stop).unwrap_err();
        assert!(matches!(e, InputError::Ingest(_)), "{e:?}");
        assert_eq!(e.to_string(), "PodGroup batch/etl: spec.minMember: must be between 1 and 100000, got 0");
    }
}
