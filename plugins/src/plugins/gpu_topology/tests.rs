use serde_json::json;

use super::*;
use crate::intern::Sym;
use crate::model::{Gpu, GpuRequest};
use crate::plugins::testing::*;

fn gpu_node(name: &str, n: usize, model: &str) -> crate::model::Node {
    let mut node = node(name, 64_000, 256 * GI);
    node.gpus = (0..n).map(|_| Gpu::new(Sym::new(model), 0)).collect();
    node
}

fn gpu_pod(name: &str, count: u32, milli: u32, models: &[&str]) -> Pod {
    let mut p = pod(name, 1000, GI);
    p.gpu = Some(GpuRequest { count, milli, models: models.iter().map(|m| Sym::new(m)).collect() });
    p
}

fn plugin(args: serde_json::Value) -> GpuTopology {
    GpuTopology::with_args(&GpuTopologyArgs::decode(Some(&args)).unwrap())
}

fn bad_args(args: serde_json::Value) -> String {
    match GpuTopologyArgs::decode(Some(&args)) {
        Err(PluginError::BadArgs { plugin, message }) => {
            assert_eq!(plugin, NAME);
            message
        }
        other => panic!("expected BadArgs, got {other:?}"),
    }
}

#[test]
fn filter_checks_devices_and_models() {
    let (s, p) = (CycleState::new(), GpuTopology::default());
    let busy = node_info(0, gpu_node("a", 2, "T4"), vec![gpu_pod("x", 2, 1000, &[])]);
    assert_eq!(p.filter(&s, &gpu_pod("p", 1, 500, &[]), &busy), Status::unschedulable(ERR_REASON_INSUFFICIENT));
    let free = node_info(1, gpu_node("b", 2, "T4"), vec![]);
    assert!(p.filter(&s, &gpu_pod("p", 2, 1000, &["T4"]), &free).is_success());
    let wrong = p.filter(&s, &gpu_pod("p", 1, 1000, &["V100", "A100"]), &free);
    assert_eq!(wrong, Status::unresolvable("node(s) had GPU model T4 but the pod asks for [V100, A100]"));
    assert!(p.filter(&s, &pod("cpu", 1, 1), &free).is_success());
    let too_few = Status::unresolvable(ERR_REASON_INSUFFICIENT);
    assert_eq!(p.filter(&s, &gpu_pod("p", 4, 1000, &[]), &free), too_few, "2 GPUs, however free");
    assert_eq!(p.filter(&s, &gpu_pod("p", 4, 1000, &["T4"]), &free), too_few, "the model is there, too few");
}

#[test]
fn the_model_reason_names_the_nodes_models_and_the_pods() {
    let (s, p) = (CycleState::new(), GpuTopology::default());
    let mut mixed = gpu_node("m", 3, "T4");
    mixed.gpus[1] = Gpu::new(Sym::new("A10"), 0);
    let mixed = node_info(0, mixed, vec![]);
    let none = node_info(1, node("c", 64_000, GI), vec![]);
    let q = gpu_pod("p", 1, 500, &["G2"]);
    let reason = |n: &NodeInfo| p.filter(&s, &q, n).reasons.join("");
    assert_eq!(reason(&mixed), "node(s) had GPU models [T4, A10] but the pod asks for [G2]");
    assert_eq!(reason(&none), "node(s) had no GPU but the pod asks for [G2]");
    // The diagnosis counts nodes per reason, as upstream's "3 node(s) had untolerated taint".
    let mut d = crate::status::Diagnosis::default();
    for n in [&mixed, &none, &none] {
        d.add_node_status(&p.filter(&s, &q, n));
    }
    assert_eq!(d.reasons.get("node(s) had no GPU but the pod asks for [G2]"), Some(&2));
}

#[test]
fn most_allocated_prefers_the_node_that_ends_fuller() {
    let (s, p) = (CycleState::new(), GpuTopology::default());
    assert_eq!(p.strategy(), ScoringStrategy::MostAllocated);
    let half = node_info(0, gpu_node("a", 2, "T4"), vec![gpu_pod("x", 1, 1000, &[])]);
    let empty = node_info(1, gpu_node("b", 2, "T4"), vec![]);
    let q = gpu_pod("p", 1, 500, &[]);
    assert_eq!(p.score(&s, &q, &half), 75);
    assert_eq!(p.score(&s, &q, &empty), 25);
    assert!(p.as_reserve().is_none(), "only FGD chooses GPUs");
    assert!(p.node_local());
}

#[test]
fn args_name_the_bad_field() {
    assert!(bad_args(json!({"scoringStrategy": "Sprad"})).contains("scoringStrategy: unknown value \"Sprad\""));
    assert!(bad_args(json!({"scoringStrategie": "FGD"})).contains("unknown field `scoringStrategie`"));
    assert!(bad_args(json!({"scoringStrategy": "FGD", "popularityThreshold": 0})).starts_with("popularityThreshold:"));
    assert!(bad_args(json!({"scoringStrategy": "Packing", "learn": false})).starts_with("learn: only applies"));
    assert!(bad_args(json!({"typicalPods": [{"cpu": 1, "count": 1}]})).starts_with("typicalPods: only applies"));
    assert!(bad_args(json!({"scoringStrategy": "FGD", "learn": false})).starts_with("learn: false needs"));
    let pods = json!([{"cpu": "4", "gpuCount": 1, "gpuMilli": 500, "count": 3},
                      {"cpu": 2, "gpuCount": 1, "gpuMilli": 1500, "count": 1}]);
    let msg = bad_args(json!({"scoringStrategy": "FGD", "typicalPods": pods}));
    assert!(msg.starts_with("typicalPods[1].gpuMilli:"), "{msg}");
    let msg = bad_args(json!({"scoringStrategy": "FGD", "typicalPods": [{"cpu": "4x", "count": 1}]}));
    assert!(msg.contains("cpu:"), "{msg}");
    let msg = bad_args(json!({"scoringStrategy": "FGD", "typicalPods": [{"cpu": 1, "count": 0}]}));
    assert!(msg.starts_with("typicalPods[0].count:"), "{msg}");
    assert!(super::new(Some(&json!({"scoringStrategy": "FGD"}))).is_ok());
}

#[test]
fn args_read_quantities_and_defaults() {
    let a = GpuTopologyArgs::decode(Some(&json!({"scoringStrategy": "FGD", "popularityThreshold": 90,
        "typicalPods": [{"cpu": "500m", "gpuCount": 1, "gpuMilli": 250, "gpuModels": ["T4"], "count": 7},
                        {"cpu": 1.5, "count": 2}]})))
    .unwrap();
    assert_eq!(a.threshold(), 0.9);
    let seeds = a.seeds();
    assert_eq!(seeds[0], (crate::gpu_frag::PodShape::new(500, 1, 250, vec![Sym::new("T4")]), 7));
    assert_eq!(seeds[1].0.cpu, 1500);
    let d = GpuTopologyArgs::decode(None).unwrap();
    assert_eq!((d.scoring_strategy, d.learn, d.threshold()), (ScoringStrategy::MostAllocated, true, 0.95));
}

#[test]
fn the_learned_histogram_counts_each_pod_once() {
    let p = plugin(json!({"scoringStrategy": "FGD"}));
    assert!(!p.node_local(), "FGD scores follow the learned workload");
    let snap = Snapshot::new();
    let observe = |q: &Pod| {
        let mut s = CycleState::new();
        let _ = p.pre_filter(&mut s, q, &snap);
        s.read::<Arc<TypicalSet>>(TYPICAL_KEY).unwrap().clone()
    };
    let t = observe(&gpu_pod("a", 1, 500, &[]));
    assert_eq!(t.pods().len(), 1);
    let t = observe(&gpu_pod("a", 1, 500, &[]));
    assert_eq!(t.pods()[0].weight, 1.0, "the same pod again (a retry, the binder's re-check) is not counted");
    observe(&gpu_pod("b", 1, 500, &[]));
    observe(&gpu_pod("c", 1, 500, &[]));
    let t = observe(&pod("d", 1000, GI));
    let weights: Vec<(u32, f64)> = t.pods().iter().map(|t| (t.shape.gpus, t.weight)).collect();
    assert_eq!(weights, vec![(1, 0.75), (0, 0.25)]);
}

#[test]
fn seeds_weigh_in_and_learning_can_be_off() {
    let seeds = json!([{"cpu": 1, "gpuCount": 8, "gpuMilli": 1000, "count": 3}]);
    let p = plugin(json!({"scoringStrategy": "FGD", "typicalPods": seeds, "learn": false}));
    let mut s = CycleState::new();
    let _ = p.pre_filter(&mut s, &gpu_pod("a", 1, 500, &[]), &Snapshot::new());
    let t = s.read::<Arc<TypicalSet>>(TYPICAL_KEY).unwrap();
    assert_eq!(t.pods().len(), 1);
    assert_eq!((t.pods()[0].shape.gpus, t.pods()[0].weight), (8, 1.0));
    let p = plugin(json!({"scoringStrategy": "FGD", "typicalPods": seeds}));
    let _ = p.pre_filter(&mut s, &gpu_pod("a", 1, 500, &[]), &Snapshot::new());
    let t = s.read::<Arc<TypicalSet>>(TYPICAL_KEY).unwrap();
    assert_eq!(t.pods().iter().map(|t| t.weight).collect::<Vec<_>>(), vec![0.75, 0.25]);
}

/// A node of 8 GPUs in two NVLink islands (0–3, 4–7), with `used` taken by one pod.
fn islands_node(id: NodeId, used: u64) -> NodeInfo {
    let wiring = Arc::new(crate::gpu_wiring::GpuWiring::from_islands(&[0, 0, 0, 0, 1, 1, 1, 1]));
    let mut node = gpu_node(&format!("n{id}"), 8, "H100");
    for (i, g) in node.gpus.iter_mut().enumerate() {
        *g = Gpu { wiring: Some(wiring.clone()), ..Gpu::new(Sym::new("H100"), wiring.islands()[i]) };
    }
    let mut ni = node_info(id, node, vec![]);
    if used != 0 {
        let holder = gpu_pod("x", used.count_ones(), 1000, &[]);
        ni.add_pod_with(Arc::new(holder), &crate::nodeinfo::DeviceChoice::gpus(used));
    }
    ni
}

#[test]
fn whole_gpus_go_first_where_they_are_wired_best_and_break_no_island() {
    // Free: 2 + 2 GPUs over the two islands, a whole island, and a whole node.
    let split = islands_node(0, 0b1100_1100);
    let island = islands_node(1, 0b1111_0000);
    let empty = islands_node(2, 0);
    let scores = |p: &GpuTopology, q: &Pod| {
        let s = CycleState::new();
        let mut raw: Vec<i64> = [&split, &island, &empty].iter().map(|n| p.score(&s, q, n)).collect();
        p.normalize_score(&s, q, &mut raw);
        raw
    };
    // A 4-GPU pod: MostAllocated alone prefers the split node, which it fills.
    let four = gpu_pod("q", 4, 1000, &[]);
    assert_eq!(scores(&plugin(json!({"bestWiredFirst": false})), &four), vec![100, 100, 50]);
    let [s, i, e] = scores(&GpuTopology::default(), &four)[..] else { unreachable!() };
    assert!(i > e && e > s, "island {i}, empty {e}, split {s}");
    // FGD too, blind to islands like every strategy.
    let seeds = json!([{"cpu": 1, "gpuCount": 4, "gpuMilli": 1000, "count": 1}]);
    let fgd = plugin(json!({"scoringStrategy": "FGD", "typicalPods": seeds, "learn": false}));
    let [s, i, _] = scores(&fgd, &four)[..] else { unreachable!() };
    assert!(i > s, "island {i}, split {s}");
    // A 1-GPU pod keeps whole islands whole: the split node first, where MostAllocated alone
    // ties it with the node of one whole island.
    let one = gpu_pod("o", 1, 1000, &[]);
    assert_eq!(scores(&plugin(json!({"bestWiredFirst": false})), &one), vec![62, 62, 12]);
    let [s, i, e] = scores(&GpuTopology::default(), &one)[..] else { unreachable!() };
    assert!(s > i && i > e, "split {s}, island {i}, empty {e}");
    // A share is left to the strategy.
    let share = gpu_pod("h", 1, 500, &[]);
    assert_eq!(scores(&GpuTopology::default(), &share), vec![56, 56, 6]);
}

#[test]
fn fgd_scores_the_fragmentation_increase_and_reserves_the_same_gpus() {
    // Typical pods: 500-shares only. GPU1 of `partial` has 600 free: 200 there would strand
    // 400; GPU0 of `partial` keeps every GPU usable, as does any GPU of `empty`.
    let seeds = json!([{"cpu": 1, "gpuCount": 1, "gpuMilli": 500, "count": 1}]);
    let p = plugin(json!({"scoringStrategy": "FGD", "typicalPods": seeds, "learn": false}));
    let mut partial = node_info(0, gpu_node("a", 2, "T4"), vec![]);
    partial.add_pod_with(Arc::new(gpu_pod("x", 1, 400, &[])), &crate::nodeinfo::DeviceChoice::gpus(0b10));
    let stranding = node_info(1, gpu_node("b", 1, "T4"), vec![gpu_pod("y", 1, 400, &[])]);
    let q = gpu_pod("q", 1, 200, &[]);
    let mut s = CycleState::new();
    let _ = p.pre_filter(&mut s, &q, &Snapshot::new());
    assert!(p.pre_score(&mut s, &q, &Snapshot::new(), &[]).is_success());
    assert_eq!(p.score(&s, &q, &partial), 50, "no increase: sigmoid(0)");
    assert_eq!(p.score(&s, &q, &stranding), 40, "400 stranded: 100 × sigmoid(-0.4)");
    assert!(p.as_reserve().is_some());
    assert!(p.reserve(&mut s, &q, &partial).is_success());
    assert_eq!(s.gpu_choice(), Some(0b01), "the empty GPU, not the best fit");
    let mut cpu = CycleState::new();
    assert!(p.reserve(&mut cpu, &pod("c", 1, 1), &partial).is_success());
    assert_eq!(cpu.gpu_choice(), None, "a pod without GPUs gets none");
    assert!(p.pre_score(&mut cpu, &pod("c", 1, 1), &Snapshot::new(), &[]).is_success(), "FGD scores it");
}

#[test]
fn packing_is_best_fit_normalised() {
    let p = plugin(json!({"scoringStrategy": "Packing"}));
    let s = CycleState::new();
    let q = gpu_pod("q", 1, 500, &[]);
    // 64 cores and 2 GPUs; the pod takes 1 core and half a GPU.
    let empty = node_info(0, gpu_node("a", 2, "T4"), vec![]);
    let half = node_info(1, gpu_node("b", 2, "T4"), vec![gpu_pod("x", 1, 1000, &[])]);
    let (se, sh) = (p.score(&s, &q, &empty), p.score(&s, &q, &half));
    // 100 × (1 − ½·63/128 − ½·1.5/8) = 66.02; with 1 core more used and 1 GPU less free: 72.66.
    assert_eq!((se, sh), (66, 72));
    let mut scores = vec![se, sh, 70];
    p.normalize_score(&s, &q, &mut scores);
    assert_eq!(scores, vec![0, 100, 66]);
    assert!(p.pre_score(&mut CycleState::new(), &pod("c", 1, 1), &Snapshot::new(), &[]).is_success());
}

#[test]
fn fgd_batch_scores_equal_node_by_node_scores() {
    // Nodes in repeated and in distinct states (shares, CPU, models, GPU counts): the batch's
    // memo of equal states must change nothing.
    let p = plugin(json!({"scoringStrategy": "FGD", "learn": false, "typicalPods": [
        {"cpu": 4, "gpuCount": 1, "gpuMilli": 500, "count": 5},
        {"cpu": 30, "gpuCount": 1, "gpuMilli": 1000, "count": 3},
        {"cpu": 8, "gpuCount": 2, "gpuMilli": 1000, "count": 1},
        {"cpu": 2, "count": 2}]}));
    let mut nodes = Vec::new();
    for (i, (gpus, model, pods)) in [
        (2, "T4", vec![]),
        (2, "T4", vec![]),
        (2, "A10", vec![]),
        (8, "T4", vec![gpu_pod("x", 1, 300, &[])]),
        (8, "T4", vec![gpu_pod("x", 1, 300, &[])]),
        (8, "T4", vec![gpu_pod("x", 1, 300, &[]), pod("c", 40_000, GI)]),
        (4, "T4", vec![gpu_pod("x", 2, 1000, &[])]),
        (1, "T4", vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        nodes.push(node_info(i as u32, gpu_node(&format!("n{i}"), gpus, model), pods));
    }
    let refs: Vec<&NodeInfo> = nodes.iter().collect();
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
    let snap = Snapshot::new();
    for q in [gpu_pod("q", 1, 200, &[]), gpu_pod("q", 1, 1000, &[]), pod("q", 30_000, GI)] {
        let mut s = CycleState::new();
        let _ = p.pre_filter(&mut s, &q, &snap);
        let mut batch = vec![0; refs.len()];
        p.score_batch(&s, &q, ScoreBatch::new(&snap, &ids, &refs), &mut batch);
        let single: Vec<i64> = refs.iter().map(|n| p.score(&s, &q, n)).collect();
        assert_eq!(batch, single, "{:?}", q.gpu);
    }
}

#[test]
fn spread_prefers_the_emptier_node_and_dot_product_the_least_aligned() {
    let s = CycleState::new();
    let spread = plugin(json!({"scoringStrategy": "Spread"}));
    let half = node_info(0, gpu_node("a", 2, "T4"), vec![gpu_pod("x", 1, 1000, &[])]);
    let empty = node_info(1, gpu_node("b", 2, "T4"), vec![]);
    let q = gpu_pod("p", 1, 500, &[]);
    assert_eq!((spread.score(&s, &q, &half), spread.score(&s, &q, &empty)), (25, 75));
    assert_eq!(spread.pre_score(&mut CycleState::new(), &pod("c", 1, 1), &Snapshot::new(), &[]), Status::skip());
    let dot = plugin(json!({"scoringStrategy": "DotProduct"}));
    // 64 cores free and 1 core asked: (0.5 × 1/128 + GPU free/8 × 0.5/8) / 2.
    // empty: 2 GPUs free → 1 − (0.0039 + 0.0156)/2 = 0.990; half: 1 GPU → 0.994.
    let (se, sh) = (dot.score(&s, &q, &empty), dot.score(&s, &q, &half));
    assert!(sh >= se, "{sh} {se}");
    assert_eq!(dot.score(&s, &q, &empty), 99);
    assert!(dot.pre_score(&mut CycleState::new(), &pod("c", 1, 1), &Snapshot::new(), &[]).is_success());
    assert!(dot.node_local() && dot.as_reserve().is_none());
}

#[test]
fn cpu_aware_fgd_counts_the_gpu_a_node_cannot_feed() {
    // Typical pods: whole GPUs with 16 cores each. A 2-GPU node with 24 cores can feed only
    // 1.5 of its GPUs: half a GPU is stranded. A 1-GPU pod of 4 cores there leaves one GPU and
    // 20 cores, none stranded; on a node with 64 cores nothing changes. FGD sees both alike.
    let seeds = json!([{"cpu": 16, "gpuCount": 1, "gpuMilli": 1000, "count": 1}]);
    let p = plugin(json!({"scoringStrategy": "CpuAwareFGD", "typicalPods": seeds, "learn": false}));
    let fgd = plugin(json!({"scoringStrategy": "FGD", "typicalPods": seeds, "learn": false}));
    assert!(!p.node_local() && p.as_reserve().is_some(), "it learns and chooses GPUs as FGD does");
    let mut tight = gpu_node("a", 2, "T4");
    tight.allocatable = crate::resources::ResourceVec::cpu_mem(24_000, 256 * GI);
    let (tight, roomy) = (node_info(0, tight, vec![]), node_info(1, gpu_node("b", 2, "T4"), vec![]));
    let mut q = gpu_pod("q", 1, 1000, &[]);
    q.requests = crate::resources::ResourceVec::cpu_mem(4000, GI);
    let mut s = CycleState::new();
    let _ = p.pre_filter(&mut s, &q, &Snapshot::new());
    assert_eq!(fgd.score(&s, &q, &tight), fgd.score(&s, &q, &roomy), "FGD: both stay usable");
    // 500 milli less stranded × 0.5: 100 × sigmoid(0.25) = 56.
    assert_eq!((p.score(&s, &q, &tight), p.score(&s, &q, &roomy)), (56, 50));
    let nodes = [&tight, &roomy];
    let ids = [0, 1];
    let snap = Snapshot::new();
    let mut batch = [0; 2];
    p.score_batch(&s, &q, ScoreBatch::new(&snap, &ids, &nodes), &mut batch);
    assert_eq!(batch, [56, 50], "the batch scores as node by node");
    let c = pod("c", 8000, GI);
    assert_eq!((p.score(&s, &c, &tight), p.score(&s, &c, &roomy)), (50, 50), "a CPU-only pod: FGD alone");
    let msg = bad_args(json!({"scoringStrategy": "FGD", "strandingWeight": 1}));
    assert!(msg.starts_with("strandingWeight: only applies to scoringStrategy CpuAwareFGD"), "{msg}");
    let msg = bad_args(json!({"scoringStrategy": "CpuAwareFGD", "strandingWeight": -1}));
    assert!(msg.starts_with("strandingWeight: must be between 0 and 100"), "{msg}");
    let zero = plugin(json!({"scoringStrategy": "CpuAwareFGD", "typicalPods": seeds, "learn": false,
                             "strandingWeight": 0}));
    assert_eq!(zero.score(&s, &q, &tight), 50, "weight 0 is FGD");
}

/// The typical pods of `seeds` (JSON as in the args) as a set.
fn typical_of(seeds: serde_json::Value) -> TypicalSet {
    let a = GpuTopologyArgs::decode(Some(&json!({"scoringStrategy": "FGD", "typicalPods": seeds}))).unwrap();
    let mut h = crate::gpu_frag::ShapeHistogram::new();
    for (shape, n) in a.seeds() {
        h.add(shape, n);
    }
    TypicalSet::new(h.typical(1.0))
}

#[test]
fn model_pressure_is_the_share_of_a_models_idle_gpu_its_constrained_pods_need() {
    // Demand: 3 whole GPUs unconstrained, 1 on T4 only. Idle: 6 GPUs of G2, 2 of T4. If the 8
    // idle GPUs fill as the workload does, T4-only pods ask 2 of them: all of T4's (pressure 1).
    let t = typical_of(json!([
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 1000, "count": 3},
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 1000, "gpuModels": ["T4"], "count": 1}]));
    let (g2, t4) = (Sym::new("G2"), Sym::new("T4"));
    let p = model_aware::ModelPressure::from_idle(&t, &[(g2, 6000), (t4, 2000)]);
    assert_eq!((p.of(g2), p.of(t4)), (0.0, 1.0));
    // With 4 T4s idle they need half of them; more than all is still 1.
    assert_eq!(model_aware::ModelPressure::from_idle(&t, &[(g2, 4000), (t4, 4000)]).of(t4), 0.5);
    assert_eq!(model_aware::ModelPressure::from_idle(&t, &[(g2, 9000), (t4, 1000)]).of(t4), 1.0);
    // A pod accepting G2 or T4 spreads its demand over both by their idle GPU: both get
    // (1/4) × 8/8.
    let both = typical_of(json!([
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 1000, "count": 3},
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 1000, "gpuModels": ["G2", "T4"], "count": 1}]));
    let p = model_aware::ModelPressure::from_idle(&both, &[(g2, 6000), (t4, 2000)]);
    assert_eq!((p.of(g2), p.of(t4)), (0.25, 0.25));
    let none = model_aware::ModelPressure::from_idle(
        &typical_of(json!([
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 500, "count": 3}])),
        &[(g2, 6000), (t4, 2000)],
    );
    assert_eq!((none.of(g2), none.of(t4)), (0.0, 0.0), "no constraints, no pressure");
}

#[test]
fn model_aware_fgd_keeps_flexible_pods_off_the_model_constrained_pods_need() {
    // Typical pods: half the whole GPUs may go anywhere, half only on T4. One G2 node with 6
    // idle GPUs and one T4 node with 2: T4 is fully needed by the T4-only pods.
    let seeds = json!([
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 1000, "count": 1},
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 1000, "gpuModels": ["T4"], "count": 1}]);
    let args = json!({"scoringStrategy": "ModelAwareFGD", "typicalPods": seeds, "learn": false});
    let p = plugin(args);
    assert!(!p.node_local() && p.as_reserve().is_some(), "it learns and chooses GPUs as FGD does");
    let (g2, t4) = (node_info(0, gpu_node("g", 6, "G2"), vec![]), node_info(1, gpu_node("t", 2, "T4"), vec![]));
    let mut snap = Snapshot::new();
    snap.set_node(Arc::new(g2.clone()));
    snap.set_node(Arc::new(t4.clone()));
    let score = |q: &Pod| {
        let mut s = CycleState::new();
        let _ = p.pre_filter(&mut s, q, &snap);
        assert!(p.pre_score(&mut s, q, &snap, &[&g2, &t4]).is_success());
        let single = (p.score(&s, q, &g2), p.score(&s, q, &t4));
        let mut batch = [0; 2];
        p.score_batch(&s, q, ScoreBatch::new(&snap, &[0, 1], &[&g2, &t4]), &mut batch);
        assert_eq!(batch, [single.0, single.1], "the batch scores as node by node");
        single
    };
    // FGD alone: a GPU off G2 takes 1000 idle milli that the T4-only half cannot use: −500,
    // 100 × sigmoid(0.5) = 62; off T4, −0 (every typical pod may use T4): 50. The flexible pod
    // goes to G2 either way, but the model term widens the gap: T4 is under pressure 1 (the 8
    // idle GPUs filled half by T4-only pods need 4 T4s, and there are 2), G2 under 0: +1000 on
    // T4 at modelWeight 2, 100 × sigmoid(−2) = 11.
    assert_eq!(score(&gpu_pod("q", 1, 1000, &[])), (62, 11));
    // A pod that can only use T4 pays nothing for it.
    assert_eq!(score(&gpu_pod("q", 1, 1000, &["T4"])).1, 50);
    let cpu_aware = plugin(json!({"scoringStrategy": "CpuAwareFGD", "typicalPods": seeds, "learn": false}));
    let zero = plugin(json!({"scoringStrategy": "ModelAwareFGD", "typicalPods": seeds, "learn": false,
                             "modelWeight": 0}));
    let q = gpu_pod("q", 1, 1000, &[]);
    let mut s = CycleState::new();
    let _ = zero.pre_filter(&mut s, &q, &snap);
    let _ = zero.pre_score(&mut s, &q, &snap, &[&g2, &t4]);
    assert_eq!(zero.score(&s, &q, &t4), cpu_aware.score(&s, &q, &t4), "weight 0 is CpuAwareFGD");
    let msg = bad_args(json!({"scoringStrategy": "CpuAwareFGD", "modelWeight": 1}));
    assert!(msg.starts_with("modelWeight: only applies to scoringStrategy ModelAwareFGD"), "{msg}");
    let msg = bad_args(json!({"scoringStrategy": "ModelAwareFGD", "modelWeight": 101}));
    assert!(msg.starts_with("modelWeight: must be between 0 and 100"), "{msg}");
}

#[test]
fn the_remainder_term_leaves_a_share_for_the_typical_pod_that_fills_it() {
    // Typical single-GPU shares: 1000 (twice as many), 650, 470, 320, 230. A node's GPU 0 has 350
    // free (beside a 650), GPU 1 530 (beside a 470). FGD puts a 230 on GPU 0: of 350 free,
    // only the 320 and 230 pods could use it, of 120 none, so the node's fragmentation drops
    // by 113 milli (by 15 on GPU 1). But 350 takes a 320 down to 30, and 120 stays dead;
    // 530 takes a 470 (60 dead), and 300 a 230 (70).
    let seeds = json!([
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 1000, "count": 2},
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 650, "count": 1},
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 470, "count": 1},
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 320, "count": 1},
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 230, "count": 1}]);
    let r = remainder::Remainder::new(&typical_of(seeds.clone()), 2.0);
    let dead: Vec<u32> = [1000, 350, 120, 530, 300, 70, 0].iter().map(|&f| r.dead(f)).collect();
    assert_eq!(dead, vec![0, 30, 120, 60, 70, 70, 0]);
    let no_whole_single = json!([
        {"cpu": 1, "gpuCount": 1, "gpuMilli": 650, "count": 1},
        {"cpu": 8, "gpuCount": 8, "gpuMilli": 1000, "count": 1}]);
    let shares_only = remainder::Remainder::new(&typical_of(no_whole_single), 2.0);
    assert_eq!((shares_only.dead(1000), shares_only.dead(900)), (0, 250), "a free GPU is never dead");
    let mut n = node_info(0, gpu_node("a", 2, "T4"), vec![]);
    n.add_pod_with(Arc::new(gpu_pod("x", 1, 650, &[])), &crate::nodeinfo::DeviceChoice::gpus(0b01));
    n.add_pod_with(Arc::new(gpu_pod("y", 1, 470, &[])), &crate::nodeinfo::DeviceChoice::gpus(0b10));
    let q = gpu_pod("q", 1, 230, &[]);
    let args = |w: f64| json!({"scoringStrategy": "ModelAwareFGD", "typicalPods": seeds, "learn": false, "remainderWeight": w});
    let reserved = |p: &GpuTopology| {
        let mut s = CycleState::new();
        let snap = Snapshot::new();
        let _ = p.pre_filter(&mut s, &q, &snap);
        assert!(p.pre_score(&mut s, &q, &snap, &[&n]).is_success());
        let mut batch = [0; 1];
        p.score_batch(&s, &q, ScoreBatch::new(&snap, &[0], &[&n]), &mut batch);
        assert_eq!(batch[0], p.score(&s, &q, &n), "the batch scores as node by node");
        assert!(p.reserve(&mut s, &q, &n).is_success());
        (batch[0], s.gpu_choice())
    };
    // FGD's increase −113 on GPU 0: 100 × sigmoid(0.113) = 52.
    assert_eq!(reserved(&plugin(args(0.0))), (52, Some(0b01)), "weight 0 is FGD's GPU");
    // GPU 0: −113 + 2 × 90 = 67; GPU 1: −15 + 2 × 10 = 5, 100 × sigmoid(−0.005) = 49.
    assert_eq!(reserved(&plugin(args(2.0))), (49, Some(0b10)), "the GPU whose rest a typical pod fills");
    let whole = gpu_pod("w", 1, 1000, &[]);
    let t = typical_of(seeds);
    assert!(remainder::Remainder::for_pod(&t, 2.0, &whole).is_none(), "a whole GPU leaves no rest");
    assert!(remainder::Remainder::for_pod(&t, 0.0, &q).is_none(), "weight 0 is off");
    let msg = bad_args(json!({"scoringStrategy": "FGD", "remainderWeight": 1}));
    assert!(msg.starts_with("remainderWeight: only applies to scoringStrategy CpuAwareFGD"), "{msg}");
    let msg = bad_args(json!({"scoringStrategy": "CpuAwareFGD", "remainderWeight": -1}));
    assert!(msg.starts_with("remainderWeight: must be between 0 and 100"), "{msg}");
}
