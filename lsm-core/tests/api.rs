//! The public API end to end: reads, writes, batches, ranges, snapshots, reopen, limits,
//! locking, close and checkpoints.

mod common;

use common::{collect, small_options};
use lsm_core::{Db, Error, Options, WriteBatch, MAX_KEY_BYTES};

#[test]
fn put_get_delete_and_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"k").unwrap(), None);
    db.put(b"k", b"v1").unwrap();
    db.put(b"k", b"v2").unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v2"[..]));
    db.delete(b"k").unwrap();
    assert_eq!(db.get(b"k").unwrap(), None);
    db.put(b"", b"empty key works").unwrap();
    assert_eq!(
        db.get(b"").unwrap().as_deref(),
        Some(&b"empty key works"[..])
    );
    db.put(b"binary\x00\xff", [0u8, 1, 2, 255]).unwrap();
    assert_eq!(
        db.get(b"binary\x00\xff").unwrap().as_deref(),
        Some(&[0u8, 1, 2, 255][..])
    );
}

#[test]
fn batches_ranges_prefixes_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    let mut b = WriteBatch::new();
    for i in 0..100u32 {
        b.put(format!("key{i:03}"), format!("v{i}"));
    }
    b.delete("key050");
    db.write(b).unwrap();
    let snap = db.snapshot();
    db.put("key000", "changed").unwrap();
    db.delete("key001").unwrap();
    db.flush().unwrap();

    let all = collect(db.iter());
    assert_eq!(all.len(), 98);
    assert_eq!(all[0], (b"key000".to_vec(), b"changed".to_vec()));
    let r = collect(db.range(&b"key010"[..]..&b"key013"[..]));
    let keys: Vec<_> = r
        .iter()
        .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
        .collect();
    assert_eq!(keys, ["key010", "key011", "key012"]);
    let r = collect(db.range(&b"key048"[..]..=&b"key051"[..]));
    assert_eq!(r.len(), 3, "deleted key050 is skipped");
    assert_eq!(collect(db.prefix("key09")).len(), 10);
    assert_eq!(
        collect(db.range::<&[u8], _>((
            std::ops::Bound::Excluded(&b"key098"[..]),
            std::ops::Bound::Unbounded
        )))
        .len(),
        1
    );

    // The snapshot still sees the state before the later writes, across the flush.
    assert_eq!(snap.get("key000").unwrap().as_deref(), Some(&b"v0"[..]));
    assert!(snap.get("key001").unwrap().is_some());
    assert_eq!(collect(snap.iter()).len(), 99);
    assert_eq!(collect(snap.prefix("key00")).len(), 10);
}

#[test]
fn reopen_recovers_wal_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), small_options()).unwrap();
        for i in 0..2000u32 {
            db.put(format!("k{i}"), format!("v{i}")).unwrap();
        }
        for i in (0..2000u32).step_by(3) {
            db.delete(format!("k{i}")).unwrap();
        }
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), small_options()).unwrap();
    for i in 0..2000u32 {
        let got = db.get(format!("k{i}")).unwrap();
        if i % 3 == 0 {
            assert_eq!(got, None, "k{i}");
        } else {
            assert_eq!(got.as_deref(), Some(format!("v{i}").as_bytes()));
        }
    }
    assert!(db.stats().flushes > 0 || db.stats().levels.iter().any(|l| l.files > 0));
    // One sequence number per operation, recovered exactly (replication relies on it).
    assert_eq!(db.last_sequence(), 2000 + 667);
    // Sequence numbers continue after recovery: a new write shadows recovered ones.
    db.put("k1", "new").unwrap();
    assert_eq!(db.get("k1").unwrap().as_deref(), Some(&b"new"[..]));
    let mut batch = WriteBatch::new();
    batch.put("a", "1");
    batch.delete("b");
    db.write(batch).unwrap();
    assert_eq!(db.last_sequence(), 2000 + 667 + 3);
}

#[test]
fn second_open_is_refused_while_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    match Db::open(dir.path(), Options::default()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    db.close().unwrap();
    Db::open(dir.path(), Options::default()).unwrap();
}

#[test]
fn limits_and_invalid_options_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = Options {
        memtable_size_bytes: 1,
        ..Options::default()
    };
    let e = Db::open(dir.path(), bad).unwrap_err();
    assert!(e.to_string().contains("memtable_size_bytes"), "{e}");
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let e = db.put(vec![1u8; MAX_KEY_BYTES + 1], b"v").unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    db.put(vec![1u8; MAX_KEY_BYTES], b"v").unwrap();
}

#[test]
fn close_makes_other_clones_fail() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let other = db.clone();
    db.put("a", "1").unwrap();
    db.close().unwrap();
    assert!(matches!(other.put("b", "2"), Err(Error::Closed)));
    assert!(matches!(other.get("a"), Err(Error::Closed)));
    assert!(matches!(other.iter().next(), Some(Err(Error::Closed))));
    drop(other);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn drop_of_last_handle_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        db.put("a", "1").unwrap();
    }
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn large_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    let big: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    db.put("big", &big).unwrap();
    db.put("small", "x").unwrap();
    db.flush().unwrap();
    assert_eq!(db.get("big").unwrap().as_deref(), Some(&big[..]));
    db.close().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    assert_eq!(db.get("big").unwrap().as_deref(), Some(&big[..]));
}

#[test]
fn checkpoint_opens_as_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    for i in 0..3000u32 {
        db.put(format!("k{i:05}"), format!("v{i}")).unwrap();
    }
    // Some data only in the WAL, some in tables.
    let target = dir.path().join("backup");
    assert_eq!(db.checkpoint(&target).unwrap(), 3000);
    db.put("after", "not in the checkpoint").unwrap();
    assert!(
        db.checkpoint(&target).is_err(),
        "non-empty target is refused"
    );
    let copy = Db::open(&target, small_options()).unwrap();
    assert_eq!(copy.last_sequence(), 3000);
    assert_eq!(copy.get("after").unwrap(), None);
    let all = collect(copy.iter());
    assert_eq!(all.len(), 3000);
    for (i, (k, v)) in all.iter().enumerate() {
        assert_eq!(k, format!("k{i:05}").as_bytes());
        assert_eq!(v, format!("v{i}").as_bytes());
    }
    // The original keeps working and its compactions do not disturb the copy.
    db.compact().unwrap();
    assert_eq!(collect(copy.iter()).len(), 3000);
}

#[test]
fn sync_durability_commits_with_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        durability: lsm_core::Durability::Sync,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    db.put(format!("t{t}-{i}"), "v").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = db.stats();
    assert_eq!(s.wal_syncs, s.commit_groups);
    assert!(s.commit_groups <= 400);
    assert_eq!(collect(db.iter()).len(), 400);
}
