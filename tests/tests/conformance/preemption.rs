//! Conformance: preemption.
