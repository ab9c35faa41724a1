//! `lsm-cluster`: leader election, membership, fencing and log replication through
//! Apache ZooKeeper, on top of `lsm-core`.
//!
//! Not built yet: this crate is a workspace member so that the layering of
//! `docs/architecture.md` is fixed from the start. Its design and work are tracked by the
//! cluster and replication issues.
