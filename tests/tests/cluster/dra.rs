//! DRA in `tessera run` against the in-process API test server: a node's ResourceSlices become
//! its devices, a pod's claims are allocated with their constraints (a GPU and a NIC under
//! one PCIe root) and written to the claims' status before the binding, a pod waits for a
//! claim that does not exist yet, a conflicting status write is read again and retried, a gang
//! that does not fit writes no allocation, and a restart reads allocations back instead of
//! handing the devices out twice. Devices of slices published for a `nodeSelector` or for
//! `allNodes` are used from the nodes that reach them (a node's labels may make it reach them
//! later), and their allocation is restricted by the slice's selector, not to one node. A
//! claim PreBind allocates gets the delete-protection finalizer (and loses it when the
//! allocation is given back), and a device that allows multiple allocations gets a `shareID`
//! in its result. The test plays upstream's resourceclaim controller: it creates the claims of
//! template entries and records them in the pods' status.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_scheduler::live::claims::{FINALIZER, share_id};
use tessera_tests::apiserver::TestApiServer;

use crate::live::{
    SECONDARY, Scheduler, WAIT, assert_bound_once, bound_count, create, in_group_g, node, placements, pod, pod_group_g,
    until,
};

const RESOURCE: &str = "resource.k8s.io/v1";
const PCIE_ROOT: &str = "resource.kubernetes.io/pcieRoot";

/// GPU `i` sits under PCIe root `r{i}`, NIC `i` under `r{7-i}`: a GPU and a NIC that share a
/// root are `gpu-i` and `nic-(7-i)`.
fn slices(node_name: &str) -> Vec<Value> {
    let devices = |kind: &str, root: fn(u32) -> u32| -> Vec<Value> {
        (0..8)
            .map(|i| json!({"name": format!("{kind}-{i}"), "attributes": {PCIE_ROOT: {"string": format!("r{}", root(i))}}}))
            .collect()
    };
    ["gpu", "nic"]
        .iter()
        .map(|kind| {
            let root: fn(u32) -> u32 = if *kind == "gpu" { |i| i } else { |i| 7 - i };
            json!({
                "apiVersion": RESOURCE, "kind": "ResourceSlice",
                "metadata": {"name": format!("{node_name}-{kind}")},
                "spec": {
                    "driver": format!("{kind}.example.com"), "nodeName": node_name,
                    "pool": {"name": node_name, "generation": 1, "resourceSliceCount": 1},
                    "devices": devices(kind, root)
                }
            })
        })
        .collect()
}

fn classes() -> Vec<Value> {
    ["gpu", "nic"]
        .iter()
        .map(|kind| {
            let mut class = json!({
                "apiVersion": RESOURCE, "kind": "DeviceClass", "metadata": {"name": format!("{kind}.example.com")},
                "spec": {"selectors": [{"cel": {"expression": format!("device.driver == '{kind}.example.com'")}}]}
            });
            if *kind == "gpu" {
                class["spec"]["config"] =
                    json!([{"opaque": {"driver": "gpu.example.com", "parameters": {"sharing": "none"}}}]);
            }
            class
        })
        .collect()
}

/// `spec.devices` of a claim asking a GPU and a NIC under one PCIe root.
fn pair_devices() -> Value {
    json!({
        "requests": [
            {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}},
            {"name": "nic", "exactly": {"deviceClassName": "nic.example.com"}}
        ],
        "constraints": [{"requests": ["gpu", "nic"], "matchAttribute": PCIE_ROOT}],
        "config": [{"requests": ["nic"], "opaque": {"driver": "nic.example.com", "parameters": {"mtu": 9000}}}]
    })
}

/// `spec.devices` of a claim asking `count` GPUs.
fn gpus_devices(count: u32) -> Value {
    json!({"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com", "count": count}}]})
}

fn template(name: &str, devices: Value) -> Value {
    json!({"apiVersion": RESOURCE, "kind": "ResourceClaimTemplate",
           "metadata": {"name": name, "namespace": "default"}, "spec": {"spec": {"devices": devices}}})
}

fn claim(name: &str, devices: Value) -> Value {
    json!({"apiVersion": RESOURCE, "kind": "ResourceClaim",
           "metadata": {"name": name, "namespace": "default"}, "spec": {"devices": devices}})
}

/// A pod for `tessera` with one claim entry `dev`.
fn claiming_pod(name: &str, entry: Value) -> Value {
    let mut p = pod(name, "tessera", "1");
    let mut entry = entry;
    entry["name"] = json!("dev");
    p["spec"]["resourceClaims"] = json!([entry]);
    p
}

/// A cluster of one node `n0` with 64 CPUs, 8 GPUs and 8 NICs, and their classes.
fn cluster(server: &TestApiServer) {
    for obj in classes().into_iter().chain(slices("n0")) {
        create(server, obj);
    }
    create(server, node("n0", "64"));
}

/// Plays the resourceclaim controller for `pod`'s template entry `dev`: creates its claim
/// `<pod>-dev-x` from `devices` and records it in the pod's status.
fn make_claim_for(server: &TestApiServer, pod_name: &str, devices: Value) {
    let name = format!("{pod_name}-dev-x");
    let mut c = claim(&name, devices);
    let uid = server.store().get("v1", "Pod", Some("default"), pod_name).unwrap()["metadata"]["uid"].clone();
    c["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": uid, "controller": true}]);
    create(server, c);
    let mut p = server.store().get("v1", "Pod", Some("default"), pod_name).unwrap();
    p["status"]["resourceClaimStatuses"] = json!([{"name": "dev", "resourceClaimName": name}]);
    server.store().update(p).unwrap();
}

fn claim_object(server: &TestApiServer, name: &str) -> Value {
    server.store().get(RESOURCE, "ResourceClaim", Some("default"), name).unwrap()
}

/// The devices (`driver/pool/device`) a claim's status says are allocated.
fn allocated(claim: &Value) -> BTreeSet<String> {
    claim["status"]["allocation"]["devices"]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}/{}/{}",
                r["driver"].as_str().unwrap(),
                r["pool"].as_str().unwrap(),
                r["device"].as_str().unwrap()
            )
        })
        .collect()
}

/// Waits for pod `name`'s `PodScheduled` condition to be False with a message containing
/// `text`; returns the message.
async fn pending_with(server: &TestApiServer, name: &str, text: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        let p = server.store().get("v1", "Pod", Some("default"), name).unwrap();
        let message = p["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled" && c["status"] == "False"))
            .and_then(|c| c["message"].as_str())
            .map(str::to_string);
        if let Some(m) = message.filter(|m| m.contains(text)) {
            assert!(p["spec"]["nodeName"].is_null(), "{name} is pending");
            return m;
        }
        assert!(start.elapsed() < WAIT, "{name} never said {text:?}: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_claim_is_allocated_under_one_pcie_root_and_reserved_before_the_binding() {
    let server = TestApiServer::start().await;
    cluster(&server);
    create(&server, template("pair", pair_devices()));
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, claiming_pod("a", json!({"resourceClaimTemplateName": "pair"})));
    // No claim yet: the scheduler never makes one, it waits for the controller's.
    pending_with(&server, "a", "to be created from resourceclaimtemplate default/pair").await;
    make_claim_for(&server, "a", pair_devices());
    until(&server, "the pod with a GPU and a NIC bound", |p| p["a"].is_some()).await;
    let c = claim_object(&server, "a-dev-x");
    let allocation = &c["status"]["allocation"];
    assert_eq!(
        allocated(&c),
        BTreeSet::from(["gpu.example.com/n0/gpu-0".to_string(), "nic.example.com/n0/nic-7".to_string()]),
        "gpu-0 and nic-7 share PCIe root r0: {c}"
    );
    let requests: Vec<&str> =
        allocation["devices"]["results"].as_array().unwrap().iter().map(|r| r["request"].as_str().unwrap()).collect();
    assert_eq!(requests, ["gpu", "nic"]);
    assert_eq!(
        allocation["nodeSelector"],
        json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n0"]}]}]})
    );
    assert_eq!(
        allocation["devices"]["config"],
        json!([
            {"source": "FromClass", "opaque": {"driver": "gpu.example.com", "parameters": {"sharing": "none"}}},
            {"source": "FromClaim", "requests": ["nic"], "opaque": {"driver": "nic.example.com", "parameters": {"mtu": 9000}}}
        ])
    );
    let uid = server.store().get("v1", "Pod", Some("default"), "a").unwrap()["metadata"]["uid"].clone();
    assert_eq!(c["status"]["reservedFor"], json!([{"resource": "pods", "name": "a", "uid": uid}]));
    // The claim was written before the pod was bound.
    let log = server.requests();
    let status_write = log.iter().position(|r| r.resource == "resourceclaims" && r.subresource == "status").unwrap();
    let binding = log.iter().position(|r| r.subresource == "binding").unwrap();
    assert!(status_write < binding, "PreBind writes the claim before the binding");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waits_for_its_claim_and_binds_once_it_exists() {
    let server = TestApiServer::start().await;
    cluster(&server);
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, claiming_pod("b", json!({"resourceClaimName": "shared-b"})));
    let why = pending_with(&server, "b", "resourceclaim default/shared-b").await;
    assert!(why.contains("waiting for resourceclaim default/shared-b to be created"), "{why}");
    create(&server, claim("shared-b", gpus_devices(2)));
    until(&server, "the pod bound once its claim exists", |p| p["b"].is_some()).await;
    let c = claim_object(&server, "shared-b");
    assert_eq!(allocated(&c).len(), 2, "{c}");
    assert_eq!(c["status"]["reservedFor"][0]["name"], "b");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_claim_status_write_is_read_again_and_retried() {
    let server = TestApiServer::start().await;
    cluster(&server);
    create(&server, claim("c-claim", gpus_devices(1)));
    // The first status write meets a newer version of the claim.
    server.faults().fail("update", "resourceclaims", "status", 409, 1, None);
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, claiming_pod("c", json!({"resourceClaimName": "c-claim"})));
    until(&server, "the pod bound after the conflict", |p| p["c"].is_some()).await;
    let c = claim_object(&server, "c-claim");
    assert_eq!(allocated(&c), BTreeSet::from(["gpu.example.com/n0/gpu-0".to_string()]), "{c}");
    let log = server.requests();
    let writes = log.iter().filter(|r| r.resource == "resourceclaims" && r.subresource == "status").count();
    let reads = log.iter().filter(|r| r.resource == "resourceclaims" && r.verb == "get").count();
    assert!(writes >= 2 && reads >= 2, "read and written again after the 409 ({reads} reads, {writes} writes)");
    assert_bound_once(&server);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gang_whose_third_member_does_not_fit_binds_nothing_and_allocates_nothing() {
    let server = TestApiServer::start().await;
    cluster(&server);
    create(&server, pod_group_g(3));
    create(&server, template("three", gpus_devices(3)));
    let s = Scheduler::start(&server, SECONDARY, false).await;
    for i in 0..3 {
        let name = format!("g-{i}");
        create(&server, in_group_g(claiming_pod(&name, json!({"resourceClaimTemplateName": "three"}))));
        make_claim_for(&server, &name, gpus_devices(3));
    }
    // 3 x 3 GPUs on a node of 8: the gang is refused whole.
    pending_with(&server, "g-2", "").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bound_count(&placements(&server), "g-"), 0);
    for i in 0..3 {
        let c = claim_object(&server, &format!("g-{i}-dev-x"));
        assert!(c["status"]["allocation"].is_null() && c["status"]["reservedFor"].is_null(), "{c}");
    }
    let log = server.requests();
    assert!(!log.iter().any(|r| r.resource == "resourceclaims" && r.subresource == "status"), "no claim was written");
    assert!(!log.iter().any(|r| r.subresource == "binding"), "no member was bound");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scheduler_reads_allocations_back_and_allocates_other_devices() {
    let server = TestApiServer::start().await;
    cluster(&server);
    create(&server, template("pair", pair_devices()));
    let first = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, claiming_pod("r1", json!({"resourceClaimTemplateName": "pair"})));
    make_claim_for(&server, "r1", pair_devices());
    until(&server, "the first pod bound", |p| p["r1"].is_some()).await;
    first.stop().await;
    let before = allocated(&claim_object(&server, "r1-dev-x"));
    assert_eq!(before.len(), 2);
    let second = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, claiming_pod("r2", json!({"resourceClaimTemplateName": "pair"})));
    make_claim_for(&server, "r2", pair_devices());
    until(&server, "the second pod bound after the restart", |p| p["r2"].is_some()).await;
    let after = allocated(&claim_object(&server, "r2-dev-x"));
    assert_eq!(after.len(), 2);
    assert!(before.is_disjoint(&after), "the restarted scheduler gave {after:?} again, held by r1: {before:?}");
    assert_bound_once(&server);
    second.stop().await;
}

/// A gang of two, each member with a GPU claim of its own, whose second member's claim status
/// write is refused once; returns once the gang is bound on the second try.
async fn gang_whose_second_claim_write_is_refused_once() -> (TestApiServer, Scheduler) {
    let server = TestApiServer::start().await;
    cluster(&server);
    create(&server, pod_group_g(2));
    create(&server, template("one", gpus_devices(1)));
    server.faults().fail_named("update", "resourceclaims", "status", "g-1-dev-x", 403, 1);
    let s = Scheduler::start(&server, SECONDARY, false).await;
    for i in 0..2 {
        let name = format!("g-{i}");
        create(&server, in_group_g(claiming_pod(&name, json!({"resourceClaimTemplateName": "one"}))));
        make_claim_for(&server, &name, gpus_devices(1));
    }
    until(&server, "the gang bound on the second try", |p| bound_count(p, "g-") == 2).await;
    (server, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gang_member_refused_at_its_claim_gives_back_what_the_others_wrote() {
    // The first member's claim, written by then or not, must not keep an allocation for a gang
    // that was not bound.
    let (server, s) = gang_whose_second_claim_write_is_refused_once().await;
    assert_bound_once(&server);
    let log = server.requests();
    let first_binding = log.iter().position(|r| r.subresource == "binding").unwrap();
    let writes_before =
        log[..first_binding].iter().filter(|r| r.subresource == "status" && r.resource == "resourceclaims");
    // g-0 written, g-1 refused, g-0 given back; then both written again.
    assert!(writes_before.count() >= 5, "the first member's claim was given back and written again");
    let (a, b) = (allocated(&claim_object(&server, "g-0-dev-x")), allocated(&claim_object(&server, "g-1-dev-x")));
    assert!(a.len() == 1 && b.len() == 1 && a.is_disjoint(&b), "{a:?} {b:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_allocated_elsewhere_meanwhile_refuses_the_binding_and_the_pod_follows_it() {
    let server = TestApiServer::start().await;
    cluster(&server);
    create(&server, claim("e-claim", gpus_devices(1)));
    // Reading the claim before writing it is slow: meanwhile someone else allocates it.
    server.faults().delay("get", "resourceclaims", "", Duration::from_millis(700));
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, claiming_pod("e", json!({"resourceClaimName": "e-claim"})));
    let start = std::time::Instant::now();
    while !server.requests().iter().any(|r| r.resource == "resourceclaims" && r.verb == "get") {
        assert!(start.elapsed() < WAIT, "PreBind never read the claim");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut c = claim_object(&server, "e-claim");
    c["status"] = json!({"allocation": {
        "devices": {"results": [{"request": "gpu", "driver": "gpu.example.com", "pool": "n0", "device": "gpu-5"}]},
        "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n0"]}]}]}
    }});
    server.store().update(c).unwrap();
    server.faults().clear();
    until(&server, "the pod bound on the devices allocated meanwhile", |p| p["e"].is_some()).await;
    let c = claim_object(&server, "e-claim");
    assert_eq!(allocated(&c), BTreeSet::from(["gpu.example.com/n0/gpu-5".to_string()]), "{c}");
    assert_eq!(c["status"]["reservedFor"][0]["name"], "e", "{c}");
    assert_bound_once(&server);
    s.stop().await;
}

/// A DeviceClass `kind.example.com` selecting its driver's devices.
fn class(kind: &str) -> Value {
    json!({
        "apiVersion": RESOURCE, "kind": "DeviceClass", "metadata": {"name": format!("{kind}.example.com")},
        "spec": {"selectors": [{"cel": {"expression": format!("device.driver == '{kind}.example.com'")}}]}
    })
}

/// A slice `name` of driver `kind.example.com`, its own pool, with one device `device`, placed
/// by `placement` (`nodeSelector` or `allNodes`).
fn shared_slice(name: &str, kind: &str, device: &str, placement: Value) -> Value {
    let mut slice = json!({
        "apiVersion": RESOURCE, "kind": "ResourceSlice", "metadata": {"name": name},
        "spec": {
            "driver": format!("{kind}.example.com"),
            "pool": {"name": name, "generation": 1, "resourceSliceCount": 1},
            "devices": [{"name": device}]
        }
    });
    for (k, v) in placement.as_object().unwrap() {
        slice["spec"][k] = v.clone();
    }
    slice
}

/// `nodeSelector` of the nodes labelled `rack=value`.
fn rack_selector(value: &str) -> Value {
    json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": "rack", "operator": "In", "values": [value]}]}]})
}

/// Node `name` (64 CPUs) labelled `rack=rack`.
fn rack_node(name: &str, rack: &str) -> Value {
    let mut n = node(name, "64");
    n["metadata"]["labels"]["rack"] = json!(rack);
    n
}

/// `spec.devices` of a claim asking one device of class `kind.example.com`.
fn one_of(kind: &str) -> Value {
    json!({"requests": [{"name": kind, "exactly": {"deviceClassName": format!("{kind}.example.com")}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_for_a_node_selector_or_all_nodes_are_used_where_they_reach_and_allocated_with_their_selector() {
    let server = TestApiServer::start().await;
    for obj in [class("port"), class("link"), rack_node("n0", "r1"), rack_node("n1", "r2")] {
        create(&server, obj);
    }
    create(&server, shared_slice("r1-switch", "port", "port-0", json!({"nodeSelector": rack_selector("r1")})));
    create(&server, shared_slice("fabric", "link", "link-0", json!({"allNodes": true})));
    create(&server, claim("sw-claim", one_of("port")));
    create(&server, claim("fa-claim", one_of("link")));
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, claiming_pod("sw", json!({"resourceClaimName": "sw-claim"})));
    create(&server, claiming_pod("fa", json!({"resourceClaimName": "fa-claim"})));
    until(&server, "both pods bound", |p| p["sw"].is_some() && p["fa"].is_some()).await;
    assert_eq!(placements(&server)["sw"].as_deref(), Some("n0"), "only n0 is in rack r1");
    let sw = claim_object(&server, "sw-claim");
    assert_eq!(allocated(&sw), BTreeSet::from(["port.example.com/r1-switch/port-0".to_string()]), "{sw}");
    assert_eq!(sw["status"]["allocation"]["nodeSelector"], rack_selector("r1"), "the slice's selector, not n0: {sw}");
    assert_eq!(sw["status"]["reservedFor"][0]["name"], "sw");
    let fa = claim_object(&server, "fa-claim");
    assert_eq!(allocated(&fa), BTreeSet::from(["link.example.com/fabric/link-0".to_string()]), "{fa}");
    let allocation = fa["status"]["allocation"].as_object().unwrap();
    assert!(!allocation.contains_key("nodeSelector"), "allNodes: usable everywhere, no nodeSelector: {fa}");
    assert_bound_once(&server);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_relabelled_into_a_slices_selector_gets_its_devices() {
    let server = TestApiServer::start().await;
    for obj in [class("port"), rack_node("n0", "r1")] {
        create(&server, obj);
    }
    create(&server, shared_slice("r3-switch", "port", "port-0", json!({"nodeSelector": rack_selector("r3")})));
    create(&server, claim("r3-claim", one_of("port")));
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, claiming_pod("r3", json!({"resourceClaimName": "r3-claim"})));
    // No node is in rack r3 yet.
    pending_with(&server, "r3", "").await;
    let mut n0 = server.store().get("v1", "Node", None, "n0").unwrap();
    n0["metadata"]["labels"]["rack"] = json!("r3");
    server.store().update(n0).unwrap();
    until(&server, "the pod bound once n0 is in rack r3", |p| p["r3"].is_some()).await;
    let c = claim_object(&server, "r3-claim");
    assert_eq!(c["status"]["allocation"]["nodeSelector"], rack_selector("r3"), "{c}");
    s.stop().await;
}

/// The claim's `metadata.finalizers`.
fn finalizers(claim: &Value) -> Vec<&str> {
    claim["metadata"]["finalizers"].as_array().into_iter().flatten().map(|f| f.as_str().unwrap()).collect()
}

/// Node `n0` with a NIC `nic-0` that allows multiple allocations, its `bandwidth` capacity
/// under a request policy, and the NIC class.
fn shared_nic_cluster(server: &TestApiServer) {
    create(server, class("nic"));
    create(
        server,
        json!({
            "apiVersion": RESOURCE, "kind": "ResourceSlice", "metadata": {"name": "n0-nic"},
            "spec": {
                "driver": "nic.example.com", "nodeName": "n0",
                "pool": {"name": "n0", "generation": 1, "resourceSliceCount": 1},
                "devices": [{
                    "name": "nic-0", "allowMultipleAllocations": true,
                    "capacity": {"bandwidth": {"value": "100G", "requestPolicy": {
                        "default": "10G", "validRange": {"min": "10G", "step": "10G"}
                    }}}
                }]
            }
        }),
    );
    create(server, node("n0", "64"));
}

/// `consumedCapacity` is not asserted here: the allocator of this branch does not compute what
/// an allocation consumes yet (`AllocatedDevice::consumed` stays empty), so that part is
/// tested at unit level (`live::claims` tests, with a hand-built allocation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prebind_puts_the_finalizer_on_a_claim_it_allocates_and_a_share_id_on_a_shared_device() {
    let server = TestApiServer::start().await;
    shared_nic_cluster(&server);
    let bandwidth = json!({"requests": [{"name": "nic", "exactly": {
        "deviceClassName": "nic.example.com", "capacity": {"requests": {"bandwidth": "30G"}}
    }}]});
    create(&server, claim("s-claim", bandwidth));
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, claiming_pod("s", json!({"resourceClaimName": "s-claim"})));
    until(&server, "the pod with a share of the NIC bound", |p| p["s"].is_some()).await;
    let c = claim_object(&server, "s-claim");
    assert_eq!(finalizers(&c), [FINALIZER], "{c}");
    assert_eq!(allocated(&c), BTreeSet::from(["nic.example.com/n0/nic-0".to_string()]), "{c}");
    let result = &c["status"]["allocation"]["devices"]["results"][0];
    let uid = c["metadata"]["uid"].as_str().unwrap();
    let device = tessera_plugins::dra::model::DeviceId {
        driver: tessera_plugins::intern::Sym::new("nic.example.com"),
        pool: tessera_plugins::intern::Sym::new("n0"),
        device: tessera_plugins::intern::Sym::new("nic-0"),
    };
    assert_eq!(result["shareID"].as_str(), Some(share_id(uid, "nic", &device).as_str()), "{c}");
    // The finalizer is written to the claim itself, before its status, before the binding.
    let log = server.requests();
    let update =
        log.iter().position(|r| r.resource == "resourceclaims" && r.verb == "update" && r.subresource.is_empty());
    let status = log.iter().position(|r| r.resource == "resourceclaims" && r.subresource == "status");
    let binding = log.iter().position(|r| r.subresource == "binding");
    assert!(update.is_some() && update < status && status < binding, "{update:?} {status:?} {binding:?}");
    assert_bound_once(&server);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_is_not_shared_gets_no_share_id() {
    let server = TestApiServer::start().await;
    cluster(&server);
    create(&server, claim("x-claim", gpus_devices(1)));
    let s = Scheduler::start(&server, SECONDARY, false).await;
    create(&server, claiming_pod("x", json!({"resourceClaimName": "x-claim"})));
    until(&server, "the pod bound", |p| p["x"].is_some()).await;
    let c = claim_object(&server, "x-claim");
    assert_eq!(finalizers(&c), [FINALIZER], "{c}");
    let result = c["status"]["allocation"]["devices"]["results"][0].as_object().unwrap();
    assert!(!result.contains_key("shareID") && !result.contains_key("consumedCapacity"), "{c}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_back_a_claims_allocation_removes_the_finalizer_prebind_added() {
    // The second member's finalizer, added just before, is removed again, and so is the first
    // member's if its allocation was given back.
    let (server, s) = gang_whose_second_claim_write_is_refused_once().await;
    for i in 0..2 {
        let c = claim_object(&server, &format!("g-{i}-dev-x"));
        assert_eq!(finalizers(&c), [FINALIZER], "once, however often it was added and removed: {c}");
    }
    // Each claim: added, removed (g-1 after the refusal, g-0 when its allocation was given
    // back), added again.
    let log = server.requests();
    let updates =
        log.iter().filter(|r| r.resource == "resourceclaims" && r.verb == "update" && r.subresource.is_empty()).count();
    assert!(updates >= 6, "the finalizers were removed and added again ({updates} claim updates)");
    s.stop().await;
}
