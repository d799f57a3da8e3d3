//! The world of `tessera bench --mix preemption`: every node full of running pods of low
//! priority, and pods of high priority that each fit only once some of them are evicted.
//!
//! Nodes have 32 cores; each runs four 8-core pods of priority 0, 100 or 200, labelled with one
//! of 20 apps. The first [`PROTECTED_APPS`] apps have a PodDisruptionBudget that allows no
//! disruption at all; every node also runs pods of unprotected apps, so preemption always has a
//! choice that breaks no budget, and `--verify` holds it to that. The incoming pods have
//! priority 1000 and ask for 8 cores (four in five) or 16: one victim or two.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tessera_plugins::disruption::{Allowance, Bound, Budgets, DisruptionBudget};
use tessera_plugins::framework::Profile;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::{LabelSelector, LabelSet};
use tessera_plugins::model::{Node, Pod, PodKey};
use tessera_plugins::resources::ResourceVec;

use super::synth::{self, GI};
use crate::engine::Outcome;
use crate::engine::rng::Rng;
use crate::verify::BoundWithClaims;

/// Running pods per node.
pub const PODS_PER_NODE: usize = 4;
/// Apps the running pods belong to.
pub const APPS: usize = 20;
/// Apps whose budget allows no disruption.
pub const PROTECTED_APPS: usize = 5;
/// The incoming pods' priority.
pub const HIGH: i32 = 1000;

/// The nodes, the pods running on them, the incoming pods and the budgets.
#[derive(Clone, Debug)]
pub struct PreemptionWorld {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Pods already running (`spec.nodeName` set).
    pub running: Vec<Arc<Pod>>,
    /// Pods to schedule.
    pub pods: Vec<Arc<Pod>>,
    /// The budgets.
    pub budgets: Budgets,
}

/// A world of `nodes` nodes and `pods` incoming pods.
pub fn world(nodes: usize, pods: usize, rng: &mut Rng) -> PreemptionWorld {
    let nodes: Vec<Node> = (0..nodes).map(node).collect();
    let mut running = Vec::with_capacity(nodes.len() * PODS_PER_NODE);
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..PODS_PER_NODE {
            let k = i * PODS_PER_NODE + j;
            let app = format!("batch-{}", k % APPS);
            let mut p = Pod::new("default", &format!("low-{k:07}"), ResourceVec::cpu_mem(8_000, 16 * GI));
            p.labels = LabelSet::from_pairs([("app", app.as_str())]);
            p.priority = [0, 100, 200][rng.below(3) as usize];
            p.scheduler_name = Sym::new("default-scheduler");
            p.node_name = Some(node.name);
            p.creation_s = rng.below(10_000) as f64;
            running.push(Arc::new(p));
        }
    }
    let pods = (0..pods)
        .map(|i| {
            let cpu = if rng.below(5) == 0 { 16_000 } else { 8_000 };
            let mut p = Pod::new("default", &format!("high-{i:07}"), ResourceVec::cpu_mem(cpu, 2 * cpu / 1000 * GI));
            p.priority = HIGH;
            p.scheduler_name = Sym::new("default-scheduler");
            p.creation_s = 10_000.0 + i as f64;
            Arc::new(p)
        })
        .collect();
    PreemptionWorld { nodes, running, pods, budgets: budgets() }
}

/// Node `i`: 32 cores, 128 GiB.
fn node(i: usize) -> Node {
    let name = format!("node-{i:06}");
    let zone = format!("zone-{}", ["a", "b", "c"][i % 3]);
    Node {
        name: Sym::new(&name),
        labels: LabelSet::from_pairs([(synth::HOSTNAME, name.as_str()), (synth::ZONE, zone.as_str())]),
        taints: Vec::new(),
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(32_000, 128 * GI),
        allowed_pods: 110,
        images: Vec::new(),
        gpus: Vec::new(),
        devices: Default::default(),
    }
}

/// One budget per protected app, allowing no disruption.
fn budgets() -> Budgets {
    let budgets = (0..PROTECTED_APPS)
        .map(|a| {
            let app = format!("batch-{a}");
            DisruptionBudget {
                namespace: Sym::new("default"),
                name: Arc::from(app.as_str()),
                selector: Some(LabelSelector::from_match_labels(&LabelSet::from_pairs([("app", app.as_str())]))),
                allowance: Allowance::Rule { min_available: Some(Bound::Percent(100)), max_unavailable: None },
                healthy: 0,
                disrupted: 0,
            }
        })
        .collect();
    Budgets { budgets }
}

/// What `--verify` finds wrong, counted independently of the engine: the final placement
/// (running pods not evicted, plus the pods bound) re-checked from scratch, a victim whose
/// priority was not below its preemptor's, a pod evicted twice or never running, and each
/// protected pod evicted (a choice breaking no budget always existed).
pub fn violations(world: &PreemptionWorld, outcomes: &[Outcome], profiles: &[Arc<Profile>]) -> usize {
    let preemptors: HashMap<PodKey, i32> = world.pods.iter().map(|p| (p.key(), p.priority)).collect();
    let running: HashMap<PodKey, &Arc<Pod>> = world.running.iter().map(|p| (p.key(), p)).collect();
    let mut evicted: HashSet<PodKey> = HashSet::new();
    let mut wrong = 0;
    for o in outcomes {
        let Outcome::Preempted { pod, by, .. } = o else { continue };
        let lower = preemptors.get(by).is_some_and(|&p| pod.priority < p);
        let was_running = running.contains_key(&pod.key());
        let protected = world.budgets.budgets.iter().any(|b| b.covers(pod));
        wrong += usize::from(!lower || !was_running || protected || !evicted.insert(pod.key()));
    }
    let mut placed: Vec<BoundWithClaims> = world
        .running
        .iter()
        .filter(|p| !evicted.contains(&p.key()))
        .filter_map(|p| p.node_name.map(|n| (p.clone(), n, Vec::new())))
        .collect();
    placed.extend(outcomes.iter().filter_map(Outcome::bound));
    let by_name: HashMap<Sym, &Profile> = profiles.iter().map(|p| (Sym::new(&p.scheduler_name), p.as_ref())).collect();
    wrong + crate::verify::verify(&world.nodes, &placed, |p| by_name.get(&p.scheduler_name).copied()).len()
}
