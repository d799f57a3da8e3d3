//! Requests, pinned against upstream's documented examples and `helpers_test.go` cases.

use super::*;
use k8s_openapi::api::node::v1::RuntimeClass;

const MI: i64 = 1 << 20;

fn spec(yaml: &str) -> core::PodSpec {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn requests_of(yaml: &str) -> PodRequests {
    pod_requests(&spec(yaml), &PodContext::new()).unwrap()
}

fn cpu(yaml: &str) -> i64 {
    requests_of(yaml).requests.get(ResourceId::CPU)
}

#[test]
fn containers_add_up_and_init_containers_set_a_floor() {
    // Upstream docs: the larger of the app containers' sum and the largest init container.
    let base = "containers: [{name: a, resources: {requests: {cpu: 1}}}, {name: b, resources: {requests: {cpu: 2}}}]";
    assert_eq!(cpu(base), 3000);
    assert_eq!(cpu(&format!("{base}\ninitContainers: [{{name: i, resources: {{requests: {{cpu: 4}}}}}}]")), 4000);
    assert_eq!(cpu(&format!("{base}\ninitContainers: [{{name: i, resources: {{requests: {{cpu: 2}}}}}}]")), 3000);
}

#[test]
fn sidecars_run_beside_the_app_and_later_init_containers() {
    // Sidecar 1 + container 2 = 3 running; init 2 started after the sidecar needs 2 + 1 = 3.
    let s = r#"
initContainers:
- {name: sidecar, restartPolicy: Always, resources: {requests: {cpu: 1}}}
- {name: init, resources: {requests: {cpu: 2}}}
containers: [{name: app, resources: {requests: {cpu: 2}}}]
"#;
    assert_eq!(cpu(s), 3000);
    // An init container started before the sidecar runs without it.
    let s = r#"
initContainers:
- {name: init, resources: {requests: {cpu: 3}}}
- {name: sidecar, restartPolicy: Always, resources: {requests: {cpu: 1}}}
containers: [{name: app, resources: {requests: {cpu: 1}}}]
"#;
    assert_eq!(cpu(s), 3000);
    // helpers_test.go "multiple restartable and regular init containers": the peak is the
    // second regular init container (5) beside the first sidecar (1).
    let s = r#"
initContainers:
- {name: i1, resources: {requests: {cpu: 5}}}
- {name: s1, restartPolicy: Always, resources: {requests: {cpu: 1}}}
- {name: i2, resources: {requests: {cpu: 5}}}
- {name: s2, restartPolicy: Always, resources: {requests: {cpu: 2}}}
- {name: i3, resources: {requests: {cpu: 1}}}
containers: [{name: app, resources: {requests: {cpu: 1}}}]
"#;
    assert_eq!(cpu(s), 6000);
    // Sidecars alone can dominate: 1 + 2 + 3 running versus the init containers' 4 + 3.
    let s = r#"
initContainers:
- {name: s1, restartPolicy: Always, resources: {requests: {cpu: 3}}}
- {name: i1, resources: {requests: {cpu: 4}}}
- {name: s2, restartPolicy: OnFailure, resources: {requests: {cpu: 1}}}
containers: [{name: app, resources: {requests: {cpu: 2}}}]
"#;
    // `OnFailure` is not a sidecar: s2 is a regular init container (1 + 3).
    assert_eq!(cpu(s), 7000);
}

#[test]
fn every_resource_is_aggregated_slot_by_slot() {
    let s = r#"
initContainers: [{name: i, resources: {requests: {memory: 4Gi, example.com/gpu: 8}}}]
containers:
- {name: a, resources: {requests: {cpu: 500m, memory: 1Gi, example.com/gpu: 2}}}
- {name: b, resources: {requests: {memory: 1Gi, ephemeral-storage: 1G}}}
"#;
    let r = requests_of(s).requests;
    assert_eq!(r.get(ResourceId::CPU), 500);
    assert_eq!(r.get(ResourceId::MEMORY), 4 << 30);
    assert_eq!(r.get(ResourceId::EPHEMERAL_STORAGE), 1_000_000_000);
    assert_eq!(r.get(ResourceId::of("example.com/gpu").unwrap()), 8);
}

#[test]
fn a_limit_without_a_request_is_the_request() {
    let s = r#"
containers:
- {name: a, resources: {limits: {cpu: 2, memory: 1Gi}}}
- {name: b, resources: {requests: {cpu: 100m}, limits: {cpu: 4}}}
"#;
    let r = requests_of(s);
    assert_eq!(r.requests, ResourceVec::cpu_mem(2100, 1 << 30));
    // Both containers list CPU, and `a` lists memory (through its limit): only `b` gets the
    // memory default.
    assert_eq!(r.non_zero, ResourceVec::cpu_mem(2100, (1 << 30) + 200 * MI));
}

#[test]
fn non_zero_requests_default_only_what_a_container_leaves_out() {
    let r = requests_of("containers: [{name: a}, {name: b}]");
    assert_eq!(r.requests, ResourceVec::ZERO);
    assert_eq!(r.non_zero, ResourceVec::cpu_mem(200, 400 * MI));
    // An explicit zero is kept, as upstream's NonMissingContainerRequests keeps it.
    let r = requests_of("containers: [{name: a, resources: {requests: {cpu: 0}}}]");
    assert_eq!(r.non_zero, ResourceVec::cpu_mem(0, 200 * MI));
    // Init containers and sidecars get defaults too, through the same aggregation.
    let r = requests_of("initContainers: [{name: i}]\ncontainers: [{name: a}]");
    assert_eq!(r.non_zero, ResourceVec::cpu_mem(100, 200 * MI));
    let r = requests_of("initContainers: [{name: s, restartPolicy: Always}]\ncontainers: [{name: a}]");
    assert_eq!(r.non_zero, ResourceVec::cpu_mem(200, 400 * MI));
}

#[test]
fn overhead_comes_on_top_from_the_pod_or_its_runtime_class() {
    let s = "overhead: {cpu: 250m, memory: 120Mi}\ncontainers: [{name: a, resources: {requests: {cpu: 1}}}]";
    let r = requests_of(s);
    assert_eq!(r.requests, ResourceVec::cpu_mem(1250, 120 * MI));
    assert_eq!(r.non_zero, ResourceVec::cpu_mem(1250, 320 * MI));

    let mut cx = PodContext::new();
    let rc: RuntimeClass =
        serde_yaml_ng::from_str("metadata: {name: kata}\nhandler: kata\noverhead: {podFixed: {cpu: 100m}}").unwrap();
    cx.add_runtime_class(&rc).unwrap();
    let by_class = spec("runtimeClassName: kata\ncontainers: [{name: a, resources: {requests: {cpu: 1}}}]");
    assert_eq!(pod_requests(&by_class, &cx).unwrap().requests.get(ResourceId::CPU), 1100);
    // The pod's own overhead wins: admission already copied the class's into it.
    let own = spec(&format!("{s}\nruntimeClassName: kata"));
    assert_eq!(pod_requests(&own, &cx).unwrap().requests.get(ResourceId::CPU), 1250);
    let unknown = spec("runtimeClassName: gvisor\ncontainers: [{name: a}]");
    let e = pod_requests(&unknown, &cx).unwrap_err();
    assert_eq!(e.field, "spec.runtimeClassName");
    assert_eq!(e.problem.to_string(), "no RuntimeClass named \"gvisor\"");
}

#[test]
fn pod_level_requests_replace_the_containers_for_cpu_and_memory() {
    let s = r#"
resources: {requests: {cpu: 4}}
overhead: {cpu: 500m}
containers:
- {name: a, resources: {requests: {cpu: 1, memory: 1Gi, example.com/gpu: 1}}}
- {name: b}
"#;
    let r = requests_of(s);
    assert_eq!(r.requests.get(ResourceId::CPU), 4500);
    assert_eq!(r.requests.get(ResourceId::MEMORY), 1 << 30);
    assert_eq!(r.requests.get(ResourceId::of("example.com/gpu").unwrap()), 1);
    // With pod-level requests, defaults apply only to a resource listed nowhere: memory is
    // listed by `a`, so `b` gets no memory default.
    assert_eq!(r.non_zero.get(ResourceId::CPU), 4500);
    assert_eq!(r.non_zero.get(ResourceId::MEMORY), 1 << 30);
    let r = requests_of("resources: {requests: {cpu: 4}}\ncontainers: [{name: a}, {name: b}]");
    assert_eq!(r.non_zero, ResourceVec::cpu_mem(4000, 400 * MI));
}

#[test]
fn pod_level_limits_default_pod_level_requests() {
    // No container lists CPU: the pod-level request defaults to the pod-level limit.
    let r = requests_of("resources: {limits: {cpu: 2}}\ncontainers: [{name: a}]");
    assert_eq!(r.requests.get(ResourceId::CPU), 2000);
    // A container lists CPU: the pod-level request defaults to the containers' aggregate, so
    // pod-level requests are set and the other container gets no CPU default.
    let s = "resources: {limits: {memory: 1Gi}}\ncontainers: [{name: a, resources: {requests: {cpu: 1}}}, {name: b}]";
    let r = requests_of(s);
    assert_eq!(r.requests, ResourceVec::cpu_mem(1000, 1 << 30));
    assert_eq!(r.non_zero, ResourceVec::cpu_mem(1000, 1 << 30));
}

#[test]
fn bad_quantities_name_the_container_field() {
    let field = |s: &str| pod_requests(&spec(s), &PodContext::new()).unwrap_err().field;
    assert_eq!(
        field("containers: [{name: a}, {name: b, resources: {requests: {cpu: abc}}}]"),
        "spec.containers[1].resources.requests.cpu"
    );
    assert_eq!(
        field("initContainers: [{name: i, resources: {limits: {memory: 1Qi}}}]\ncontainers: [{name: a}]"),
        "spec.initContainers[0].resources.limits.memory"
    );
    assert_eq!(field("overhead: {cpu: x}\ncontainers: [{name: a}]"), "spec.overhead.cpu");
    assert_eq!(field("resources: {requests: {memory: x}}\ncontainers: [{name: a}]"), "spec.resources.requests.memory");
    assert_eq!(field("resources: {limits: {cpu: x}}\ncontainers: [{name: a}]"), "spec.resources.limits.cpu");
}
