//! # tessera-crds
