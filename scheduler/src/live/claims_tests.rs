//! PreBind's claim status, without an API server: the `nodeSelector` an allocation from
//! slices not local to one node gets, a PodGroup's claim reserved for the group once, and a
//! shared device's `consumedCapacity` and `shareID`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::NodeSelector;
use k8s_openapi::api::resource::v1::{ResourceClaimConsumerReference, ResourceClaimStatus};
use serde_json::{Value, json};
use tessera_plugins::dra::model::{AllocatedDevice, ClaimAllocation, ClaimGroup, ClaimKey, DeviceId, PodClaim};
use tessera_plugins::intern::Sym;
use tessera_plugins::model::Pod;
use tessera_plugins::resources::ResourceVec;

use super::{Refusal, Sharing, allocation_result, consumer_of, device_result, node_selector, plan, quantity, share_id};
use crate::live::dra::Reach;

fn device(pool: &str, name: &str) -> DeviceId {
    DeviceId { driver: Sym::new("fabric.example.com"), pool: Sym::new(pool), device: Sym::new(name) }
}

fn chosen(devices: &[DeviceId], node: Option<&str>) -> ClaimAllocation {
    ClaimAllocation {
        claim: ClaimKey::new("default", "c"),
        devices: devices
            .iter()
            .map(|&device| AllocatedDevice {
                request: Arc::from("r"),
                device,
                admin_access: false,
                consumed: Default::default(),
            })
            .collect(),
        node: node.map(Sym::new),
        config: Vec::new(),
    }
}

/// No device is shared.
const UNSHARED: Sharing<'static> = Sharing { claim: "uid-c", shared: &|_| false };

fn selector(v: Value) -> NodeSelector {
    serde_json::from_value(v).unwrap()
}

fn expression(key: &str, value: &str) -> Value {
    json!({"key": key, "operator": "In", "values": [value]})
}

/// Where the test's devices are: `local/*` on node `n0`, `rack/*` for rack r1 in zone z1,
/// `zone/*` for zone z1, `fabric/*` for every node, `wide/*` for a two-term selector.
fn reach(id: &DeviceId) -> Option<Reach> {
    let one_term = |reqs: Vec<Value>| selector(json!({"nodeSelectorTerms": [{"matchExpressions": reqs}]}));
    Some(match id.pool.as_str() {
        "local" => Reach::Node(Sym::new("n0")),
        "rack" => Reach::Selector(one_term(vec![expression("zone", "z1"), expression("rack", "r1")])),
        "zone" => Reach::Selector(one_term(vec![expression("zone", "z1")])),
        "fabric" => Reach::All,
        "wide" => Reach::Selector(selector(json!({"nodeSelectorTerms": [
            {"matchExpressions": [expression("rack", "r1")]}, {"matchExpressions": [expression("rack", "r2")]}
        ]}))),
        _ => return None,
    })
}

#[test]
fn devices_for_every_node_need_no_node_selector() {
    let all = chosen(&[device("fabric", "link-0"), device("fabric", "link-1")], None);
    assert_eq!(node_selector(&all, reach), Ok(None));
}

#[test]
fn selector_devices_and_their_requirements_each_once_in_one_term() {
    let mixed =
        chosen(&[device("zone", "x"), device("fabric", "link-0"), device("rack", "y"), device("zone", "z")], None);
    let want = selector(json!({"nodeSelectorTerms": [{"matchExpressions": [
        expression("zone", "z1"), expression("rack", "r1")
    ]}]}));
    assert_eq!(node_selector(&mixed, reach), Ok(Some(want)));
}

#[test]
fn one_local_device_restricts_the_allocation_to_its_node_by_name() {
    let name = selector(json!({"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n0"]}
    ]}]}));
    let mixed = chosen(&[device("rack", "y"), device("local", "gpu-0")], Some("n0"));
    assert_eq!(node_selector(&mixed, reach), Ok(Some(name.clone())));
    // A device whose slice is gone counts as local to the allocation's node, if it has one.
    assert_eq!(node_selector(&chosen(&[device("gone", "g")], Some("n0")), reach), Ok(Some(name)));
    let lost = chosen(&[device("gone", "g")], None);
    assert_eq!(node_selector(&lost, reach), Err(Refusal::SliceGone { claim: lost.claim, device: device("gone", "g") }));
    let wide = chosen(&[device("wide", "w")], None);
    assert!(matches!(node_selector(&wide, reach), Err(Refusal::SelectorTerms { terms: 2, .. })));
}

/// Pod `name` whose entry `c` is its PodGroup `g`'s claim.
fn member(name: &str) -> Pod {
    let mut p = Pod::new("default", name, ResourceVec::cpu_mem(1000, 1 << 20));
    p.uid = Arc::from(format!("uid-{name}"));
    p.claims.push(PodClaim {
        name: Sym::new("c"),
        key: ClaimKey::new("default", "c"),
        spec: Err(Arc::from("unused")),
        shared: true,
        allocation: None,
        group: Some(Arc::new(ClaimGroup { name: Sym::new("g"), uid: Arc::from("uid-g") })),
    });
    p
}

#[test]
fn a_group_claim_is_reserved_for_the_group_once_and_still_refuses_other_devices() {
    let c = chosen(&[device("zone", "x")], None);
    let (first, second) = (member("m0"), member("m1"));
    let group = consumer_of(&first, c.claim);
    assert_eq!(
        group,
        ResourceClaimConsumerReference {
            api_group: Some("scheduling.k8s.io".into()),
            resource: "podgroups".into(),
            name: "g".into(),
            uid: "uid-g".into()
        }
    );
    let mut status = ResourceClaimStatus::default();
    let allocate = || Ok(allocation_result(&c, &first, node_selector(&c, reach)?, &UNSHARED));
    assert_eq!(plan(&mut status, &c, Sym::new("n0"), &group, allocate), Ok(Some(true)), "allocated and reserved");
    assert_eq!(status.reserved_for.as_deref(), Some(&[group.clone()][..]));
    let written = status.allocation.as_ref().unwrap();
    assert_eq!(written.node_selector, node_selector(&c, reach).unwrap());
    // The next member finds its group there: nothing to write, on whichever node it goes.
    let unused = || -> Result<_, Refusal> { panic!("allocated already") };
    assert_eq!(plan(&mut status, &c, Sym::new("n1"), &consumer_of(&second, c.claim), unused), Ok(None));
    assert_eq!(status.reserved_for.as_ref().map(Vec::len), Some(1));
    // Chosen on other devices (a stale view): refused although the group holds the claim.
    let other = chosen(&[device("zone", "other")], None);
    let refused = plan(&mut status, &other, Sym::new("n1"), &group, unused);
    assert_eq!(refused, Err(Refusal::AllocatedElsewhere { claim: other.claim, node: Sym::new("n1") }));
}

#[test]
fn a_claim_of_no_group_is_reserved_for_each_pod() {
    let c = chosen(&[device("fabric", "link-0")], None);
    let mut p = member("solo");
    p.claims[0].group = None;
    let consumer = consumer_of(&p, c.claim);
    assert_eq!(
        (consumer.resource.as_str(), consumer.name.as_str(), consumer.api_group.as_deref()),
        ("pods", "solo", None)
    );
    let mut status = ResourceClaimStatus::default();
    let allocate = || Ok(allocation_result(&c, &p, node_selector(&c, reach)?, &UNSHARED));
    assert_eq!(plan(&mut status, &c, Sym::new("n0"), &consumer, allocate), Ok(Some(true)));
    assert_eq!(status.allocation.as_ref().unwrap().node_selector, None, "allNodes: no nodeSelector");
    // Another pod sharing the claim is added beside it, the allocation kept.
    let mut q = member("other");
    q.claims[0].group = None;
    let unused = || -> Result<_, Refusal> { panic!("allocated already") };
    assert_eq!(plan(&mut status, &c, Sym::new("n0"), &consumer_of(&q, c.claim), unused), Ok(Some(false)));
    assert_eq!(status.reserved_for.as_ref().map(Vec::len), Some(2));
}

#[test]
fn a_shared_devices_result_carries_consumed_capacity_as_published_and_a_share_id() {
    let nic = device("fabric", "nic-0");
    let mut c = chosen(&[nic, device("fabric", "link-0")], None);
    c.devices[0].consumed = BTreeMap::from([
        (Arc::from("fabric.example.com/bandwidth"), 30_000_000_000_000),
        (Arc::from("other.example.com/queues"), 2000),
        (Arc::from("fabric.example.com/slices"), 500),
    ]);
    let only_nic = |id: &DeviceId| id.device.as_str() == "nic-0";
    let sharing = Sharing { claim: "uid-c", shared: &only_nic };
    let p = member("solo");
    let a = allocation_result(&c, &p, None, &sharing);
    let results = a.devices.unwrap().results.unwrap();
    let consumed = results[0].consumed_capacity.as_ref().unwrap();
    let written: Vec<(&str, &str)> = consumed.iter().map(|(k, v)| (k.as_str(), v.0.as_str())).collect();
    // The driver's own capacities without its domain, another domain's kept; values as quantities.
    assert_eq!(written, [("bandwidth", "30G"), ("other.example.com/queues", "2"), ("slices", "500m")]);
    assert_eq!(results[0].share_id.as_deref(), Some(share_id("uid-c", "r", &nic).as_str()));
    assert_eq!((results[1].consumed_capacity.as_ref(), results[1].share_id.as_ref()), (None, None), "not shared");
    // A shared device with nothing consumed still gets its shareID, and a device whose
    // allocation consumes capacity is shared even when the slice is no longer known.
    let bare = AllocatedDevice { consumed: BTreeMap::new(), ..c.devices[0].clone() };
    assert!(device_result(&bare, &sharing).share_id.is_some());
    assert!(device_result(&bare, &sharing).consumed_capacity.is_none());
    assert!(device_result(&c.devices[0], &UNSHARED).share_id.is_some());
    // Read back, the result is the allocation chosen: consumedCapacity qualifies again.
    let back = crate::ingest::dra::claim_allocation(c.claim, &allocation_result(&c, &p, None, &sharing)).unwrap();
    assert_eq!(back.devices, c.devices);
}

#[test]
fn share_ids_are_normalized_uuids_stable_and_distinct_per_claim_request_and_device() {
    let nic = device("fabric", "nic-0");
    let id = share_id("uid-c", "r", &nic);
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    assert!(id.chars().all(|ch| ch == '-' || ch.is_ascii_digit() || ch.is_ascii_lowercase()), "{id}");
    assert_eq!(id.as_bytes()[14], b'8', "version 8: {id}");
    assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "RFC variant: {id}");
    assert_eq!(id, share_id("uid-c", "r", &nic), "stable");
    let others = [
        share_id("uid-d", "r", &nic),
        share_id("uid-c", "s", &nic),
        share_id("uid-c", "r", &device("fabric", "nic-1")),
    ];
    assert!(others.iter().all(|o| *o != id), "{others:?}");
}

#[test]
fn quantities_parse_back_to_the_same_thousandths() {
    let cases = [
        (0, "0"),
        (500, "500m"),
        (1000, "1"),
        (1_024_000, "1Ki"),
        (30_000_000_000_000, "30G"),
        ((80i64 << 30) * 1000, "80Gi"),
        (1_500_000, "1500"),
        (-2000, "-2"),
    ];
    for (milli, text) in cases {
        let q = quantity(milli);
        assert_eq!(q.0, text);
        assert_eq!(tessera_plugins::quantity::parse_milli(&q.0), Ok(milli), "{text}");
    }
}
