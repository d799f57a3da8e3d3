//! kube-scheduler's behaviours, one test each, named after the behaviour: what an operator who
//! replaces kube-scheduler with Tessera relies on. Each module is one area; each test sets up
//! the smallest cluster that shows the behaviour (mostly as YAML the simulator replays on the
//! real engine) and asserts what upstream does.

// Test code: a failed unwrap is a failed test (the workspace denies them in shipped code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admission;
mod diagnosis;
mod gates;
mod preemption;
mod resources;
mod scoring;
mod volumes;
