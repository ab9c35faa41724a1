//! Benchmarks of `lsm-core` against peer engines (fjall, RocksDB): a db_bench-style
//! harness and criterion component benches. Tracked by the benchmarks issue.
