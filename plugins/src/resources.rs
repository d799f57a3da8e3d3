//! Resource amounts as arrays of integers in canonical units.
//!
//! Slot 0 is CPU in millicores, slot 1 memory in bytes, slot 2 ephemeral storage in bytes;
//! every other resource name (`nvidia.com/gpu`, `rdma/hca`, hugepages) is given the next free
//! slot the first time it is seen, process-wide. The first [`INLINE`] slots live in a fixed
//! array, which keeps Filter and Score free of hashing and allocation for the names a cluster
//! schedules on every day; a process that meets more names (real nodes list many extended
//! resources: hugepage sizes, device plugins, RDMA) keeps the rest in a short sorted list beside
//! the array, which stays empty, and costs nothing, until a vector holds one of them.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use parking_lot::RwLock;
use thiserror::Error;

/// Slots kept in the fixed array of a [`ResourceVec`]; later slots go to its overflow list.
pub const INLINE: usize = 16;

/// How many distinct resource names one process can track: the range of a [`ResourceId`].
pub const MAX_RESOURCES: usize = u16::MAX as usize + 1;

/// Index of a resource in a [`ResourceVec`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ResourceId(pub u16);

impl ResourceId {
    /// CPU, in millicores.
    pub const CPU: ResourceId = ResourceId(0);
    /// Memory, in bytes.
    pub const MEMORY: ResourceId = ResourceId(1);
    /// Ephemeral storage, in bytes.
    pub const EPHEMERAL_STORAGE: ResourceId = ResourceId(2);

    /// The slot for `name`, allocating one on first sight.
    pub fn of(name: &str) -> Result<ResourceId, ResourceError> {
        if let Some(id) = ResourceId::lookup(name) {
            return Ok(id);
        }
        let mut names = registry().write();
        if let Some(id) = names.ids.get(name) {
            return Ok(*id);
        }
        let id = u16::try_from(names.names.len()).map_err(|_| ResourceError::TooMany(name.to_string()))?;
        names.names.push(name.to_string());
        names.ids.insert(name.to_string(), ResourceId(id));
        Ok(ResourceId(id))
    }

    /// The slot for `name` if it has one already.
    pub fn lookup(name: &str) -> Option<ResourceId> {
        registry().read().ids.get(name).copied()
    }

    /// The resource's Kubernetes name (`cpu`, `memory`, `nvidia.com/gpu`).
    pub fn name(self) -> String {
        registry().read().names.get(self.index()).cloned().unwrap_or_default()
    }

    /// The slot index.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// Whether amounts of this resource are CPU-like (millicores) rather than whole units.
    pub fn is_milli(self) -> bool {
        self == ResourceId::CPU
    }
}

/// Every name seen so far, in slot order, and the way back.
struct Registry {
    names: Vec<String>,
    ids: HashMap<String, ResourceId>,
}

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let names: Vec<String> = ["cpu", "memory", "ephemeral-storage"].map(String::from).into();
        let ids = names.iter().enumerate().map(|(i, n)| (n.clone(), ResourceId(i as u16))).collect();
        RwLock::new(Registry { names, ids })
    })
}

/// Errors from the resource registry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResourceError {
    /// The process has already seen [`MAX_RESOURCES`] distinct resource names.
    #[error("too many distinct resource names: cannot track {0:?} (limit {MAX_RESOURCES})")]
    TooMany(String),
}

/// An amount of every resource, in canonical units; a slot never set reads as zero.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct ResourceVec {
    inline: [i64; INLINE],
    /// Slots from [`INLINE`] on, sorted by id and without zeros, so that derived equality and
    /// hashing see the same vector however it was built.
    more: Vec<(ResourceId, i64)>,
}

impl ResourceVec {
    /// All zero.
    pub const ZERO: ResourceVec = ResourceVec { inline: [0; INLINE], more: Vec::new() };

    /// Just CPU (millicores) and memory (bytes).
    pub fn cpu_mem(milli_cpu: i64, memory: i64) -> ResourceVec {
        let mut v = ResourceVec::ZERO;
        v.inline[0] = milli_cpu;
        v.inline[1] = memory;
        v
    }

    /// The amount of `id`.
    pub fn get(&self, id: ResourceId) -> i64 {
        match self.inline.get(id.index()) {
            Some(v) => *v,
            None => self.more.binary_search_by_key(&id, |(k, _)| *k).map_or(0, |i| self.more[i].1),
        }
    }

    /// Sets the amount of `id`.
    pub fn set(&mut self, id: ResourceId, amount: i64) {
        if let Some(v) = self.inline.get_mut(id.index()) {
            *v = amount;
            return;
        }
        match (self.more.binary_search_by_key(&id, |(k, _)| *k), amount) {
            (Ok(i), 0) => {
                self.more.remove(i);
            }
            (Ok(i), _) => self.more[i].1 = amount,
            (Err(_), 0) => {}
            (Err(i), _) => self.more.insert(i, (id, amount)),
        }
    }

    /// Adds `other` slot by slot.
    pub fn add(&mut self, other: &ResourceVec) {
        self.zip_with(other, |a, b| a + b);
    }

    /// Subtracts `other` slot by slot.
    pub fn sub(&mut self, other: &ResourceVec) {
        self.zip_with(other, |a, b| a - b);
    }

    /// Slot-wise maximum.
    pub fn max_with(&mut self, other: &ResourceVec) {
        self.zip_with(other, i64::max);
    }

    /// Whether every slot is zero.
    pub fn is_zero(&self) -> bool {
        self.inline.iter().all(|v| *v == 0) && self.more.is_empty()
    }

    /// Whether every slot of `self` is at least the same slot of `want`.
    pub fn covers(&self, want: &ResourceVec) -> bool {
        self.inline.iter().zip(want.inline.iter()).all(|(have, want)| have >= want)
            && want.more.iter().all(|&(id, v)| self.get(id) >= v)
            && self.more.iter().all(|&(id, v)| v >= want.get(id))
    }

    /// `(id, amount)` for every non-zero slot, in slot order.
    pub fn iter_nonzero(&self) -> impl Iterator<Item = (ResourceId, i64)> + '_ {
        let inline = self.inline.iter().enumerate().filter(|(_, v)| **v != 0);
        inline.map(|(i, v)| (ResourceId(i as u16), *v)).chain(self.more.iter().copied())
    }

    /// Applies `f` to every slot pair (a slot missing on either side is zero).
    fn zip_with(&mut self, other: &ResourceVec, f: impl Fn(i64, i64) -> i64) {
        for (a, b) in self.inline.iter_mut().zip(other.inline.iter()) {
            *a = f(*a, *b);
        }
        if !(self.more.is_empty() && other.more.is_empty()) {
            self.more = merge(&self.more, &other.more, f);
        }
    }
}

/// `f` over the union of two sorted overflow lists, zeros dropped.
fn merge(a: &[(ResourceId, i64)], b: &[(ResourceId, i64)], f: impl Fn(i64, i64) -> i64) -> Vec<(ResourceId, i64)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    loop {
        let (id, x, y) = match (a.peek().copied(), b.peek().copied()) {
            (Some(&(ka, va)), Some(&(kb, vb))) if ka == kb => {
                a.next();
                b.next();
                (ka, va, vb)
            }
            (Some(&(ka, va)), Some(&(kb, _))) if ka < kb => {
                a.next();
                (ka, va, 0)
            }
            (Some(&(ka, va)), None) => {
                a.next();
                (ka, va, 0)
            }
            (_, Some(&(kb, vb))) => {
                b.next();
                (kb, 0, vb)
            }
            (None, None) => return out,
        };
        let v = f(x, y);
        if v != 0 {
            out.push((id, v));
        }
    }
}

impl fmt::Debug for ResourceVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (id, v) in self.iter_nonzero() {
            m.entry(&id.name(), &v);
        }
        m.finish()
    }
}

/// A set of resources: a bit per inline slot, a sorted list past them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResourceSet {
    bits: u16,
    more: Vec<ResourceId>,
}

// `ResourceSet::bits` has one bit per inline slot.
const _: () = assert!(INLINE <= 16);

impl ResourceSet {
    /// Adds `id`.
    pub fn insert(&mut self, id: ResourceId) {
        if id.index() < INLINE {
            self.bits |= 1 << id.index();
        } else if let Err(i) = self.more.binary_search(&id) {
            self.more.insert(i, id);
        }
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: ResourceId) -> bool {
        if id.index() < INLINE { self.bits & (1 << id.index()) != 0 } else { self.more.binary_search(&id).is_ok() }
    }

    /// Adds every member of `other`.
    pub fn union_with(&mut self, other: &ResourceSet) {
        self.bits |= other.bits;
        for id in &other.more {
            self.insert(*id);
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits == 0 && self.more.is_empty()
    }

    /// The members, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = ResourceId> + '_ {
        let inline = (0..INLINE as u16).filter(|i| self.bits & (1 << i) != 0).map(ResourceId);
        inline.chain(self.more.iter().copied())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_resources_have_fixed_slots() {
        assert_eq!(ResourceId::of("cpu"), Ok(ResourceId::CPU));
        assert_eq!(ResourceId::of("memory"), Ok(ResourceId::MEMORY));
        assert_eq!(ResourceId::CPU.name(), "cpu");
    }

    #[test]
    fn extended_resources_get_stable_slots() {
        let a = ResourceId::of("example.com/widget").unwrap_or(ResourceId::CPU);
        let b = ResourceId::of("example.com/widget").unwrap_or(ResourceId::MEMORY);
        assert_eq!(a, b);
        assert!(a.index() >= 3);
        assert_eq!(a.name(), "example.com/widget");
    }

    /// `n` distinct names past the inline slots, whatever this process registered before.
    fn overflow_ids(n: usize) -> Vec<ResourceId> {
        let ids: Vec<ResourceId> =
            (0..INLINE + n).filter_map(|i| ResourceId::of(&format!("overflow.example.com/r{i}")).ok()).collect();
        ids.into_iter().filter(|id| id.index() >= INLINE).take(n).collect()
    }

    #[test]
    fn names_past_the_inline_slots_are_tracked() {
        let ids = overflow_ids(40);
        assert_eq!(ids.len(), 40, "the registry refused a name");
        let mut node = ResourceVec::cpu_mem(4000, 1 << 30);
        for (k, id) in ids.iter().enumerate() {
            node.set(*id, k as i64 + 1);
        }
        assert_eq!(node.get(ids[39]), 40);
        assert_eq!(ResourceId::of(&ids[39].name()), Ok(ids[39]));
        let mut pod = ResourceVec::cpu_mem(100, 0);
        pod.set(ids[39], 40);
        assert!(node.covers(&pod));
        pod.set(ids[39], 41);
        assert!(!node.covers(&pod), "an overflow slot short of the request must not fit");
        let listed: Vec<ResourceId> = node.iter_nonzero().map(|(id, _)| id).collect();
        assert_eq!(listed.len(), 42);
        assert!(listed.windows(2).all(|w| w[0] < w[1]), "iteration is in slot order");
    }

    #[test]
    fn a_slot_back_at_zero_compares_and_hashes_as_never_set() {
        use std::hash::{BuildHasher, RandomState};
        let id = overflow_ids(1)[0];
        let mut a = ResourceVec::cpu_mem(1, 2);
        let mut delta = ResourceVec::ZERO;
        delta.set(id, 7);
        a.add(&delta);
        assert_ne!(a, ResourceVec::cpu_mem(1, 2));
        a.sub(&delta);
        assert_eq!(a, ResourceVec::cpu_mem(1, 2));
        let hasher = RandomState::new();
        assert_eq!(hasher.hash_one(&a), hasher.hash_one(ResourceVec::cpu_mem(1, 2)));
        assert!(!delta.is_zero());
        delta.set(id, 0);
        assert!(delta.is_zero());
    }

    proptest::proptest! {
        /// Every operation agrees with a map from slot to amount, inline slots or not.
        #[test]
        fn operations_match_a_map_model(
            a in proptest::collection::vec((0usize..INLINE + 8, -50i64..50), 0..12),
            b in proptest::collection::vec((0usize..INLINE + 8, -50i64..50), 0..12),
        ) {
            use std::collections::BTreeMap;
            let ids = overflow_ids(8);
            let id = |slot: usize| if slot < INLINE { ResourceId(slot as u16) } else { ids[slot - INLINE] };
            let build = |pairs: &[(usize, i64)]| {
                let (mut v, mut m) = (ResourceVec::ZERO, BTreeMap::new());
                for &(slot, amount) in pairs {
                    v.set(id(slot), amount);
                    m.insert(id(slot), amount);
                }
                (v, m)
            };
            let ((va, ma), (vb, mb)) = (build(&a), build(&b));
            let slots: Vec<ResourceId> = (0..INLINE + 8).map(id).collect();
            let at = |m: &BTreeMap<ResourceId, i64>, s: &ResourceId| m.get(s).copied().unwrap_or(0);
            for (op, f) in [("add", (|x, y| x + y) as fn(i64, i64) -> i64), ("sub", |x, y| x - y), ("max", i64::max)] {
                let mut v = va.clone();
                match op {
                    "add" => v.add(&vb),
                    "sub" => v.sub(&vb),
                    _ => v.max_with(&vb),
                }
                for s in &slots {
                    proptest::prop_assert_eq!(v.get(*s), f(at(&ma, s), at(&mb, s)), "{} at {:?}", op, s);
                }
            }
            let covers = slots.iter().all(|s| at(&ma, s) >= at(&mb, s));
            proptest::prop_assert_eq!(va.covers(&vb), covers);
            proptest::prop_assert_eq!(va.is_zero(), ma.values().all(|v| *v == 0));
        }
    }

    #[test]
    fn arithmetic_is_slot_wise() {
        let mut a = ResourceVec::cpu_mem(100, 200);
        a.add(&ResourceVec::cpu_mem(1, 2));
        assert_eq!(a, ResourceVec::cpu_mem(101, 202));
        a.sub(&ResourceVec::cpu_mem(101, 0));
        assert_eq!(a, ResourceVec::cpu_mem(0, 202));
        a.max_with(&ResourceVec::cpu_mem(5, 1));
        assert_eq!(a, ResourceVec::cpu_mem(5, 202));
    }
}
