//! Flush does not stop writers: with table creation held back by the filesystem seam, the
//! flush thread is stuck mid-flush, yet puts into the fresh memtable complete. Only when
//! the sealed-memtable queue is full does a writer wait, and that wait is counted.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{wait_until, Controlled, ControlledFs};
use lsm_core::{Db, Options};

const LIMIT: Duration = Duration::from_secs(30);

fn options() -> Options {
    Options {
        memtable_size_bytes: 16 * 1024,
        max_sealed_memtables: 2,
        ..Options::default()
    }
}

#[test]
fn writers_continue_while_a_flush_is_held_back_then_stall_counted() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ControlledFs::new();
    fs.hold_tables();
    let db = Db::open_with_fs(dir.path(), options(), Arc::new(Controlled(fs.clone()))).unwrap();
    let value = [7u8; 100];

    // Fill the first memtable until it is sealed and the flush thread is stuck in it.
    let mut i = 0u32;
    while db.stats().sealed_memtables == 0 {
        db.put(format!("k{i:06}"), value).unwrap();
        i += 1;
        assert!(i < 10_000, "memtable never sealed");
    }
    wait_until(LIMIT, "the flush thread to block on table creation", || {
        fs.blocked.load(Ordering::SeqCst) == 1
    });

    // Puts into the fresh memtable complete while the flush is held.
    let before = i;
    for _ in 0..40 {
        db.put(format!("k{i:06}"), value).unwrap();
        i += 1;
    }
    let s = db.stats();
    assert_eq!(s.flushes, 0, "the flush is still held");
    assert_eq!(fs.blocked.load(Ordering::SeqCst), 1);
    assert_eq!(s.write_stalls, 0, "no writer waited");
    assert!(i - before == 40);

    // Keep writing until the sealed queue is full: that writer must wait, counted.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let db = db.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            for j in 0..2_000u32 {
                db.put(format!("late{j:06}"), value).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    wait_until(LIMIT, "a counted write stall", || {
        db.stats().write_stalls > 0
    });
    assert!(
        !done.load(Ordering::SeqCst),
        "the writer finished although flushing is held"
    );
    assert_eq!(db.stats().sealed_memtables, 2);

    // Release the flush: the stalled writer finishes and everything is readable.
    fs.release_tables();
    writer.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    db.flush().unwrap();
    let s = db.stats();
    assert!(s.flushes >= 2);
    assert!(s.write_stall_micros > 0);
    assert_eq!(common::collect(db.prefix("k")).len(), i as usize);
    assert_eq!(common::collect(db.prefix("late")).len(), 2_000);
}

/// Regression: `close` used to wait for the commit leader before stopping the background
/// threads, so closing while a writer was stalled behind a held-back flush hung forever.
/// Now the stalled writer wakes with `Error::Closed` and `close` returns.
#[test]
fn close_wakes_a_stalled_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ControlledFs::new();
    fs.hold_tables();
    let db = Db::open_with_fs(dir.path(), options(), Arc::new(Controlled(fs.clone()))).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let db = db.clone();
        std::thread::spawn(move || {
            for j in 0..100_000u32 {
                if let Err(e) = db.put(format!("k{j:06}"), [1u8; 100]) {
                    let _ = tx.send(Some(e));
                    return;
                }
            }
            let _ = tx.send(None);
        });
    }
    wait_until(LIMIT, "a counted write stall", || {
        db.stats().write_stalls > 0
    });
    // `close` also joins the flush thread, which stays stuck in the held table creation
    // until released; the stalled writer must not wait for that.
    let closer = std::thread::spawn(move || db.close());
    let err = rx
        .recv_timeout(LIMIT)
        .expect("the stalled writer was not woken by close")
        .expect("the stalled write must fail");
    assert!(matches!(err, lsm_core::Error::Closed), "{err}");
    fs.release_tables();
    closer.join().unwrap().unwrap();
    // Everything acknowledged before the close is recovered from the WAL.
    let db = Db::open(dir.path(), options()).unwrap();
    assert!(!common::collect(db.iter()).is_empty());
}
