//! Everything that talks to an API server, in one test binary: the in-process API test server
//! itself, `tessera run` end to end (including leader election, RBAC and the ignored scale
//! measurements), and the operator tools. One binary rather than one per file: each would
//! compile its own copy of the kube, tokio and axum code it instantiates, which in release mode
//! costs CI minutes per file.

mod apiserver;
mod dra;
mod leader;
mod live;
mod live_scale;
mod ops;
mod preemption;
mod rbac;
mod volumes;
