//! Resource amounts as fixed arrays of integers in canonical units.
//!
//! Slot 0 is CPU in millicores, slot 1 memory in bytes, slot 2 ephemeral storage in bytes;
//! every other resource name (`nvidia.com/gpu`, `rdma/hca`, hugepages) is given the next free
//! slot the first time it is seen, process-wide. Fixed arrays keep Filter and Score free of
//! hashing and allocation.

use std::fmt;
use std::sync::OnceLock;

use parking_lot::RwLock;
use thiserror::Error;

/// How many distinct resource names one process can schedule.
pub const MAX_RESOURCES: usize = 16;

/// Index of a resource in a [`ResourceVec`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ResourceId(pub u8);

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
        if let Some(i) = names.iter().position(|n| n == name) {
            return Ok(ResourceId(i as u8));
        }
        if names.len() >= MAX_RESOURCES {
            return Err(ResourceError::TooMany(name.to_string()));
        }
        names.push(name.to_string());
        Ok(ResourceId((names.len() - 1) as u8))
    }

    /// The slot for `name` if it has one already.
    pub fn lookup(name: &str) -> Option<ResourceId> {
        let names = registry().read();
        names.iter().position(|n| n == name).map(|i| ResourceId(i as u8))
    }

    /// The resource's Kubernetes name (`cpu`, `memory`, `nvidia.com/gpu`).
    pub fn name(self) -> String {
        registry().read().get(usize::from(self.0)).cloned().unwrap_or_default()
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

fn registry() -> &'static RwLock<Vec<String>> {
    static NAMES: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    NAMES.get_or_init(|| RwLock::new(vec!["cpu".to_string(), "memory".to_string(), "ephemeral-storage".to_string()]))
}

/// Errors from the resource registry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResourceError {
    /// The process has already seen [`MAX_RESOURCES`] distinct resource names.
    #[error("too many distinct resource names: cannot track {0:?} (limit {MAX_RESOURCES})")]
    TooMany(String),
}

/// An amount of every resource, in canonical units.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResourceVec(pub [i64; MAX_RESOURCES]);

impl ResourceVec {
    /// All zero.
    pub const ZERO: ResourceVec = ResourceVec([0; MAX_RESOURCES]);

    /// Just CPU (millicores) and memory (bytes).
    pub fn cpu_mem(milli_cpu: i64, memory: i64) -> ResourceVec {
        let mut v = ResourceVec::ZERO;
        v.0[0] = milli_cpu;
        v.0[1] = memory;
        v
    }

    /// The amount of `id`.
    pub fn get(&self, id: ResourceId) -> i64 {
        self.0[id.index()]
    }

    /// Sets the amount of `id`.
    pub fn set(&mut self, id: ResourceId, amount: i64) {
        self.0[id.index()] = amount;
    }

    /// Adds `other` slot by slot.
    pub fn add(&mut self, other: &ResourceVec) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += *b;
        }
    }

    /// Subtracts `other` slot by slot.
    pub fn sub(&mut self, other: &ResourceVec) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a -= *b;
        }
    }

    /// Slot-wise maximum.
    pub fn max_with(&mut self, other: &ResourceVec) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = (*a).max(*b);
        }
    }

    /// Whether every slot is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }

    /// `(id, amount)` for every non-zero slot.
    pub fn iter_nonzero(&self) -> impl Iterator<Item = (ResourceId, i64)> + '_ {
        self.0.iter().enumerate().filter(|(_, v)| **v != 0).map(|(i, v)| (ResourceId(i as u8), *v))
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
