//! Several writers and scanning readers while background flushes and compactions run:
//! scans always see keys in order, a snapshot's view never changes, and every
//! acknowledged write is present at the end.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lsm_core::Db;

const WRITERS: usize = 4;
const WRITES_PER_WRITER: usize = 3000;

#[test]
fn writers_readers_flush_and_compaction_together() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), common::small_options()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..WRITES_PER_WRITER {
                    // Each writer overwrites its own small key set with increasing values,
                    // so a reader can check per-key monotonicity.
                    let key = format!("w{w}-k{:02}", i % 50);
                    db.put(&key, format!("{i:08}")).unwrap();
                    if i % 97 == 0 {
                        db.delete(format!("w{w}-gone{i}")).unwrap();
                    }
                }
            })
        })
        .collect();

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut scans = 0u64;
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let snap = db.snapshot();
                    let first = common::collect(snap.iter());
                    assert!(
                        first.windows(2).all(|w| w[0].0 < w[1].0),
                        "scan out of order"
                    );
                    // Let writers, flushes and compactions move on, then look again.
                    std::thread::sleep(Duration::from_millis(2));
                    let second = common::collect(snap.iter());
                    assert_eq!(first, second, "a snapshot's view changed");
                    for (k, v) in first.iter().take(20) {
                        assert_eq!(snap.get(k).unwrap().as_deref(), Some(&v[..]));
                    }
                    scans += 1;
                }
                scans
            })
        })
        .collect();

    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let scans: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(scans > 0);

    db.flush().unwrap();
    let stats = db.stats();
    assert!(stats.flushes > 5, "flushes ran: {stats:?}");
    assert!(
        stats.compactions + stats.trivial_moves > 0,
        "compactions ran: {stats:?}"
    );
    for w in 0..WRITERS {
        for k in 0..50 {
            let last = (0..WRITES_PER_WRITER)
                .filter(|i| i % 50 == k)
                .max()
                .unwrap();
            let got = db.get(format!("w{w}-k{k:02}")).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(format!("{last:08}").as_bytes()),
                "w{w}-k{k:02}"
            );
        }
    }
    db.close().unwrap();
    let db = Db::open(dir.path(), common::small_options()).unwrap();
    assert_eq!(common::collect(db.iter()).len(), WRITERS * 50);
}

fn scattered_writes(db: &Db, n: u32) {
    for i in 0..n {
        db.put(
            format!("k{:08}", i.wrapping_mul(2_654_435_761)),
            i.to_le_bytes(),
        )
        .unwrap();
    }
}

/// Writes leave the memtable's ordering to later. On a database that is being scanned,
/// once a burst leaves a backlog of unlinked entries, the flush thread links it without
/// any reader asking (so a scan does not pay for a whole memtable's worth), and a scan
/// then sees every write.
#[test]
fn the_flush_thread_links_a_backlog_of_writes_when_scans_happen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), lsm_core::Options::default()).unwrap();
    db.put("a", "1").unwrap();
    assert_eq!(db.iter().count(), 1);
    let n = 20_000u32;
    scattered_writes(&db, n);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let unlinked = db.stats().memtable_unlinked_entries;
        // Below the backlog at which the flush thread is asked to link (8192).
        if unlinked < 8192 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unlinked} entries still unlinked"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        db.stats().sealed_memtables,
        0,
        "the writes fit one memtable"
    );
    let scanned: Vec<_> = db.iter().map(|r| r.unwrap()).collect();
    assert_eq!(scanned.len(), n as usize + 1);
    assert!(scanned.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(db.stats().memtable_unlinked_entries, 0);
}

/// Where nothing reads in order, the backlog is left for the flush (one sorted batch,
/// the cheapest way) or the first scan, which links all of it and sees every write.
#[test]
fn without_scans_the_backlog_waits_for_the_first_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), lsm_core::Options::default()).unwrap();
    let n = 20_000u32;
    scattered_writes(&db, n);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(db.stats().memtable_unlinked_entries, u64::from(n));
    let scanned: Vec<_> = db.iter().map(|r| r.unwrap()).collect();
    assert_eq!(scanned.len(), n as usize);
    assert!(scanned.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(db.stats().memtable_unlinked_entries, 0);
}

/// A memtable that replaces a scanned one is kept linked too (scans are expected to go
/// on), across rotations.
#[test]
fn a_scanned_memtables_successor_is_linked_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let opts = lsm_core::Options {
        memtable_size_bytes: 2 << 20,
        ..lsm_core::Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    db.put("a", "1").unwrap();
    assert_eq!(db.iter().count(), 1);
    scattered_writes(&db, 60_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = db.stats();
        if s.flushes > 0 && s.memtable_unlinked_entries < 8192 {
            break;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
