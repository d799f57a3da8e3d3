//! The DRA half of the independent check: every claim of a bound pod is allocated on its
//! node, each allocation satisfies its claim (counts, classes, selectors, taints,
//! constraints), no device is held by two claims, and no node's counters of partitionable
//! devices or capacity of shared devices is overdrawn. Nothing here calls the allocator: the
//! claims' specs are read afresh against the devices.

use std::collections::HashMap;
use std::sync::Arc;

use tessera_plugins::dra::model::{
    AllocationMode, AttrValue, ClaimAllocation, ClaimKey, ClaimSpec, Constraint, Device, DeviceId, ExactRequest,
    RequestKind,
};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::{Node, Pod, Taint};

use super::Violation;

/// A bound pod with its node and the allocations of its claims.
pub type BoundWithClaims = (Arc<Pod>, Sym, Vec<Arc<ClaimAllocation>>);

/// Pods whose claims are unsatisfied, badly allocated, or hold a device another claim holds.
pub fn device_violations(nodes: &[Node], bound: &[BoundWithClaims]) -> Vec<Violation> {
    let by_name: HashMap<Sym, &Node> = nodes.iter().map(|n| (n.name, n)).collect();
    let mut holders: HashMap<DeviceId, ClaimKey> = HashMap::new();
    let mut first_allocation: HashMap<ClaimKey, &ClaimAllocation> = HashMap::new();
    // Per node, each distinct claim's draws on its ledger, counted once per claim.
    let mut drawn: HashMap<Sym, (Vec<i64>, Vec<ClaimKey>)> = HashMap::new();
    let mut out = Vec::new();
    for (pod, node, allocations) in bound {
        let Some(n) = by_name.get(node) else { continue };
        let mut flag = |reason: String| out.push(Violation { pod: pod.key(), node: *node, reason });
        for pc in &pod.claims {
            let Some(a) = allocations.iter().find(|a| a.claim == pc.key) else {
                flag(format!("resourceclaim {} is not allocated", pc.key));
                continue;
            };
            let Ok(spec) = &pc.spec else {
                flag(format!("resourceclaim {} has no usable spec but was allocated", pc.key));
                continue;
            };
            if let Err(why) = check_allocation(n, spec, a) {
                flag(format!("resourceclaim {}: {why}", pc.key));
            }
            // A claim shared by pods (a PodGroup's, or one named by several pods) is allocated
            // once: every user sees the same devices.
            let first = first_allocation.entry(a.claim).or_insert(a);
            if first.devices != a.devices {
                flag(format!("resourceclaim {} is allocated twice, differently", a.claim));
            }
            let ledger = &n.devices.ledger;
            let (sums, counted) = drawn.entry(*node).or_default();
            if !ledger.is_empty() && !counted.contains(&a.claim) {
                counted.push(a.claim);
                let draws = ledger.draws_of(&n.devices, a);
                ledger.apply(sums, &draws, 1);
                for &(slot, _) in &draws {
                    let (name, limit) = &ledger.slots[slot as usize];
                    if sums[slot as usize] > *limit {
                        flag(format!(
                            "{name} is overdrawn: {} of {limit} (resourceclaim {})",
                            sums[slot as usize], a.claim
                        ));
                    }
                }
            }
            for d in a.devices.iter().filter(|d| !d.admin_access) {
                let holder = holders.entry(d.device).or_insert(a.claim);
                if *holder != a.claim && !shareable(n, &d.device) {
                    flag(format!("device {} is held by resourceclaims {} and {}", d.device, holder, a.claim));
                }
            }
        }
    }
    out
}

fn device_of<'n>(node: &'n Node, id: &DeviceId) -> Option<&'n Arc<Device>> {
    node.devices.index_of(id).map(|i| &node.devices.devices[i])
}

fn shareable(node: &Node, id: &DeviceId) -> bool {
    device_of(node, id).is_some_and(|d| d.allow_multiple_allocations)
}

/// Whether `a` satisfies `spec` on `node`.
fn check_allocation(node: &Node, spec: &ClaimSpec, a: &ClaimAllocation) -> Result<(), String> {
    if a.node.is_some_and(|n| n != node.name) {
        return Err(format!("allocated for node {:?}, bound on {}", a.node, node.name));
    }
    for r in &spec.requests {
        let (name, exact) = chosen_option(r, a).ok_or_else(|| format!("request {:?} has no devices", r.name))?;
        let devices: Vec<&Arc<Device>> = a
            .devices
            .iter()
            .filter(|d| *d.request == *name)
            .map(|d| device_of(node, &d.device).ok_or_else(|| format!("device {} is not on the node", d.device)))
            .collect::<Result<_, _>>()?;
        let want = match exact.mode {
            AllocationMode::ExactCount(n) => n as usize,
            AllocationMode::All => node.devices.devices.iter().filter(|d| eligible(d, exact)).count().max(1),
        };
        if devices.len() != want {
            return Err(format!("request {name:?} got {} devices, wants {want}", devices.len()));
        }
        if let Some(d) = devices.iter().find(|d| !eligible(d, exact)) {
            return Err(format!("device {} does not satisfy request {name:?}", d.id()));
        }
    }
    for c in &spec.constraints {
        check_constraint(node, a, c)?;
    }
    Ok(())
}

/// The option of request `r` the allocation used: the request itself, or the one
/// `firstAvailable` sub-request whose devices it holds.
fn chosen_option<'s>(
    r: &'s tessera_plugins::dra::model::DeviceRequest,
    a: &ClaimAllocation,
) -> Option<(Arc<str>, &'s ExactRequest)> {
    match &r.kind {
        RequestKind::Exactly(e) => Some((r.name.clone(), e)),
        RequestKind::FirstAvailable(subs) => subs.iter().find_map(|(sub, e)| {
            let name: Arc<str> = Arc::from(format!("{}/{sub}", r.name));
            a.devices.iter().any(|d| d.request == name).then_some((name, e))
        }),
    }
}

/// Whether `d` is of the request's class, passes its selectors and tolerates its taints.
fn eligible(d: &Device, exact: &ExactRequest) -> bool {
    let selected = exact.class.selectors.iter().chain(&exact.selectors).all(|s| s.matches(d) == Ok(true));
    let tolerated = d.taints.iter().all(|t| {
        let taint = Taint { key: t.key, value: t.value, effect: t.effect };
        exact.tolerations.iter().any(|tol| tol.tolerates(&taint))
    });
    selected && tolerated
}

fn check_constraint(node: &Node, a: &ClaimAllocation, c: &Constraint) -> Result<(), String> {
    let (requests, attribute, distinct) = match c {
        Constraint::MatchAttribute { requests, attribute } => (requests, attribute, false),
        Constraint::DistinctAttribute { requests, attribute } => (requests, attribute, true),
    };
    let covered = |request: &str| {
        requests.is_empty()
            || requests.iter().any(|r| **r == *request || request.split_once('/').is_some_and(|(p, _)| **r == *p))
    };
    let values: Vec<Option<&AttrValue>> = a
        .devices
        .iter()
        .filter(|d| covered(&d.request))
        .map(|d| device_of(node, &d.device).and_then(|dev| dev.attribute(attribute)))
        .collect();
    if values.iter().any(Option::is_none) {
        return Err(format!("a device lacks attribute {attribute}"));
    }
    let broken = if distinct {
        values.iter().enumerate().any(|(i, v)| values[..i].contains(v))
    } else {
        values.windows(2).any(|w| w[0] != w[1])
    };
    if broken {
        let rule = if distinct { "distinctAttribute" } else { "matchAttribute" };
        return Err(format!("{rule} {attribute} broken"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tessera_plugins::dra::model::AllocatedDevice;

    use super::*;
    use crate::bench::dra::DraWorld;

    fn setup() -> (DraWorld, Vec<Node>) {
        let w = DraWorld::new().unwrap();
        let nodes = crate::bench::dra::cluster(1, &w, &mut crate::engine::rng::Rng::new(1));
        (w, nodes)
    }

    /// An allocation of `pod`'s claim `i` to GPU `gpu` and NIC `nic` of node 0.
    fn pair(w: &Pod, node: &Node, i: usize, gpu: usize, nic: usize) -> Arc<ClaimAllocation> {
        let dev = |driver: &str, name: String| AllocatedDevice {
            request: Arc::from(if driver == crate::bench::dra::GPU_DRIVER { "gpu" } else { "nic" }),
            device: DeviceId { driver: Sym::new(driver), pool: node.name, device: Sym::new(&name) },
            admin_access: false,
            consumed: Default::default(),
        };
        Arc::new(ClaimAllocation {
            claim: w.claims[i].key,
            devices: vec![
                dev(crate::bench::dra::GPU_DRIVER, format!("gpu-{gpu}")),
                dev(crate::bench::dra::NIC_DRIVER, format!("nic-{nic}")),
            ],
            node: Some(node.name),
            config: Vec::new(),
        })
    }

    #[test]
    fn double_booked_devices_broken_constraints_and_missing_allocations_are_caught() {
        let (w, nodes) = setup();
        let n = &nodes[0];
        let a = Arc::new(w.pod("ml", "a", 1));
        let b = Arc::new(w.pod("ml", "b", 2));
        // gpu-i and nic-i share PCIe root i % 4: (0, 0) and (1, 5) are pairs, (2, 3) is not.
        let fine = vec![
            (a.clone(), n.name, vec![pair(&a, n, 0, 0, 0)]),
            (b.clone(), n.name, vec![pair(&b, n, 0, 1, 5), pair(&b, n, 1, 2, 6)]),
        ];
        assert_eq!(device_violations(&nodes, &fine), []);
        let twice = vec![
            (a.clone(), n.name, vec![pair(&a, n, 0, 0, 0)]),
            (b.clone(), n.name, vec![pair(&b, n, 0, 0, 4), pair(&b, n, 1, 2, 6)]),
        ];
        let v = device_violations(&nodes, &twice);
        assert!(v.iter().any(|v| v.reason.contains("gpu-0 is held by resourceclaims")), "{v:?}");
        let unmatched = vec![(a.clone(), n.name, vec![pair(&a, n, 0, 2, 3)])];
        let v = device_violations(&nodes, &unmatched);
        assert!(v.iter().any(|v| v.reason.contains("matchAttribute resource.kubernetes.io/pcieRoot broken")), "{v:?}");
        let missing = vec![(b.clone(), n.name, vec![pair(&b, n, 0, 1, 5)])];
        let v = device_violations(&nodes, &missing);
        assert!(v.iter().any(|v| v.reason == "resourceclaim ml/b-pair-1 is not allocated"), "{v:?}");
        // Two pods sharing one claim (as a PodGroup's members do) must see one allocation.
        let mut c = Pod::clone(&a);
        c.name = Arc::from("c");
        let c = Arc::new(c);
        let same =
            vec![(a.clone(), n.name, vec![pair(&a, n, 0, 0, 0)]), (c.clone(), n.name, vec![pair(&c, n, 0, 0, 0)])];
        assert_eq!(device_violations(&nodes, &same), []);
        let split =
            vec![(a.clone(), n.name, vec![pair(&a, n, 0, 0, 0)]), (c.clone(), n.name, vec![pair(&c, n, 0, 1, 5)])];
        let v = device_violations(&nodes, &split);
        assert!(v.iter().any(|v| v.reason == "resourceclaim ml/a-pair-0 is allocated twice, differently"), "{v:?}");
    }
}
