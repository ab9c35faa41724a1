//! File lifecycle: tables replaced by compaction stay on disk while a reader still holds
//! them and disappear when it lets go; orphans of an interrupted flush or compaction and
//! obsolete WAL segments are removed at open; a compaction running at close is dropped.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use lsm_core::{Db, Options};

fn options() -> Options {
    Options {
        background_threads: false,
        ..Options::default()
    }
}

fn files(dir: &Path, ext: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect()
}

#[test]
fn compacted_tables_live_until_the_last_reader_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    for round in 0..3 {
        for i in 0..200u32 {
            db.put(format!("k{i:04}"), format!("round{round}")).unwrap();
        }
        db.flush().unwrap();
    }
    let before = files(dir.path(), ".sst");
    assert_eq!(before.len(), 3);
    let snap = db.snapshot();
    let mut iter = db.iter();
    assert_eq!(&iter.next().unwrap().unwrap().0[..], b"k0000");

    db.compact().unwrap();
    let after = files(dir.path(), ".sst");
    assert!(
        before.is_subset(&after),
        "inputs deleted while readers hold them"
    );
    assert_eq!(after.len(), 4);
    assert_eq!(snap.get("k0100").unwrap().as_deref(), Some(&b"round2"[..]));
    assert_eq!(
        iter.count(),
        199,
        "the iterator reads the replaced tables to the end"
    );
    // The iterator is gone; the snapshot still holds the inputs.
    assert!(before.is_subset(&files(dir.path(), ".sst")));

    drop(snap);
    let now = files(dir.path(), ".sst");
    assert_eq!(
        now.len(),
        1,
        "all readers gone: only the compaction output is left: {now:?}"
    );
    assert!(now.is_disjoint(&before));
    assert_eq!(db.get("k0100").unwrap().as_deref(), Some(&b"round2"[..]));
}

#[test]
fn orphans_and_obsolete_segments_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        db.put("a", "1").unwrap();
        db.flush().unwrap();
        db.put("b", "2").unwrap();
        db.close().unwrap();
    }
    let tables = files(dir.path(), ".sst");
    // What a crash in the middle of a flush, a compaction or a manifest update leaves.
    std::fs::write(dir.path().join("999990.sst"), b"half-written table").unwrap();
    std::fs::write(dir.path().join("MANIFEST.tmp"), b"half-written manifest").unwrap();
    // A segment older than the manifest's log number (its data is in a table).
    std::fs::write(dir.path().join("000000.wal"), b"already flushed").unwrap();

    let db = Db::open(dir.path(), options()).unwrap();
    assert!(!dir.path().join("999990.sst").exists());
    assert!(!dir.path().join("MANIFEST.tmp").exists());
    assert!(!dir.path().join("000000.wal").exists());
    assert!(
        tables.is_subset(&files(dir.path(), ".sst")),
        "live tables kept"
    );
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get("b").unwrap().as_deref(), Some(&b"2"[..]));
    // The next file number moved past the orphan's, so no number is ever reused.
    db.put("c", "3").unwrap();
    db.flush().unwrap();
    let newest = files(dir.path(), ".sst").into_iter().max().unwrap();
    assert!(newest.as_str() > "999990.sst", "{newest}");
}

/// Closing while a compaction runs drops the compaction instead of finishing it: close
/// returns without writing the rest of its output, the partial output is removed at
/// once, the caller of `compact` gets `Closed`, and every write is there after reopening.
#[test]
fn close_cancels_a_running_compaction() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let fs = common::ControlledFs::new();
    // No background threads: nothing compacts but `compact`.
    let opts = options();
    let db = Db::open_with_fs(
        dir.path(),
        opts.clone(),
        Arc::new(common::Controlled(fs.clone())),
    )
    .unwrap();
    let n = 20_000u32;
    for part in 0..4 {
        for i in (part..n).step_by(4) {
            db.put(format!("key{i:06}"), format!("value{i}")).unwrap();
        }
        db.flush().unwrap();
    }
    let live = files(dir.path(), ".sst");
    assert_eq!(live.len(), 4);

    // The compaction stops at its first output table until released.
    fs.hold_tables();
    let compacting = {
        let db = db.clone();
        std::thread::spawn(move || db.compact())
    };
    common::wait_until(Duration::from_secs(10), "compaction to start", || {
        fs.blocked.load(Ordering::SeqCst) == 1
    });
    let closing = std::thread::spawn(move || db.close());
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !closing.is_finished(),
        "close waits for the compaction to stop"
    );
    fs.release_tables();
    assert!(matches!(
        compacting.join().unwrap(),
        Err(lsm_core::Error::Closed)
    ));
    closing.join().unwrap().unwrap();
    assert_eq!(files(dir.path(), ".sst"), live, "partial output removed");

    let db = Db::open(dir.path(), opts).unwrap();
    assert_eq!(db.stats().levels[0].files, 4);
    for i in (0..n).step_by(97) {
        let want = format!("value{i}");
        assert_eq!(
            db.get(format!("key{i:06}")).unwrap().as_deref(),
            Some(want.as_bytes())
        );
    }
    db.close().unwrap();
}
