//! Conformance: scoring.
