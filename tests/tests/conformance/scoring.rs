//! Scoring parity: each Score plugin of upstream's default profile gives the node scores
//! kube-scheduler's plugin gives (after its NormalizeScore, before weights), and among several
//! feasible nodes the default profile picks the node upstream's weighted sum ranks first.
//!
//! Every row is a small cluster written as `kubectl get -o yaml` shows it, converted by the
//! same ingest as the simulator and `tessera run`, and scored by the plugin under test over all
//! its nodes (as upstream's plugin tests score them). The expected scores are worked out by hand
//! from upstream's formulas (kubernetes v1.37, `pkg/scheduler/framework/plugins/...`); each row
//! states the arithmetic.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_plugins::framework::{CycleState, Profile, ScoreBatch, WeightedScore};
use tessera_plugins::model::Pod;
use tessera_plugins::nodeinfo::{NodeId, NodeInfo};
use tessera_plugins::registry::Registry;
use tessera_scheduler::config;
use tessera_scheduler::engine::state::ClusterState;
use tessera_scheduler::sim::input::{self, SimInput};
use tessera_scheduler::sim::record::RunResult;
use tessera_scheduler::sim::{NamedConfig, Progress, replay};

/// A Node as `kubectl get node -o yaml` shows it: labels (hostname among them), taints,
/// allocatable and capacity, and the images the kubelet reports.
fn node(name: &str, cpu: &str, memory: &str, labels: &[(&str, &str)], taints: &[(&str, &str, &str)]) -> String {
    node_with_images(name, cpu, memory, labels, taints, &[])
}

fn node_with_images(
    name: &str,
    cpu: &str,
    memory: &str,
    labels: &[(&str, &str)],
    taints: &[(&str, &str, &str)],
    images: &[(&str, i64)],
) -> String {
    let mut y = format!("apiVersion: v1\nkind: Node\nmetadata:\n  labels:\n    kubernetes.io/hostname: {name}\n");
    for (k, v) in labels {
        y.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    y.push_str(&format!("  name: {name}\nspec:\n"));
    if taints.is_empty() {
        y.push_str("  podCIDR: 10.244.0.0/24\n");
    } else {
        y.push_str("  taints:\n");
        for (k, v, effect) in taints {
            y.push_str(&format!("  - effect: {effect}\n    key: {k}\n    value: \"{v}\"\n"));
        }
    }
    let resources = format!("    cpu: \"{cpu}\"\n    memory: {memory}\n    pods: \"110\"\n");
    y.push_str(&format!("status:\n  allocatable:\n{resources}  capacity:\n{resources}"));
    if !images.is_empty() {
        y.push_str("  images:\n");
        for (image, size) in images {
            y.push_str(&format!("  - names:\n    - {image}\n    sizeBytes: {size}\n"));
        }
    }
    y
}

/// A Pod as `kubectl get pod -o yaml` shows it: labels, one container per `(image, cpu,
/// memory)` (empty requests left out), `nodeName` when it runs, and `extra` spec fields
/// (YAML indented two spaces).
fn pod(
    name: &str,
    labels: &[(&str, &str)],
    node: Option<&str>,
    containers: &[(&str, &str, &str)],
    extra: &str,
) -> String {
    let mut y = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    run: {name}\n");
    for (k, v) in labels {
        y.push_str(&format!("    {k}: {v}\n"));
    }
    y.push_str(&format!("  name: {name}\n  namespace: default\nspec:\n  containers:\n"));
    for (i, (image, cpu, memory)) in containers.iter().enumerate() {
        y.push_str(&format!("  - image: {image}\n    name: c{i}\n"));
        if cpu.is_empty() && memory.is_empty() {
            y.push_str("    resources: {}\n");
        } else {
            y.push_str("    resources:\n      requests:\n");
            if !cpu.is_empty() {
                y.push_str(&format!("        cpu: {cpu}\n"));
            }
            if !memory.is_empty() {
                y.push_str(&format!("        memory: {memory}\n"));
            }
        }
    }
    if let Some(n) = node {
        y.push_str(&format!("  nodeName: {n}\n"));
    }
    y.push_str(extra);
    y.push_str("  schedulerName: default-scheduler\n");
    let phase = if node.is_some() { "Running" } else { "Pending" };
    y.push_str(&format!("status:\n  phase: {phase}\n  qosClass: Burstable\n"));
    y
}

fn load(docs: &[String]) -> SimInput {
    let objects = tessera_scheduler::ingest::read_objects("scoring.yaml", &docs.join("---\n")).unwrap();
    input::from_objects(&objects, input::OnInvalid::Stop).unwrap()
}

/// One scoring case: `pod` (pending in `docs`) scored by plugin `plugin` with `args` on every
/// node of `docs`, whose running pods are accounted where they run.
struct Row<'a> {
    /// What the row shows.
    what: &'a str,
    plugin: &'a str,
    args: Option<Value>,
    docs: Vec<String>,
    pod: &'a str,
    /// Upstream's normalized score per node, in node order.
    upstream: &'a [(&'a str, i64)],
}

/// Tessera's normalized scores for `row`, per node in input order.
fn tessera_scores(row: &Row<'_>) -> Vec<(String, i64)> {
    let input = load(&row.docs);
    let plugin = Registry::builtin().make(row.plugin, row.args.as_ref()).unwrap();
    let mut state = ClusterState::new();
    state.set_namespaces(input.namespaces.clone());
    for source in &input.selector_sources {
        state.apply_selector_source(source.clone());
    }
    for key in plugin.topology_keys() {
        state.track_topology_key(key);
    }
    let pod: Arc<Pod> = input.pods.iter().find(|p| &*p.pod.name == row.pod).unwrap().pod.clone();
    state.track_keys_of(&pod);
    for n in &input.nodes {
        state.upsert_node(n.clone());
    }
    for p in &input.running {
        assert!(state.place_on_named_node(p.clone()).unwrap().is_some(), "{}", p.name);
    }
    let profile = Profile {
        pre_score: plugin.as_pre_score().map(|_| plugin.clone()).into_iter().collect(),
        score: vec![WeightedScore { plugin: plugin.clone(), weight: 1 }],
        ..Profile::default()
    };
    let snapshot = state.snapshot();
    let nodes: Vec<&NodeInfo> = input.nodes.iter().map(|n| snapshot.node_by_name(n.name).unwrap().as_ref()).collect();
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
    let mut cycle = CycleState::new();
    profile.run_pre_score(&mut cycle, &pod, snapshot, &nodes).unwrap();
    let scores = profile.run_score(&cycle, &pod, ScoreBatch::new(snapshot, &ids, &nodes));
    nodes.iter().zip(scores).map(|(n, s)| (n.name().as_str().to_string(), s)).collect()
}

/// Checks every row, reporting all that disagree at once.
fn check(rows: &[Row<'_>]) {
    let mut wrong = Vec::new();
    for row in rows {
        let got = tessera_scores(row);
        let want: Vec<(String, i64)> = row.upstream.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        if got != want {
            wrong.push(format!("{} ({}): upstream {want:?}, Tessera {got:?}", row.what, row.plugin));
        }
    }
    assert!(wrong.is_empty(), "scores differ from upstream:\n{}", wrong.join("\n"));
}

/// Three nodes for the resource scorers: two empty of different sizes, one holding a pod of
/// 3 CPU / 5000Mi. The pod asks 3 CPU / 5000Mi.
fn resource_cluster() -> Vec<String> {
    vec![
        node("n1", "4", "10000Mi", &[], &[]),
        node("n2", "6", "10000Mi", &[], &[]),
        node("n3", "10", "20000Mi", &[], &[]),
        pod("running", &[], Some("n3"), &[("app:v1", "3", "5000Mi")], ""),
        pod("p", &[], None, &[("app:v1", "3", "5000Mi")], ""),
        pod("idle", &[], None, &[("app:v1", "", "")], ""),
    ]
}

fn fit(strategy: Value) -> Option<Value> {
    Some(json!({ "scoringStrategy": strategy }))
}

#[test]
fn node_resources_fit_scores_as_upstreams_three_strategies() {
    let rtcr = |shape: Value, resources: Value| {
        fit(json!({"type": "RequestedToCapacityRatio", "resources": resources,
            "requestedToCapacityRatio": {"shape": shape}}))
    };
    let cpu_mem = json!([{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]);
    check(&[
        Row {
            // leastRequestedScore = (capacity - requested) * 100 / capacity, averaged by weight:
            // n1 cpu 1000*100/4000 = 25, memory 5000*100/10000 = 50 -> 75/2 = 37;
            // n2 cpu 3000*100/6000 = 50, memory 50 -> 50;
            // n3 cpu (10000-6000)*100/10000 = 40, memory (20000-10000)*100/20000 = 50 -> 45.
            what: "LeastAllocated",
            plugin: "NodeResourcesFit",
            args: None,
            docs: resource_cluster(),
            pod: "p",
            upstream: &[("n1", 37), ("n2", 50), ("n3", 45)],
        },
        Row {
            // mostRequestedScore = min(requested, capacity) * 100 / capacity:
            // n1 75, 50 -> 62; n2 50, 50 -> 50; n3 60, 50 -> 55.
            what: "MostAllocated",
            plugin: "NodeResourcesFit",
            args: fit(json!({"type": "MostAllocated"})),
            docs: resource_cluster(),
            pod: "p",
            upstream: &[("n1", 62), ("n2", 50), ("n3", 55)],
        },
        Row {
            // Shape (0,0)-(100,10), scores scaled x10: the broken line is the utilisation;
            // math.Round(sum / weights): n1 (75 + 50)/2 = 62.5 -> 63 (not 62: rounded, not
            // truncated, unlike the other strategies); n2 50; n3 (60 + 50)/2 = 55.
            what: "RequestedToCapacityRatio rising",
            plugin: "NodeResourcesFit",
            args: rtcr(json!([{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]), cpu_mem),
            docs: resource_cluster(),
            pod: "p",
            upstream: &[("n1", 63), ("n2", 50), ("n3", 55)],
        },
        Row {
            // Shape (0,10)-(100,0), cpu weight 3, memory 1: score = 100 - utilisation;
            // n1 cpu 25, memory 50 -> (75 + 50)/4 = 31.25 -> 31; n2 (150 + 50)/4 = 50;
            // n3 cpu 40, memory 50 -> (120 + 50)/4 = 42.5 -> 43.
            what: "RequestedToCapacityRatio falling, weighted",
            plugin: "NodeResourcesFit",
            args: rtcr(
                json!([{"utilization": 0, "score": 10}, {"utilization": 100, "score": 0}]),
                json!([{"name": "cpu", "weight": 3}, {"name": "memory", "weight": 1}]),
            ),
            docs: resource_cluster(),
            pod: "p",
            upstream: &[("n1", 31), ("n2", 50), ("n3", 43)],
        },
        Row {
            // A container without requests counts as 100m / 200Mi when scoring (non-zero
            // requests): n1 cpu 3900*100/4000 = 97, memory 9800*100/10000 = 98 -> 97;
            // n2 5900/6000 -> 98, 98 -> 98; n3 cpu 6900/10000 -> 69, memory 14800/20000 -> 74 -> 71.
            what: "LeastAllocated, a pod without requests",
            plugin: "NodeResourcesFit",
            args: None,
            docs: resource_cluster(),
            pod: "idle",
            upstream: &[("n1", 97), ("n2", 98), ("n3", 71)],
        },
    ]);
}

#[test]
fn balanced_allocation_scores_one_minus_the_deviation_of_fractions() {
    check(&[
        Row {
            // (1 - |cpu fraction - memory fraction| / 2) * 100, truncated, actual requests:
            // n1 .75/.5 -> 87.5 -> 87; n2 .5/.5 -> 100; n3 6000/10000 = .6, 10000/20000 = .5 -> 95.
            what: "cpu and memory",
            plugin: "NodeResourcesBalancedAllocation",
            args: None,
            docs: resource_cluster(),
            pod: "p",
            upstream: &[("n1", 87), ("n2", 100), ("n3", 95)],
        },
        Row {
            // A best-effort pod: PreScore says Skip (kubernetes#129138), every node 0.
            what: "best-effort pod",
            plugin: "NodeResourcesBalancedAllocation",
            args: None,
            docs: resource_cluster(),
            pod: "idle",
            upstream: &[("n1", 0), ("n2", 0), ("n3", 0)],
        },
    ]);
}

#[test]
fn node_affinity_scores_matching_preferred_weights_scaled_to_the_best_node() {
    let preferring = "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n\
                      \x20     - preference:\n          matchExpressions:\n          - key: foo\n            operator: In\n\
                      \x20           values:\n            - bar\n        weight: 2\n\
                      \x20     - preference:\n          matchExpressions:\n          - key: key\n            operator: In\n\
                      \x20           values:\n            - value\n        weight: 4\n";
    let cluster = |extra: &str| {
        vec![
            node("n1", "4", "8Gi", &[("foo", "bar")], &[]),
            node("n2", "4", "8Gi", &[("foo", "bar"), ("key", "value")], &[]),
            node("n3", "4", "8Gi", &[], &[]),
            pod("p", &[], None, &[("app:v1", "1", "1Gi")], extra),
        ]
    };
    check(&[
        Row {
            // Raw: sum of matching weights, n1 2, n2 2 + 4 = 6, n3 0; DefaultNormalizeScore:
            // score * 100 / max -> 33, 100, 0.
            what: "two preferences",
            plugin: "NodeAffinity",
            args: None,
            docs: cluster(preferring),
            pod: "p",
            upstream: &[("n1", 33), ("n2", 100), ("n3", 0)],
        },
        Row {
            // No preference: PreScore Skip, every node 0.
            what: "no preference",
            plugin: "NodeAffinity",
            args: None,
            docs: cluster(""),
            pod: "p",
            upstream: &[("n1", 0), ("n2", 0), ("n3", 0)],
        },
    ]);
}

#[test]
fn taint_toleration_prefers_nodes_with_fewer_untolerated_prefer_no_schedule_taints() {
    let tolerations = "  tolerations:\n  - effect: PreferNoSchedule\n    key: foo\n    operator: Equal\n    value: bar\n\
                       \x20 - effect: NoSchedule\n    key: dedicated\n    operator: Exists\n";
    check(&[Row {
        // Raw: untolerated PreferNoSchedule taints, counting only tolerations whose effect is
        // PreferNoSchedule or empty (the NoSchedule one does not help): n1 0, n2 1, n3 2;
        // reversed DefaultNormalizeScore: 100 - score * 100 / max -> 100, 50, 0. The NoSchedule
        // taint on n4 does not count in scoring (it is Filter's business).
        what: "PreferNoSchedule",
        plugin: "TaintToleration",
        args: None,
        docs: vec![
            node("n1", "4", "8Gi", &[], &[("foo", "bar", "PreferNoSchedule")]),
            node("n2", "4", "8Gi", &[], &[("dedicated", "x", "PreferNoSchedule")]),
            node("n3", "4", "8Gi", &[], &[("cpu", "arm64", "PreferNoSchedule"), ("gpu", "true", "PreferNoSchedule")]),
            node("n4", "4", "8Gi", &[], &[("dedicated", "x", "NoSchedule")]),
            pod("p", &[], None, &[("app:v1", "1", "1Gi")], tolerations),
        ],
        pod: "p",
        upstream: &[("n1", 100), ("n2", 50), ("n3", 0), ("n4", 100)],
    }]);
}

#[test]
fn pod_topology_spread_scores_fewer_matching_pods_higher() {
    let spread = |key: &str| {
        format!(
            "  topologySpreadConstraints:\n  - labelSelector:\n      matchLabels:\n        app: web\n\
             \x20   maxSkew: 1\n    topologyKey: {key}\n    whenUnsatisfiable: ScheduleAnyway\n"
        )
    };
    let zone = "topology.kubernetes.io/zone";
    let cluster = |key: &str| {
        vec![
            node("n1", "4", "8Gi", &[(zone, "a")], &[]),
            node("n2", "4", "8Gi", &[(zone, "a")], &[]),
            node("n3", "4", "8Gi", &[(zone, "b")], &[]),
            node("n4", "4", "8Gi", &[], &[]),
            pod("web-1", &[("app", "web")], Some("n1"), &[("web:v1", "100m", "128Mi")], ""),
            pod("web-2", &[("app", "web")], Some("n1"), &[("web:v1", "100m", "128Mi")], ""),
            pod("web-3", &[("app", "web")], Some("n3"), &[("web:v1", "100m", "128Mi")], ""),
            pod("web-4", &[("app", "web")], None, &[("web:v1", "100m", "128Mi")], &spread(key)),
        ]
    };
    check(&[
        Row {
            // Zones a (2 matching pods) and b (1): weight ln(2 + 2) = 1.386; raw
            // round(count * weight + maxSkew - 1): n1 = n2 = round(2.77) = 3, n3 = round(1.39) = 1;
            // n4 lacks the key: ignored, 0. Normalize: 100 * (max + min - s) / max with
            // max 3, min 1 -> 33, 33, 100, 0.
            what: "zones",
            plugin: "PodTopologySpread",
            args: None,
            docs: cluster(zone),
            pod: "web-4",
            upstream: &[("n1", 33), ("n2", 33), ("n3", 100), ("n4", 0)],
        },
        Row {
            // Hostname: the domain count is the 4 scored nodes, weight ln(4 + 2) = 1.792;
            // raw n1 round(3.58) = 4, n2 0, n3 round(1.79) = 2, n4 0; max 4, min 0:
            // 100 * (4 - s) / 4 -> 0, 100, 50, 100.
            what: "hostname",
            plugin: "PodTopologySpread",
            args: None,
            docs: cluster("kubernetes.io/hostname"),
            pod: "web-4",
            upstream: &[("n1", 0), ("n2", 100), ("n3", 50), ("n4", 100)],
        },
    ]);
}

#[test]
fn inter_pod_affinity_scores_preferred_terms_min_max_normalized() {
    let zone = "topology.kubernetes.io/zone";
    let terms = format!(
        "  affinity:\n    podAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n\
         \x20     - podAffinityTerm:\n          labelSelector:\n            matchLabels:\n              app: db\n\
         \x20         topologyKey: {zone}\n        weight: 5\n\
         \x20   podAntiAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n\
         \x20     - podAffinityTerm:\n          labelSelector:\n            matchLabels:\n              app: web\n\
         \x20         topologyKey: kubernetes.io/hostname\n        weight: 3\n"
    );
    check(&[Row {
        // Each existing pod a term matches adds the term's weight (anti-affinity subtracts) to
        // every node of its domain: db on n1 gives zone a +5, web on n2 gives n2 -3:
        // raw n1 5, n2 2, n3 0; normalize 100 * (s - min) / (max - min) -> 100, 40, 0.
        what: "affinity and anti-affinity",
        plugin: "InterPodAffinity",
        args: None,
        docs: vec![
            node("n1", "4", "8Gi", &[(zone, "a")], &[]),
            node("n2", "4", "8Gi", &[(zone, "a")], &[]),
            node("n3", "4", "8Gi", &[(zone, "b")], &[]),
            pod("db", &[("app", "db")], Some("n1"), &[("db:v1", "100m", "128Mi")], ""),
            pod("web-1", &[("app", "web")], Some("n2"), &[("web:v1", "100m", "128Mi")], ""),
            pod("web-2", &[("app", "web")], None, &[("web:v1", "100m", "128Mi")], &terms),
        ],
        pod: "web-2",
        upstream: &[("n1", 100), ("n2", 40), ("n3", 0)],
    }]);
}

#[test]
fn inter_pod_affinity_scores_the_terms_of_existing_pods_that_match_the_incoming_pod() {
    let zone = "topology.kubernetes.io/zone";
    let required = format!(
        "  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n\
         \x20     - labelSelector:\n          matchLabels:\n            app: web\n        topologyKey: {zone}\n"
    );
    let preferred = |kind: &str, weight: i32| {
        format!(
            "  affinity:\n    {kind}:\n      preferredDuringSchedulingIgnoredDuringExecution:\n\
             \x20     - podAffinityTerm:\n          labelSelector:\n            matchLabels:\n              app: web\n\
             \x20         topologyKey: kubernetes.io/hostname\n        weight: {weight}\n"
        )
    };
    check(&[Row {
        // The incoming pod has no terms; existing pods' terms that match it count (symmetry):
        // cache's required affinity over zones adds hardPodAffinityWeight 1 to zone a (n1, n2);
        // fan's preferred affinity adds 4 to n2; noisy's preferred anti-affinity takes 10 from
        // n3. Raw n1 1, n2 5, n3 -10; 100 * (s - min) / (max - min) -> 73, 100, 0.
        what: "existing pods' terms",
        plugin: "InterPodAffinity",
        args: None,
        docs: vec![
            node("n1", "4", "8Gi", &[(zone, "a")], &[]),
            node("n2", "4", "8Gi", &[(zone, "a")], &[]),
            node("n3", "4", "8Gi", &[(zone, "b")], &[]),
            pod("cache", &[("app", "cache")], Some("n1"), &[("cache:v1", "100m", "128Mi")], &required),
            pod("fan", &[("app", "fan")], Some("n2"), &[("fan:v1", "100m", "128Mi")], &preferred("podAffinity", 4)),
            pod(
                "noisy",
                &[("app", "noisy")],
                Some("n3"),
                &[("noisy:v1", "100m", "128Mi")],
                &preferred("podAntiAffinity", 10),
            ),
            pod("web", &[("app", "web")], None, &[("web:v1", "100m", "128Mi")], ""),
        ],
        pod: "web",
        upstream: &[("n1", 73), ("n2", 100), ("n3", 0)],
    }]);
}

#[test]
fn image_locality_scores_image_sizes_scaled_by_spread() {
    const MI: i64 = 1 << 20;
    check(&[Row {
        // Per image on the node: int64(size * nodes having it / all nodes); the sum clamped to
        // [23Mi, 1000Mi x containers] and scaled: 100 * (sum - 23Mi) / (2 x 1000Mi - 23Mi).
        // n1: nginx 250Mi x 2/3 = 174762666 + busybox:latest 100Mi x 1/3 = 34952533
        //     -> 209715199 -> 100 x 185597951 / 2073034752 = 8;
        // n2: nothing -> 0; n3: nginx only -> 174762666 -> 100 x 150645418 / 2073034752 = 7.
        what: "two containers, one image untagged",
        plugin: "ImageLocality",
        args: None,
        docs: vec![
            node_with_images("n1", "4", "8Gi", &[], &[], &[("nginx:1.25", 250 * MI), ("busybox:latest", 100 * MI)]),
            node_with_images("n2", "4", "8Gi", &[], &[], &[("redis:7", 300 * MI)]),
            node_with_images("n3", "4", "8Gi", &[], &[], &[("nginx:1.25", 250 * MI)]),
            pod("p", &[], None, &[("nginx:1.25", "100m", "128Mi"), ("busybox", "10m", "16Mi")], ""),
        ],
        pod: "p",
        upstream: &[("n1", 8), ("n2", 0), ("n3", 7)],
    }]);
}

/// Replays `docs` under the default profile (seed 42) and returns where `pod` went.
fn placed_by_default_profile(docs: &[String], pod: &str) -> Option<String> {
    let input = load(docs);
    let config = NamedConfig::from_config("default", config::default_config(&Registry::builtin()).unwrap());
    let run: RunResult = replay::replay(&input, &config, 42, 1, &Progress::new(false, ""));
    let rec = run.records.iter().find(|r| &*r.key.name == pod).unwrap();
    rec.node.map(|n| n.as_str().to_string())
}

#[test]
fn the_default_profile_picks_the_emptier_node() {
    // NodeResourcesFit x1: big 7/8 free of cpu and memory -> 87, small 3/4 -> 75;
    // BalancedAllocation x1 100 on both; every other plugin ties. Upstream: big.
    let docs = vec![
        node("small", "4", "8Gi", &[], &[]),
        node("big", "8", "16Gi", &[], &[]),
        pod("p", &[], None, &[("app:v1", "1", "2Gi")], ""),
    ];
    assert_eq!(placed_by_default_profile(&docs, "p").as_deref(), Some("big"));
}

#[test]
fn the_default_profile_weighs_an_untolerated_soft_taint_above_free_room() {
    // TaintToleration x3: tainted 0, busy 100 -> 0 vs 300. NodeResourcesFit x1: tainted
    // (cpu 75, memory 87) -> 81, busy (cpu 25, memory 62) -> 43; BalancedAllocation x1:
    // tainted 1 - |.25 - .125|/2 -> 93, busy 1 - |.75 - .375|/2 -> 81. Sum: tainted 174,
    // busy 424. Upstream: busy.
    let docs = vec![
        node("tainted", "4", "8Gi", &[], &[("maintenance", "soon", "PreferNoSchedule")]),
        node("busy", "4", "8Gi", &[], &[]),
        pod("filler", &[], Some("busy"), &[("app:v1", "2", "2Gi")], ""),
        pod("p", &[], None, &[("app:v1", "1", "1Gi")], ""),
    ];
    assert_eq!(placed_by_default_profile(&docs, "p").as_deref(), Some("busy"));
}

#[test]
fn the_default_profile_follows_a_preferred_node_affinity_over_free_room() {
    // NodeAffinity x2: ssd 100 -> 200, plain 0. NodeResourcesFit: ssd holds 2 of 4 CPUs
    // (cpu 25, memory 62 -> 43), plain is empty (75, 87 -> 81): 38 short of 200. Upstream: ssd.
    let prefer = "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n\
                  \x20     - preference:\n          matchExpressions:\n          - key: disk\n            operator: In\n\
                  \x20           values:\n            - ssd\n        weight: 50\n";
    let docs = vec![
        node("plain", "4", "8Gi", &[], &[]),
        node("ssd", "4", "8Gi", &[("disk", "ssd")], &[]),
        pod("filler", &[], Some("ssd"), &[("app:v1", "2", "2Gi")], ""),
        pod("p", &[], None, &[("app:v1", "1", "1Gi")], prefer),
    ];
    assert_eq!(placed_by_default_profile(&docs, "p").as_deref(), Some("ssd"));
}

#[test]
fn the_default_profile_spreads_a_soft_constraint_over_zones() {
    // PodTopologySpread x2: zone a holds 2 web pods, b none: raw a round(2 x ln 4) = 3,
    // b 0 -> normalized a 0, b 100 -> 0 vs 200. NodeResourcesFit prefers a-1 (8 CPUs, 1 used)
    // over b-1 (8 CPUs, 3 used) by far less. Upstream: b-1.
    let zone = "topology.kubernetes.io/zone";
    let spread = "  topologySpreadConstraints:\n  - labelSelector:\n      matchLabels:\n        app: web\n\
                  \x20   maxSkew: 1\n    topologyKey: topology.kubernetes.io/zone\n    whenUnsatisfiable: ScheduleAnyway\n";
    let docs = vec![
        node("a-1", "8", "16Gi", &[(zone, "a")], &[]),
        node("b-1", "8", "16Gi", &[(zone, "b")], &[]),
        pod("web-1", &[("app", "web")], Some("a-1"), &[("web:v1", "500m", "512Mi")], ""),
        pod("web-2", &[("app", "web")], Some("a-1"), &[("web:v1", "500m", "512Mi")], ""),
        pod("batch", &[], Some("b-1"), &[("batch:v1", "3", "4Gi")], ""),
        pod("web-3", &[("app", "web")], None, &[("web:v1", "500m", "512Mi")], spread),
    ];
    assert_eq!(placed_by_default_profile(&docs, "web-3").as_deref(), Some("b-1"));
}

#[test]
fn the_default_profile_prefers_the_node_that_has_the_image() {
    // ImageLocality x1: 500Mi on one of two nodes -> 250Mi spread-scaled ->
    // 100 x (262144000 - 24117248) / (1048576000 - 24117248) = 23 vs 0; the nodes are
    // otherwise identical. Upstream: cached.
    let docs = vec![
        node_with_images("cold", "4", "8Gi", &[], &[], &[]),
        node_with_images("cached", "4", "8Gi", &[], &[], &[("trainer:v3", 500 << 20)]),
        pod("p", &[], None, &[("trainer:v3", "1", "1Gi")], ""),
    ];
    assert_eq!(placed_by_default_profile(&docs, "p").as_deref(), Some("cached"));
}

#[test]
fn the_default_profile_spreads_the_pods_a_service_selects_by_default() {
    // PodTopologySpread's system defaults (hostname maxSkew 3, zone maxSkew 5, ScheduleAnyway)
    // with the Service's selector: 2 zones and 2 nodes, weights ln 4 = 1.386 each;
    // raw a-1 round(2 x 1.386 + 4 + 2 x 1.386 + 2) = round(11.55) = 12, b-1 4 + 2 = 6;
    // normalized 100 x (12 + 6 - s) / 12 -> a-1 50, b-1 100 -> x2: 100 vs 200.
    // NodeResourcesFit + BalancedAllocation: a-1 85 + 95, b-1 63 + 92. Sum: a-1 280, b-1 355.
    // Upstream: b-1 (without default spreading a-1 would win, 180 to 155).
    let zone = "topology.kubernetes.io/zone";
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  namespace: default\nspec:\n  ports:\n\
                   \x20 - port: 80\n    protocol: TCP\n    targetPort: 8080\n  selector:\n    app: api\n  type: ClusterIP\n";
    let docs = vec![
        service.to_string(),
        node("a-1", "8", "16Gi", &[(zone, "a")], &[]),
        node("b-1", "8", "16Gi", &[(zone, "b")], &[]),
        pod("api-1", &[("app", "api")], Some("a-1"), &[("api:v1", "500m", "512Mi")], ""),
        pod("api-2", &[("app", "api")], Some("a-1"), &[("api:v1", "500m", "512Mi")], ""),
        pod("batch", &[], Some("b-1"), &[("batch:v1", "3", "4Gi")], ""),
        pod("api-3", &[("app", "api")], None, &[("api:v1", "500m", "512Mi")], ""),
    ];
    assert_eq!(placed_by_default_profile(&docs, "api-3").as_deref(), Some("b-1"));
}
