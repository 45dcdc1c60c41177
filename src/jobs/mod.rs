//! Jobs: the durable job store.

pub mod store;
