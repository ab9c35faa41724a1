//! A failed background flush or a failed WAL write poisons the database: further writes
//! get a clear error instead of an acknowledgement the engine could not keep, reads of
//! what is already there keep working, and reopening recovers every acknowledged write.

mod common;

use common::{Controlled, ControlledFs};
use lsm_core::{Db, Error, Options};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn options() -> Options {
    Options {
        memtable_size_bytes: 8 * 1024,
        ..Options::default()
    }
}

#[test]
fn failed_background_flush_poisons_writes_but_not_reads() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ControlledFs::new();
    fs.fail_tables.store(true, Ordering::SeqCst);
    let db = Db::open_with_fs(dir.path(), options(), Arc::new(Controlled(fs.clone()))).unwrap();
    let mut acked = 0u32;
    let err = loop {
        match db.put(format!("k{acked:05}"), [1u8; 64]) {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 100_000, "writes never failed");
    };
    match &err {
        Error::Poisoned(reason) => assert!(reason.contains("flush"), "{reason}"),
        other => panic!("expected Poisoned, got {other}"),
    }
    assert!(matches!(db.delete("x"), Err(Error::Poisoned(_))));
    // Reads of acknowledged data keep working.
    for i in (0..acked).step_by(17) {
        assert!(db.get(format!("k{i:05}")).unwrap().is_some());
    }
    db.close().unwrap();

    fs.fail_tables.store(false, Ordering::SeqCst);
    let db = Db::open_with_fs(dir.path(), options(), Arc::new(Controlled(fs))).unwrap();
    assert_eq!(common::collect(db.iter()).len(), acked as usize);
}

#[test]
fn failed_wal_write_is_an_error_then_poison() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ControlledFs::new();
    let db = Db::open_with_fs(dir.path(), options(), Arc::new(Controlled(fs.clone()))).unwrap();
    db.put("before", "1").unwrap();
    fs.fail_wal_writes.store(true, Ordering::SeqCst);
    let e = db.put("during", "2").unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(
        e.to_string().contains(".wal"),
        "error names the segment: {e}"
    );
    fs.fail_wal_writes.store(false, Ordering::SeqCst);
    assert!(matches!(db.put("after", "3"), Err(Error::Poisoned(_))));
    assert!(matches!(db.flush(), Err(Error::Poisoned(_))));
    assert_eq!(db.get("before").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(
        db.get("during").unwrap(),
        None,
        "a failed write is not visible"
    );
    db.close().unwrap();
    let db = Db::open_with_fs(dir.path(), options(), Arc::new(Controlled(fs))).unwrap();
    assert_eq!(db.get("before").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get("after").unwrap(), None);
}
