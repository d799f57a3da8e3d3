use std::sync::Arc;

use proptest::prelude::*;

use super::spec::{hybrid_cube_mesh, nvswitch};
use super::*;
use crate::intern::Sym;
use crate::labels::LabelSet;
use crate::model::{GPU_MILLI, Gpu, GpuRequest, Node, Pod};
use crate::nodeinfo::NodeInfo;
use crate::resources::ResourceVec;

fn mask(gpus: &[usize]) -> u64 {
    gpus.iter().fold(0, |m, i| m | 1 << i)
}

fn wired(w: GpuWiring) -> Arc<GpuWiring> {
    Arc::new(w)
}

/// Every `k`-subset of `0..n`.
fn subsets(n: usize, k: u32) -> impl Iterator<Item = u64> {
    (0u64..1 << n).filter(move |m| m.count_ones() == k)
}

#[test]
fn islands_broken_counts_whole_free_islands_used_in_part() {
    let w = GpuWiring::from_islands(&[0, 0, 0, 0, 1, 1, 1, 1, 2]);
    assert_eq!(w.islands_broken(0x1FF, mask(&[0])), 1, "one GPU of an empty island");
    assert_eq!(w.islands_broken(0x1FF, mask(&[0, 1, 2, 3])), 0, "a whole island taken whole");
    assert_eq!(w.islands_broken(0x1FF, mask(&[3, 4])), 2);
    assert_eq!(w.islands_broken(mask(&[1, 2, 3, 4, 5, 6, 7]), mask(&[1])), 0, "island 0 was broken already");
    assert_eq!(w.islands_broken(0x1FF, mask(&[8])), 0, "a lone GPU is its own island");
}

#[test]
fn two_islands_keep_a_whole_island_for_the_next_pod() {
    let w = GpuWiring::from_islands(&[0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(w.islands(), &[0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(w.best_subset(0xFF, 4), Some(0x0F), "an empty box: the lower island");
    assert_eq!(w.best_subset(0xFE, 4), Some(0xF0), "island 0 has 3 free: island 1");
    assert_eq!(w.best_subset(0xFE, 1), Some(0b10), "one GPU from the island with fewest free");
    assert_eq!(w.best_subset(0b1111_1100, 2), Some(0b1100), "the last two of island 0, not half of island 1");
    assert_eq!(w.best_subset(0b0111_0111, 4), Some(0b0001_0111), "no island has 4: as many NVLink pairs as can be");
    assert_eq!(w.best_subset(0b0111, 4), None);
    assert_eq!(w.best_subset(0xFF, 0), Some(0));
}

#[test]
fn devices_the_pod_holds_already_pull_the_choice_beside_them() {
    let w = GpuWiring::from_islands(&[0, 0, 0, 0, 1, 1, 1, 1]);
    let free = mask(&[1, 2, 5, 6]);
    assert_eq!(w.best_subset_beside(free, 1, 0), Some(mask(&[1])), "alone: the lowest of equals");
    assert_eq!(w.best_subset_beside(free, 1, mask(&[4])), Some(mask(&[5])), "beside GPU 4: its island");
    assert_eq!(w.best_subset_beside(free, 2, mask(&[4])), Some(mask(&[5, 6])));
    // The same on a node past the table's size, where the search is greedy.
    let big = GpuWiring::from_islands(&[0, 0, 0, 0, 1, 1, 1, 1, 2, 2]);
    assert_eq!(big.best_subset_beside(free | mask(&[8, 9]), 1, mask(&[4])), Some(mask(&[5])));
}

#[test]
fn pcie_roots_then_numa_nodes_break_ties_without_nvlink() {
    let pcie = r#"{"gpus": [{"pcieRoot": "a", "numa": 0}, {"pcieRoot": "a", "numa": 0},
                            {"pcieRoot": "b", "numa": 0}, {"pcieRoot": "b", "numa": 0}]}"#;
    let w = parse_annotation(pcie, 4).unwrap();
    assert_eq!(w.best_subset(0b1111, 2), Some(0b0011));
    assert_eq!(w.best_subset(0b1110, 2), Some(0b1100), "GPU 0 busy: the pair on root b");
    assert_eq!(w.best_subset(0b1110, 1), Some(0b0010), "the lone GPU of root a, keeping root b's pair");
    let numa = r#"{"gpus": [{"numa": 0}, {"numa": 1}, {"numa": 0}, {"numa": 1}]}"#;
    let w = parse_annotation(numa, 4).unwrap();
    assert_eq!(w.best_subset(0b1111, 2), Some(0b0101), "one NUMA node");
    assert_eq!((w.pcie_root(0), w.numa(1)), (None, Some(1)));
}

#[test]
fn nvswitch_boxes_are_uniform_and_the_cube_mesh_is_not() {
    let sw = nvswitch(12);
    assert!(subsets(8, 4).all(|s| sw.nvlink_clique(s)), "every 4 GPUs of an NVSwitch box talk over NVLink");
    let nv = |w: &GpuWiring, s: u64| w.connectivity(s) >> 64;
    assert!(subsets(8, 4).all(|s| nv(&sw, s) == nv(&sw, 0x0F)), "and with equal bandwidth");
    assert_eq!(sw.best_subset(0xFF, 4), Some(0x0F), "then one NUMA node and paired PCIe switches");
    assert_eq!(sw.best_subset(0xFF, 2), Some(0b11), "one PCIe switch");

    let mesh = hybrid_cube_mesh();
    let cliques: Vec<u64> = subsets(8, 4).filter(|&s| mesh.nvlink_clique(s)).collect();
    assert_eq!(cliques, vec![0x0F, 0xF0], "only the two quads are fully connected");
    assert!(!mesh.nvlink_clique(mask(&[0, 1, 4, 5])));
    assert_eq!(mesh.best_subset(0xFF, 4), Some(0x0F));
    assert_eq!(mesh.best_subset(0xFE, 4), Some(0xF0), "GPU 0 busy: the other quad");
    assert_eq!(mesh.best_subset(0xFF, 2), Some(mask(&[2, 3])), "2 links, one PCIe switch, one NUMA node");
    assert_eq!(mesh.best_subset(0xFF & !mask(&[2, 3, 6, 7]), 2), Some(mask(&[0, 4])), "the 2-link pair left");
    assert_eq!(mesh.links(0, 3), 2);
    assert_eq!((0..8).map(|j| u32::from(mesh.links(5, j))).sum::<u32>(), 6, "6 links per V100");
}

#[test]
fn large_nodes_are_searched_greedily() {
    let islands: Vec<u16> = (0..16).map(|i| i / 8).collect();
    let w = GpuWiring::from_islands(&islands);
    assert!(w.table.is_empty());
    assert_eq!(w.best_subset(0xFFFF, 8), Some(0x00FF));
    assert_eq!(w.best_subset(0xFFFE, 8), Some(0xFF00));
    assert_eq!(w.best_subset(0xFFFE, 1), Some(0b10));
    assert_eq!(w.connectivity(0xFF) >> 96, 28);
}

#[test]
fn annotations_parse_presets_and_lists() {
    let a = parse_annotation("dgx-h100", 8).unwrap();
    assert!(Arc::ptr_eq(&a, &parse_annotation(r#"{"preset": "hgx-h100"}"#, 8).unwrap()), "presets are shared");
    assert_eq!(a.links(0, 7), 18);
    assert_eq!(*parse_annotation("\"dgx-1-v100\"", 8).unwrap(), hybrid_cube_mesh());
    let one_sided = parse_annotation(r#"{"gpus": [{"nvlink": {"1": 4}}, {}, {}]}"#, 3).unwrap();
    assert_eq!((one_sided.links(1, 0), one_sided.islands()), (4, &[0, 0, 1][..]));
}

#[test]
fn malformed_annotations_say_what_is_wrong() {
    let err = |v: &str, n: usize| parse_annotation(v, n).unwrap_err().to_string();
    assert!(err("dgx-z", 8).starts_with("unknown preset \"dgx-z\"; known presets: dgx-h100"), "{}", err("dgx-z", 8));
    assert_eq!(err("dgx-a100", 4), "describes 8 GPUs but the node has 4");
    assert!(err("{\"gpus\": [{\"nvlnk\": {}}]}", 1).contains("unknown field `nvlnk`"));
    assert!(err("{\"gpus\": [1]}", 1).starts_with("not a preset name nor JSON"));
    assert_eq!(
        err(r#"{"gpus": [{"nvlink": {"2": 1}}, {}]}"#, 2),
        "gpus[0].nvlink: peer \"2\" is not a device index below 2"
    );
    assert_eq!(err(r#"{"gpus": [{"nvlink": {"0": 1}}]}"#, 1), "gpus[0].nvlink: a GPU is not its own NVLink peer");
    assert_eq!(
        err(r#"{"gpus": [{"nvlink": {"1": 0}}, {}]}"#, 2),
        "gpus[0].nvlink.1: link count must be 1 to 255, got 0"
    );
    assert_eq!(
        err(r#"{"gpus": [{"nvlink": {"1": 2}}, {"nvlink": {"0": 4}}]}"#, 2),
        "gpus[0].nvlink.1 is 2 but gpus[1].nvlink.0 is 4"
    );
    assert!(err(r#"{"gpus": [{"nvlink": {"1": 300}}, {}]}"#, 2).starts_with("not a preset"));
    assert!(err(r#"{"preset": "dgx-h100", "gpus": []}"#, 8).contains("not both"));
}

fn wired_node(wiring: &Arc<GpuWiring>) -> Arc<Node> {
    let gpus = (0..wiring.len())
        .map(|i| Gpu { wiring: Some(wiring.clone()), ..Gpu::new(Sym::new("H100"), wiring.islands()[i]) })
        .collect();
    Arc::new(Node {
        name: Sym::new("n"),
        labels: LabelSet::default(),
        taints: vec![],
        unschedulable: false,
        allocatable: ResourceVec::cpu_mem(1 << 40, 1 << 50),
        allowed_pods: 100_000,
        images: vec![],
        gpus,
        devices: Default::default(),
    })
}

fn gpu_pod(name: &str, count: u32, milli: u32) -> Arc<Pod> {
    let mut p = Pod::new("default", name, ResourceVec::ZERO);
    p.gpu = Some(GpuRequest { count, milli, models: vec![] });
    Arc::new(p)
}

#[test]
fn a_wired_node_places_whole_gpus_by_wiring() {
    let mut ni = NodeInfo::new(0, wired_node(&wired(GpuWiring::from_islands(&[0, 0, 0, 0, 1, 1, 1, 1]))));
    ni.add_pod(gpu_pod("a", 1, GPU_MILLI));
    ni.add_pod(gpu_pod("b", 2, GPU_MILLI));
    assert_eq!(ni.pod_gpus, vec![0b1, 0b110], "b fills island 0, not island 1");
    assert_eq!(ni.choose_gpus(&GpuRequest { count: 4, milli: GPU_MILLI, models: vec![] }), Some(0xF0));
    ni.add_pod(gpu_pod("s", 1, 300));
    assert_eq!(ni.pod_gpus[2], 0b1000, "a share still goes best fit, to the lowest of the emptiest");
}

/// The best `k`-subset of `free` beside `beside` by brute force over every submask, in the
/// documented order: connectivity with `beside`, then of what is left, then the lower mask.
fn brute_best(w: &GpuWiring, free: u64, k: u32, beside: u64) -> Option<u64> {
    (0u64..1 << w.len())
        .filter(|s| s & !free == 0 && s.count_ones() == k)
        .map(|s| (w.connectivity(s | beside), w.connectivity(free & !s), std::cmp::Reverse(s)))
        .max()
        .map(|(_, _, std::cmp::Reverse(s))| s)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// On a 12-GPU node (past the table), a choice among few subsets is the best of them all.
    #[test]
    fn few_subsets_on_a_large_node_are_weighed_exactly(
        links in proptest::collection::vec(0u8..3, 66),
        roots in proptest::collection::vec(0u16..4, 12),
        free in 0u64..1 << 12,
        beside in 0u64..1 << 12,
        k in 1u32..5,
    ) {
        let mut matrix = vec![vec![0u8; 12]; 12];
        let pairs = (0..12).flat_map(|i| (i + 1..12).map(move |j| (i, j)));
        for ((i, j), l) in pairs.zip(&links) {
            (matrix[i][j], matrix[j][i]) = (*l, *l);
        }
        let roots: Vec<Option<u16>> = roots.into_iter().map(Some).collect();
        let w = GpuWiring::new(&matrix, &roots, &[None; 12]);
        let have = free.count_ones();
        prop_assume!(have >= k && binomial(have, k) <= EXACT_SUBSETS);
        prop_assert_eq!(w.best_subset_beside(free, k, beside & !free), brute_best(&w, free, k, beside & !free));
    }

    /// Pods come and go on a wired node: shares never overfill a GPU, and a k-GPU pod gets k
    /// distinct free GPUs exactly when enough fit.
    #[test]
    fn placements_stay_within_the_gpus(
        preset in 0usize..4,
        ops in proptest::collection::vec((0u32..6, 1u32..1000, any::<bool>(), 0usize..64), 1..80),
    ) {
        let wiring = match preset {
            0 => wired(hybrid_cube_mesh()),
            1 => wired(nvswitch(18)),
            2 => wired(GpuWiring::from_islands(&[0, 0, 0, 0, 1, 1, 1, 1])),
            _ => wired(GpuWiring::from_islands(&(0..12).map(|i| i / 4).collect::<Vec<u16>>())),
        };
        let mut ni = NodeInfo::new(0, wired_node(&wiring));
        for (i, (shape, share, leave, pick)) in ops.into_iter().enumerate() {
            if leave && !ni.pods.is_empty() {
                let key = ni.pods[pick % ni.pods.len()].key();
                prop_assert!(ni.remove_pod(&key).is_some());
                continue;
            }
            let (count, milli) = match shape {
                0 => (1, share),
                1 => (1, GPU_MILLI),
                2 => (2, GPU_MILLI),
                3 => (4, GPU_MILLI),
                4 => (8, GPU_MILLI),
                _ => (3, GPU_MILLI),
            };
            let req = GpuRequest { count, milli, models: vec![] };
            let choice = ni.choose_gpus(&req);
            prop_assert_eq!(choice.is_some(), ni.fits_gpus(&req));
            if let Some(m) = choice {
                prop_assert_eq!(m.count_ones(), count, "k distinct GPUs");
                prop_assert!(ni.gpus_available(&req, m));
                ni.add_pod(gpu_pod(&format!("p{i}"), count, milli));
            }
            prop_assert!(ni.gpu_used.iter().all(|&u| u <= GPU_MILLI), "{:?}", ni.gpu_used);
        }
    }
}

/// The old choice, for comparison: whole GPUs at the lowest free indices, inside the first
/// island that can hold them all.
fn first_fit(ni: &NodeInfo, k: u32) -> Option<u64> {
    let free: Vec<usize> = (0..ni.node.gpus.len()).filter(|&i| ni.gpu_free(i) >= GPU_MILLI).collect();
    if free.len() < k as usize {
        return None;
    }
    let island = |i: usize| ni.node.gpus[i].island;
    let holding =
        free.iter().map(|&i| island(i)).find(|&l| free.iter().filter(|&&i| island(i) == l).count() >= k as usize);
    let chosen = free.iter().filter(|&&i| holding.is_none_or(|l| island(i) == l));
    Some(chosen.take(k as usize).fold(0u64, |m, &i| m | 1 << i))
}

/// What a stream of pods met.
#[derive(Debug, Default, PartialEq)]
struct StreamReport {
    /// Multi-GPU pods placed while a node had a whole island (or for 8 GPUs a whole node) free.
    island_free: u32,
    /// Multi-GPU pods whose node had a whole island (or for 8 GPUs was empty) for them.
    island_free_here: u32,
    /// Of those, pods placed inside one island.
    in_one_island: u32,
    /// Multi-GPU pods that found enough free GPUs on some node but no whole island anywhere.
    blocked: u32,
    /// Multi-GPU pods placed on a node with room but no whole island left for them: split
    /// over both islands because earlier pods were.
    split: u32,
    /// Multi-GPU pods in the stream.
    multi: u32,
}

/// 16 nodes of 8 GPUs in two 4-GPU NVLink islands; a seeded stream of 1/2/4/8-GPU pods
/// (weights 50/25/15/10) arriving, and running pods leaving, likelier the fuller the cluster.
/// Nodes are picked alike under both choices, and blind to islands: the first with room.
/// `choose` picks the GPUs on the node.
fn island_stream(seed: u64, choose: impl Fn(&NodeInfo, u32) -> Option<u64>) -> StreamReport {
    let wiring = wired(GpuWiring::from_islands(&[0, 0, 0, 0, 1, 1, 1, 1]));
    let mut nodes: Vec<NodeInfo> = (0..16).map(|i| NodeInfo::new(i, wired_node(&wiring))).collect();
    let mut x = seed;
    let mut next = move |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let mut running: Vec<(usize, crate::model::PodKey)> = Vec::new();
    let mut r = StreamReport::default();
    let whole = |ni: &NodeInfo, k: u32| {
        let free = ni.fitting_gpus(&GpuRequest { count: k, milli: GPU_MILLI, models: vec![] });
        match k {
            8 => free == 0xFF,
            _ => (free & 0x0F).count_ones() >= k || (free & 0xF0).count_ones() >= k,
        }
    };
    for i in 0..20_000 {
        // Departures grow likelier as the cluster fills: it hovers around 80% of its GPUs.
        let used: u32 = nodes.iter().flat_map(|n| n.gpu_used.iter()).sum::<u32>() / GPU_MILLI;
        let depart = u64::from(used).pow(3) * 1000 / 128u64.pow(3) > next(1000);
        if depart && !running.is_empty() {
            let (node, key) = running.swap_remove(next(running.len() as u64) as usize);
            nodes[node].remove_pod(&key);
            continue;
        }
        let k = match next(100) {
            0..50 => 1,
            50..75 => 2,
            75..90 => 4,
            _ => 8,
        };
        let req = GpuRequest { count: k, milli: GPU_MILLI, models: vec![] };
        let roomy = nodes.iter().position(|n| n.fits_gpus(&req));
        let island = nodes.iter().position(|n| whole(n, k));
        if k > 1 {
            r.multi += 1;
            match (island, roomy) {
                (Some(_), _) => r.island_free += 1,
                (None, Some(_)) => r.blocked += 1,
                _ => {}
            }
        }
        let Some(at) = roomy else { continue };
        let Some(mask) = choose(&nodes[at], k) else { continue };
        if k > 1 && !whole(&nodes[at], k) {
            r.split += 1;
        }
        if k > 1 && whole(&nodes[at], k) {
            r.island_free_here += 1;
            if (mask & 0x0F) == mask || (mask & 0xF0) == mask || k == 8 {
                r.in_one_island += 1;
            }
        }
        let pod = gpu_pod(&format!("p{i}"), k, GPU_MILLI);
        running.push((at, pod.key()));
        nodes[at].add_pod_with(pod, &crate::nodeinfo::DeviceChoice::gpus(mask));
    }
    r
}

/// The must-show topology figure (README, "GPU placement"): with two 4-GPU NVLink islands per
/// node, every multi-GPU pod that could have one island gets one, and fewer later pods find
/// no whole island than under first-fit.
#[test]
fn multi_gpu_pods_get_one_island_and_block_fewer_later_pods_than_first_fit() {
    let (mut ours, mut theirs) = (StreamReport::default(), StreamReport::default());
    for seed in 1..=5 {
        let a = island_stream(seed, |n, k| n.choose_gpus(&GpuRequest { count: k, milli: GPU_MILLI, models: vec![] }));
        let b = island_stream(seed, first_fit);
        for (sum, one) in [(&mut ours, a), (&mut theirs, b)] {
            sum.island_free += one.island_free;
            sum.in_one_island += one.in_one_island;
            sum.island_free_here += one.island_free_here;
            sum.blocked += one.blocked;
            sum.split += one.split;
            sum.multi += one.multi;
        }
    }
    println!("best-wired: {ours:?}\nfirst-fit:  {theirs:?}");
    assert_eq!(ours.in_one_island, ours.island_free_here, "100% inside one island when one was free");
    assert!(ours.blocked < theirs.blocked, "best-wired {ours:?}, first-fit {theirs:?}");
    assert!(ours.split < theirs.split, "best-wired {ours:?}, first-fit {theirs:?}");
}
