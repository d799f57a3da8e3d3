//! Synthetic clusters and workloads for `tessera bench`, reproducible from a seed.
//!
//! Nodes come in three shapes (16, 32 and 64 cores), spread over three zones and racks of 16.
//! Pods come from deployments of 1–100 replicas whose sizes follow a long-tailed distribution
//! like a production cluster's (most pods small, a few big). Each mix adds its constraints on
//! top of the same pods so that mixes compare like with like.

use std::sync::Arc;

use tessera_plugins::intern::Sym;
use tessera_plugins::labels::{LabelSelector, LabelSet, Operator, Requirement};
use tessera_plugins::model::{
    AffinityTerm, InclusionPolicy, NamespaceScope, Node, Pod, SpreadConstraint, Taint, TaintEffect, Toleration,
    TolerationOperator, WeightedAffinityTerm, WhenUnsatisfiable,
};
use tessera_plugins::resources::ResourceVec;

use crate::engine::rng::Rng;

const GI: i64 = 1 << 30;
const MI: i64 = 1 << 20;
/// The zone label.
pub const ZONE: &str = "topology.kubernetes.io/zone";
/// The hostname label.
pub const HOSTNAME: &str = "kubernetes.io/hostname";
/// The rack label.
pub const RACK: &str = "topology.kubernetes.io/rack";

/// Which constraints the workload carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    /// CPU and memory requests only.
    Basic,
    /// Required anti-affinity against the own deployment per host, preferred affinity to a
    /// sibling deployment per zone.
    Affinity,
    /// Topology spread over zones (hard) and hosts (soft).
    Spread,
    /// A quarter each of basic, affinity, spread, and pods pinned by node selector and
    /// tolerating a dedicated taint.
    Mixed,
}

/// A cluster of `n` nodes.
pub fn cluster(n: usize, mix: Mix, rng: &mut Rng) -> Vec<Node> {
    (0..n).map(|i| node(i, mix, rng)).collect()
}

fn node(i: usize, mix: Mix, rng: &mut Rng) -> Node {
    let name = format!("node-{i:06}");
    let cores = match rng.below(10) {
        0 => 16,
        1..=6 => 32,
        _ => 64,
    };
    let zone = format!("zone-{}", ["a", "b", "c"][i % 3]);
    let rack = format!("rack-{:04}", i / 16);
    let mut labels = LabelSet::from_pairs([(HOSTNAME, name.as_str()), (ZONE, zone.as_str()), (RACK, rack.as_str())]);
    let mut taints = Vec::new();
    if mix == Mix::Mixed {
        if rng.below(10) < 3 {
            labels.insert(Sym::new("disktype"), Sym::new("ssd"));
        }
        if rng.below(10) == 0 {
            taints.push(Taint {
                key: Sym::new("dedicated"),
                value: Sym::new("batch"),
                effect: TaintEffect::NoSchedule,
            });
        }
    }
    Node {
        name: Sym::new(&name),
        labels,
        taints,
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(cores * 1000, cores * 4 * GI),
        allowed_pods: 110,
        images: Vec::new(),
        gpus: Vec::new(),
    }
}

/// `m` pods in deployments, with the mix's constraints.
pub fn workload(m: usize, mix: Mix, rng: &mut Rng) -> Vec<Arc<Pod>> {
    let mut pods = Vec::with_capacity(m);
    let mut dep = 0;
    while pods.len() < m {
        let replicas = (1 + rng.below(100) as usize).min(m - pods.len());
        let (cpu, mem) = size(rng);
        let kind = match mix {
            Mix::Mixed => [Mix::Basic, Mix::Affinity, Mix::Spread, Mix::Mixed][dep % 4],
            other => other,
        };
        for r in 0..replicas {
            pods.push(Arc::new(pod(dep, r, cpu, mem, kind)));
        }
        dep += 1;
    }
    pods
}

/// (millicores, bytes): most pods are small; a few are big.
fn size(rng: &mut Rng) -> (i64, i64) {
    let cpu = match rng.below(100) {
        0..=29 => 100,
        30..=54 => 250,
        55..=74 => 500,
        75..=89 => 1000,
        90..=96 => 2000,
        _ => 4000,
    };
    let mem_per_core = [1, 2, 4][rng.below(3) as usize] * GI;
    (cpu, (cpu * mem_per_core / 1000).max(128 * MI))
}

fn pod(dep: usize, replica: usize, cpu: i64, mem: i64, kind: Mix) -> Pod {
    let app = format!("dep-{dep:05}");
    let mut p = Pod::new("default", &format!("{app}-{replica}"), ResourceVec::cpu_mem(cpu, mem));
    p.scheduler_name = Sym::new("default-scheduler");
    p.labels = LabelSet::from_pairs([("app", app.as_str())]);
    p.creation_s = dep as f64;
    let own = selector("app", &app);
    match kind {
        Mix::Basic => {}
        Mix::Affinity => {
            p.pod_anti_affinity.required.push(term(own, HOSTNAME));
            let sibling = format!("dep-{:05}", dep ^ 1);
            p.pod_affinity
                .preferred
                .push(WeightedAffinityTerm { weight: 50, term: term(selector("app", &sibling), ZONE) });
        }
        Mix::Spread => {
            p.spread_constraints.push(spread(own.clone(), ZONE, 1, WhenUnsatisfiable::DoNotSchedule));
            p.spread_constraints.push(spread(own, HOSTNAME, 2, WhenUnsatisfiable::ScheduleAnyway));
        }
        Mix::Mixed => {
            p.node_selector = LabelSet::from_pairs([("disktype", "ssd")]);
            p.tolerations.push(Toleration {
                key: Some(Sym::new("dedicated")),
                operator: TolerationOperator::Equal,
                value: Sym::new("batch"),
                effect: Some(TaintEffect::NoSchedule),
            });
        }
    }
    p
}

fn selector(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        requirements: vec![Requirement {
            key: Sym::new(key),
            op: Operator::In,
            values: vec![Sym::new(value)],
            bound: 0,
        }],
    }
}

fn term(selector: LabelSelector, key: &str) -> AffinityTerm {
    AffinityTerm {
        selector: Some(selector),
        namespaces: NamespaceScope { names: Vec::new(), selector: None },
        topology_key: Sym::new(key),
    }
}

fn spread(selector: LabelSelector, key: &str, max_skew: i32, when: WhenUnsatisfiable) -> SpreadConstraint {
    SpreadConstraint {
        max_skew,
        topology_key: Sym::new(key),
        when_unsatisfiable: when,
        selector: Some(selector),
        min_domains: None,
        node_affinity_policy: InclusionPolicy::Honor,
        node_taints_policy: InclusionPolicy::Ignore,
    }
}
