//! Volume bindings across the engine's drives: a WaitForFirstConsumer claim matched to a
//! static volume takes that volume for good, whichever worker proposed the placement, because
//! the binder re-checks a placement with claims whenever the cluster moved since the worker
//! looked, and the live state binds the volume as it places the pod.

use std::collections::HashSet;
use std::sync::Arc;

use tessera_plugins::framework::Profile;
use tessera_plugins::intern::Sym;
use tessera_plugins::plugins::volumes::index::{Binding, VolumeObjects};
use tessera_plugins::plugins::volumes::model::{
    AccessModes, PersistentVolume, PersistentVolumeClaim, PodVolume, PvcKey, StorageClass, VolumeMode,
};
use tessera_plugins::registry::Registry;

use super::test_support::{gpu_node, gpu_pod};
use super::tests::test_profile;
use super::*;

/// The test profile plus VolumeBinding.
fn profile() -> Profile {
    let binding = Registry::builtin().make("VolumeBinding", None).unwrap();
    let mut p = test_profile();
    p.pre_filter.push(binding.clone());
    p.filter.push(binding);
    p
}

/// `volumes` network volumes any node reaches (10Gi each) and one WaitForFirstConsumer claim
/// per pod `ml/c<i>`.
fn objects(volumes: usize, claims: usize) -> VolumeObjects {
    let mut o = VolumeObjects::default();
    let class = Sym::new("nfs");
    o.set_class(
        class,
        Some(StorageClass {
            name: class,
            provisioner: Sym::new("kubernetes.io/no-provisioner"),
            wait_for_first_consumer: true,
            allowed_topologies: vec![],
        }),
    );
    for i in 0..volumes {
        let name = Sym::new(&format!("pv-{i}"));
        let pv = PersistentVolume {
            name,
            labels: Default::default(),
            capacity: 10 << 30,
            access_modes: AccessModes::READ_WRITE_ONCE,
            volume_mode: VolumeMode::Filesystem,
            storage_class: class,
            node_affinity: None,
            claim_ref: None,
            csi: None,
            available: true,
            deleting: false,
        };
        o.set_pv(name, Some(pv));
    }
    for i in 0..claims {
        let key = PvcKey::new("ml", &format!("c{i}"));
        let pvc = PersistentVolumeClaim {
            key,
            uid: Arc::from(""),
            owner_uid: None,
            storage_class: class,
            request: 1 << 30,
            access_modes: AccessModes::READ_WRITE_ONCE,
            volume_mode: VolumeMode::Filesystem,
            selector: None,
            volume_name: None,
            lost: false,
            deleting: false,
            selected_node: None,
        };
        o.set_pvc(key, Some(pvc));
    }
    o
}

/// An engine of `nodes` nodes and `workers` workers with `pods` pods, each using its own claim,
/// over `volumes` volumes.
fn engine(nodes: usize, workers: usize, volumes: usize, pods: usize) -> Engine {
    let opts = EngineOptions { workers, seed: 3, ..EngineOptions::default() };
    let mut e = Engine::new(vec![profile()], opts);
    for i in 0..nodes {
        e.upsert_node(gpu_node(&format!("n{i}"), "r", 0), 0.0);
    }
    e.set_volume_objects(Arc::new(objects(volumes, pods)), 0.0);
    for i in 0..pods {
        let mut p = gpu_pod(&format!("p{i}"), 0);
        p.volumes = vec![PodVolume::Claim { claim: Sym::new(&format!("c{i}")), ephemeral: false }];
        e.add_pod(Arc::new(p), 0.0).unwrap();
    }
    e
}

/// Every placed pod's claim holds a volume of its own; no other claim holds one.
fn assert_one_volume_per_placed_pod(e: &Engine, out: &[Outcome], volumes: usize) {
    let placed: Vec<Sym> = out.iter().filter_map(Outcome::bound).map(|(p, _, _)| Sym::new(&p.name)).collect();
    assert_eq!(placed.len(), volumes, "as many pods as volumes");
    let assumed = e.state().snapshot().volumes().assumed().clone();
    let mut seen = HashSet::new();
    for (claim, a) in assumed.iter() {
        let Binding::Volume(pv) = a.binding else { panic!("nothing provisions here") };
        assert!(seen.insert(pv), "volume {pv} bound twice");
        let pod = Sym::new(&format!("p{}", &claim.name.as_str()[1..]));
        assert!(placed.contains(&pod), "claim {claim} bound for a pod not placed");
    }
    assert_eq!(seen.len(), volumes);
}

#[test]
fn the_step_drive_gives_each_static_volume_to_one_pod() {
    let mut e = engine(4, 1, 5, 9);
    let out = e.schedule_pending(0.0);
    assert_one_volume_per_placed_pod(&e, &out, 5);
}

#[test]
fn racing_workers_never_bind_one_static_volume_twice() {
    // Races are timing-dependent: several rounds give a lost one many chances to show.
    for workers in [2, 4, 2, 4, 2, 4] {
        let mut e = engine(8, workers, 6, 20);
        let out = e.run_parallel(&|| 0.0);
        assert_one_volume_per_placed_pod(&e, &out, 6);
    }
}
