//! # tessera-scheduler
