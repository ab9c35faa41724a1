//! Fault injection and power loss through the filesystem seam ([`common::fault`]).
//!
//! One writer runs a workload in `Durability::Sync` with tiny memtables and levels, so
//! WAL appends and fsyncs, WAL rotations, flushes, compactions and manifest updates all
//! happen many times. Then:
//!
//! * for injection points spread over every operation kind (file creation, write, fsync,
//!   rename, directory fsync), that one operation fails with EIO or ENOSPC: the failure
//!   reaches the caller, the database refuses further writes naming the failure, and on
//!   reopening — from the files as they are (a process crash) and from only what was
//!   fsynced (a power loss) — it holds exactly a prefix of the write order that contains
//!   every acknowledged write;
//! * the power is cut after a random fsync: the durable state recovers to such a prefix.
//!
//! `LSM_FAULT_POINTS` (points per operation kind, default 10) and `LSM_POWER_CUTS`
//! (default 40) scale the runs; `LSM_FAULT_SEED` replays one workload.

mod common;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use common::fault::{Fault, FaultFs, Faulty, Op, OPS};
use lsm_core::{Db, Durability, Options, WriteBatch};

fn options() -> Options {
    Options {
        durability: Durability::Sync,
        memtable_size_bytes: 4096,
        max_sealed_memtables: 2,
        block_size_bytes: 512,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 4,
        l0_stop_trigger: 8,
        l1_target_bytes: 16 * 1024,
        level_size_ratio: 2,
        num_levels: 4,
        target_file_size_bytes: 8 * 1024,
        ..Options::default()
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone)]
enum WOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Flush,
}

/// A deterministic workload of about 400 operations over 60 keys.
fn workload(seed: u64) -> Vec<WOp> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let key = |r: u64| format!("key{:02}", r % 60).into_bytes();
    let mut ops = Vec::new();
    for i in 0..400u64 {
        let r = rnd();
        let value = |r: u64| {
            let mut v = format!("v{i}-").into_bytes();
            v.resize(40 + (r % 300) as usize, b'a' + (i % 26) as u8);
            v
        };
        ops.push(match r % 20 {
            0..=2 => WOp::Delete(key(r >> 8)),
            3 => WOp::Batch(
                (0..4)
                    .map(|j| {
                        let k = key((r >> 8) + j * 11);
                        (k, (j % 3 != 2).then(|| value(r >> (j + 3))))
                    })
                    .collect(),
            ),
            4 if i % 100 == 50 => WOp::Flush,
            _ => WOp::Put(key(r >> 8), value(r >> 16)),
        });
    }
    ops.push(WOp::Flush);
    ops
}

/// The state after the first `n` operations.
fn model(ops: &[WOp], n: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut m = BTreeMap::new();
    for op in &ops[..n] {
        match op {
            WOp::Put(k, v) => {
                m.insert(k.clone(), v.clone());
            }
            WOp::Delete(k) => {
                m.remove(k);
            }
            WOp::Batch(items) => {
                for (k, v) in items {
                    match v {
                        Some(v) => m.insert(k.clone(), v.clone()),
                        None => m.remove(k),
                    };
                }
            }
            WOp::Flush => {}
        }
    }
    m
}

fn apply(db: &Db, op: &WOp) -> lsm_core::Result<()> {
    match op {
        WOp::Put(k, v) => db.put(k, v),
        WOp::Delete(k) => db.delete(k),
        WOp::Batch(items) => {
            let mut b = WriteBatch::new();
            for (k, v) in items {
                match v {
                    Some(v) => b.put(k, v),
                    None => b.delete(k),
                }
            }
            db.write(b)
        }
        WOp::Flush => db.flush(),
    }
}

/// Runs `ops` until the first error; returns how many were acknowledged and the error.
fn run(db: &Db, ops: &[WOp]) -> (usize, Option<lsm_core::Error>) {
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = apply(db, op) {
            return (i, Some(e));
        }
    }
    (ops.len(), None)
}

fn contents(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = Db::open(dir, Options::default())
        .unwrap_or_else(|e| panic!("reopening {} failed: {e}", dir.display()));
    let all = db
        .iter()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()
        .unwrap();
    db.close().unwrap();
    all
}

/// The recovered state must be the state after `acked` operations, or after `acked + 1`
/// (the operation that failed may have reached the disk before it failed).
fn check_prefix(state: &BTreeMap<Vec<u8>, Vec<u8>>, ops: &[WOp], acked: usize, what: &str) {
    if *state == model(ops, acked) {
        return;
    }
    if acked < ops.len() && *state == model(ops, acked + 1) {
        return;
    }
    let want = model(ops, acked);
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, v)| state.get(*k) != Some(v))
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .take(5)
        .collect();
    let extra: Vec<_> = state
        .keys()
        .filter(|k| !want.contains_key(*k))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .take(5)
        .collect();
    panic!(
        "{what}: recovered state is not the prefix of {acked} (or {}) operations; \
         differing keys {missing:?}, unexpected keys {extra:?}",
        acked + 1
    );
}

/// Up to `k` indices spread evenly over 1..=total, always with the first and the last.
fn spread(total: u64, k: u64) -> Vec<u64> {
    if total <= k {
        return (1..=total).collect();
    }
    let mut v: Vec<u64> = (0..k).map(|i| 1 + i * (total - 1) / (k - 1)).collect();
    v.dedup();
    v
}

fn open(dir: &Path, fs: &Arc<FaultFs>) -> lsm_core::Result<Db> {
    Db::open_with_fs(dir, options(), Arc::new(Faulty(fs.clone())))
}

#[test]
fn every_injected_fault_is_reported_and_loses_nothing_acknowledged() {
    let ops = workload(env("LSM_FAULT_SEED", 7));
    // A clean run counts the operations of each kind.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("clean");
    let fs = FaultFs::new(&dir);
    let db = open(&dir, &fs).unwrap();
    assert_eq!(run(&db, &ops).0, ops.len());
    db.close().unwrap();
    let totals: Vec<(Op, u64)> = OPS.iter().map(|&op| (op, fs.count(op))).collect();
    check_prefix(&contents(&dir), &ops, ops.len(), "clean run");
    eprintln!("operations in the workload: {totals:?}");

    let points = env("LSM_FAULT_POINTS", 10);
    let mut runs = 0;
    for (op, total) in totals {
        assert!(total > 0, "the workload never does {op:?}");
        for (i, nth) in spread(total, points).into_iter().enumerate() {
            let kind = if i % 2 == 0 {
                io::ErrorKind::StorageFull
            } else {
                io::ErrorKind::Other
            };
            let label = format!("{op:?} #{nth} of {total} fails with {kind:?}");
            let dir = root.path().join(format!("{op:?}-{nth}"));
            let fs = FaultFs::new(&dir);
            fs.set_fault(Some(Fault {
                op,
                nth,
                kind,
                sticky: false,
            }));
            let (acked, error) = match open(&dir, &fs) {
                Ok(db) => {
                    let (acked, error) = run(&db, &ops);
                    if fs.injected() > 0 {
                        // The failure surfaced — to the caller of the failing operation,
                        // or, when a background flush or compaction failed after the last
                        // operation, as the refusal below — and the database now refuses
                        // writes, naming it. An empty batch writes nothing but is refused
                        // once the database is poisoned: wait (bounded) for that.
                        if error.is_none() {
                            let start = std::time::Instant::now();
                            while db.write(WriteBatch::new()).is_ok() {
                                assert!(
                                    start.elapsed() < std::time::Duration::from_secs(10),
                                    "{label}: injected, but neither reported nor poisoning"
                                );
                                std::thread::sleep(std::time::Duration::from_millis(1));
                            }
                        }
                        let refused = db.put(b"after", b"failure").expect_err(&format!(
                            "{label}: writes accepted after the failure ({error:?})"
                        ));
                        assert!(
                            refused.to_string().contains("injected"),
                            "{label}: refusal does not name the failure: {refused}"
                        );
                    } else {
                        assert!(error.is_none(), "{label}: {error:?}");
                    }
                    drop(db);
                    (acked, error)
                }
                // A failure while opening: nothing was acknowledged.
                Err(e) => {
                    assert!(e.to_string().contains("injected"), "{label}: {e}");
                    (0, Some(e))
                }
            };
            // The error names what failed and where.
            if let Some(e) = &error {
                let text = e.to_string();
                assert!(text.contains("injected"), "{label}: {text}");
            }
            // Power loss after the failure: only what was fsynced.
            let durable = root.path().join(format!("{op:?}-{nth}-durable"));
            fs.materialize(&dir, &durable);
            check_prefix(
                &contents(&durable),
                &ops,
                acked,
                &format!("{label}, power loss"),
            );
            // Process crash: the files as they are.
            check_prefix(
                &contents(&dir),
                &ops,
                acked,
                &format!("{label}, files as left"),
            );
            runs += 1;
        }
    }
    eprintln!(
        "{runs} injected faults, each reported, refused afterwards, and recovered to a prefix"
    );
}

#[test]
fn power_loss_at_random_fsyncs_recovers_a_prefix_with_every_acknowledged_write() {
    let ops = workload(env("LSM_FAULT_SEED", 11));
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("clean");
    let fs = FaultFs::new(&dir);
    let db = open(&dir, &fs).unwrap();
    assert_eq!(run(&db, &ops).0, ops.len());
    db.close().unwrap();
    let total = fs.syncs();
    assert!(total > 100, "only {total} fsyncs");

    let cuts = env("LSM_POWER_CUTS", 40);
    let mut x = env("LSM_FAULT_SEED", 11) | 1;
    let mut acked_sum = 0;
    for trial in 0..cuts {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let cut = 1 + x % total;
        let dir = root.path().join(format!("cut-{trial}"));
        let fs = FaultFs::new(&dir);
        fs.cut_after_syncs(cut);
        let acked = match open(&dir, &fs) {
            Ok(db) => {
                let (acked, _) = run(&db, &ops);
                drop(db);
                acked
            }
            Err(_) => 0,
        };
        assert!(fs.is_dead() || acked == ops.len());
        let durable = root.path().join(format!("cut-{trial}-durable"));
        fs.materialize(&dir, &durable);
        check_prefix(
            &contents(&durable),
            &ops,
            acked,
            &format!("power cut after fsync {cut} of {total}"),
        );
        acked_sum += acked;
    }
    eprintln!(
        "{cuts} power cuts over {total} fsyncs: every recovery was a prefix holding all \
         acknowledged writes (on average {} of {} operations acknowledged)",
        acked_sum as u64 / cuts.max(1),
        ops.len()
    );
}
