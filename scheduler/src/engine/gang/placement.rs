//! Where a gang is tried: which topology domains, in which order.
//!
//! A gang that must keep to one domain of a node label (`topology[].key`) is tried in the
//! domains whose free capacity could hold it, tightest first, so that big domains stay free
//! for big gangs. A gang without one is tried, if the configuration names a hierarchy of
//! topology labels (`block` > `rack`), in one narrowest domain first (tightest first), then
//! in one domain of each wider level, then anywhere: the fewest, closest domains win.
//!
//! Free capacity is summed per domain, so "could hold it" is necessary, not sufficient: the
//! worker still places every pod, and a domain that fragments badly simply fails its try.

use std::collections::HashMap;
use std::sync::Arc;

use tessera_plugins::dra::model::{AllocationMode, DeviceRequest, ExactRequest, RequestKind};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{GroupKey, Pod};
use tessera_plugins::nodeinfo::{NodeId, NodeInfo};
use tessera_plugins::resources::{ResourceId, ResourceVec};
use tessera_plugins::snapshot::Snapshot;

use super::GangSpec;

/// Domains tried per topology level before moving on: enough to get past a domain that
/// fragments, few enough that a gang that fits nowhere costs a bounded number of tries.
const TRIES_PER_LEVEL: usize = 4;

/// Domains tried for a gang that must keep to one.
const TRIES_REQUIRED: usize = 16;

/// One place to try a gang.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Try {
    /// `key=value` of the domain; `None` for the whole cluster.
    pub domain: Option<String>,
    /// The domain's nodes, sorted; `None` for the whole cluster.
    pub nodes: Option<Vec<NodeId>>,
}

impl Try {
    fn anywhere() -> Try {
        Try { domain: None, nodes: None }
    }
}

/// The tries for a gang, in order, and where to count its shortfall if all fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Places to try, in order; the first that holds every pod wins.
    pub tries: Vec<Try>,
    /// Where to count how many pods fit when no try succeeds: the whole cluster, or for a
    /// gang that must keep to one domain, the domain with the most room.
    pub fallback: Try,
}

/// What a gang asks for in total.
#[derive(Clone, Debug)]
struct Demand {
    resources: ResourceVec,
    gpu_milli: u64,
    /// DRA devices its claims take.
    devices: u64,
}

impl Demand {
    fn of(pods: &[Arc<Pod>]) -> Demand {
        let mut resources = ResourceVec::ZERO;
        let mut gpu_milli = 0;
        let mut devices = 0;
        for p in pods {
            resources.add(&p.requests);
            gpu_milli += p.gpu.as_ref().map_or(0, |g| g.total_milli());
            devices += claimed_devices(p);
        }
        Demand { resources, gpu_milli, devices }
    }
}

/// The fewest DRA devices a pod's claims take that are not allocated yet: each request's
/// count (its smallest `firstAvailable` option; at least one for `All`).
fn claimed_devices(p: &Pod) -> u64 {
    let fresh = p.claims.iter().filter(|c| !c.shared && c.allocation.is_none());
    let specs = fresh.filter_map(|c| c.spec.as_ref().ok());
    let count = |e: &ExactRequest| match e.mode {
        AllocationMode::ExactCount(n) => u64::from(n),
        AllocationMode::All => 1,
    };
    let per_request = |r: &DeviceRequest| match &r.kind {
        RequestKind::Exactly(e) => count(e),
        RequestKind::FirstAvailable(subs) => subs.iter().map(|(_, e)| count(e)).min().unwrap_or(0),
    };
    specs.flat_map(|s| s.requests.iter()).map(per_request).sum()
}

/// A topology domain's nodes and what they have free.
#[derive(Debug)]
struct Domain {
    value: Sym,
    nodes: Vec<NodeId>,
    free: ResourceVec,
    gpu_free: u64,
    /// DRA devices not held by any claim.
    devices_free: u64,
}

impl Domain {
    fn holds(&self, d: &Demand) -> bool {
        self.gpu_free >= d.gpu_milli && self.devices_free >= d.devices && self.free.covers(&d.resources)
    }

    /// Room left after the gang, in the gang's scarcest kind: GPUs when it asks for any, else
    /// DRA devices when it claims any.
    fn slack(&self, d: &Demand) -> i128 {
        if d.gpu_milli > 0 {
            i128::from(self.gpu_free) - i128::from(d.gpu_milli)
        } else if d.devices > 0 {
            i128::from(self.devices_free) - i128::from(d.devices)
        } else {
            i128::from(self.free.get(ResourceId::CPU)) - i128::from(d.resources.get(ResourceId::CPU))
        }
    }
}

/// The plan for gang `spec` of `pods` over `snapshot`, given the configured `hierarchy`
/// (widest level first), for worker `worker`: workers start at different domains among the
/// equally tight, so two gangs placed at once do not both aim at the same one.
pub fn plan(snapshot: &Snapshot, pods: &[Arc<Pod>], spec: &GangSpec, hierarchy: &[Sym], worker: usize) -> Plan {
    let demand = Demand::of(pods);
    if let Some(key) = spec.topology_key {
        let domains = domains(snapshot, key, spec.key);
        let mut picked: Vec<&Domain> = fitting(&domains, &demand, worker).take(TRIES_REQUIRED).collect();
        let roomiest = domains.iter().max_by_key(|d| (d.slack(&demand), std::cmp::Reverse(d.value.as_str())));
        // Summed room says what may hold the gang, not what will (taints, selectors, devices
        // of the wrong kind): the roomiest domain is tried too when its room could hold the
        // gang, so a gang that fits there is never reported pending for want of a try.
        let untried = |d: &&Domain| d.holds(&demand) && !picked.iter().any(|p| std::ptr::eq(*p, *d));
        if let Some(d) = roomiest.filter(untried) {
            picked.push(d);
        }
        let tries = picked.iter().map(|d| try_of(key, d)).collect();
        let fallback = roomiest.map_or_else(
            || Try { domain: Some(format!("any {key} domain (no node has the label)")), nodes: Some(Vec::new()) },
            |d| try_of(key, d),
        );
        return Plan { tries, fallback };
    }
    let mut tries = Vec::new();
    for &key in hierarchy.iter().rev() {
        let domains = domains(snapshot, key, spec.key);
        tries.extend(fitting(&domains, &demand, worker).take(TRIES_PER_LEVEL).map(|d| try_of(key, d)));
    }
    tries.push(Try::anywhere());
    Plan { tries, fallback: Try::anywhere() }
}

fn try_of(key: Sym, d: &Domain) -> Try {
    Try { domain: Some(format!("{key}={}", d.value)), nodes: Some(d.nodes.clone()) }
}

/// Domains that could hold `demand`, tightest first; the tightest ties in name order, rotated
/// by `worker` (worker 0, the step drive's, keeps name order: deterministic placements).
fn fitting<'d>(domains: &'d [Domain], demand: &'d Demand, worker: usize) -> impl Iterator<Item = &'d Domain> + 'd {
    let mut fit: Vec<&Domain> = domains.iter().filter(|d| d.holds(demand)).collect();
    // `domains` come sorted by name and the sort is stable: ties stay in name order without
    // resolving interned strings (a shared-map lookup each) in the comparator.
    fit.sort_by_key(|d| d.slack(demand));
    let ties = fit.first().map_or(0, |t| fit.iter().take_while(|d| d.slack(demand) == t.slack(demand)).count());
    if ties > 1 {
        fit[..ties].rotate_left(worker % ties);
    }
    fit.into_iter()
}

/// The domains of node label `key`, with the nodes gang `gang` may use (not those held for
/// another gang) and their free capacity.
/// The nodes of each domain of `key` that `gang` may use, domains in the order their nodes
/// first appear: where a gang that must keep to one domain may preempt.
pub fn domain_nodes(snapshot: &Snapshot, key: Sym, gang: GroupKey) -> Vec<Vec<NodeId>> {
    domains(snapshot, key, gang).into_iter().map(|d| d.nodes).collect()
}

fn domains(snapshot: &Snapshot, key: Sym, gang: GroupKey) -> Vec<Domain> {
    let mut out: Vec<Domain> = Vec::new();
    let mut index: HashMap<Sym, usize> = HashMap::new();
    // Nodes of one domain tend to be neighbours (a rack's nodes are listed together): the last
    // domain is checked before hashing. This runs over every node for every gang tried.
    let mut last: Option<(Sym, usize)> = None;
    for n in snapshot.nodes() {
        let Some(value) = n.node.labels.get(key) else { continue };
        if n.reserved_for.is_some_and(|g| g != gang) {
            continue;
        }
        let i = match last {
            Some((v, i)) if v == value => i,
            _ => *index.entry(value).or_insert_with(|| {
                out.push(Domain { value, nodes: Vec::new(), free: ResourceVec::ZERO, gpu_free: 0, devices_free: 0 });
                out.len() - 1
            }),
        };
        last = Some((value, i));
        let Some(d) = out.get_mut(i) else { continue };
        d.nodes.push(n.id);
        d.free.add(&n.free());
        d.gpu_free += gpu_free(n);
        d.devices_free += n.node.devices.len().saturating_sub(n.devices_used.len()) as u64;
    }
    for d in &mut out {
        d.nodes.sort_unstable();
    }
    // One string lookup per domain, not one per comparison.
    out.sort_by_cached_key(|d| d.value.as_str());
    out
}

/// The resources of `min_resources` the cluster does not have free (summed over the nodes gang
/// `gang` may use), by name: scheduler-plugins checks `minResources` before trying a gang.
pub fn missing_min_resources(snapshot: &Snapshot, gang: GroupKey, min_resources: &ResourceVec) -> Vec<String> {
    let mut free = ResourceVec::ZERO;
    for n in snapshot.nodes().filter(|n| n.reserved_for.is_none_or(|g| g == gang)) {
        free.add(&n.free());
    }
    min_resources.iter_nonzero().filter(|(id, want)| free.get(*id) < *want).map(|(id, _)| id.name()).collect()
}

/// Free milli-GPU on a node.
pub fn gpu_free(n: &NodeInfo) -> u64 {
    (0..n.node.gpus.len()).map(|i| u64::from(n.gpu_free(i))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::{RACK, gpu_node, shared_gpu_pod as gpu_pod};

    fn snapshot(racks: &[(&str, usize)]) -> Snapshot {
        let mut s = Snapshot::new();
        let mut id = 0;
        for (rack, nodes) in racks {
            for i in 0..*nodes {
                s.set_node(Arc::new(NodeInfo::new(id, Arc::new(gpu_node(&format!("{rack}-{i}"), rack, 8)))));
                id += 1;
            }
        }
        s
    }

    fn spec(topology: Option<&str>) -> GangSpec {
        GangSpec {
            key: GroupKey::new("ml", "g"),
            topology_key: topology.map(Sym::new),
            formed_at: 0.0,
            timeout_s: None,
            min_resources: None,
        }
    }

    fn domains_of(plan: &Plan) -> Vec<Option<String>> {
        plan.tries.iter().map(|t| t.domain.clone()).collect()
    }

    #[test]
    fn a_required_key_tries_only_domains_that_could_hold_the_gang_tightest_first() {
        // big: 4 nodes (32 GPUs), small: 2 nodes (16 GPUs), tiny: 1 node (8 GPUs).
        let s = snapshot(&[("big", 4), ("small", 2), ("tiny", 1)]);
        let pods: Vec<Arc<Pod>> = (0..3).map(|i| gpu_pod(&format!("p{i}"), 4)).collect();
        let p = plan(&s, &pods, &spec(Some(RACK)), &[], 0);
        assert_eq!(domains_of(&p), [Some(format!("{RACK}=small")), Some(format!("{RACK}=big"))]);
        assert_eq!(p.tries[0].nodes, Some(vec![4, 5]));
        assert_eq!(p.fallback.domain.as_deref(), Some(format!("{RACK}=big").as_str()));
    }

    #[test]
    fn a_hierarchy_tries_the_narrowest_level_first_then_anywhere() {
        let s = snapshot(&[("r1", 2), ("r2", 1)]);
        let small: Vec<Arc<Pod>> = vec![gpu_pod("a", 8)];
        let p = plan(&s, &small, &spec(None), &[Sym::new(RACK)], 0);
        assert_eq!(domains_of(&p), [Some(format!("{RACK}=r2")), Some(format!("{RACK}=r1")), None]);
        let huge: Vec<Arc<Pod>> = (0..4).map(|i| gpu_pod(&format!("p{i}"), 8)).collect();
        assert_eq!(domains_of(&plan(&s, &huge, &spec(None), &[Sym::new(RACK)], 0)), [None], "no rack holds it");
    }

    #[test]
    fn nodes_held_for_another_gang_do_not_count() {
        let mut s = snapshot(&[("r1", 2)]);
        let mut held = NodeInfo::clone(s.node(0).map(|n| n.as_ref()).unwrap());
        held.reserved_for = Some(GroupKey::new("ml", "other"));
        s.set_node(Arc::new(held));
        let pods: Vec<Arc<Pod>> = (0..2).map(|i| gpu_pod(&format!("p{i}"), 8)).collect();
        assert!(plan(&s, &pods, &spec(Some(RACK)), &[], 0).tries.is_empty());
        let own: Vec<Arc<Pod>> = vec![gpu_pod("p", 8)];
        assert_eq!(plan(&s, &own, &spec(Some(RACK)), &[], 0).tries[0].nodes, Some(vec![1]));
    }

    #[test]
    fn workers_start_at_different_domains_among_the_equally_tight() {
        let s = snapshot(&[("r1", 2), ("r2", 2), ("r3", 4)]);
        let pods: Vec<Arc<Pod>> = vec![gpu_pod("a", 8)];
        let first = |w| plan(&s, &pods, &spec(Some(RACK)), &[], w).tries[0].domain.clone();
        assert_eq!(first(0), Some(format!("{RACK}=r1")));
        assert_eq!(first(1), Some(format!("{RACK}=r2")), "r3 is roomier: never first");
        assert_eq!(first(2), Some(format!("{RACK}=r1")));
    }
}
