//! # tessera-plugins
//!
//! The scheduling framework of Tessera, and every built-in plugin. This crate is what a plugin
//! author needs and nothing more: it depends on no other Tessera crate.
//!
//! Start with [`framework`]: the extension points (PreFilter, Filter, Score, …) named as in
//! kube-scheduler, and [`framework::Profile`], which runs them in order. Plugins read the
//! cluster through [`snapshot::Snapshot`] and [`nodeinfo::NodeInfo`], built from the compact
//! [`model`] (labels interned to [`intern::Sym`], resources as fixed integer arrays in
//! [`resources`]). [`status`] carries verdicts with reasons a person can read and assembles
//! upstream's "0/N nodes are available" message. Built-in plugins live in [`plugins`], one
//! module each, and [`registry`] makes them by name from configuration. [`gpu_frag`] is the
//! FGD paper's GPU fragmentation measure, shared by GpuTopology and the simulator's reports;
//! [`gpu_wiring`] is how a node's GPUs are wired (NVLink, PCIe, NUMA) and which of them a
//! multi-GPU pod gets.

pub mod default_selector;
pub mod disruption;
pub mod dra;
pub mod explain;
pub mod framework;
pub mod gpu_frag;
pub mod gpu_wiring;
pub mod intern;
pub mod labels;
pub mod model;
pub mod nodeinfo;
pub mod plugins;
pub mod quantity;
pub mod registry;
pub mod resources;
pub mod snapshot;
pub mod status;
pub mod topology;
