//! Preemption (upstream's DefaultPreemption PostFilter plugin): a pod that fits nowhere evicts
//! pods of lower priority — the fewest, least important ones, on the node where that costs
//! least — waits for them, and lands there; pods of equal priority never preempt each other, a
//! pod with `preemptionPolicy: Never` waits, and PodDisruptionBudgets are broken only when no
//! other choice exists. The simulator's API deletes a victim at once; its record ends then,
//! with the reason `preempted by ns/name`.

use tessera_scheduler::sim::output::placements_csv;

use super::gates::{TWO_NODES, load, record, replay_with, summary};

const CLASSES: &str = r#"apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: batch
value: 100
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: service
value: 1000
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: critical
value: 10000
preemptionPolicy: PreemptLowerPriority
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: polite
value: 10000
preemptionPolicy: Never
"#;

/// A pod `name` of priority class `class` asking `cpu` cores, as `kubectl get pod -o yaml`
/// shows it: running on `node` when given (created at `created`), else pending and arriving
/// at `arrival` seconds.
fn pod(name: &str, class: &str, value: i32, cpu: u32, node: Option<&str>, created: u32) -> String {
    let (node_line, phase) = match node {
        Some(n) => (format!("  nodeName: {n}\n"), "Running"),
        None => (String::new(), "Pending"),
    };
    let arrival =
        if node.is_none() { format!("  annotations:\n    tessera.io/arrival: {created}s\n") } else { String::new() };
    let policy = if class == "polite" { "Never" } else { "PreemptLowerPriority" };
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
{arrival}  creationTimestamp: "2026-11-30T10:{min:02}:{sec:02}Z"
  labels:
    app: {name}
  name: {name}
  namespace: default
spec:
  containers:
  - image: registry.example.com/{name}:v1
    name: main
    resources:
      requests:
        cpu: "{cpu}"
        memory: 1Gi
{node_line}  preemptionPolicy: {policy}
  priority: {value}
  priorityClassName: {class}
  schedulerName: default-scheduler
status:
  phase: {phase}
"#,
        min = created / 60,
        sec = created % 60,
    )
}

#[test]
fn a_pod_of_higher_priority_evicts_the_lowest_priority_pod_and_takes_its_room() {
    let low = pod("batch-job", "batch", 100, 4, Some("node-a"), 0);
    let mid = pod("api", "service", 1000, 4, Some("node-b"), 0);
    let high = pod("control", "critical", 10000, 3, None, 10);
    let run = replay_with(&load(&[TWO_NODES, CLASSES, &low, &mid, &high]), "");
    let victim = record(&run, "batch-job");
    assert_eq!(
        (victim.end, victim.preempted_by.as_ref().map(ToString::to_string)),
        (Some(10.0), Some("default/control".into()))
    );
    assert_eq!(victim.reason, "preempted by default/control");
    assert!(record(&run, "api").end.is_none(), "the pod of priority 1000 keeps running");
    let c = record(&run, "control");
    assert_eq!(c.node.map(|n| n.as_str()), Some("node-a"));
    assert!(c.start.is_some_and(|s| s > 10.0), "it waits for its backoff after preempting: {c:?}");
    let csv = placements_csv(&run);
    assert!(csv.contains("default,batch-job,node-a,0,10,0,preempted by default/control,,"), "{csv}");
    let s = summary(run);
    assert_eq!((s.preemptions.victims, s.preemptions.preemptors), (1, 1));
    assert_eq!(s.preemptions.by_priority_class.get("critical"), Some(&1));
    assert_eq!(s.preemptions.victims_by_priority_class.get("batch"), Some(&1));
}

#[test]
fn pods_of_equal_priority_never_preempt_each_other() {
    let a = pod("a", "service", 1000, 4, Some("node-a"), 0);
    let b = pod("b", "service", 1000, 4, Some("node-b"), 0);
    let late = pod("late", "service", 1000, 2, None, 5);
    let run = replay_with(&load(&[TWO_NODES, CLASSES, &a, &b, &late]), "");
    let r = record(&run, "late");
    assert_eq!(r.node, None);
    assert_eq!(
        r.reason,
        "0/2 nodes are available: 2 Insufficient cpu. \
         preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.."
    );
    assert_eq!(summary(run).preemptions.victims, 0);
}

#[test]
fn a_pod_with_preemption_policy_never_waits_instead() {
    let low = pod("batch-job", "batch", 100, 4, Some("node-a"), 0);
    let other = pod("batch-2", "batch", 100, 4, Some("node-b"), 0);
    let polite = pod("polite", "polite", 10000, 2, None, 5);
    let run = replay_with(&load(&[TWO_NODES, CLASSES, &low, &other, &polite]), "");
    let r = record(&run, "polite");
    assert_eq!(r.node, None);
    assert_eq!(
        r.reason,
        "0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    );
    assert!(record(&run, "batch-job").end.is_none());
}

#[test]
fn only_as_many_pods_are_evicted_as_the_preemptor_needs() {
    // node-a runs four 1-CPU pods of rising priority; the preemptor needs 2 CPUs.
    let running: Vec<String> =
        (0..4).map(|i| pod(&format!("w{i}"), "batch", 100 + i, 1, Some("node-a"), i as u32)).collect();
    let full_b = pod("api", "service", 1000, 4, Some("node-b"), 0);
    let high = pod("control", "critical", 10000, 2, None, 10);
    let mut docs = vec![TWO_NODES, CLASSES, &full_b, &high];
    docs.extend(running.iter().map(String::as_str));
    let run = replay_with(&load(&docs), "");
    let evicted: Vec<&str> = run.records.iter().filter(|r| r.preempted_by.is_some()).map(|r| &*r.key.name).collect();
    // The two least important (lowest priority) go; the others are reprieved.
    assert_eq!(evicted, vec!["w0", "w1"]);
    assert_eq!(record(&run, "control").node.map(|n| n.as_str()), Some("node-a"));
}

#[test]
fn a_disruption_budget_is_respected_when_another_victim_exists() {
    // The protected pod has the lower priority, but evicting it would break its budget.
    let protected = pod("db", "batch", 100, 4, Some("node-a"), 0);
    let other = pod("cache", "batch", 200, 4, Some("node-b"), 0);
    let budget = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: db\n  namespace: default\n\
                  spec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: db\n";
    let high = pod("control", "critical", 10000, 4, None, 10);
    let run = replay_with(&load(&[TWO_NODES, CLASSES, budget, &protected, &other, &high]), "");
    assert!(record(&run, "db").preempted_by.is_none(), "the budget allows no disruption of db");
    assert!(record(&run, "cache").preempted_by.is_some());
    assert_eq!(record(&run, "control").node.map(|n| n.as_str()), Some("node-b"));
}

#[test]
fn a_disruption_budget_is_broken_only_when_there_is_no_other_choice() {
    let protected = pod("db", "batch", 100, 4, Some("node-a"), 0);
    let vip = pod("vip", "critical", 10000, 4, Some("node-b"), 0);
    let budget = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: db\n  namespace: default\n\
                  spec:\n  maxUnavailable: 0\n  selector:\n    matchLabels:\n      app: db\n";
    let high = pod("control", "critical", 10000, 4, None, 10);
    let run = replay_with(&load(&[TWO_NODES, CLASSES, budget, &protected, &vip, &high]), "");
    assert!(record(&run, "db").preempted_by.is_some(), "upstream breaks a budget when nothing else helps");
    assert_eq!(record(&run, "control").node.map(|n| n.as_str()), Some("node-a"));
}

#[test]
fn the_room_a_preemptor_made_is_held_against_pods_of_lower_priority() {
    let low = pod("batch-job", "batch", 100, 4, Some("node-a"), 0);
    let full_b = pod("api", "service", 1000, 4, Some("node-b"), 0);
    let high = pod("control", "critical", 10000, 4, None, 10);
    // Arrives right after the preemption, before the preemptor's backoff ends: the freed
    // node is the preemptor's.
    let sneaky = pod("sneaky", "service", 1000, 1, None, 10);
    let run = replay_with(&load(&[TWO_NODES, CLASSES, &low, &full_b, &high, &sneaky]), "");
    assert_eq!(record(&run, "control").node.map(|n| n.as_str()), Some("node-a"));
    assert_eq!(record(&run, "sneaky").node, None, "{:?}", record(&run, "sneaky"));
}

/// `pod` made a member of scheduler-plugins' PodGroup `group` by its label.
fn in_group(pod: String, group: &str) -> String {
    pod.replace("  labels:\n", &format!("  labels:\n    scheduling.x-k8s.io/pod-group: {group}\n"))
}

const GANG_OF_TWO: &str = "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata:\n  name: train\n  \
                           namespace: default\nspec:\n  minMember: 2\n";

#[test]
fn a_gang_member_is_never_evicted_without_the_rest_of_its_gang() {
    // One member on each node; a pod of higher priority needs one node's room.
    let g0 = in_group(pod("train-0", "batch", 100, 3, Some("node-a"), 0), "train");
    let g1 = in_group(pod("train-1", "batch", 100, 3, Some("node-b"), 0), "train");
    let high = pod("control", "critical", 10000, 3, None, 10);
    let run = replay_with(&load(&[TWO_NODES, CLASSES, GANG_OF_TWO, &g0, &g1, &high]), "");
    let evicted: Vec<&str> = run.records.iter().filter(|r| r.preempted_by.is_some()).map(|r| &*r.key.name).collect();
    assert_eq!(evicted, vec!["train-0", "train-1"], "the whole gang leaves");
    assert!(record(&run, "control").node.is_some());
}

#[test]
fn a_kubernetes_pod_group_with_single_disruption_loses_only_what_is_needed() {
    let group = "apiVersion: scheduling.k8s.io/v1alpha3\nkind: PodGroup\nmetadata:\n  name: serve\n  namespace: default\n\
                 spec:\n  schedulingPolicy:\n    gang:\n      minCount: 2\n  disruptionMode:\n    single: {}\n";
    let member = |name: &str, node: &str| {
        pod(name, "batch", 100, 3, Some(node), 0)
            .replace("  preemptionPolicy:", "  schedulingGroup:\n    podGroupName: serve\n  preemptionPolicy:")
    };
    let (s0, s1) = (member("serve-0", "node-a"), member("serve-1", "node-b"));
    let high = pod("control", "critical", 10000, 3, None, 10);
    let run = replay_with(&load(&[TWO_NODES, CLASSES, group, &s0, &s1, &high]), "");
    let evicted = run.records.iter().filter(|r| r.preempted_by.is_some()).count();
    assert_eq!(evicted, 1, "disruptionMode single: one member is enough");
}

#[test]
fn a_gang_of_higher_priority_preempts_as_one_unit() {
    let low_a = pod("batch-a", "batch", 100, 4, Some("node-a"), 0);
    let low_b = pod("batch-b", "batch", 100, 4, Some("node-b"), 0);
    let group = "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata:\n  name: infer\n  \
                 namespace: default\nspec:\n  minMember: 2\n";
    let m0 = in_group(pod("infer-0", "critical", 10000, 3, None, 10), "infer");
    let m1 = in_group(pod("infer-1", "critical", 10000, 3, None, 10), "infer");
    let run = replay_with(&load(&[TWO_NODES, CLASSES, group, &low_a, &low_b, &m0, &m1]), "");
    assert!(record(&run, "batch-a").preempted_by.is_some() && record(&run, "batch-b").preempted_by.is_some());
    let mut nodes: Vec<&str> =
        ["infer-0", "infer-1"].iter().filter_map(|m| record(&run, m).node.map(|n| n.as_str())).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, vec!["node-a", "node-b"]);
}

#[test]
fn a_gang_that_cannot_fit_even_by_preempting_evicts_nobody() {
    let low_a = pod("batch-a", "batch", 100, 4, Some("node-a"), 0);
    let low_b = pod("batch-b", "batch", 100, 4, Some("node-b"), 0);
    let group = "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata:\n  name: infer\n  \
                 namespace: default\nspec:\n  minMember: 3\n";
    let members: Vec<String> =
        (0..3).map(|i| in_group(pod(&format!("infer-{i}"), "critical", 10000, 3, None, 10), "infer")).collect();
    let mut docs = vec![TWO_NODES, CLASSES, group, &low_a, &low_b];
    docs.extend(members.iter().map(String::as_str));
    let run = replay_with(&load(&docs), "");
    assert_eq!(run.records.iter().filter(|r| r.preempted_by.is_some()).count(), 0);
}

#[test]
fn a_pod_kept_out_by_anti_affinity_preempts_the_pod_it_avoids() {
    // Both nodes have room, but each runs a `cache` pod the newcomer refuses to share a node
    // with; the cache on node-a has the lower priority and goes.
    let cache_a = pod("cache-a", "batch", 100, 1, Some("node-a"), 0).replace("app: cache-a", "app: cache");
    let cache_b = pod("cache-b", "service", 1000, 1, Some("node-b"), 0).replace("app: cache-b", "app: cache");
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      \
                - labelSelector:\n          matchLabels:\n            app: cache\n        \
                topologyKey: kubernetes.io/hostname\n  preemptionPolicy:";
    let loner = pod("loner", "critical", 10000, 1, None, 10).replace("  preemptionPolicy:", anti);
    let run = replay_with(&load(&[TWO_NODES, CLASSES, &cache_a, &cache_b, &loner]), "");
    assert_eq!(record(&run, "cache-a").preempted_by.as_ref().map(ToString::to_string), Some("default/loner".into()));
    assert!(record(&run, "cache-b").preempted_by.is_none());
    assert_eq!(record(&run, "loner").node.map(|n| n.as_str()), Some("node-a"));
}
