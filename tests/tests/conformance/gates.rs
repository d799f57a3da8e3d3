//! Conformance: gates.
