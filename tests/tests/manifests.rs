//! The manifests under `manifests/` agree with each other and with the code: the configuration
//! they ship loads with Tessera's loader, the Deployment mounts it where it points, RBAC names
//! the ServiceAccount and the leader-election Lease, and the samples read in the simulator.
//! (Schema validation of every manifest is `manifests/validate.py`, run by `test.sh`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use tessera_plugins::registry::Registry;
use tessera_scheduler::config::{self, SchedulerConfig};
use tessera_scheduler::ingest::read_objects;
use tessera_scheduler::sim::input::{OnInvalid, from_objects};

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// Every document of every YAML file in `dir` (not recursing), in file name order, as
/// `kubectl apply -f dir` reads them.
fn documents(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap();
            if !value.is_null() {
                out.push((file.file_name().unwrap().to_string_lossy().into_owned(), value));
            }
        }
    }
    out
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn load(source: &str, text: &str) -> SchedulerConfig {
    config::parse_config(source, text, &Registry::builtin()).unwrap_or_else(|e| panic!("{source}: {e}"))
}

#[test]
fn the_deployment_runs_the_shipped_configuration() {
    let docs = documents(&manifests().join("deploy"));
    // kubectl applies files in name order: the Namespace must come before what lives in it.
    assert_eq!(docs[0].1["kind"], "Namespace");
    let namespace = docs[0].1["metadata"]["name"].as_str().unwrap();
    assert_eq!(namespace, "tessera-system");
    for (file, doc) in &docs[1..] {
        let ns = doc["metadata"]["namespace"].as_str();
        assert!(ns.is_none() || ns == Some(namespace), "{file}: {} in {ns:?}", doc["kind"]);
    }

    let config_map = find(&docs, "ConfigMap", "tessera-config");
    let cfg = load("ConfigMap tessera-config", config_map["data"]["config.yaml"].as_str().unwrap());
    assert_eq!(cfg.profiles.iter().map(|p| p.scheduler_name.as_str()).collect::<Vec<_>>(), ["tessera"]);
    assert!(cfg.leader_election.leader_elect);
    assert_eq!(
        (cfg.leader_election.resource_namespace.as_str(), cfg.leader_election.resource_name.as_str()),
        (namespace, "tessera")
    );
    assert_eq!((cfg.client_connection.qps, cfg.client_connection.burst), (1000.0, 2000));

    let deployment = find(&docs, "Deployment", "tessera");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args, ["run", "--config", "/etc/tessera/config.yaml", "--leader-elect=true"]);
    let mount =
        container["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == "/etc/tessera").unwrap();
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    assert_eq!(volume["configMap"]["name"], "tessera-config");
    assert_eq!(pod["serviceAccountName"], "tessera");
    find(&docs, "ServiceAccount", "tessera");
    assert_eq!(deployment["spec"]["replicas"], 2);
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], 10259);
        assert_eq!(container[probe]["httpGet"]["scheme"], "HTTPS");
    }
}

#[test]
fn rbac_is_sorted_and_binds_the_service_account() {
    let docs = documents(&manifests().join("deploy"));
    let role = find(&docs, "ClusterRole", "tessera");
    let keys: Vec<(String, String)> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            let groups = rule["apiGroups"].as_array().unwrap();
            assert_eq!(groups.len(), 1, "one API group per rule: {rule}");
            let resources: Vec<&str> =
                rule["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
            let mut sorted = resources.clone();
            sorted.sort();
            assert_eq!(resources, sorted, "resources sorted: {rule}");
            let verbs: Vec<&str> = rule["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert!(verbs.is_sorted(), "verbs sorted: {rule}");
            assert!(!verbs.contains(&"*") && !resources.contains(&"*"), "no wildcards: {rule}");
            (groups[0].as_str().unwrap().to_string(), resources.join(","))
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "rules sorted by API group then resources, one per (group, resources)");

    let binding = find(&docs, "ClusterRoleBinding", "tessera");
    assert_eq!(binding["roleRef"]["name"], "tessera");
    assert_eq!(binding["subjects"][0]["name"], "tessera");
    assert_eq!(binding["subjects"][0]["namespace"], "tessera-system");

    // The leader-election Role grants exactly the Lease the configuration names.
    let election = find(&docs, "Role", "tessera-leader-election");
    assert_eq!(election["metadata"]["namespace"], "tessera-system");
    let named = election["rules"].as_array().unwrap().iter().find(|r| r["resourceNames"].is_array()).unwrap();
    assert_eq!(named["resourceNames"], serde_json::json!(["tessera"]));
    let role_binding = find(&docs, "RoleBinding", "tessera-leader-election");
    assert_eq!(role_binding["subjects"][0]["name"], "tessera");
}

#[test]
fn the_static_pod_replaces_kube_scheduler() {
    let dir = manifests().join("static-pod");
    let text = std::fs::read_to_string(dir.join("config.yaml")).unwrap();
    let cfg = load("static-pod/config.yaml", &text);
    assert_eq!(cfg.profiles.iter().map(|p| p.scheduler_name.as_str()).collect::<Vec<_>>(), ["default-scheduler"]);
    let lease = (cfg.leader_election.resource_namespace.as_str(), cfg.leader_election.resource_name.as_str());
    assert_eq!(lease, ("kube-system", "kube-scheduler"));
    assert_eq!(cfg.client_connection.kubeconfig.as_deref(), Some("/etc/kubernetes/scheduler.conf"));

    let docs = documents(&dir);
    let pod = find(&docs, "Pod", "kube-scheduler");
    assert_eq!(pod["metadata"]["namespace"], "kube-system");
    assert_eq!(pod["spec"]["hostNetwork"], true);
    let args = pod["spec"]["containers"][0]["args"].as_array().unwrap();
    assert!(args.iter().any(|a| a == "--kubeconfig=/etc/kubernetes/scheduler.conf"));
    assert!(args.iter().any(|a| a == "--config=/etc/kubernetes/tessera/config.yaml"));
    // The same image as the Deployment, so a release changes both.
    let deploy = documents(&manifests().join("deploy"));
    let image = &find(&deploy, "Deployment", "tessera")["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(&pod["spec"]["containers"][0]["image"], image);
}

#[test]
fn the_samples_run_in_the_simulator() {
    let dir = manifests().join("samples");
    let read = |file: &str| {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let objects = read_objects(file, &text).unwrap();
        let input = from_objects(&objects, OnInvalid::Stop).unwrap();
        assert!(input.unknown_kinds.is_empty(), "{file}: {:?}", input.unknown_kinds);
        assert!(input.pods.iter().all(|p| p.pod.scheduler_name.as_str() == "tessera"), "{file}");
        input
    };
    assert_eq!(read("deployment.yaml").pods.len(), 10);
    for file in ["gang-coscheduling.yaml", "gang-kubernetes.yaml"] {
        let input = read(file);
        assert_eq!(input.pods.len(), 4, "{file}");
        assert_eq!(input.pod_groups.len(), 1, "{file}");
        assert_eq!(input.pod_groups[0].min_count, 4, "{file}");
        assert!(input.pods.iter().all(|p| p.pod.pod_group.is_some()), "{file}: every pod is in the gang");
    }
}
