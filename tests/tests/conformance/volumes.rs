//! Conformance: volumes.
