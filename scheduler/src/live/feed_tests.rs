//! The feed against a model API server, under proptest: whatever the order of pod arrivals,
//! binding answers (accepted, or refused because the pod is bound already) and restarts (the
//! scheduler replaced by a fresh one that lists the API, its bindings in flight lost), no node
//! is ever over-committed in the API, no pod is bound twice, and every pod that fits is bound.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use proptest::prelude::*;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::LabelSet;
use tessera_plugins::model::{Node, Pod, PodKey};
use tessera_plugins::registry::Registry;
use tessera_plugins::resources::ResourceVec;
use tokio::sync::mpsc;

use super::feed::{Decision, Flags, LiveFeed};
use super::metrics::Metrics;
use super::watch::{Change, Kind, PodUpdate};
use crate::engine::{Engine, EngineOptions, Feed};

const NODES: usize = 3;
/// Pods of one CPU each fit on a node.
const PER_NODE: usize = 4;

fn node(i: usize) -> Node {
    let name = format!("n{i}");
    Node {
        name: Sym::new(&name),
        labels: LabelSet::from_pairs([("kubernetes.io/hostname", name.as_str())]),
        taints: vec![],
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(1000 * PER_NODE as i64, 64 << 30),
        allowed_pods: 110,
        images: vec![],
        gpus: Vec::new(),
        devices: Default::default(),
    }
}

fn pod(i: usize, on: Option<&str>) -> Pod {
    let mut p = Pod::new("default", &format!("p{i}"), ResourceVec::cpu_mem(1000, 1 << 20));
    p.scheduler_name = Sym::new("tessera");
    p.node_name = on.map(Sym::new);
    p
}

/// One scheduler: engine, feed, and its two channels.
struct Instance {
    engine: Engine,
    feed: LiveFeed,
    changes: crossbeam_channel::Sender<Change>,
    decisions: mpsc::UnboundedReceiver<Decision>,
}

impl Instance {
    /// A fresh scheduler that lists `api` (what a restart sees).
    fn start(api: &BTreeMap<usize, Option<String>>) -> Instance {
        let config = crate::config::parse_config(
            "t.yaml",
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: tessera\n",
            &Registry::builtin(),
        )
        .unwrap();
        let engine = Engine::new(config.profiles, EngineOptions::default());
        let (changes, rx) = crossbeam_channel::unbounded();
        let (tx, decisions) = mpsc::unbounded_channel();
        let flags = Flags::default();
        flags.leading.store(true, Ordering::Release);
        let feed = LiveFeed::new(rx, tx, flags, Arc::new(Metrics::new()));
        let me = Instance { engine, feed, changes, decisions };
        for i in 0..NODES {
            me.send(Change::Node(node(i)));
        }
        for (&i, on) in api {
            me.send_pod(i, on.as_deref());
        }
        for kind in Kind::ALL {
            me.send(Change::Synced(kind));
        }
        me
    }

    fn send(&self, change: Change) {
        self.changes.send(change).unwrap();
    }

    fn send_pod(&self, i: usize, on: Option<&str>) {
        let update = PodUpdate { pod: pod(i, on), finished: false, terminating: false };
        self.send(Change::Pod(Box::new(update)));
    }

    /// Applies what arrived and runs one scheduling pass (the step drive, same parts).
    fn step(&mut self, now: f64) {
        self.feed.apply(&mut self.engine.core(), now);
        let outcomes = self.engine.schedule_pending(now);
        self.feed.outcomes(outcomes);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Create,
    Step,
    /// Answer up to this many pending bind decisions.
    Deliver(usize),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![3 => Just(Op::Create), 3 => Just(Op::Step), 3 => (1usize..6).prop_map(Op::Deliver), 1 => Just(Op::Restart)]
}

/// The model API's answer to one binding: bound, or 409 when the pod is bound already.
fn deliver(api: &mut BTreeMap<usize, Option<String>>, me: &mut Instance, n: usize, accepted: &mut Vec<usize>) {
    for _ in 0..n {
        let Ok(decision) = me.decisions.try_recv() else { return };
        let Decision::Bind(job) = decision else { continue };
        for item in job {
            let i: usize = item.pod.name.trim_start_matches('p').parse().unwrap();
            let key = PodKey::new("default", &item.pod.name);
            match api.get_mut(&i) {
                Some(slot @ None) => {
                    *slot = Some(item.node.as_str().to_string());
                    accepted.push(i);
                    me.send(Change::BindSucceeded(key));
                    me.send_pod(i, Some(item.node.as_str()));
                }
                _ => me.send(Change::BindFailed { pods: vec![key], gone: false }),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn restarts_and_refusals_never_bind_twice_or_over_commit(ops in prop::collection::vec(op(), 1..60)) {
        let mut api: BTreeMap<usize, Option<String>> = BTreeMap::new();
        let mut me = Instance::start(&api);
        let mut accepted = Vec::new();
        let mut now = 0.0;
        for op in ops {
            now += 1.0;
            match op {
                Op::Create if api.len() < NODES * PER_NODE => {
                    let i = api.len();
                    api.insert(i, None);
                    me.send_pod(i, None);
                }
                Op::Create => {}
                Op::Step => me.step(now),
                Op::Deliver(n) => deliver(&mut api, &mut me, n, &mut accepted),
                Op::Restart => me = Instance::start(&api),
            }
        }
        // Quiesce: everything fits, so every pod ends bound. Backoffs pass with the clock.
        for _ in 0..50 {
            now += 20.0;
            me.step(now);
            deliver(&mut api, &mut me, usize::MAX, &mut accepted);
        }
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for on in api.values() {
            prop_assert!(on.is_some(), "a pod that fits was never bound: {api:?}");
            *per_node.entry(on.clone().unwrap_or_default()).or_default() += 1;
        }
        prop_assert!(per_node.values().all(|&n| n <= PER_NODE), "over-committed: {per_node:?}");
        let mut once = accepted.clone();
        once.sort_unstable();
        once.dedup();
        prop_assert_eq!(once.len(), accepted.len(), "a pod was bound twice");
        prop_assert_eq!(me.engine.state().placed_count(), api.len(), "the engine counts every bound pod once");
    }
}

/// A GPU device `name` of driver `gpu`, pool `n0`.
fn device(name: &str) -> Arc<tessera_plugins::dra::model::Device> {
    Arc::new(tessera_plugins::dra::model::Device {
        uid: tessera_plugins::dra::model::Device::next_uid(),
        name: Sym::new(name),
        driver: Sym::new("gpu"),
        pool: Sym::new("n0"),
        attributes: Default::default(),
        capacity: Default::default(),
        taints: Vec::new(),
        allow_multiple_allocations: false,
        consumes_counters: Vec::new(),
    })
}

#[test]
fn devices_and_allocations_listed_after_their_node_and_pod_are_accounted() {
    let n0 = |me: &Instance| me.engine.state().snapshot().node_by_name(Sym::new("n0")).unwrap().clone();
    use tessera_plugins::dra::inventory::NodeDevices;
    use tessera_plugins::dra::model::{AllocatedDevice, ClaimAllocation, ClaimKey, DeviceId, PodClaim};
    let mut me = Instance::start(&BTreeMap::new());
    // A bound pod whose claim was not listed yet (the claim watch is behind the pod watch).
    let key = ClaimKey::new("default", "c");
    let mut p = pod(0, Some("n0"));
    p.claims.push(PodClaim {
        name: Sym::new("c"),
        key,
        spec: Err(Arc::from("waiting for resourceclaim default/c to be created")),
        shared: false,
        allocation: None,
        group: None,
    });
    let send = |me: &Instance, p: &Pod| {
        let update = PodUpdate { pod: p.clone(), finished: false, terminating: false };
        me.send(Change::Pod(Box::new(update)));
    };
    send(&me, &p);
    // n0's slices arrive after the node.
    let devices = NodeDevices { devices: vec![device("g0"), device("g1")], ..Default::default() };
    me.send(Change::NodeDevices { node: Sym::new("n0"), devices: Arc::new(devices) });
    me.step(1.0);
    assert_eq!(n0(&me).node.devices.len(), 2, "the node took its slices' devices");
    assert!(n0(&me).devices_used.is_empty());
    // The claim arrives with its allocation: the pod is converted again and held with it.
    let device = DeviceId { driver: Sym::new("gpu"), pool: Sym::new("n0"), device: Sym::new("g1") };
    let allocation = ClaimAllocation {
        claim: key,
        devices: vec![AllocatedDevice {
            request: Arc::from("gpu"),
            device,
            admin_access: false,
            consumed: Default::default(),
        }],
        node: Some(Sym::new("n0")),
        config: Vec::new(),
    };
    p.claims[0].allocation = Some(Arc::new(allocation));
    send(&me, &p);
    me.step(2.0);
    assert_eq!(n0(&me).devices_used.iter().collect::<Vec<_>>(), vec![1], "g1 held by the bound pod");
    assert_eq!(me.engine.state().placed_count(), 1, "accounted once");
    // A node update (labels, say) keeps the devices the slices gave it.
    me.send(Change::Node(node(0)));
    me.step(3.0);
    assert_eq!((n0(&me).node.devices.len(), n0(&me).devices_used.len()), (2, 1));
}
