//! Micro-benchmarks of the hot paths: one pod's Filter+Score cycle at 5k and 100k nodes
//! (computing everything, and reusing node-local work as a worker does), and a worker's snapshot
//! refresh after a batch of commits on a 100k-node cluster.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tessera_plugins::registry::Registry;
use tessera_plugins::snapshot::Snapshot;
use tessera_scheduler::bench::synth::{self, Mix};
use tessera_scheduler::config::default_config;
use tessera_scheduler::engine::algorithm::{CycleOptions, schedule_pod};
use tessera_scheduler::engine::reuse::{DEFAULT_BUDGET_BYTES, ReuseCache};
use tessera_scheduler::engine::rng::Rng;
use tessera_scheduler::engine::state::ClusterState;

fn cluster_state(nodes: usize, preload: usize) -> ClusterState {
    let mut rng = Rng::new(1);
    let mut st = ClusterState::new();
    // As `Engine::new` does: the default profile's spread defaults count zones and hosts from
    // the topology index; untracked, every pod would count them over the whole cluster.
    if let Ok(cfg) = default_config(&Registry::builtin()) {
        for key in cfg.profiles.iter().flat_map(|p| p.plugins()).flat_map(|p| p.topology_keys()) {
            st.track_topology_key(key);
        }
    }
    for n in synth::cluster(nodes, Mix::Basic, &mut rng) {
        st.upsert_node(n);
    }
    for (i, p) in synth::workload(preload, Mix::Basic, &mut rng).into_iter().enumerate() {
        let _ = st.place(p, (i * 7 % nodes) as u32);
    }
    st
}

fn filter_score(c: &mut Criterion) {
    let registry = Registry::builtin();
    let Ok(cfg) = default_config(&registry) else { return };
    let profile = &cfg.profiles[0];
    // The `_reusing` group runs the same cycles with a worker's reuse cache: the snapshot does
    // not change between iterations, so after the first round every node-local verdict and
    // score is reused and what is left is the walk, the cross-node plugins and normalisation.
    for (name, reusing) in [("filter_score_one_pod", false), ("filter_score_one_pod_reusing", true)] {
        let mut group = c.benchmark_group(name);
        for nodes in [5_000usize, 100_000] {
            let st = cluster_state(nodes, nodes * 2);
            let pods = synth::workload(64, Mix::Basic, &mut Rng::new(9));
            let mut cache = reusing.then(|| ReuseCache::new(DEFAULT_BUDGET_BYTES));
            group.bench_with_input(BenchmarkId::from_parameter(nodes), &nodes, |b, _| {
                let mut next_start = 0;
                let mut rng = Rng::new(3);
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % pods.len();
                    let opts = CycleOptions {
                        next_start: &mut next_start,
                        rng: &mut rng,
                        parallel: false,
                        reuse: cache.as_mut(),
                        within: None,
                    };
                    black_box(schedule_pod(profile, st.snapshot(), &pods[i], opts)).ok()
                });
            });
        }
        group.finish();
    }
}

fn snapshot_refresh(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_refresh_100k_nodes");
    for changed in [10usize, 1000] {
        group.bench_with_input(BenchmarkId::new("changed_nodes", changed), &changed, |b, &changed| {
            let mut st = cluster_state(100_000, 0);
            let mut snap = Snapshot::new();
            let mut at = 0;
            st.refresh(&mut snap, &mut at);
            let pods = synth::workload(changed, Mix::Basic, &mut Rng::new(5));
            let mut round = 0usize;
            // Only the refresh is timed; the commits that make nodes change are set-up.
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    for (i, p) in pods.iter().enumerate() {
                        st.unplace(&p.key());
                        let _ = st.place(Arc::clone(p), ((i * 97 + round) % 100_000) as u32);
                    }
                    let t = std::time::Instant::now();
                    black_box(st.refresh(&mut snap, &mut at).len());
                    total += t.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, filter_score, snapshot_refresh);
criterion_main!(benches);
