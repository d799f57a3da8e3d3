//! How the engine takes pods in before any scheduling cycle: PreEnqueue (scheduling gates)
//! and pods bound to a node the cluster does not have.

use std::sync::Arc;

use tessera_plugins::intern::Sym;
use tessera_plugins::model::Pod;
use tessera_plugins::plugins::scheduling_gates;
use tessera_plugins::registry::Registry;

use super::test_support::{gpu_node, gpu_pod};
use super::tests::test_profile;
use super::*;

/// The test profile with SchedulingGates at PreEnqueue when `gates`.
fn engine(gates: bool) -> Engine {
    let mut profile = test_profile();
    if gates {
        profile.pre_enqueue = vec![Registry::builtin().make(scheduling_gates::NAME, None).unwrap()];
    }
    let mut e = Engine::new(vec![profile], EngineOptions::default());
    e.upsert_node(gpu_node("n1", "r1", 0), 0.0);
    e
}

fn gated(name: &str) -> Arc<Pod> {
    let mut p = gpu_pod(name, 0);
    p.scheduling_gates = vec![Arc::from("example.com/quota")];
    Arc::new(p)
}

fn placed(outcomes: &[Outcome]) -> Vec<String> {
    outcomes.iter().filter_map(|o| o.bound()).map(|(p, n, _)| format!("{}@{n}", p.name)).collect()
}

#[test]
fn a_gated_pod_waits_outside_the_queue_until_an_update_removes_its_gates() {
    let mut e = engine(true);
    let admission = e.add_pod(gated("p"), 0.0).unwrap();
    assert_eq!(
        admission,
        Admission::Gated {
            plugin: scheduling_gates::NAME,
            message: "waiting for scheduling gates: [example.com/quota]".into()
        }
    );
    assert!(e.schedule_pending(0.0).is_empty(), "never tried, so never unschedulable");
    assert_eq!((e.queue().len(), e.queue().gated_len()), (0, 1));
    let still = e.update_pod(gated("p"), 1.0).unwrap();
    assert!(matches!(still, Admission::Gated { .. }), "an update keeping the gates keeps it out");
    let ungated = Arc::new(Pod { scheduling_gates: Vec::new(), ..Pod::clone(&gated("p")) });
    assert_eq!(e.update_pod(ungated, 2.0).unwrap(), Admission::Queued);
    assert_eq!(placed(&e.schedule_pending(2.0)), ["p@n1"]);
    assert_eq!(e.queue().gated_len(), 0);
}

#[test]
fn a_profile_without_scheduling_gates_admits_gated_pods() {
    let mut e = engine(false);
    assert_eq!(e.add_pod(gated("p"), 0.0).unwrap(), Admission::Queued);
    assert_eq!(placed(&e.schedule_pending(0.0)), ["p@n1"]);
}

#[test]
fn a_deleted_gated_pod_is_forgotten() {
    let mut e = engine(true);
    e.add_pod(gated("p"), 0.0).unwrap();
    assert!(e.delete_pod(&gated("p").key(), 1.0));
    assert_eq!(e.gated_pods().count(), 0);
}

#[test]
fn a_pod_bound_to_a_missing_node_stays_bound_and_is_accounted_once_the_node_appears() {
    let mut e = engine(true);
    let mut p = gpu_pod("web", 0);
    p.node_name = Some(Sym::new("later"));
    let p = Arc::new(p);
    assert_eq!(e.add_pod(p.clone(), 0.0).unwrap(), Admission::AwaitingNode);
    assert_eq!(e.state().awaiting_node(Sym::new("later")).len(), 1);
    assert!(e.schedule_pending(0.0).is_empty(), "bound, so never scheduled");
    e.upsert_node(gpu_node("later", "r1", 0), 1.0);
    let id = e.state().node_of(&p.key()).expect("accounted on the new node");
    assert_eq!(e.state().snapshot().node(id).map(|n| n.name()), Some(Sym::new("later")));
    assert!(e.state().awaiting_node(Sym::new("later")).is_empty());
}

#[test]
fn a_pod_bound_to_a_missing_node_can_be_deleted() {
    let mut e = engine(true);
    let mut p = gpu_pod("web", 0);
    p.node_name = Some(Sym::new("gone"));
    e.add_pod(Arc::new(p.clone()), 0.0).unwrap();
    assert!(e.delete_pod(&p.key(), 1.0));
    e.upsert_node(gpu_node("gone", "r1", 0), 2.0);
    assert_eq!(e.state().node_of(&p.key()), None, "deleted before its node came");
}
