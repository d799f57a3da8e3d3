//! # tessera-scheduler
//!
//! The engine behind all three uses of the `tessera` binary. Start at [`engine`]: the
//! [`engine::state::ClusterState`] (live truth with per-node generations), the worker that
//! proposes placements over its own incrementally refreshed snapshot, and the binder that
//! commits them. [`bench`] drives the engine on a synthetic cluster and checks the result.

pub mod bench;
pub mod config;
pub mod engine;
pub mod ingest;
pub mod live;
pub mod ops;
pub mod sim;
pub mod verify;
