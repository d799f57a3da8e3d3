//! `tessera bench --mix gang` end to end on a small cluster: gangs are placed whole or not at
//! all under every topology setting, and the rack settings keep gangs within a rack.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tessera_plugins::registry::Registry;
use tessera_scheduler::bench::{self, BenchOptions, BenchReport, GangTopology, synth::Mix};
use tessera_scheduler::config;

fn run(topology: GangTopology, workers: usize) -> BenchReport {
    let profiles = config::default_config(&Registry::builtin()).expect("the default profile builds").profiles;
    let opts =
        BenchOptions { nodes: 64, pods: 600, workers, mix: Mix::Gang, seed: 1, verify: true, gang_topology: topology };
    bench::run(&opts, profiles).unwrap()
}

#[test]
fn gangs_are_all_or_nothing_and_kept_to_a_rack_when_asked() {
    let mut locality = Vec::new();
    for topology in [GangTopology::None, GangTopology::Hierarchy, GangTopology::Required] {
        let r = run(topology, 2);
        let g = r.gang.clone().expect("the gang mix reports gangs");
        let at = format!("{topology:?}: {r:?}");
        assert_eq!(r.scheduled + r.unschedulable, 600, "{at}");
        assert_eq!(r.violations, Some(0), "{at}");
        assert_eq!((g.partial_gangs, g.split_gangs), (0, 0), "{at}");
        assert!(g.gangs_scheduled > 0 && g.gangs_scheduled < g.gangs, "{at}");
        assert_eq!(g.gang_topology, topology);
        locality.push(g.gang_locality.expect("some scheduled gang fits in a rack"));
    }
    let [none, hierarchy, required] = locality[..] else { unreachable!() };
    assert_eq!(required, 1.0);
    assert!(hierarchy >= none, "hierarchy {hierarchy} vs none {none}");
    assert!(required >= none);
}

#[test]
fn one_worker_places_the_same_way_twice() {
    let (a, b) = (run(GangTopology::Hierarchy, 1), run(GangTopology::Hierarchy, 1));
    assert_eq!(a.placement_hash, b.placement_hash);
    assert_eq!(a.gang.map(|g| g.gangs_scheduled), b.gang.map(|g| g.gangs_scheduled));
}

#[test]
fn the_json_has_the_gang_fields_only_for_the_gang_mix() {
    let gang = serde_json::to_value(run(GangTopology::Required, 1)).unwrap();
    for field in ["gangs", "gangs_scheduled", "partial_gangs", "gang_locality", "gang_topology", "decisions_per_sec"] {
        assert!(gang.get(field).is_some(), "{field} in {gang}");
    }
    assert_eq!(gang["gang_topology"], "required");
    let profiles = config::default_config(&Registry::builtin()).unwrap().profiles;
    let opts = BenchOptions {
        nodes: 20,
        pods: 100,
        workers: 1,
        mix: Mix::Basic,
        seed: 1,
        verify: false,
        gang_topology: GangTopology::Hierarchy,
    };
    let basic = serde_json::to_value(bench::run(&opts, profiles).unwrap()).unwrap();
    assert!(basic.get("gangs").is_none() && basic.get("gang_topology").is_none(), "{basic}");
    assert!(basic.get("decisions_per_sec").is_some());
}
