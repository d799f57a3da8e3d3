//! How a node's GPUs are wired to each other: NVLink peers with their link counts, the PCIe
//! root (switch) and the NUMA node of every GPU — and the choice, for a pod asking k whole
//! GPUs, of the k free GPUs wired best ([`GpuWiring::best_subset`]).
//!
//! Design:
//! - One [`GpuWiring`] per distinct topology, shared by `Arc` among every node wired alike
//!   (ingest interns them, presets are built once): a node carries a pointer, not a graph.
//! - The graph is an adjacency matrix of link counts (at most 64 GPUs: GPU sets are 64-bit
//!   masks everywhere). Every pair of GPUs gets one *pair weight*, a `u128` whose fields rank,
//!   most significant first: the pair talks over NVLink, its NVLink link count (bandwidth), it
//!   shares a PCIe root, it shares a NUMA node. A set's *connectivity* is the sum of its pairs'
//!   weights: the fields are wide enough never to carry into each other, so comparing sums
//!   compares "more NVLink-connected pairs, then more links, then more pairs on one PCIe root,
//!   then more on one NUMA node" lexicographically.
//! - For nodes of up to [`TABLE_GPUS`] GPUs the connectivity of every one of the 2ⁿ sets is
//!   tabulated once per topology, so the choice is a walk over the free set's submasks with
//!   table look-ups, allocation-free. On larger nodes every `k`-subset of the free GPUs is
//!   weighed too when there are at most [`EXACT_SUBSETS`] (any single GPU, 2 of up to 16 free,
//!   4 of up to 8 free: a DRA node's 8 GPUs beside its NICs); beyond, the search is greedy
//!   from every seed GPU (bounded work: n seeds × k steps × n candidates).
//! - The choice maximises the chosen set's connectivity, then the connectivity of the free GPUs
//!   it leaves (so a 1- or 2-GPU pod goes to the island with the fewest free GPUs and keeps a
//!   whole island free for the next 4-GPU pod), then takes the lowest device indices.
//!
//! The annotation that describes a wiring, and its presets, are in [`spec`].

pub mod spec;

#[cfg(test)]
mod tests;

use std::fmt;
use std::hash::{Hash, Hasher};

pub use spec::{PRESETS, WiringError, parse_annotation};

/// Nodes with at most this many GPUs have every set's connectivity tabulated (2⁸ entries).
pub const TABLE_GPUS: usize = 8;
/// The most GPUs a wiring describes (GPU sets are 64-bit masks).
pub const MAX_WIRED_GPUS: usize = 64;
/// On a node past [`TABLE_GPUS`], the most `k`-subsets of the free GPUs weighed one by one
/// before the search turns greedy: about as much work as the greedy search at these sizes.
pub const EXACT_SUBSETS: u128 = 128;

/// Bit offsets of the pair-weight fields (see the module docs): 32 bits each, and a node has at
/// most 2016 pairs of at most 255 links, so sums never carry into the next field.
const NVLINK_PAIR: u32 = 96;
const NVLINK_LINKS: u32 = 64;
const SAME_PCIE: u32 = 32;

/// Pairs of a set of GPUs by what joins them ([`GpuWiring::pair_counts`]); a pair may count in
/// all three.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairCounts {
    /// Pairs joined by NVLink directly.
    pub nvlink: u32,
    /// Pairs on one PCIe root.
    pub pcie: u32,
    /// Pairs on one NUMA node.
    pub numa: u32,
}

/// What one pair weighs ([`PairCounts::weight`]) when NVLink, one PCIe root and one NUMA node
/// all join it.
pub const BEST_PAIR_WEIGHT: i64 = 7;

impl PairCounts {
    /// The pairs weighed NVLink 4, one PCIe root 2, one NUMA node 1: the connectivity order
    /// made additive and small, for scores that must compare nodes in a few bits.
    pub fn weight(self) -> i64 {
        4 * i64::from(self.nvlink) + 2 * i64::from(self.pcie) + i64::from(self.numa)
    }
}

/// The wiring of one node's GPUs. See the module docs.
#[derive(Clone)]
pub struct GpuWiring {
    /// GPUs described.
    n: usize,
    /// NVLink links between GPUs `i` and `j` at `i * n + j` (symmetric, 0 on the diagonal).
    links: Vec<u8>,
    /// Each GPU's PCIe root, as a small integer; `None` when not known (never shared).
    pcie: Vec<Option<u16>>,
    /// Each GPU's NUMA node; `None` when not known (never shared).
    numa: Vec<Option<u16>>,
    /// Each GPU's NVLink island (connected component), numbered from 0 by lowest GPU.
    islands: Vec<u16>,
    /// Each island's GPUs, by island number.
    island_masks: Vec<u64>,
    /// Pair weights, `i * n + j`.
    weight: Vec<u128>,
    /// Connectivity of every set of GPUs, by mask (only for `n <= TABLE_GPUS`).
    table: Vec<u128>,
}

// The graph, not the derived tables (a 2⁸-entry table drowns any message).
impl fmt::Debug for GpuWiring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuWiring")
            .field("gpus", &self.n)
            .field("islands", &self.islands)
            .field("pcie", &self.pcie)
            .field("numa", &self.numa)
            .finish_non_exhaustive()
    }
}

// Equal wirings are equal graphs: the derived tables follow from them.
impl PartialEq for GpuWiring {
    fn eq(&self, other: &Self) -> bool {
        (self.n, &self.links, &self.pcie, &self.numa) == (other.n, &other.links, &other.pcie, &other.numa)
    }
}

impl Eq for GpuWiring {}

impl Hash for GpuWiring {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self.n, &self.links, &self.pcie, &self.numa).hash(h);
    }
}

impl GpuWiring {
    /// A wiring from its parts: `links[i][j]` NVLink links between GPUs (made symmetric by the
    /// caller), PCIe roots and NUMA nodes per GPU (`None` when unknown). At most
    /// [`MAX_WIRED_GPUS`] GPUs; extra ones are ignored.
    pub fn new(links: &[Vec<u8>], pcie: &[Option<u16>], numa: &[Option<u16>]) -> GpuWiring {
        let n = links.len().min(MAX_WIRED_GPUS);
        let mut flat = vec![0u8; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    flat[i * n + j] = links[i].get(j).copied().unwrap_or(0);
                }
            }
        }
        let at = |v: &[Option<u16>], i: usize| v.get(i).copied().flatten();
        let pcie: Vec<Option<u16>> = (0..n).map(|i| at(pcie, i)).collect();
        let numa: Vec<Option<u16>> = (0..n).map(|i| at(numa, i)).collect();
        let mut weight = vec![0u128; n * n];
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let l = u128::from(flat[i * n + j]);
                let same = |v: &[Option<u16>]| u128::from(v[i].is_some() && v[i] == v[j]);
                weight[i * n + j] =
                    (u128::from(l > 0) << NVLINK_PAIR) | (l << NVLINK_LINKS) | (same(&pcie) << SAME_PCIE) | same(&numa);
            }
        }
        let islands = components(n, &flat);
        let mut island_masks = vec![0u64; islands.iter().map(|&i| usize::from(i) + 1).max().unwrap_or(0)];
        for (gpu, &island) in islands.iter().enumerate() {
            island_masks[usize::from(island)] |= 1 << gpu;
        }
        let mut w = GpuWiring { n, links: flat, pcie, numa, islands, island_masks, weight, table: Vec::new() };
        if n <= TABLE_GPUS {
            // Each set's connectivity from the set without its highest GPU: one pass.
            let mut table = vec![0u128; 1 << n];
            for mask in 1usize..(1 << n) {
                let top = usize::BITS as usize - 1 - mask.leading_zeros() as usize;
                let rest = mask & !(1 << top);
                table[mask] = table[rest] + w.gain(rest as u64, top);
            }
            w.table = table;
        }
        w
    }

    /// GPUs `0..islands.len()` where GPUs of one island are all NVLink peers (one link each)
    /// and nothing else is known: the simple form, `tessera.io/gpu-islands`.
    pub fn from_islands(islands: &[u16]) -> GpuWiring {
        let links: Vec<Vec<u8>> = islands.iter().map(|a| islands.iter().map(|b| u8::from(a == b)).collect()).collect();
        let none = vec![None; islands.len()];
        GpuWiring::new(&links, &none, &none)
    }

    /// GPUs described.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether no GPU is described.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// NVLink links between GPUs `i` and `j` (0 when not peers or out of range).
    pub fn links(&self, i: usize, j: usize) -> u8 {
        if i < self.n && j < self.n { self.links[i * self.n + j] } else { 0 }
    }

    /// GPU `i`'s PCIe root, when known.
    pub fn pcie_root(&self, i: usize) -> Option<u16> {
        self.pcie.get(i).copied().flatten()
    }

    /// GPU `i`'s NUMA node, when known.
    pub fn numa(&self, i: usize) -> Option<u16> {
        self.numa.get(i).copied().flatten()
    }

    /// Each GPU's NVLink island: GPUs joined by NVLink paths share one, numbered from 0 in the
    /// order of their lowest GPU. What [`crate::model::Gpu::island`] holds for a wired node.
    pub fn islands(&self) -> &[u16] {
        &self.islands
    }

    /// How many NVLink islands wholly inside `free` the GPUs `taken` use only in part: the
    /// whole islands a choice breaks up.
    pub fn islands_broken(&self, free: u64, taken: u64) -> u32 {
        let broken = |&&m: &&u64| m & !free == 0 && m & taken != 0 && m & !taken != 0;
        self.island_masks.iter().filter(broken).count() as u32
    }

    /// The connectivity of the GPUs in `mask` (see the module docs); GPUs beyond the wiring
    /// add nothing.
    pub fn connectivity(&self, mask: u64) -> u128 {
        let mask = mask & self.all();
        if self.n <= TABLE_GPUS {
            return self.table[mask as usize];
        }
        let mut acc = 0u128;
        let mut seen = 0u64;
        for i in bits(mask) {
            acc += self.gain(seen, i);
            seen |= 1 << i;
        }
        acc
    }

    /// How many pairs of the GPUs in `mask` are joined by NVLink, share a PCIe root and share
    /// a NUMA node: the fields of [`GpuWiring::connectivity`], read apart.
    pub fn pair_counts(&self, mask: u64) -> PairCounts {
        let c = self.connectivity(mask);
        // Each field is 32 bits wide: the cast keeps exactly one.
        let field = |shift: u32| (c >> shift) as u32;
        PairCounts { nvlink: field(NVLINK_PAIR), pcie: field(SAME_PCIE), numa: field(0) }
    }

    /// Whether every pair of the GPUs in `mask` is joined by NVLink directly.
    pub fn nvlink_clique(&self, mask: u64) -> bool {
        let k = u128::from(mask.count_ones());
        self.connectivity(mask) >> NVLINK_PAIR == k * k.saturating_sub(1) / 2
    }

    /// The `k` GPUs of `free` wired best for a pod that uses them together, or `None` when
    /// `free` has fewer than `k`. See the module docs for the order; deterministic.
    pub fn best_subset(&self, free: u64, k: u32) -> Option<u64> {
        self.best_subset_beside(free, k, 0)
    }

    /// As [`GpuWiring::best_subset`], weighing each choice together with `beside`: devices the
    /// pod holds already, such as the GPUs of a DRA claim's earlier request when the next asks
    /// for NICs, so the NIC under the GPUs' PCIe root wins.
    pub fn best_subset_beside(&self, free: u64, k: u32, beside: u64) -> Option<u64> {
        let free = free & self.all();
        let beside = beside & self.all() & !free;
        let have = free.count_ones();
        if have < k {
            return None;
        }
        if k == 0 {
            return Some(0);
        }
        if have == k {
            return Some(free);
        }
        if self.n <= TABLE_GPUS {
            return Some(self.best_tabulated(free, k, beside));
        }
        if binomial(have, k) <= EXACT_SUBSETS {
            return Some(self.best_enumerated(free, k, beside));
        }
        Some(self.best_greedy(free, k, beside))
    }

    /// Every `k`-subset of `free`, each weighed by summing its pairs (no table past
    /// [`TABLE_GPUS`]); the same order as [`GpuWiring::best_tabulated`].
    fn best_enumerated(&self, free: u64, k: u32, beside: u64) -> u64 {
        let members: Vec<usize> = bits(free).collect();
        let mut best: Option<(u128, u128, u64)> = None;
        // The k-combinations of the members' positions, in increasing order (Gosper's hack).
        let mut positions: u128 = (1 << k) - 1;
        while positions < 1 << members.len() {
            // At most 64 members: the positions fit 64 bits inside the loop.
            let Ok(chosen) = u64::try_from(positions) else { break };
            let s = bits(chosen).fold(0u64, |m, p| m | 1 << members[p]);
            let key = (self.connectivity(s | beside), self.connectivity(free & !s));
            if best.is_none_or(|(a, b, m)| key > (a, b) || (key == (a, b) && s < m)) {
                best = Some((key.0, key.1, s));
            }
            let low = positions & positions.wrapping_neg();
            let ripple = positions + low;
            positions = (((ripple ^ positions) >> 2) / low) | ripple;
        }
        best.map_or(0, |b| b.2)
    }

    /// Every `k`-subset of `free` (at most C(8,4) = 70), by table.
    fn best_tabulated(&self, free: u64, k: u32, beside: u64) -> u64 {
        let mut best: Option<(u128, u128, u64)> = None;
        // Submasks of `free`, from `free` down to 0 (the classic `(s - 1) & free` walk).
        let mut s = free;
        while s != 0 {
            if s.count_ones() == k {
                let key = (self.table[(s | beside) as usize], self.table[(free & !s) as usize]);
                // Higher keys win; on equal keys the lower mask (lower indices), which the
                // downward walk meets last.
                if best.is_none_or(|(a, b, _)| key >= (a, b)) {
                    best = Some((key.0, key.1, s));
                }
            }
            s = (s - 1) & free;
        }
        best.map_or(0, |b| b.2)
    }

    /// Greedy sets grown from every seed GPU, each step adding the GPU with the most weight to
    /// those taken (and `beside`); the best set by (connectivity, connectivity left, lower
    /// mask).
    fn best_greedy(&self, free: u64, k: u32, beside: u64) -> u64 {
        let mut best: Option<(u128, u128, u64)> = None;
        for seed in bits(free) {
            let mut set = 1u64 << seed;
            let mut conn = self.gain(beside, seed);
            for _ in 1..k {
                let pick = bits(free & !set).map(|j| (self.gain(set | beside, j), j)).max_by(|a, b| {
                    // More weight first; on a tie the lower index.
                    a.0.cmp(&b.0).then(b.1.cmp(&a.1))
                });
                let Some((g, j)) = pick else { break };
                conn += g;
                set |= 1 << j;
            }
            let left = self.connectivity(free & !set);
            let better = best.is_none_or(|(c, l, m)| (conn, left) > (c, l) || ((conn, left) == (c, l) && set < m));
            if better {
                best = Some((conn, left, set));
            }
        }
        best.map_or(0, |b| b.2)
    }

    /// The weight GPU `j` adds to the set `mask`.
    fn gain(&self, mask: u64, j: usize) -> u128 {
        bits(mask).map(|i| self.weight[i * self.n + j]).sum()
    }

    /// The mask of every GPU described.
    fn all(&self) -> u64 {
        if self.n >= 64 { u64::MAX } else { (1u64 << self.n) - 1 }
    }
}

/// NVLink components: each GPU's island, numbered by lowest member.
fn components(n: usize, links: &[u8]) -> Vec<u16> {
    let mut island = vec![u16::MAX; n];
    let mut next = 0u16;
    for start in 0..n {
        if island[start] != u16::MAX {
            continue;
        }
        let mut stack = vec![start];
        island[start] = next;
        while let Some(i) = stack.pop() {
            for j in 0..n {
                if links[i * n + j] > 0 && island[j] == u16::MAX {
                    island[j] = next;
                    stack.push(j);
                }
            }
        }
        next += 1;
    }
    island
}

/// `n` choose `k`, saturating (only compared against small bounds).
fn binomial(n: u32, k: u32) -> u128 {
    let k = k.min(n - k.min(n));
    (0..k).fold(1u128, |acc, i| acc.saturating_mul(u128::from(n - i)) / u128::from(i + 1))
}

/// The indices of the bits set in `mask`, lowest first.
pub fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(i)
    })
}
