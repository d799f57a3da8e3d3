//! Reuse of node-local Filter and Score work across pods of one scheduling signature.
//!
//! Pods of one workload are alike. For a *node-local* plugin ([`Plugin::node_local`]) the
//! Filter verdict and the raw Score on a node are functions of that node and of the pod's
//! node-local signature ([`same_node_local_signature`]: requests, selectors, affinity,
//! tolerations, ports, GPUs — not names or labels). So a worker keeps, per signature it has
//! recently seen, each node's node-local verdict and raw scores, and drops a node's results
//! whenever the node changes in the worker's snapshot — a refresh from the cluster, or the
//! worker's own pick — as the snapshot's change journal ([`Snapshot::changes_since`]) reports.
//! Nothing stale is ever reused.
//!
//! Exactness: only node-local results are reused. Plugins that look across nodes
//! (PodTopologySpread, InterPodAffinity, ImageLocality, any plugin that does not declare itself
//! node-local) run for every pod as before, and NormalizeScore always runs over the current
//! pod's nodes, so normalisations that depend on the whole set of scored nodes stay exact. The
//! walk over nodes (round-robin start, stopping after enough feasible nodes) and the
//! first-failure order of Filter plugins in the diagnosis are unchanged: a node-local failure is
//! reported only if no earlier non-local Filter fails. Placements are therefore identical with
//! or without the cache; the cache only saves work.
//!
//! Memory: per signature, one 8-byte word per node slot holding the verdict and up to three
//! raw scores of 16 bits (2 bytes more per node-local Score plugin beyond three; raw scores
//! that do not fit 16 bits are never cached); the least recently used signature is dropped when
//! a byte budget would be exceeded. Small rows matter: a window of 5,000 nodes is then a
//! sequential read of 40 KB, where touching the nodes themselves would miss the cache on every
//! one of them.
//!
//! [`Plugin::node_local`]: tessera_plugins::framework::Plugin::node_local

use tessera_plugins::framework::{Profile, node_local_signature_hash, same_node_local_signature};
use tessera_plugins::model::Pod;
use tessera_plugins::nodeinfo::NodeId;
use tessera_plugins::snapshot::Snapshot;
use tessera_plugins::status::Status;

/// Default budget per worker: at 100k nodes and up to three node-local Score plugins, about
/// 120 signatures.
pub const DEFAULT_BUDGET_BYTES: usize = 96 << 20;

/// Set in a row that holds a verdict.
const VALID: u64 = 1 << 63;
/// Set in a row whose node's raw node-local scores are filled in.
const SCORED: u64 = 1 << 62;
/// Where a row keeps its verdict: [`PASS`], or an index into [`Entry::statuses`].
const INDEX_SHIFT: u32 = 48;
const INDEX_MASK: u64 = 0x3FFF;
/// Every node-local Filter plugin passes.
const PASS: u64 = INDEX_MASK;
/// Distinct failure statuses kept per signature; past this a failing node is not cached.
const MAX_STATUSES: usize = PASS as usize;
/// Raw scores a row holds itself, 16 bits each; a profile with more node-local Score plugins
/// keeps them all in [`Entry::wide`].
const PACKED: usize = 3;

/// How much work the cache saved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReuseStats {
    /// Node-local Filter verdicts answered from the cache.
    pub filter_hits: u64,
    /// Node-local Filter verdicts computed.
    pub filter_misses: u64,
    /// Nodes whose node-local raw scores were answered from the cache.
    pub score_hits: u64,
    /// Nodes whose node-local raw scores were computed.
    pub score_misses: u64,
}

/// Per-worker cache of node-local results, by signature. See the module docs.
#[derive(Debug)]
pub struct ReuseCache {
    /// The snapshot the entries describe, and the version of it they are valid at.
    snapshot_uid: u64,
    version: u64,
    budget: usize,
    tick: u64,
    entries: Vec<Entry>,
    /// Counters.
    pub stats: ReuseStats,
}

/// The node-local results of one signature under one profile.
#[derive(Debug)]
pub struct Entry {
    profile: usize,
    pod: Pod,
    hash: u64,
    /// Positions (in the profile's Filter list) of the node-local Filter plugins that run.
    filter_mask: u64,
    /// Positions (in the profile's Score list) of the node-local Score plugins whose scores
    /// are filled in.
    score_mask: Option<u64>,
    last_used: u64,
    /// Raw scores per node: the number of plugins in `score_mask`.
    width: usize,
    /// Per node slot, one word: [`VALID`], [`SCORED`], [`PASS`] or a status index, and up to
    /// [`PACKED`] raw scores of 16 bits. What the walk over a window reads of a node is then
    /// one sequential word.
    rows: Vec<u64>,
    /// Per node slot, `width` raw scores, when `width` exceeds [`PACKED`].
    wide: Vec<i16>,
    /// Failure statuses, with the position of the Filter plugin that gave them.
    statuses: Vec<(usize, Status)>,
}

/// A node's node-local Filter verdict as the cache holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalVerdict {
    /// Every node-local Filter plugin passes.
    Pass,
    /// The node-local plugin at this position fails with [`Entry::status`] of the index.
    Fail(usize, u32),
}

impl ReuseCache {
    /// An empty cache holding at most about `budget` bytes.
    pub fn new(budget: usize) -> ReuseCache {
        ReuseCache { snapshot_uid: 0, version: 0, budget, tick: 0, entries: Vec::new(), stats: ReuseStats::default() }
    }

    /// The entry for `pod` under `profile`, whose node-local Filter plugins at `filter_mask`
    /// run for it, valid for `snapshot` as it is now; created (evicting the least recently
    /// used) if need be.
    pub fn entry(
        &mut self,
        profile: &Profile,
        snapshot: &Snapshot,
        pod: &Pod,
        filter_mask: u64,
    ) -> (&mut Entry, &mut ReuseStats) {
        self.catch_up(snapshot);
        self.tick += 1;
        let key = std::ptr::from_ref(profile) as usize;
        let hash = node_local_signature_hash(pod);
        let slots = snapshot.slots().len();
        let found = self.entries.iter().position(|e| {
            e.profile == key && e.hash == hash && e.filter_mask == filter_mask && same_node_local_signature(&e.pod, pod)
        });
        let i = match found {
            Some(i) => i,
            None => {
                let need = Entry::bytes(slots, 0);
                while !self.entries.is_empty() && self.bytes() + need > self.budget {
                    let lru = self.entries.iter().enumerate().min_by_key(|(_, e)| e.last_used).map_or(0, |(i, _)| i);
                    self.entries.swap_remove(lru);
                }
                self.entries.push(Entry {
                    profile: key,
                    pod: pod.clone(),
                    hash,
                    filter_mask,
                    score_mask: None,
                    last_used: 0,
                    width: 0,
                    rows: Vec::new(),
                    wide: Vec::new(),
                    statuses: Vec::new(),
                });
                self.entries.len() - 1
            }
        };
        let tick = self.tick;
        let Self { entries, stats, .. } = self;
        let e = &mut entries[i];
        e.last_used = tick;
        e.grow(slots);
        (e, stats)
    }

    /// Drops the results of every node that changed in `snapshot` since the entries were
    /// last valid (all of them, for another snapshot or a journal that no longer reaches back).
    fn catch_up(&mut self, snapshot: &Snapshot) {
        let changes = (self.snapshot_uid == snapshot.uid()).then(|| snapshot.changes_since(self.version)).flatten();
        match changes {
            Some(ids) => {
                for e in &mut self.entries {
                    for &id in ids {
                        if let Some(v) = e.rows.get_mut(id as usize) {
                            *v = 0;
                        }
                    }
                }
            }
            None => self.entries.clear(),
        }
        self.snapshot_uid = snapshot.uid();
        self.version = snapshot.version();
    }

    fn bytes(&self) -> usize {
        self.entries.iter().map(|e| Entry::bytes(e.rows.len(), e.width)).sum()
    }
}

impl Entry {
    fn bytes(slots: usize, width: usize) -> usize {
        slots * (8 + if width > PACKED { 2 * width } else { 0 })
    }

    fn grow(&mut self, slots: usize) {
        if self.rows.len() < slots {
            self.rows.resize(slots, 0);
            if self.width > PACKED {
                self.wide.resize(slots * self.width, 0);
            }
        }
    }

    /// The cached node-local verdict of node `id`.
    pub fn verdict(&self, id: NodeId) -> Option<LocalVerdict> {
        let row = *self.rows.get(id as usize)?;
        if row & VALID == 0 {
            return None;
        }
        match (row >> INDEX_SHIFT) & INDEX_MASK {
            PASS => Some(LocalVerdict::Pass),
            k => self.statuses.get(k as usize).map(|(pos, _)| LocalVerdict::Fail(*pos, k as u32)),
        }
    }

    /// Records node `id`'s node-local verdict: `None` for a pass, or the position of the
    /// failing plugin and its status. Returns the verdict as cached (a failure is not cached
    /// once too many distinct statuses are held; the caller then keeps the status).
    pub fn record(&mut self, id: NodeId, failure: Option<(usize, &Status)>) -> Option<LocalVerdict> {
        let i = id as usize;
        if i >= self.rows.len() {
            return None;
        }
        let index = match failure {
            None => PASS,
            Some((pos, status)) => {
                let k = match self.statuses.iter().position(|(p, s)| *p == pos && s == status) {
                    Some(k) => k,
                    None if self.statuses.len() < MAX_STATUSES => {
                        self.statuses.push((pos, status.clone()));
                        self.statuses.len() - 1
                    }
                    None => return None,
                };
                k as u64
            }
        };
        self.rows[i] = VALID | index << INDEX_SHIFT;
        self.verdict(id)
    }

    /// The status a cached failure stands for.
    pub fn status(&self, k: u32) -> Option<&Status> {
        self.statuses.get(k as usize).map(|(_, s)| s)
    }

    /// Makes the filled-in scores those of the node-local Score plugins at `mask` (positions in
    /// the profile's Score list), in position order: if the set differs from what was filled,
    /// every node's scores are dropped.
    pub fn use_score_mask(&mut self, mask: u64) {
        if self.score_mask != Some(mask) {
            self.rows.iter_mut().for_each(|v| *v &= !SCORED);
            self.score_mask = Some(mask);
            self.width = mask.count_ones() as usize;
            self.wide = if self.width > PACKED { vec![0; self.rows.len() * self.width] } else { Vec::new() };
        }
    }

    /// Writes node `id`'s raw node-local scores (one per plugin of the score mask) into `out`
    /// if they are filled in since its verdict was recorded.
    pub fn scores(&self, id: NodeId, out: &mut [i64]) -> bool {
        let i = id as usize;
        let Some(&row) = self.rows.get(i) else { return false };
        if row & (VALID | SCORED) != VALID | SCORED || out.len() != self.width {
            return false;
        }
        if self.width > PACKED {
            let Some(wide) = self.wide.get(i * self.width..(i + 1) * self.width) else { return false };
            out.iter_mut().zip(wide).for_each(|(o, w)| *o = i64::from(*w));
        } else {
            for (k, o) in out.iter_mut().enumerate() {
                *o = i64::from((row >> (16 * k)) as u16 as i16);
            }
        }
        true
    }

    /// Fills in node `id`'s raw node-local scores from `raw` (one per plugin of the score
    /// mask). A node without a valid verdict, or with a score that does not fit 16 bits, stays
    /// unfilled and is scored afresh next time.
    pub fn fill_scores(&mut self, id: NodeId, raw: &[i64]) {
        let i = id as usize;
        let Some(&row) = self.rows.get(i) else { return };
        if row & VALID == 0 || raw.len() != self.width {
            return;
        }
        if raw.iter().any(|s| i16::try_from(*s).is_err()) {
            return;
        }
        let mut packed = row & !(SCORED | ((1 << INDEX_SHIFT) - 1));
        if self.width > PACKED {
            let Some(slot) = self.wide.get_mut(i * self.width..(i + 1) * self.width) else { return };
            slot.iter_mut().zip(raw).for_each(|(w, s)| *w = *s as i16);
        } else {
            for (k, s) in raw.iter().enumerate() {
                packed |= u64::from(*s as i16 as u16) << (16 * k);
            }
        }
        self.rows[i] = packed | SCORED;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_plugins::nodeinfo::NodeInfo;
    use tessera_plugins::registry::Registry;
    use tessera_plugins::resources::ResourceId;
    use tessera_plugins::status::Diagnosis;

    use super::*;
    use crate::bench::synth::{self, Mix};
    use crate::engine::algorithm::{CycleOptions, Placement, schedule_pod};
    use crate::engine::rng::Rng;
    use crate::engine::state::topology_keys;

    /// Every cycle's outcome for a workload scheduled one pod at a time on a 400-node cluster
    /// (enough for the walk to stop early and rotate) that fills up, with every fifth placed
    /// pod deleted again so that nodes also change under the cache by removal.
    fn outcomes(mix: Mix, cache: Option<&mut ReuseCache>) -> Vec<Result<Placement, Diagnosis>> {
        let registry = Registry::builtin();
        let Ok(cfg) = crate::config::default_config(&registry) else { panic!("default config") };
        let profile = &cfg.profiles[0];
        let mut rng = Rng::new(11);
        let nodes = synth::cluster(400, mix, &mut rng);
        let pods = synth::workload(2500, mix, &mut rng);
        let mut snap = Snapshot::new();
        for key in profile.plugins().iter().flat_map(|p| p.topology_keys()) {
            snap.track_topology_key(key);
        }
        for (i, mut n) in nodes.into_iter().enumerate() {
            // Small nodes, so that the cluster fills up and later pods fail on every node.
            n.allocatable.set(ResourceId::CPU, n.allocatable.get(ResourceId::CPU) / 4);
            n.allowed_pods = 4;
            snap.set_node(Arc::new(NodeInfo::new(i as NodeId, Arc::new(n))));
        }
        let mut cache = cache;
        let (mut next_start, mut tie) = (0, Rng::new(5));
        let mut out = Vec::new();
        for (i, pod) in pods.iter().enumerate() {
            topology_keys(pod).for_each(|k| snap.track_topology_key(k));
            let opts = CycleOptions {
                next_start: &mut next_start,
                rng: &mut tie,
                parallel: false,
                reuse: cache.as_deref_mut(),
                within: None,
            };
            let r = schedule_pod(profile, &snap, pod, opts);
            if let Ok(p) = &r {
                snap.add_pod(p.node, pod.clone());
                if i % 5 == 4 {
                    snap.remove_pod(p.node, &pod.key());
                }
            }
            out.push(r);
        }
        out
    }

    #[test]
    fn reuse_changes_no_placement_and_no_diagnosis() {
        for mix in [Mix::Basic, Mix::Affinity, Mix::Spread, Mix::Mixed] {
            let plain = outcomes(mix, None);
            assert!(plain.iter().any(Result::is_ok), "{mix:?}: something schedules");
            let failed = |r: &Result<Placement, Diagnosis>| r.as_ref().is_err_and(|d| !d.reasons.is_empty());
            assert!(plain.iter().any(failed), "{mix:?}: something fits nowhere");
            for budget in [DEFAULT_BUDGET_BYTES, 10_000] {
                let mut cache = ReuseCache::new(budget);
                assert_eq!(outcomes(mix, Some(&mut cache)), plain, "{mix:?}, budget {budget}");
                assert!(cache.stats.filter_hits > 0, "{mix:?}: the cache is used");
            }
        }
    }

    #[test]
    fn rows_round_trip_verdicts_and_scores() {
        let profile = Profile::default();
        let mut snap = Snapshot::new();
        for i in 0..4 {
            let node = tessera_plugins::model::Node {
                name: tessera_plugins::intern::Sym::new(&format!("n{i}")),
                labels: Default::default(),
                taints: vec![],
                unschedulable: false,
                allocatable: tessera_plugins::resources::ResourceVec::ZERO,
                allowed_pods: 1,
                images: vec![],
                gpus: vec![],
                devices: Default::default(),
            };
            snap.set_node(Arc::new(NodeInfo::new(i, Arc::new(node))));
        }
        let pod = Pod::new("default", "p", tessera_plugins::resources::ResourceVec::ZERO);
        let mut cache = ReuseCache::new(DEFAULT_BUDGET_BYTES);
        let (e, _) = cache.entry(&profile, &snap, &pod, 0b1);
        let fail = Status::unschedulable("Insufficient cpu").with_plugin("NodeResourcesFit");
        assert_eq!(e.record(0, None), Some(LocalVerdict::Pass));
        assert_eq!(e.record(1, Some((3, &fail))), Some(LocalVerdict::Fail(3, 0)));
        assert_eq!(e.status(0), Some(&fail));
        e.use_score_mask(0b111);
        let mut out = [0i64; 3];
        assert!(!e.scores(0, &mut out), "nothing filled yet");
        e.fill_scores(0, &[-7, 100, 32_767]);
        assert!(e.scores(0, &mut out));
        assert_eq!(out, [-7, 100, 32_767]);
        e.fill_scores(2, &[1, 2, 3]);
        assert!(!e.scores(2, &mut out), "no verdict, no scores");
        assert_eq!(e.record(3, None), Some(LocalVerdict::Pass));
        e.fill_scores(3, &[1, 1 << 20, 3]);
        assert!(!e.scores(3, &mut out), "too wide to cache");
        e.use_score_mask(0b1111);
        assert!(!e.scores(0, &mut out[..]) && e.verdict(0) == Some(LocalVerdict::Pass), "new mask, scores dropped");
        let mut four = [0i64; 4];
        e.fill_scores(0, &[1, 2, 3, 4]);
        assert!(e.scores(0, &mut four));
        assert_eq!(four, [1, 2, 3, 4]);
        // A change to node 0 in the snapshot drops its row at the next lookup.
        snap.set_generation(0, 9);
        let (e, _) = cache.entry(&profile, &snap, &pod, 0b1);
        assert_eq!(e.verdict(0), None);
        assert_eq!(e.verdict(3), Some(LocalVerdict::Pass));
    }
}
