//! Shared helpers for the integration tests in `tests/`.

pub mod apiserver;
