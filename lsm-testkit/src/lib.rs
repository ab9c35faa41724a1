//! Test support shared by the cluster tests: real ZooKeeper servers (Debian's `zookeeper`
//! package) started on free loopback ports, standalone or as an ensemble, and helpers to
//! run and signal child processes. Everything started here is stopped on drop.
//!
//! Tests that need ZooKeeper fail loudly when it is missing (they never skip) and take
//! [`serial`] so that they run one at a time: short ZooKeeper sessions expire spuriously
//! when several clusters share two busy cores.

pub mod process;
pub mod zookeeper;

pub use process::{free_port, signal, Child};
pub use zookeeper::{serial, ZkEnsemble};
