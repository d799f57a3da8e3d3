//! Scheduling gates (upstream's SchedulingGates PreEnqueue plugin): a gated pod waits, is
//! reported `SchedulingGated`, is never counted unschedulable, and is scheduled once its gates
//! are removed; a profile that disables the plugin schedules it at once.
//!
//! Gates are removed in a replay by `tessera.io/scheduling-gates-removed-after`, as the
//! controller owning them would remove them on a cluster.

use tessera_plugins::registry::Registry;
use tessera_scheduler::config;
use tessera_scheduler::sim::input::{self, SimInput};
use tessera_scheduler::sim::record::{PodRecord, RunResult};
use tessera_scheduler::sim::summary::{self, Summary};
use tessera_scheduler::sim::{Mode, NamedConfig, Progress, replay};

/// Two 4-CPU nodes, as `kubectl get nodes -o yaml` lists them.
pub(crate) const TWO_NODES: &str = r#"apiVersion: v1
items:
- apiVersion: v1
  kind: Node
  metadata:
    labels:
      kubernetes.io/hostname: node-a
      kubernetes.io/os: linux
    name: node-a
  spec:
    podCIDR: 10.244.1.0/24
  status:
    allocatable:
      cpu: "4"
      memory: 16Gi
      pods: "110"
    capacity:
      cpu: "4"
      memory: 16Gi
      pods: "110"
- apiVersion: v1
  kind: Node
  metadata:
    labels:
      kubernetes.io/hostname: node-b
      kubernetes.io/os: linux
    name: node-b
  spec:
    podCIDR: 10.244.2.0/24
  status:
    allocatable:
      cpu: "4"
      memory: 16Gi
      pods: "110"
    capacity:
      cpu: "4"
      memory: 16Gi
      pods: "110"
kind: List
metadata:
  resourceVersion: ""
"#;

/// A pending pod `name` asking 1 CPU, as `kubectl get pod -o yaml` shows it, with `annotations`
/// (lines under `metadata.annotations`, indented four spaces) and `spec` lines (indented two).
pub(crate) fn pending_pod(name: &str, annotations: &str, spec: &str) -> String {
    let annotations = if annotations.is_empty() { String::new() } else { format!("  annotations:\n{annotations}") };
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
{annotations}  creationTimestamp: "2026-11-30T10:00:00Z"
  labels:
    app: {name}
  name: {name}
  namespace: default
  uid: 6f1c2a4e-0000-4000-8000-{uid:0>12}
spec:
  containers:
  - image: registry.example.com/{name}:v1
    imagePullPolicy: IfNotPresent
    name: main
    resources:
      requests:
        cpu: "1"
        memory: 1Gi
  dnsPolicy: ClusterFirst
  enableServiceLinks: true
  preemptionPolicy: PreemptLowerPriority
  priority: 0
  restartPolicy: Always
  schedulerName: default-scheduler
{spec}  securityContext: {{}}
  terminationGracePeriodSeconds: 30
status:
  phase: Pending
  qosClass: Burstable
"#,
        uid = name.len()
    )
}

/// Loads the YAML documents as the simulator does.
pub(crate) fn load(docs: &[&str]) -> SimInput {
    let objects = tessera_scheduler::ingest::read_objects("conformance.yaml", &docs.join("---\n")).unwrap();
    input::from_objects(&objects, input::OnInvalid::Stop).unwrap()
}

/// Replays `input` under the configuration `config` (upstream's default profile when empty).
pub(crate) fn replay_with(input: &SimInput, config: &str) -> RunResult {
    let registry = Registry::builtin();
    let parsed = if config.is_empty() {
        config::default_config(&registry).unwrap()
    } else {
        config::parse_config("config.yaml", config, &registry).unwrap()
    };
    replay::replay(input, &NamedConfig::from_config("conformance", parsed), 42, 1, &Progress::new(false, ""))
}

pub(crate) fn record<'a>(run: &'a RunResult, name: &str) -> &'a PodRecord {
    run.records.iter().find(|r| &*r.key.name == name).unwrap_or_else(|| panic!("no record for {name}"))
}

pub(crate) fn summary(run: RunResult) -> Summary {
    summary::summarize(&[run], Mode::Replay, 1.3).unwrap()
}

const GATES: &str = "  schedulingGates:\n  - name: example.com/quota-check\n";

/// Upstream's `PodScheduled` condition message for a gated pod (reason `SchedulingGated`).
const SCHEDULING_GATED: &str = "Scheduling is blocked due to non-empty scheduling gates";

#[test]
fn a_gated_pod_waits_and_is_not_unschedulable() {
    let held = pending_pod("held", "", GATES);
    let free = pending_pod("free", "", "");
    let run = replay_with(&load(&[TWO_NODES, &held, &free]), "");
    let r = record(&run, "held");
    assert_eq!((r.node, r.start, r.attempts, r.gated), (None, None, 0, true), "never tried: {r:?}");
    assert_eq!(r.reason, SCHEDULING_GATED);
    assert!(record(&run, "free").node.is_some());
    let s = summary(run);
    assert_eq!((s.placed, s.gated, s.unschedulable), (1, 1, 0));
    assert!(s.unschedulable_by_reason.is_empty(), "{:?}", s.unschedulable_by_reason);
}

#[test]
fn a_pod_is_scheduled_once_its_gates_are_removed() {
    let annotations = "    tessera.io/arrival: 10s\n    tessera.io/scheduling-gates-removed-after: 30s\n";
    let held = pending_pod("held", annotations, GATES);
    let run = replay_with(&load(&[TWO_NODES, &held]), "");
    let r = record(&run, "held");
    assert_eq!(r.arrival, 10.0);
    assert_eq!(r.start, Some(40.0), "scheduled when its gates went, 30 s after it arrived: {r:?}");
    assert!(r.node.is_some() && !r.gated && r.reason.is_empty(), "{r:?}");
    assert_eq!(r.attempts, 1, "tried only once ungated");
    let s = summary(run);
    assert_eq!((s.placed, s.gated, s.unschedulable), (1, 0, 0));
}

#[test]
fn a_profile_without_scheduling_gates_schedules_gated_pods() {
    let config = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n\
                  - schedulerName: default-scheduler\n  plugins:\n    preEnqueue:\n      disabled:\n\
                  \x20     - name: SchedulingGates\n";
    let held = pending_pod("held", "", GATES);
    let run = replay_with(&load(&[TWO_NODES, &held]), config);
    let r = record(&run, "held");
    assert_eq!((r.start, r.gated), (Some(0.0), false), "{r:?}");
}

#[test]
fn a_pod_whose_gates_stay_is_still_gated_at_the_end() {
    // Another pod leaving frees nothing for it: only the gates' removal lets it in.
    let held = pending_pod("held", "", GATES);
    let leaving = pending_pod("leaving", "    tessera.io/duration: 1m\n", "");
    let run = replay_with(&load(&[TWO_NODES, &held, &leaving]), "");
    let r = record(&run, "held");
    assert_eq!((r.start, r.gated, r.attempts), (None, true, 0), "{r:?}");
    assert_eq!(record(&run, "leaving").end, Some(60.0));
}
