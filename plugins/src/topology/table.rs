//! A slab of values with stable `u32` ids, found by a caller-computed hash.
//!
//! The index interns label sets and affinity terms by value but must look them up from borrowed
//! parts (a pod's namespace and labels) without building an owned key first; keying buckets by
//! the hash and comparing candidates with a closure gives that without `HashMap::raw_entry`.

use super::FxMap;

/// Values with stable ids; a freed id is reused.
#[derive(Clone, Debug)]
pub(super) struct Table<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    by_hash: FxMap<u64, Vec<u32>>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { slots: Vec::new(), free: Vec::new(), by_hash: FxMap::default() }
    }
}

impl<T> Table<T> {
    /// The id of the value with `hash` for which `eq` holds.
    pub(super) fn find(&self, hash: u64, eq: impl Fn(&T) -> bool) -> Option<u32> {
        let bucket = self.by_hash.get(&hash)?;
        bucket.iter().copied().find(|&id| self.get(id).is_some_and(&eq))
    }

    /// Stores `value` (known to be absent) and returns its id.
    pub(super) fn insert(&mut self, hash: u64, value: T) -> u32 {
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.slots.get_mut(id as usize) {
                    *slot = Some(value);
                }
                id
            }
            None => {
                self.slots.push(Some(value));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_hash.entry(hash).or_default().push(id);
        id
    }

    /// Removes the value `id`, stored under `hash`.
    pub(super) fn remove(&mut self, hash: u64, id: u32) -> Option<T> {
        let value = self.slots.get_mut(id as usize)?.take()?;
        if let Some(bucket) = self.by_hash.get_mut(&hash) {
            bucket.retain(|&i| i != id);
            if bucket.is_empty() {
                self.by_hash.remove(&hash);
            }
        }
        self.free.push(id);
        Some(value)
    }

    /// The value `id`.
    pub(super) fn get(&self, id: u32) -> Option<&T> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// The value `id`, mutably.
    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Every live value with its id.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, v)| v.as_ref().map(|v| (i as u32, v)))
    }
}
