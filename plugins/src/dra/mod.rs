//! Dynamic Resource Allocation with structured parameters (`resource.k8s.io/v1`), as
//! kube-scheduler v1.37's `DynamicResources` plugin allocates devices.
//!
//! Start with [`model`]: devices published in ResourceSlices, and the claims that ask for them
//! through requests, CEL selectors ([`cel`]) and constraints. [`inventory`] gathers the
//! devices a node can allocate from; [`allocator`] finds devices for a pod's claims on one
//! node, preferring the devices wired best ([`wiring`]: PCIe roots, NUMA nodes and NVLink
//! cliques from standard attributes). The plugin itself is [`crate::plugins::dynamic_resources`]; the devices a pod holds
//! live on its node ([`crate::nodeinfo::NodeInfo`]), so that a node's generation moves
//! whenever its devices do and the binder's fast path stays exact.

pub mod allocator;
pub mod cel;
pub mod held;
pub mod inventory;
pub mod model;
pub mod wiring;
