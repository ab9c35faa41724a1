//! Test support shared by the cluster tests: real ZooKeeper servers (Debian's `zookeeper`
//! package) started on free loopback ports, standalone or as an ensemble, helpers to
//! run and signal child processes, and a linearizability checker for recorded histories. Everything started here is stopped on drop.
//!
//! Tests that need ZooKeeper fail loudly when it is missing (they never skip) and take
//! [`serial`] so that they run one at a time: short ZooKeeper sessions expire spuriously
//! when several clusters share two busy cores.

pub mod linearizability;
pub mod process;
pub mod zookeeper;

pub use process::{free_port, free_ports, signal, Child};
pub use zookeeper::{serial, ZkEnsemble};

/// The files in a fuzz corpus or regression directory, sorted, with their bytes; empty
/// when the directory does not exist.
pub fn corpus_inputs(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.expect("reading a corpus directory").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("reading a corpus file");
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// The committed seeds (`seed-*` files) of the fuzz corpus directory of `target` under
/// `fuzz_dir`; panics when there are none (a target must keep its seeds).
pub fn seed_inputs(fuzz_dir: &std::path::Path, target: &str) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let seeds: Vec<_> = corpus_inputs(&fuzz_dir.join("corpus").join(target))
        .into_iter()
        .filter(|(p, _)| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        })
        .collect();
    assert!(
        !seeds.is_empty(),
        "no committed seeds for fuzz target {target}"
    );
    seeds
}
