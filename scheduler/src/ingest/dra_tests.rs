//! DRA ingest: each kind from YAML, attribute qualification, claim resolution shared per
//! template, and every problem naming its object and request.

use tessera_plugins::dra::model::{AllocationMode, Constraint, DeviceId, RequestKind};

use super::*;
use crate::ingest::{PodContext, pod, read_objects};

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml_ng::from_str(text).unwrap()
}

const SLICE: &str = r#"
metadata: {name: n1-gpu}
spec:
  driver: gpu.example.com
  nodeName: n1
  pool: {name: n1, generation: 3, resourceSliceCount: 2}
  devices:
  - name: gpu-0
    allowMultipleAllocations: true
    attributes:
      model: {string: H100}
      index: {int: 0}
      nvlink: {bool: true}
      driverVersion: {version: 1.2.3}
      topology.example.com/numa: {int: 1}
      tags: {strings: [a, b]}
    capacity:
      memory: {value: 80Gi}
      cores: {value: 1500m}
    taints:
    - {key: maintenance, value: soon, effect: NoSchedule}
    - {key: watch, effect: None}
  - name: gpu-1
"#;

#[test]
fn a_slice_converts_with_qualified_attributes_and_pool_fields() {
    let s = resource_slice(&yaml(SLICE)).unwrap();
    assert_eq!((&*s.name, s.driver.as_str(), s.pool.as_str()), ("n1-gpu", "gpu.example.com", "n1"));
    assert_eq!((s.generation, s.slice_count), (3, 2));
    assert_eq!(s.nodes, SliceNodes::Node(Sym::new("n1")));
    let d = &s.devices[0];
    assert_eq!(d.id(), DeviceId { driver: s.driver, pool: s.pool, device: Sym::new("gpu-0") });
    let names: Vec<&str> = d.attributes.keys().map(|k| &**k).collect();
    // A bare name takes the driver's domain; a qualified one keeps its own; a list is left out.
    assert_eq!(
        names,
        [
            "gpu.example.com/driverVersion",
            "gpu.example.com/index",
            "gpu.example.com/model",
            "gpu.example.com/nvlink",
            "topology.example.com/numa"
        ]
    );
    assert_eq!(d.attribute("gpu.example.com/model"), Some(&AttrValue::String(Arc::from("H100"))));
    assert_eq!(d.attribute("gpu.example.com/index"), Some(&AttrValue::Int(0)));
    assert_eq!(d.attribute("gpu.example.com/nvlink"), Some(&AttrValue::Bool(true)));
    assert_eq!(d.attribute("gpu.example.com/driverVersion"), Some(&AttrValue::Version(Arc::from("1.2.3"))));
    let memory = &d.capacity["gpu.example.com/memory"];
    assert_eq!((&*memory.text, memory.milli), ("80Gi", (80i64 << 30) * 1000));
    assert_eq!(d.capacity["gpu.example.com/cores"].milli, 1500);
    // Effect None keeps no claim off the device: only the NoSchedule taint is kept.
    assert_eq!(
        d.taints,
        vec![DeviceTaint { key: Sym::new("maintenance"), value: Sym::new("soon"), effect: TaintEffect::NoSchedule }]
    );
    assert!(d.allow_multiple_allocations && !s.devices[1].allow_multiple_allocations);
    assert_ne!(d.uid, s.devices[1].uid);
    let again = resource_slice(&yaml(SLICE)).unwrap();
    assert_ne!(again.devices[0].uid, d.uid, "a device read again gets a new uid");
}

#[test]
fn slices_for_several_nodes_say_so() {
    let base = "metadata: {name: s}\nspec: {driver: d.io, pool: {name: p, generation: 0, resourceSliceCount: 1}, ";
    let read = |placement: &str| resource_slice(&yaml(&format!("{base}{placement}}}")));
    assert_eq!(read("allNodes: true").unwrap().nodes, SliceNodes::All);
    let selector =
        read("nodeSelector: {nodeSelectorTerms: [{matchExpressions: [{key: rack, operator: In, values: [r1]}]}]}");
    let SliceNodes::Selector(selector) = selector.unwrap().nodes else { panic!("a selector") };
    assert_eq!(selector.terms.len(), 1);
    let per_device = read("perDeviceNodeSelection: true").unwrap().nodes;
    assert_eq!(per_device, SliceNodes::Selector(NodeSelector::default()), "reachable from no node yet");
    let e = read("nodeName: n1, allNodes: true").unwrap_err().to_string();
    assert_eq!(
        e,
        "ResourceSlice s: spec: exactly one of nodeName, nodeSelector, allNodes and perDeviceNodeSelection must be set"
    );
}

#[test]
fn structural_garbage_in_a_slice_names_slice_and_field() {
    let bad = SLICE.replace("{value: 80Gi}", "{value: lots}");
    let e = resource_slice(&yaml(&bad)).unwrap_err().to_string();
    assert!(
        e.starts_with("ResourceSlice n1-gpu: spec.devices[0].capacity.memory.value: quantity \"lots\" is not"),
        "{e}"
    );
    let e = resource_slice(&yaml(&SLICE.replace("resourceSliceCount: 2", "resourceSliceCount: 0"))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ResourceSlice n1-gpu: spec.pool.resourceSliceCount: must be between 1 and 4294967295, got 0"
    );
    let e = resource_slice(&yaml(&SLICE.replace("{int: 0}", "{int: 0, bool: false}"))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ResourceSlice n1-gpu: spec.devices[0].attributes.index: exactly one value field must be set"
    );
}

/// Classes, templates, claims and pods of one small training job.
const OBJECTS: &str = r#"
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu.example.com}
spec:
  selectors: [{cel: {expression: "device.driver == 'gpu.example.com'"}}]
  config: [{opaque: {driver: gpu.example.com, parameters: {sharing: none}}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: gpu, namespace: ml}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly:
          deviceClassName: gpu.example.com
          count: 2
          selectors: [{cel: {expression: "device.attributes['gpu.example.com'].model == 'H100'"}}]
          tolerations: [{key: maintenance, operator: Exists, effect: NoSchedule}]
          capacity: {requests: {memory: 10Gi}}
      - name: nic
        firstAvailable:
        - {name: fast, deviceClassName: gpu.example.com, allocationMode: All}
        - {name: any, deviceClassName: gpu.example.com}
      constraints:
      - {requests: [gpu, nic/fast], matchAttribute: gpu.example.com/numa}
      - {distinctAttribute: gpu.example.com/index}
      config: [{requests: [gpu], opaque: {driver: gpu.example.com, parameters: {mode: x}}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: shared-gpu, namespace: ml}
spec:
  devices:
    requests: [{name: gpu, exactly: {deviceClassName: gpu.example.com, adminAccess: true}}]
status:
  allocation:
    devices:
      results: [{request: gpu, driver: gpu.example.com, pool: n1, device: gpu-0, adminAccess: true}]
      config: [{source: FromClass, opaque: {driver: gpu.example.com, parameters: {sharing: none}}}]
    nodeSelector:
      nodeSelectorTerms: [{matchFields: [{key: metadata.name, operator: In, values: [n1]}]}]
"#;

fn pod_yaml(name: &str, claims: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: ml}}\n\
         spec: {{containers: [{{name: c}}], resourceClaims: {claims}}}\n"
    )
}

/// The claims of the pods of `OBJECTS` and `pods`, by pod.
fn claims_of(extra: &str, pods: &[String]) -> Vec<Vec<PodClaim>> {
    let text = format!("{OBJECTS}---\n{extra}---\n{}", pods.join("---\n"));
    let objects = read_objects("dra.yaml", &text).unwrap();
    let cx = PodContext::from_objects(&objects).unwrap();
    objects.pods.iter().map(|p| pod(p, &cx).unwrap().claims).collect()
}

fn problem(claim: &PodClaim) -> String {
    claim.spec.as_ref().err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn pods_of_one_template_share_one_spec_under_deterministic_keys() {
    let entry = "[{name: gpu, resourceClaimTemplateName: gpu}]";
    let claims = claims_of("", &[pod_yaml("train-0", entry), pod_yaml("train-1", entry)]);
    let (a, b) = (&claims[0][0], &claims[1][0]);
    assert_eq!((a.key.to_string(), b.key.to_string()), ("ml/train-0-gpu".into(), "ml/train-1-gpu".into()));
    assert!(Arc::ptr_eq(a.spec.as_ref().unwrap(), b.spec.as_ref().unwrap()), "one Arc per template");
    assert!(!a.shared && a.allocation.is_none() && a.same_needs(b));
    assert_eq!(a.name, Sym::new("gpu"));
}

#[test]
fn a_template_resolves_requests_constraints_and_config() {
    let claims = claims_of("", &[pod_yaml("p", "[{name: gpu, resourceClaimTemplateName: gpu}]")]);
    let spec = claims[0][0].spec.as_ref().unwrap();
    let RequestKind::Exactly(gpu) = &spec.requests[0].kind else { panic!("exactly") };
    assert_eq!(&*spec.requests[0].name, "gpu");
    assert_eq!(gpu.class.name, Sym::new("gpu.example.com"));
    assert_eq!(gpu.class.selectors.len(), 1);
    assert_eq!(&*gpu.class.config[0].parameters, r#"{"sharing":"none"}"#);
    assert_eq!(gpu.mode, AllocationMode::ExactCount(2));
    assert_eq!(gpu.selectors[0].expression(), "device.attributes['gpu.example.com'].model == 'H100'");
    assert_eq!(gpu.tolerations.len(), 1);
    assert_eq!(gpu.capacity.get("memory"), Some(&((10i64 << 30) * 1000)));
    assert!(!gpu.admin_access);
    let RequestKind::FirstAvailable(subs) = &spec.requests[1].kind else { panic!("firstAvailable") };
    let subs: Vec<_> = subs.iter().map(|(n, e)| (&**n, e.mode)).collect();
    assert_eq!(subs, [("fast", AllocationMode::All), ("any", AllocationMode::ExactCount(1))]);
    assert_eq!(
        spec.constraints,
        vec![
            Constraint::MatchAttribute {
                requests: vec![Arc::from("gpu"), Arc::from("nic/fast")],
                attribute: Arc::from("gpu.example.com/numa")
            },
            Constraint::DistinctAttribute { requests: vec![], attribute: Arc::from("gpu.example.com/index") },
        ]
    );
    assert_eq!((spec.config.len(), &*spec.config[0].requests[0]), (1, "gpu"));
}

#[test]
fn a_standalone_claim_is_shared_and_carries_its_allocation() {
    let entry = "[{name: g, resourceClaimName: shared-gpu}]";
    let claims = claims_of("", &[pod_yaml("a", entry), pod_yaml("b", entry)]);
    let (a, b) = (&claims[0][0], &claims[1][0]);
    assert!(a.shared && a.key == ClaimKey::new("ml", "shared-gpu"));
    assert!(Arc::ptr_eq(a.spec.as_ref().unwrap(), b.spec.as_ref().unwrap()));
    let RequestKind::Exactly(r) = &a.spec.as_ref().unwrap().requests[0].kind else { panic!("exactly") };
    assert!(r.admin_access);
    let allocation = a.allocation.as_ref().unwrap();
    assert_eq!(allocation.claim, a.key);
    assert_eq!(allocation.node, Some(Sym::new("n1")));
    assert_eq!(allocation.devices[0].device.to_string(), "gpu.example.com/n1/gpu-0");
    assert!(allocation.devices[0].admin_access && &*allocation.devices[0].request == "gpu");
    assert_eq!(allocation.config.len(), 1);
}

#[test]
fn a_pod_status_names_the_claim_made_for_it() {
    let claim = "apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: w-gpu-x7k2p, namespace: ml}\n\
                 spec: {devices: {requests: [{name: gpu, exactly: {deviceClassName: gpu.example.com}}]}}\n";
    let with_status = |name: &str, status: &str| {
        format!(
            "{}status: {{resourceClaimStatuses: [{status}]}}\n",
            pod_yaml(name, "[{name: gpu, resourceClaimTemplateName: gpu}]")
        )
    };
    let claims = claims_of(
        claim,
        &[
            with_status("w", "{name: gpu, resourceClaimName: w-gpu-x7k2p}"),
            with_status("v", "{name: gpu, resourceClaimName: v-gpu-gone}"),
            with_status("u", "{name: gpu}"),
        ],
    );
    let w = &claims[0][0];
    assert_eq!((w.key.to_string(), w.shared), ("ml/w-gpu-x7k2p".to_string(), false));
    let RequestKind::Exactly(r) = &w.spec.as_ref().unwrap().requests[0].kind else { panic!("exactly") };
    assert_eq!(r.mode, AllocationMode::ExactCount(1), "the claim's own spec");
    // The claim is not in the input: the template's spec stands in for it.
    assert_eq!(claims[1][0].key.to_string(), "ml/v-gpu-gone");
    assert_eq!(claims[1][0].spec.as_ref().unwrap().requests.len(), 2);
    assert!(claims[2].is_empty(), "no claim was needed");
}

#[test]
fn missing_objects_give_problems_naming_object_and_request() {
    let no_class = "apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: train-0-gpu, namespace: ml}\n\
                    spec: {devices: {requests: [{name: gpu, exactly: {deviceClassName: tpu.example.com}}]}}\n";
    let claims = claims_of(
        no_class,
        &[pod_yaml(
            "p",
            "[{name: a, resourceClaimName: train-0-gpu}, {name: b, resourceClaimTemplateName: nope}, \
          {name: c, resourceClaimName: nope}]",
        )],
    );
    let problems: Vec<String> = claims[0].iter().map(problem).collect();
    assert_eq!(
        problems,
        [
            "resourceclaim ml/train-0-gpu: request \"gpu\": deviceclass \"tpu.example.com\" not found",
            "resourceclaimtemplate ml/nope not found",
            "resourceclaim ml/nope not found",
        ]
    );
    assert_eq!(claims[0][1].key.to_string(), "ml/p-b");
}

#[test]
fn a_bad_count_is_a_problem_of_the_claim_not_an_input_error() {
    let claim = |name: &str, exactly: &str| {
        format!(
            "apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {{name: {name}, namespace: ml}}\n\
             spec: {{devices: {{requests: [{{name: gpu, firstAvailable: [{{name: big, deviceClassName: gpu.example.com, {exactly}}}]}}]}}}}\n"
        )
    };
    let extra = [claim("zero", "count: 0"), claim("all", "allocationMode: All, count: 2")].join("---\n");
    let claims =
        claims_of(&extra, &[pod_yaml("p", "[{name: a, resourceClaimName: zero}, {name: b, resourceClaimName: all}]")]);
    assert_eq!(
        problem(&claims[0][0]),
        "resourceclaim ml/zero: request \"gpu/big\": count must be between 1 and 4294967295, got 0"
    );
    assert_eq!(
        problem(&claims[0][1]),
        "resourceclaim ml/all: request \"gpu/big\": count must not be set with allocationMode All, got 2"
    );
}

#[test]
fn a_selector_that_does_not_compile_names_claim_request_and_expression() {
    let bad = OBJECTS.replace("device.attributes['gpu.example.com'].model == 'H100'", "device.driver ==");
    let objects = read_objects("dra.yaml", &bad).unwrap();
    let cx = PodContext::from_objects(&objects).unwrap();
    let problem = cx.dra().template("ml", "gpu").unwrap().as_ref().unwrap_err().to_string();
    assert!(
        problem.starts_with(
            "resourceclaimtemplate ml/gpu: request \"gpu\": selector \"device.driver ==\" does not compile: "
        ),
        "{problem}"
    );
}

#[test]
fn structural_garbage_in_claims_names_object_and_field() {
    let error = |from: &str, to: &str| {
        let objects = read_objects("dra.yaml", &OBJECTS.replace(from, to)).unwrap();
        PodContext::from_objects(&objects).unwrap_err().to_string()
    };
    assert_eq!(
        error("count: 2", "allocationMode: Some"),
        "ResourceClaimTemplate ml/gpu: spec.spec.devices.requests[0].exactly.allocationMode: \
         unsupported value \"Some\": supported values: ExactCount, All"
    );
    assert!(
        error("memory: 10Gi", "memory: lots").starts_with(
            "ResourceClaimTemplate ml/gpu: spec.spec.devices.requests[0].exactly.capacity.requests.memory: quantity \"lots\""
        )
    );
    assert_eq!(
        error("distinctAttribute: gpu.example.com/index", "distinctAttribute: index"),
        "ResourceClaimTemplate ml/gpu: spec.spec.devices.constraints[1].distinctAttribute: \
         invalid value \"index\": must be a fully qualified attribute name (domain/name)"
    );
    assert_eq!(
        error("requests: [gpu, nic/fast]", "requests: [gpu, nic/slow]"),
        "ResourceClaimTemplate ml/gpu: spec.spec.devices.constraints[0].requests[1]: \
         invalid value \"nic/slow\": must name a request of the claim"
    );
    assert_eq!(
        error("results: [{request: gpu, driver: gpu.example.com,", "results: [{request: gpu, driver: '',"),
        "ResourceClaim ml/shared-gpu: status.allocation.devices.results[0].driver: required field is missing"
    );
}

#[test]
fn a_pod_converted_without_dra_objects_waits_instead_of_failing() {
    let p: core::Pod =
        yaml(&pod_yaml("p", "[{name: a, resourceClaimName: x}, {name: b, resourceClaimTemplateName: t}]"));
    let claims = pod(&p, &PodContext::new()).unwrap().claims;
    let problems: Vec<String> = claims.iter().map(problem).collect();
    assert_eq!(problems, ["resourceclaim ml/x not found", "resourceclaimtemplate ml/t not found"]);
    let both: core::Pod = yaml(&pod_yaml("p", "[{name: a, resourceClaimName: x, resourceClaimTemplateName: t}]"));
    assert_eq!(
        pod(&both, &PodContext::new()).unwrap_err().to_string(),
        "Pod ml/p: spec.resourceClaims[0]: exactly one of resourceClaimName and resourceClaimTemplateName must be set"
    );
}

#[test]
fn a_class_whose_selector_does_not_compile_is_named_by_requests_using_it() {
    let mut catalog = DraCatalog::default();
    let class: api::DeviceClass =
        yaml("metadata: {name: broken}\nspec: {selectors: [{cel: {expression: 'device.driver =='}}]}");
    catalog.add_class(&class).unwrap();
    let claim: api::ResourceClaim =
        yaml("metadata: {name: c}\nspec: {devices: {requests: [{name: r, exactly: {deviceClassName: broken}}]}}");
    catalog.add_claim(&claim).unwrap();
    let entry = catalog.claim(&ClaimKey::new("default", "c")).unwrap();
    let problem = entry.spec.as_ref().unwrap_err().to_string();
    let want = "resourceclaim default/c: request \"r\": deviceclass \"broken\": selector \"device.driver ==\" does not compile: ";
    assert!(problem.starts_with(want), "{problem}");
}

/// The catalog of `OBJECTS` and `extra`, live or not.
fn catalog_of(extra: &str, live: bool) -> (DraCatalog, Vec<core::Pod>) {
    let objects = read_objects("dra.yaml", &format!("{OBJECTS}---\n{extra}")).unwrap();
    let mut catalog = if live { DraCatalog::live() } else { DraCatalog::default() };
    for c in &objects.device_classes {
        catalog.add_class(c).unwrap();
    }
    for t in &objects.resource_claim_templates {
        catalog.add_template(t).unwrap();
    }
    for c in &objects.resource_claims {
        catalog.add_claim(c).unwrap();
    }
    (catalog, objects.pods)
}

#[test]
fn a_claim_made_from_a_template_shares_the_templates_spec() {
    let template: api::ResourceClaimTemplate = yaml(OBJECTS.split("---").nth(1).unwrap());
    let devices = serde_json::to_value(&template.spec.as_ref().unwrap().spec.as_ref().unwrap().devices).unwrap();
    let claim = |name: &str| {
        let c = serde_json::json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": "ml"}, "spec": {"devices": devices}});
        serde_yaml_ng::to_string(&c).unwrap()
    };
    let (catalog, _) = catalog_of(&[claim("a-gpu-1x"), claim("b-gpu-2y")].join("---\n"), true);
    let spec = |k: &str| catalog.claim(&ClaimKey::new("ml", k)).unwrap().spec.clone().unwrap();
    let from_template = catalog.template("ml", "gpu").unwrap().clone().unwrap();
    assert!(Arc::ptr_eq(&spec("a-gpu-1x"), &from_template) && Arc::ptr_eq(&spec("b-gpu-2y"), &from_template));
    let other = catalog.claim(&ClaimKey::new("ml", "shared-gpu")).unwrap().spec.clone().unwrap();
    assert!(!Arc::ptr_eq(&other, &from_template), "other content, other spec");
}

#[test]
fn a_live_catalog_waits_for_claims_to_be_created() {
    let with_status = |name: &str, status: &str| {
        format!(
            "{}status: {{resourceClaimStatuses: [{status}]}}\n",
            pod_yaml(name, "[{name: gpu, resourceClaimTemplateName: gpu}, {name: x, resourceClaimName: later}]")
        )
    };
    let pods = [with_status("w", "{name: gpu, resourceClaimName: w-gpu-x7k2p}"), with_status("v", "{name: other}")];
    let (catalog, pods) = catalog_of(&pods.join("---\n"), true);
    let problems = |p: &core::Pod| -> Vec<String> {
        let name = p.metadata.name.as_deref().unwrap();
        catalog.pod_claims(p, "ml", name).unwrap().iter().map(problem).collect()
    };
    assert_eq!(
        problems(&pods[0]),
        ["waiting for resourceclaim ml/w-gpu-x7k2p to be created", "waiting for resourceclaim ml/later to be created"]
    );
    assert_eq!(
        problems(&pods[1])[0],
        "waiting for resourceclaim of entry \"gpu\" to be created from resourceclaimtemplate ml/gpu \
         (pod.status.resourceClaimStatuses names none yet)"
    );
}

/// PodGroup `ml/train` with a claim from template `gpu` (entry `imex`) and the named claim
/// `shared-gpu` (entry `fabric`), then `status`.
fn train_group(status: &str) -> String {
    format!(
        "apiVersion: scheduling.k8s.io/v1alpha3\nkind: PodGroup\nmetadata: {{name: train, namespace: ml, uid: pg-1}}\n\
         spec:\n  schedulingPolicy: {{gang: {{minCount: 3}}}}\n  resourceClaims:\n  \
         - {{name: imex, resourceClaimTemplateName: gpu}}\n  - {{name: fabric, resourceClaimName: shared-gpu}}\n{status}"
    )
}

/// A pod of PodGroup `group` with `claims`.
fn member_yaml(name: &str, group: &str, claims: &str) -> String {
    pod_yaml(name, claims)
        .replace("resourceClaims:", &format!("schedulingGroup: {{podGroupName: {group}}}, resourceClaims:"))
}

#[test]
fn a_group_template_entry_is_one_claim_shared_by_the_group() {
    let entries = "[{name: imex, resourceClaimTemplateName: gpu}, {name: own, resourceClaimTemplateName: gpu}]";
    let pods: Vec<String> = (0..3).map(|i| member_yaml(&format!("train-{i}"), "train", entries)).collect();
    let claims = claims_of(&train_group(""), &pods);
    let imex: Vec<&PodClaim> = claims.iter().map(|c| &c[0]).collect();
    for c in &imex {
        assert_eq!(c.key, ClaimKey::new("ml", "train-imex"), "one claim for the group, named after it");
        assert!(c.shared && c.allocation.is_none());
        assert_eq!(c.group.as_deref(), Some(&ClaimGroup { name: Sym::new("train"), uid: Arc::from("pg-1") }));
        assert!(Arc::ptr_eq(c.spec.as_ref().unwrap(), imex[0].spec.as_ref().unwrap()));
        assert!(c.same_needs(imex[0]));
    }
    // The entry the group does not list stays each pod's own.
    let own: Vec<String> = claims.iter().map(|c| c[1].key.to_string()).collect();
    assert_eq!(own, ["ml/train-0-own", "ml/train-1-own", "ml/train-2-own"]);
    assert!(claims.iter().all(|c| !c[1].shared && c[1].group.is_none()));
}

#[test]
fn a_group_named_entry_is_the_named_claim_reserved_for_the_group() {
    let claims =
        claims_of(&train_group(""), &[member_yaml("w", "train", "[{name: fabric, resourceClaimName: shared-gpu}]")]);
    let c = &claims[0][0];
    assert_eq!(c.key, ClaimKey::new("ml", "shared-gpu"));
    assert!(c.shared && c.allocation.is_some());
    assert_eq!(c.group.as_ref().map(|g| g.name), Some(Sym::new("train")));
}

#[test]
fn an_entry_differing_from_the_groups_or_a_missing_group_keeps_the_pods_own_claim() {
    let pods = [
        // Same name, another source: not the group's claim.
        member_yaml(
            "a",
            "train",
            "[{name: imex, resourceClaimName: shared-gpu}, {name: fabric, resourceClaimTemplateName: gpu}]",
        ),
        // A group the input does not have.
        member_yaml("b", "nope", "[{name: imex, resourceClaimTemplateName: gpu}]"),
        // No group at all.
        pod_yaml("c", "[{name: imex, resourceClaimTemplateName: gpu}]"),
    ];
    let claims = claims_of(&train_group(""), &pods);
    let keys: Vec<Vec<String>> = claims.iter().map(|c| c.iter().map(|c| c.key.to_string()).collect()).collect();
    assert_eq!(keys, [vec!["ml/shared-gpu", "ml/a-fabric"], vec!["ml/b-imex"], vec!["ml/c-imex"]]);
    assert!(claims.iter().flatten().all(|c| c.group.is_none()));
}

#[test]
fn a_malformed_group_entry_names_the_group_and_field() {
    let error = |from: &str, to: &str| {
        let objects =
            read_objects("dra.yaml", &format!("{OBJECTS}---\n{}", train_group("").replace(from, to))).unwrap();
        PodContext::from_objects(&objects).unwrap_err().to_string()
    };
    assert_eq!(
        error(
            "{name: fabric, resourceClaimName: shared-gpu}",
            "{name: fabric, resourceClaimName: x, resourceClaimTemplateName: gpu}"
        ),
        "PodGroup ml/train: spec.resourceClaims[1]: exactly one of resourceClaimName and resourceClaimTemplateName must be set"
    );
    assert_eq!(
        error("{name: fabric, resourceClaimName: shared-gpu}", "{name: fabric}"),
        "PodGroup ml/train: spec.resourceClaims[1]: exactly one of resourceClaimName and resourceClaimTemplateName must be set"
    );
    assert_eq!(
        error("name: fabric,", "name: imex,"),
        "PodGroup ml/train: spec.resourceClaims[1].name: invalid value \"imex\": must be unique in the podgroup"
    );
    assert_eq!(
        error("name: imex,", "name: '',"),
        "PodGroup ml/train: spec.resourceClaims[0].name: required field is missing"
    );
}

#[test]
fn a_live_catalog_waits_for_the_groups_status_to_name_its_claim() {
    let member = member_yaml("w", "train", "[{name: imex, resourceClaimTemplateName: gpu}]");
    let (mut catalog, pods) = catalog_of(&member, true);
    let problems = |catalog: &DraCatalog| -> Vec<String> {
        catalog.pod_claims(&pods[0], "ml", "w").unwrap().iter().map(problem).collect()
    };
    // No group yet: the pod waits for its own claim.
    assert_eq!(
        problems(&catalog),
        ["waiting for resourceclaim of entry \"imex\" to be created from resourceclaimtemplate ml/gpu \
          (pod.status.resourceClaimStatuses names none yet)"]
    );
    let group = |status: &str| -> sched::PodGroup { yaml(&train_group(status)) };
    assert!(catalog.put_pod_group(&group("")).unwrap());
    assert_eq!(
        problems(&catalog),
        ["waiting for resourceclaim of entry \"imex\" to be created from resourceclaimtemplate ml/gpu \
          for podgroup ml/train (podgroup.status.resourceClaimStatuses names none yet)"]
    );
    let made = group("status: {resourceClaimStatuses: [{name: imex, resourceClaimName: train-imex-x1}]}\n");
    assert!(catalog.put_pod_group(&made).unwrap());
    assert!(!catalog.put_pod_group(&made).unwrap(), "nothing changed");
    assert_eq!(problems(&catalog), ["waiting for resourceclaim ml/train-imex-x1 to be created"]);
    assert_eq!(catalog.groups_with_claim(&ClaimKey::new("ml", "train-imex-x1")), [GroupKey::new("ml", "train")]);
    assert_eq!(catalog.groups_with_claim(&ClaimKey::new("ml", "shared-gpu")), [GroupKey::new("ml", "train")]);
    let claim: api::ResourceClaim = yaml(
        "metadata: {name: train-imex-x1, namespace: ml}\n\
         spec: {devices: {requests: [{name: gpu, exactly: {deviceClassName: gpu.example.com}}]}}",
    );
    catalog.add_claim(&claim).unwrap();
    let claims = catalog.pod_claims(&pods[0], "ml", "w").unwrap();
    assert!(claims[0].spec.is_ok() && claims[0].shared && claims[0].group.is_some());
    // The status says no claim was needed: the entry is skipped.
    let none = group("status: {resourceClaimStatuses: [{name: imex}]}\n");
    assert!(catalog.put_pod_group(&none).unwrap());
    assert!(catalog.pod_claims(&pods[0], "ml", "w").unwrap().is_empty());
    assert!(catalog.remove_pod_group("ml", "train"));
    assert_eq!(catalog.pod_claims(&pods[0], "ml", "w").unwrap()[0].key, ClaimKey::new("ml", "w-imex"));
}

#[test]
fn only_an_allocation_to_one_node_by_name_is_local_to_it() {
    let allocation = |selector: &str| {
        let a: api::AllocationResult = yaml(&format!(
            "devices: {{results: [{{request: r, driver: imex.example.com, pool: rack-1, device: channel-0}}]}}\n{selector}"
        ));
        claim_allocation(ClaimKey::new("ml", "c"), &a).unwrap().node
    };
    let by_field =
        "nodeSelector: {nodeSelectorTerms: [{matchFields: [{key: metadata.name, operator: In, values: [n1]}]}]}";
    assert_eq!(allocation(by_field), Some(Sym::new("n1")));
    assert_eq!(allocation(""), None, "allNodes devices");
    let by_label = "nodeSelector: {nodeSelectorTerms: [{matchExpressions: \
                    [{key: kubernetes.io/hostname, operator: In, values: [n1]}]}]}";
    assert_eq!(allocation(by_label), None, "a slice's selector, however narrow");
    let rack = "nodeSelector: {nodeSelectorTerms: [{matchExpressions: [{key: rack, operator: In, values: [r1]}]}]}";
    assert_eq!(allocation(rack), None);
    let two = "nodeSelector: {nodeSelectorTerms: [{matchFields: [{key: metadata.name, operator: In, values: [n1]}]}, \
               {matchFields: [{key: metadata.name, operator: In, values: [n2]}]}]}";
    assert_eq!(allocation(two), None);
    let both =
        "nodeSelector: {nodeSelectorTerms: [{matchFields: [{key: metadata.name, operator: In, values: [n1, n2]}]}]}";
    assert_eq!(allocation(both), None);
}

/// A pool published as a counter slice (one GPU's memory and multiprocessors) beside a device
/// slice of its partitions, and a shared NIC with a bandwidth policy.
const COUNTER_SLICE: &str = r#"
metadata: {name: n1-gpu-counters}
spec:
  driver: gpu.example.com
  nodeName: n1
  pool: {name: n1, generation: 1, resourceSliceCount: 2}
  sharedCounters:
  - name: gpu-0
    counters:
      memory: {value: 80Gi}
      sm: {value: "100"}
"#;

const PARTITION_SLICE: &str = r#"
metadata: {name: n1-gpu-partitions}
spec:
  driver: gpu.example.com
  nodeName: n1
  pool: {name: n1, generation: 1, resourceSliceCount: 2}
  devices:
  - name: half-0
    consumesCounters:
    - counterSet: gpu-0
      counters: {memory: {value: 40Gi}, sm: {value: "50"}}
  - name: nic-0
    allowMultipleAllocations: true
    capacity:
      bandwidth:
        value: 100G
        requestPolicy:
          default: 10G
          validRange: {min: 10G, max: 100G, step: 10G}
      queues:
        value: "8"
        requestPolicy: {default: "1", validValues: ["1", "2", "4", "8"]}
"#;

const G: i64 = 1_000_000_000;

#[test]
fn a_counter_slice_keeps_its_counter_sets_with_names_as_written() {
    let s = resource_slice(&yaml(COUNTER_SLICE)).unwrap();
    assert!(s.devices.is_empty());
    let counters = BTreeMap::from([(Arc::from("memory"), (80i64 << 30) * 1000), (Arc::from("sm"), 100_000)]);
    assert_eq!(s.shared_counters, vec![CounterSet { name: Sym::new("gpu-0"), counters }]);
}

#[test]
fn a_partition_consumes_counters_and_a_shared_device_has_request_policies() {
    let s = resource_slice(&yaml(PARTITION_SLICE)).unwrap();
    assert!(s.shared_counters.is_empty());
    let half = &s.devices[0];
    let counters = BTreeMap::from([(Arc::from("memory"), (40i64 << 30) * 1000), (Arc::from("sm"), 50_000)]);
    assert_eq!(half.consumes_counters, vec![CounterConsumption { counter_set: Sym::new("gpu-0"), counters }]);
    let nic = &s.devices[1];
    assert!(nic.consumes_counters.is_empty() && nic.allow_multiple_allocations);
    let bandwidth = &nic.capacity["gpu.example.com/bandwidth"];
    let range = CapacityRange { min: 10 * G * 1000, max: Some(100 * G * 1000), step: Some(10 * G * 1000) };
    let want = CapacityPolicy { default: Some(10 * G * 1000), valid_values: Vec::new(), valid_range: Some(range) };
    assert_eq!(bandwidth.policy.as_deref(), Some(&want));
    assert_eq!(bandwidth.consumption(Some(30 * G * 1000)), Some(30 * G * 1000));
    assert_eq!(bandwidth.consumption(Some(25 * G * 1000)), Some(30 * G * 1000), "rounded up onto a step");
    let queues = nic.capacity["gpu.example.com/queues"].policy.as_deref().unwrap();
    assert_eq!((queues.default, queues.valid_values.as_slice()), (Some(1000), &[1000, 2000, 4000, 8000][..]));
    assert!(half.capacity.is_empty() || half.capacity.values().all(|c| c.policy.is_none()));
}

/// The error converting `PARTITION_SLICE` with `from` replaced by `to`.
fn partition_error(from: &str, to: &str) -> String {
    assert!(PARTITION_SLICE.contains(from), "{from}");
    resource_slice(&yaml(&PARTITION_SLICE.replace(from, to))).unwrap_err().to_string()
}

#[test]
fn request_policies_are_validated_as_upstream_does() {
    let at = "ResourceSlice n1-gpu-partitions: spec.devices[1].capacity";
    let queues = format!("{at}.queues.requestPolicy");
    let values = |v: &str| partition_error(r#"validValues: ["1", "2", "4", "8"]"#, v);
    let unsorted = "must be sorted ascending, without duplicates";
    assert_eq!(values(r#"validValues: ["1", "4", "2"]"#), format!("{queues}.validValues[2]: {unsorted}"));
    assert_eq!(values(r#"validValues: ["1", "1"]"#), format!("{queues}.validValues[1]: {unsorted}"));
    assert_eq!(
        values(r#"validValues: ["1", "16"]"#),
        format!("{queues}.validValues[1]: must not exceed the capacity's value")
    );
    assert_eq!(values(r#"validValues: ["2", "4"]"#), format!("{queues}.validValues: must contain the default"));
    assert!(
        values(r#"validValues: ["1", "x"]"#).starts_with(&format!("{queues}.validValues[1]: quantity \"x\" is not"))
    );
    let both = r#"validValues: ["1"], validRange: {min: "1"}"#;
    assert_eq!(values(both), format!("{queues}: validValues and validRange must not both be set"));
    assert_eq!(
        partition_error(r#"{default: "1", validValues"#, "{validValues"),
        format!("{queues}.default: required field is missing")
    );
    let range = |r: &str| partition_error("validRange: {min: 10G, max: 100G, step: 10G}", r);
    let bandwidth = format!("{at}.bandwidth.requestPolicy");
    let cases = [
        ("validRange: {min: 10G, max: 5G}", "max: must not be less than min"),
        ("validRange: {min: 10G, max: 200G}", "max: must not exceed the capacity's value"),
        ("validRange: {min: 200G}", "min: must not exceed the capacity's value"),
        ("validRange: {min: 20G}", "min: must not exceed the default"),
        ("validRange: {min: 1G, max: 5G}", "max: must not be less than the default"),
        ("validRange: {min: 10G, step: \"0\"}", "step: must be positive"),
        ("validRange: {min: 10G, step: 100G}", "step: min plus one step must not exceed the capacity's value"),
        (
            "validRange: {min: 10G, max: 95G, step: 10G}",
            "step: the default and max must be min plus a multiple of step",
        ),
        ("validRange: {min: 5G, step: 10G}", "step: the default and max must be min plus a multiple of step"),
    ];
    for (policy, problem) in cases {
        assert_eq!(range(policy), format!("{bandwidth}.validRange.{problem}"), "{policy}");
    }
    assert_eq!(
        partition_error("        requestPolicy:\n          default: 10G\n", "        requestPolicy:\n"),
        format!("{bandwidth}.default: required field is missing")
    );
    // Upstream checks nothing else of a default alone, however large.
    let alone = PARTITION_SLICE.replace("validRange: {min: 10G, max: 100G, step: 10G}", "").replace("10G", "1T");
    let s = resource_slice(&yaml(&alone)).unwrap();
    assert_eq!(
        s.devices[1].capacity["gpu.example.com/bandwidth"].policy.as_deref().unwrap().default,
        Some(1000 * G * 1000)
    );
    // Only a device that allows multiple allocations has a request policy.
    assert_eq!(
        partition_error("allowMultipleAllocations: true", "allowMultipleAllocations: false"),
        format!("{at}.bandwidth.requestPolicy: allowMultipleAllocations must be true")
    );
}

#[test]
fn counters_are_validated_naming_slice_and_field() {
    let e = resource_slice(&yaml(&COUNTER_SLICE.replace("{value: 80Gi}", "{value: much}"))).unwrap_err().to_string();
    assert!(
        e.starts_with("ResourceSlice n1-gpu-counters: spec.sharedCounters[0].counters.memory.value: quantity \"much\""),
        "{e}"
    );
    let twice = format!("{COUNTER_SLICE}  - name: gpu-0\n    counters: {{sm: {{value: \"1\"}}}}\n");
    let e = resource_slice(&yaml(&twice)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ResourceSlice n1-gpu-counters: spec.sharedCounters[1].name: invalid value \"gpu-0\": must be unique in the slice"
    );
    let e = resource_slice(&yaml(&COUNTER_SLICE.replace("- name: gpu-0", "- name: \"\""))).unwrap_err();
    assert_eq!(e.to_string(), "ResourceSlice n1-gpu-counters: spec.sharedCounters[0].name: required field is missing");
    let with_devices = format!("{COUNTER_SLICE}  devices: [{{name: gpu-0}}]\n");
    let e = resource_slice(&yaml(&with_devices)).unwrap_err();
    assert_eq!(e.to_string(), "ResourceSlice n1-gpu-counters: spec: devices and sharedCounters must not both be set");
    let consumption = "    - counterSet: gpu-0\n      counters: {memory: {value: 40Gi}, sm: {value: \"50\"}}\n";
    let e = partition_error(consumption, &format!("{consumption}{consumption}"));
    assert_eq!(
        e,
        "ResourceSlice n1-gpu-partitions: spec.devices[0].consumesCounters[1].counterSet: invalid value \"gpu-0\": \
         must be unique in the device"
    );
    let e = partition_error("counterSet: gpu-0", "counterSet: \"\"");
    assert_eq!(
        e,
        "ResourceSlice n1-gpu-partitions: spec.devices[0].consumesCounters[0].counterSet: required field is missing"
    );
}

#[test]
fn consumed_capacity_reads_back_qualified_with_the_results_driver() {
    let a: api::AllocationResult = yaml(
        "devices: {results: [{request: r, driver: nic.example.com, pool: p, device: nic-0, shareID: \
         0a1b2c3d-0000-8000-8000-000000000000, consumedCapacity: {bandwidth: 30G, other.example.com/x: 500m}}, \
         {request: r, driver: nic.example.com, pool: p, device: nic-1}]}",
    );
    let read = claim_allocation(ClaimKey::new("ml", "c"), &a).unwrap();
    let want = BTreeMap::from([
        (Arc::from("nic.example.com/bandwidth"), 30 * G * 1000),
        (Arc::from("other.example.com/x"), 500),
    ]);
    assert_eq!(read.devices[0].consumed, want);
    assert!(read.devices[1].consumed.is_empty());
    let bad: api::AllocationResult = yaml(
        "devices: {results: [{request: r, driver: d.io, pool: p, device: x, consumedCapacity: {bandwidth: lots}}]}",
    );
    let e = claim_allocation(ClaimKey::new("ml", "c"), &bad).unwrap_err().to_string();
    assert!(
        e.starts_with("ResourceClaim ml/c: status.allocation.devices.results[0].consumedCapacity.bandwidth: quantity"),
        "{e}"
    );
}

/// One node's GPU published as a counter set and its partitions, and a shared NIC.
const PARTITIONS: &str = include_str!("../../../tests/fixtures/sim/dra-partitions.yaml");

#[test]
fn the_partitions_fixture_loads_with_its_counters_and_policies() {
    let objects = read_objects("dra-partitions.yaml", PARTITIONS).unwrap();
    let slices: Vec<ResourceSlice> = objects.resource_slices.iter().map(|s| resource_slice(s).unwrap()).collect();
    let gi = |n: i64| (n << 30) * 1000;
    let set = |memory: i64, sm: i64| BTreeMap::from([(Arc::from("memory"), gi(memory)), (Arc::from("sm"), sm * 1000)]);
    assert_eq!(slices[0].shared_counters, vec![CounterSet { name: Sym::new("gpu-0"), counters: set(80, 100) }]);
    assert!(slices[0].devices.is_empty());
    let partitions: Vec<(&str, i64, i64)> = slices[1]
        .devices
        .iter()
        .map(|d| {
            let [c] = d.consumes_counters.as_slice() else { panic!("{d:?}") };
            assert_eq!(c.counter_set, Sym::new("gpu-0"));
            (d.name.as_str(), c.counters["memory"], c.counters["sm"])
        })
        .collect();
    assert_eq!(
        partitions,
        [
            ("whole", gi(80), 100_000),
            ("half-0", gi(40), 50_000),
            ("half-1", gi(40), 50_000),
            ("quarter-0", gi(20), 25_000),
            ("quarter-1", gi(20), 25_000),
            ("quarter-2", gi(20), 25_000),
            ("quarter-3", gi(20), 25_000),
        ]
    );
    let nic = &slices[2].devices[0];
    assert!(nic.allow_multiple_allocations);
    let bandwidth = &nic.capacity["nic.example.com/bandwidth"];
    assert_eq!(bandwidth.milli, 100 * G * 1000);
    let range = CapacityRange { min: 10 * G * 1000, max: None, step: Some(10 * G * 1000) };
    let want = CapacityPolicy { default: Some(10 * G * 1000), valid_values: Vec::new(), valid_range: Some(range) };
    assert_eq!(bandwidth.policy.as_deref(), Some(&want));
    assert_eq!(bandwidth.consumption(Some(30 * G * 1000)), Some(30 * G * 1000));
    // Every pod's claim resolves: the classes and templates are there, the selectors compile.
    let cx = PodContext::from_objects(&objects).unwrap();
    let names: Vec<&str> = objects.pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["half-a", "quarter-a", "quarter-b", "quarter-c", "net-0", "net-1", "net-2", "net-3"]);
    for p in &objects.pods {
        let claims = pod(p, &cx).unwrap().claims;
        assert!(claims.len() == 1 && claims[0].spec.is_ok(), "{:?}", claims[0].spec);
    }
}
