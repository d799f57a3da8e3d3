//! Conformance: volumes. kube-scheduler's VolumeBinding, VolumeRestrictions, VolumeZone and
//! NodeVolumeLimits, on PersistentVolumes, claims, StorageClasses and CSINodes written as
//! `kubectl get -o yaml` writes them, replayed through the simulator on the default profile.
//! Every scenario shares `volumes-cluster.yaml`: node-1 in zone eu-west-1a, node-2 and node-3
//! in eu-west-1b, each attaching at most two EBS CSI volumes.

use std::path::PathBuf;

use tessera_plugins::registry::Registry;
use tessera_scheduler::config;
use tessera_scheduler::sim::input::{self, SimInput};
use tessera_scheduler::sim::record::{PodRecord, RunResult};
use tessera_scheduler::sim::{NamedConfig, Progress, replay};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sim").join(name)
}

/// The shared cluster plus `scenario`.
fn load(scenario: &str) -> SimInput {
    let paths = [fixture("volumes-cluster.yaml"), fixture(scenario)];
    input::load(&paths, input::OnInvalid::Stop).unwrap_or_else(|e| panic!("loading {scenario}: {e}"))
}

/// Replays `scenario` under upstream's default profile, seed 42.
fn replay_scenario(scenario: &str) -> RunResult {
    let config = NamedConfig::from_config("default", config::default_config(&Registry::builtin()).unwrap());
    replay::replay(&load(scenario), &config, 42, 1, &Progress::new(false, ""))
}

fn record<'a>(run: &'a RunResult, name: &str) -> &'a PodRecord {
    run.records.iter().find(|r| &*r.key.name == name).unwrap_or_else(|| panic!("no record for pod {name}"))
}

fn node_of(run: &RunResult, name: &str) -> Option<&'static str> {
    record(run, name).node.map(|n| n.as_str())
}

#[test]
fn a_pod_whose_bound_pv_has_node_affinity_runs_only_on_matching_nodes() {
    let run = replay_scenario("volumes-bound-local.yaml");
    assert_eq!(node_of(&run, "db-0"), Some("node-3"));
    assert_eq!(node_of(&run, "db-0-backup"), Some("node-3"), "a second user of the claim follows its volume");
}

#[test]
fn wait_for_first_consumer_picks_a_node_with_an_available_pv() {
    let run = replay_scenario("volumes-wffc-local.yaml");
    assert_eq!(node_of(&run, "cache-0"), Some("node-2"));
}

#[test]
fn two_pods_never_get_the_same_static_pv() {
    let run = replay_scenario("volumes-static-race.yaml");
    let placed: Vec<&str> = ["a", "b"].into_iter().filter(|p| node_of(&run, p).is_some()).collect();
    assert_eq!(placed, ["a"], "one volume, one pod: {:?}", run.records);
    assert_eq!(
        record(&run, "b").reason,
        "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
}

#[test]
fn wait_for_first_consumer_binds_the_smallest_pv_that_fits() {
    let run = replay_scenario("volumes-smallest.yaml");
    assert_eq!(node_of(&run, "first"), Some("node-1"));
    // Had `first` taken the 100Gi volume, the 50Gi claim would find none.
    assert_eq!(node_of(&run, "second"), Some("node-1"), "{}", record(&run, "second").reason);
}

#[test]
fn csinode_limit_caps_volumes_per_node() {
    let run = replay_scenario("volumes-csi-limit.yaml");
    let pods: Vec<String> = (1..=7).map(|i| format!("ebs-{i}")).collect();
    let placed: Vec<&str> = pods.iter().filter_map(|p| node_of(&run, p)).collect();
    assert_eq!(placed.len(), 6, "two per node: {placed:?}");
    for n in ["node-1", "node-2", "node-3"] {
        assert_eq!(placed.iter().filter(|p| **p == n).count(), 2, "{n}: {placed:?}");
    }
    assert_eq!(
        record(&run, "ebs-7").reason,
        "0/3 nodes are available: 3 node(s) exceed max volume count. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
    );
}

#[test]
fn read_write_once_pod_claim_in_use_blocks_a_second_pod() {
    let run = replay_scenario("volumes-rwop.yaml");
    assert_eq!(record(&run, "writer").start, Some(0.0));
    let second = record(&run, "second");
    assert_eq!(second.start, Some(60.0), "it waits for the writer to leave: {}", second.reason);
}

#[test]
fn read_write_once_pod_conflict_is_reported_on_every_node() {
    let mut input = load("volumes-rwop.yaml");
    // The writer never leaves.
    for p in &mut input.pods {
        p.duration = None;
    }
    let config = NamedConfig::from_config("default", config::default_config(&Registry::builtin()).unwrap());
    let run = replay::replay(&input, &config, 42, 1, &Progress::new(false, ""));
    assert_eq!(record(&run, "second").node, None);
    assert_eq!(
        record(&run, "second").reason,
        "0/3 nodes are available: 3 node has pod using PersistentVolumeClaim with the same name and \
         ReadWriteOncePod access mode. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
    );
}

#[test]
fn volume_zone_keeps_the_pod_in_the_pvs_zone() {
    let run = replay_scenario("volumes-zone.yaml");
    assert_eq!(node_of(&run, "zonal-app"), Some("node-1"));
}

#[test]
fn an_unbound_immediate_claim_is_unresolvable() {
    let run = replay_scenario("volumes-unresolvable.yaml");
    assert_eq!(node_of(&run, "immediate"), None);
    assert_eq!(
        record(&run, "immediate").reason,
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
}

#[test]
fn a_pod_naming_a_missing_claim_is_unresolvable_not_a_load_error() {
    let run = replay_scenario("volumes-unresolvable.yaml");
    assert_eq!(
        record(&run, "ghost").reason,
        "0/3 nodes are available: persistentvolumeclaim \"ghost\" not found. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
}

#[test]
fn a_claim_bound_to_a_missing_pv_is_unresolvable() {
    // VolumeZone's PreFilter looks the volume up first (VolumeBinding's Filter would say "node(s)
    // unavailable due to one or more pvc(s) bound to non-existent pv(s)").
    let run = replay_scenario("volumes-unresolvable.yaml");
    assert_eq!(
        record(&run, "dangling").reason,
        "0/3 nodes are available: persistentvolume \"pvc-deleted\" not found. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
}

#[test]
fn dynamic_provisioning_follows_the_storage_class_allowed_topologies() {
    let run = replay_scenario("volumes-provision.yaml");
    let node = node_of(&run, "app-0");
    assert!(matches!(node, Some("node-2" | "node-3")), "zone eu-west-1b only: {node:?}");
    assert_eq!(node_of(&run, "app-0-reader"), node, "the claim's volume is provisioned where its first pod went");
}

#[test]
fn an_inline_disk_mounted_on_a_node_blocks_a_conflicting_mount_there() {
    let run = replay_scenario("volumes-inline-disk.yaml");
    assert_eq!(node_of(&run, "reader"), Some("node-1"), "read-only mounts share the disk");
    assert_eq!(node_of(&run, "writer"), None);
    assert_eq!(
        record(&run, "writer").reason,
        "0/3 nodes are available: 1 node(s) had no available disk, \
         2 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
         2 Preemption is not helpful for scheduling.."
    );
}

#[test]
fn a_stateful_set_gets_a_claim_per_pod_from_its_templates_bound_where_a_volume_is() {
    let run = replay_scenario("volumes-statefulset.yaml");
    let mut nodes: Vec<&str> = ["kafka-0", "kafka-1"].iter().filter_map(|p| node_of(&run, p)).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["node-1", "node-2"], "one local volume each: {:?}", run.records);
    assert_eq!(node_of(&run, "kafka-2"), None);
    assert_eq!(
        record(&run, "kafka-2").reason,
        "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
}

#[test]
fn generic_ephemeral_volumes_are_provisioned_where_their_class_allows() {
    let run = replay_scenario("volumes-statefulset.yaml");
    let scratch: Vec<&PodRecord> = run.records.iter().filter(|r| r.key.name.starts_with("scratch-")).collect();
    assert_eq!(scratch.len(), 2);
    for r in scratch {
        assert!(matches!(r.node.map(|n| n.as_str()), Some("node-2" | "node-3")), "{r:?}");
    }
}
