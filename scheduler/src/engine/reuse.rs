//! Reuse of node-local Filter and Score work across pods of one scheduling signature.
//!
//! Pods of one workload are alike. For a *node-local* plugin ([`Plugin::node_local`]) the
//! Filter verdict and the raw Score on a node are functions of that node and of the pod's
//! node-local signature ([`same_node_local_signature`]: requests, selectors, affinity,
//! tolerations, ports, GPUs — not names or labels). So a worker keeps, per signature it has
//! recently seen, each node's node-local verdict and raw scores together with the node's
//! [`Snapshot::stamps`] value when they were computed; a later pod of the same signature reuses
//! them for every node whose stamp has not moved. A stamp moves on *any* change to the node in
//! the worker's snapshot — a refresh from the cluster, or the worker's own pick — so nothing
//! stale is ever reused.
//!
//! Exactness: only node-local results are reused. Plugins that look across nodes
//! (PodTopologySpread, InterPodAffinity, ImageLocality, any third-party plugin that does not
//! declare itself node-local) run for every pod as before, and NormalizeScore always runs over
//! the current pod's nodes, so normalisations that depend on the whole set of scored nodes stay
//! exact. The walk over nodes (round-robin start, stopping after enough feasible nodes) and the
//! first-failure order of Filter plugins in the diagnosis are unchanged: a node-local failure is
//! reported only if no earlier non-local Filter fails. Placements are therefore identical with
//! or without the cache; the cache only saves the work.
//!
//! Memory: per signature, 16 bytes plus 8 per node-local Score plugin for each node slot; the
//! least recently used signature is dropped when a byte budget would be exceeded.

use tessera_plugins::framework::{Profile, node_local_signature_hash, same_node_local_signature};
use tessera_plugins::model::Pod;
use tessera_plugins::nodeinfo::NodeId;
use tessera_plugins::snapshot::Snapshot;
use tessera_plugins::status::Status;

/// Default budget per worker: at 100k nodes and three node-local Score plugins, about 25
/// signatures.
pub const DEFAULT_BUDGET_BYTES: usize = 96 << 20;

/// The verdict of a node that every node-local Filter plugin passes; other values index
/// [`Entry::statuses`].
const PASS: u32 = 0x7FFF_FFFF;
/// Set in a verdict when the node's raw node-local scores are filled in.
const SCORED: u32 = 0x8000_0000;
/// Distinct failure statuses kept per signature; past this a failing node is not cached.
const MAX_STATUSES: usize = 1024;

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
    snapshot_uid: u64,
    budget: usize,
    tick: u64,
    entries: Vec<Entry>,
    /// Counters.
    pub stats: ReuseStats,
}

/// The node-local results of one signature under one profile.
///
/// One row per node slot, `2 + width` words: the node's stamp when the row was filled, its
/// verdict (with the [`SCORED`] flag), then one raw score per node-local Score plugin. Rows
/// keep what one node needs on one or two cache lines: a window of consecutive nodes is then a
/// sequential read, which matters once the cluster no longer fits in the cache.
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
    /// Node-local Score plugins of the profile: raw scores per node.
    width: usize,
    rows: Vec<i64>,
    /// Failure statuses, with the position of the Filter plugin that gave them.
    statuses: Vec<(usize, Status)>,
}

/// A node's node-local Filter verdict as the cache holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalVerdict {
    /// Every node-local Filter plugin passes.
    Pass,
    /// The node-local plugin at this position fails with [`Entry::status`] `.1`.
    Fail(usize, u32),
}

impl ReuseCache {
    /// An empty cache holding at most about `budget` bytes.
    pub fn new(budget: usize) -> ReuseCache {
        ReuseCache { snapshot_uid: 0, budget, tick: 0, entries: Vec::new(), stats: ReuseStats::default() }
    }

    /// The entry for `pod` under `profile`, whose node-local Filter plugins at `filter_mask`
    /// run for it, sized for `snapshot`; created (evicting the least recently used) if need
    /// be. `width` is the number of node-local Score plugins of the profile.
    pub fn entry(
        &mut self,
        profile: &Profile,
        snapshot: &Snapshot,
        pod: &Pod,
        filter_mask: u64,
        width: usize,
    ) -> (&mut Entry, &mut ReuseStats) {
        if self.snapshot_uid != snapshot.uid() {
            self.entries.clear();
            self.snapshot_uid = snapshot.uid();
        }
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
                let need = Entry::bytes(slots, width);
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
                    width,
                    rows: Vec::new(),
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

    fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.rows.len() * 8).sum()
    }
}

impl Entry {
    fn bytes(slots: usize, width: usize) -> usize {
        slots * 8 * (2 + width)
    }

    fn stride(&self) -> usize {
        2 + self.width
    }

    fn grow(&mut self, slots: usize) {
        let len = slots * self.stride();
        if self.rows.len() < len {
            self.rows.resize(len, 0);
        }
    }

    fn row(&self, id: NodeId) -> Option<&[i64]> {
        let stride = self.stride();
        self.rows.get(id as usize * stride..(id as usize + 1) * stride)
    }

    fn row_mut(&mut self, id: NodeId) -> Option<&mut [i64]> {
        let stride = self.stride();
        self.rows.get_mut(id as usize * stride..(id as usize + 1) * stride)
    }

    /// The cached node-local verdict of node `id` if it was computed at `stamp`.
    pub fn verdict(&self, id: NodeId, stamp: u64) -> Option<LocalVerdict> {
        let row = self.row(id)?;
        if stamp == 0 || row[0] as u64 != stamp {
            return None;
        }
        match row[1] as u32 & !SCORED {
            PASS => Some(LocalVerdict::Pass),
            k => self.statuses.get(k as usize).map(|(pos, _)| LocalVerdict::Fail(*pos, k)),
        }
    }

    /// Records node `id`'s node-local verdict at `stamp`: `None` for a pass, or the position of
    /// the failing plugin and its status. Returns the verdict as cached (a failure is not
    /// cached once too many distinct statuses are held; the caller then keeps the status).
    pub fn record(&mut self, id: NodeId, stamp: u64, failure: Option<(usize, &Status)>) -> Option<LocalVerdict> {
        self.row(id)?;
        let verdict = match failure {
            None => PASS,
            Some((pos, status)) => {
                let k = match self.statuses.iter().position(|(p, s)| *p == pos && s == status) {
                    Some(k) => k,
                    None if self.statuses.len() < MAX_STATUSES => {
                        self.statuses.push((pos, status.clone()));
                        self.statuses.len() - 1
                    }
                    None => {
                        if let Some(row) = self.row_mut(id) {
                            row[0] = 0;
                        }
                        return None;
                    }
                };
                k as u32
            }
        };
        let row = self.row_mut(id)?;
        row[0] = stamp as i64;
        row[1] = i64::from(verdict);
        self.verdict(id, stamp)
    }

    /// The status a cached failure stands for.
    pub fn status(&self, k: u32) -> Option<&Status> {
        self.statuses.get(k as usize).map(|(_, s)| s)
    }

    /// Makes the filled-in scores those of the node-local Score plugins at `mask`: if the
    /// set differs from what was filled, every node's scores are dropped.
    pub fn use_score_mask(&mut self, mask: u64) {
        if self.score_mask != Some(mask) {
            let stride = self.stride();
            self.rows.chunks_exact_mut(stride).for_each(|row| row[1] &= !i64::from(SCORED));
            self.score_mask = Some(mask);
        }
    }

    /// Node `id`'s raw node-local scores, one per node-local Score plugin of the profile: the
    /// filled-in ones (`true`), or space to fill them in (`false`), which marks them filled.
    /// The caller has just checked the node's verdict at its current stamp.
    pub fn scores(&mut self, id: NodeId) -> Option<(bool, &mut [i64])> {
        let row = self.row_mut(id)?;
        let filled = row[1] & i64::from(SCORED) != 0;
        row[1] |= i64::from(SCORED);
        Some((filled, &mut row[2..]))
    }
}
