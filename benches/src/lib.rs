//! The benchmark harness: [`engines`] (lsm-core and its peers behind one trait) and
//! [`workload`] (db_bench-style workloads). The `db_bench` binary runs every workload on
//! every engine, each in its own child process, alternating engines, and reports ops/s,
//! ratios, latency percentiles, write and space amplification and peak RSS.

pub mod engines;
pub mod workload;
