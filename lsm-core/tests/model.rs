//! Random operation sequences on a `Db`, checked against a `BTreeMap` after every step:
//! puts, deletes, batches, gets, ranges, snapshot reads, flush, compact, and close +
//! reopen. Small memtables make background flushes and compactions run in the middle.
//!
//! `PROPTEST_CASES` raises the case count (CI runs the default below).

mod common;

use std::collections::BTreeMap;

use lsm_core::{Db, Options, WriteBatch};
use proptest::prelude::*;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Get(u8),
    Range(u8, u8),
    TakeSnapshot,
    CheckSnapshot,
    Flush,
    Compact,
    Reopen,
}

fn key(k: u8) -> Vec<u8> {
    // A shared prefix exercises prefix compression; the key space is small so keys are
    // overwritten and deleted often.
    format!("key-{:03}", k % 64).into_bytes()
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..40),
        1 => proptest::collection::vec(any::<u8>(), 500..3000),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (any::<u8>(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        10 => any::<u8>().prop_map(Op::Delete),
        6 => proptest::collection::vec((any::<u8>(), proptest::option::of(value())), 1..40).prop_map(Op::Batch),
        15 => any::<u8>().prop_map(Op::Get),
        6 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Range(a, b)),
        2 => Just(Op::TakeSnapshot),
        4 => Just(Op::CheckSnapshot),
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn options(background: bool) -> Options {
    Options {
        memtable_size_bytes: 4096,
        background_threads: background,
        ..common::small_options()
    }
}

fn scan(db: &Db) -> Model {
    common::collect(db.iter()).into_iter().collect()
}

fn run(ops: Vec<Op>, background: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(dir.path(), options(background)).unwrap();
    let mut model = Model::new();
    let mut snapshot: Option<(lsm_core::Snapshot, Model)> = None;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Put(k, v) => {
                db.put(key(k), &v).unwrap();
                model.insert(key(k), v);
            }
            Op::Delete(k) => {
                db.delete(key(k)).unwrap();
                model.remove(&key(k));
            }
            Op::Batch(items) => {
                let mut b = WriteBatch::new();
                for (k, v) in items {
                    match v {
                        Some(v) => {
                            b.put(key(k), &v);
                            model.insert(key(k), v);
                        }
                        None => {
                            b.delete(key(k));
                            model.remove(&key(k));
                        }
                    }
                }
                db.write(b).unwrap();
            }
            Op::Get(k) => {
                let got = db.get(key(k)).unwrap().map(|v| v.to_vec());
                prop_assert_eq!(got.as_ref(), model.get(&key(k)), "step {}: get", step);
            }
            Op::Range(a, b) => {
                let (a, b) = (a % 64, b % 64);
                let (lo, hi) = (key(a.min(b)), key(a.max(b)));
                let got = common::collect(db.range(lo.as_slice()..hi.as_slice()));
                let want: Vec<_> = model
                    .range(lo.clone()..hi.clone())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(&got, &want, "step {}: range", step);
                let lent = common::collect_ref(db.range(lo.as_slice()..hi.as_slice()));
                prop_assert_eq!(lent, want, "step {}: range by next_ref", step);
            }
            Op::TakeSnapshot => snapshot = Some((db.snapshot(), model.clone())),
            Op::CheckSnapshot => {
                if let Some((snap, frozen)) = &snapshot {
                    let got: Model = common::collect(snap.iter()).into_iter().collect();
                    prop_assert_eq!(&got, frozen, "step {}: snapshot scan", step);
                    let lent: Model = common::collect_ref(snap.iter()).into_iter().collect();
                    prop_assert_eq!(&lent, frozen, "step {}: snapshot scan by next_ref", step);
                    for k in [0u8, 7, 31] {
                        let got = snap.get(key(k)).unwrap().map(|v| v.to_vec());
                        prop_assert_eq!(got.as_ref(), frozen.get(&key(k)));
                    }
                }
            }
            Op::Flush => db.flush().unwrap(),
            Op::Compact => db.compact().unwrap(),
            Op::Reopen => {
                snapshot = None;
                db.close().unwrap();
                db = Db::open(dir.path(), options(background)).unwrap();
            }
        }
        prop_assert_eq!(
            &scan(&db),
            &model,
            "step {}: full scan after {:?}",
            step,
            "op"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(96),
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_model_with_background_work(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, true)?;
    }

    #[test]
    fn engine_matches_model_with_inline_flushes(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, false)?;
    }
}
