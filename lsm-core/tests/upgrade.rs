//! Databases written by earlier builds open: a WAL segment in format version 1 (written
//! by builds before WAL version 2) is replayed, and new segments are written in the
//! current version beside it.

use std::path::Path;

use lsm_core::{Db, Options};

/// A version-1 segment as an earlier build wrote it (kept as a fuzz seed): segment 7,
/// sequences 213-243, puts of `wal000`..`wal029` (value: the number), then a delete of
/// `wal007`.
fn version_1_segment() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/wal_segment/seed-segment-v1"),
    )
    .unwrap()
}

/// The WAL segment files of `dir`, sorted.
fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

fn version_of(segment: &[u8]) -> u32 {
    u32::from_le_bytes(segment[8..12].try_into().unwrap())
}

#[test]
fn a_version_1_wal_segment_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    Db::open(dir.path(), Options::default())
        .unwrap()
        .close()
        .unwrap();
    // The fresh database's live segment, replaced by the old build's segment renumbered
    // to it (the segment number is in the header, under its checksum).
    let live = segments(dir.path()).pop().unwrap();
    let number: u64 = live.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut old = version_1_segment();
    assert_eq!(version_of(&old), 1);
    old[16..24].copy_from_slice(&number.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&old[..24]);
    old[24..32].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&live, &old).unwrap();

    let check = |db: &Db| {
        for i in 0..30u32 {
            let got = db.get(format!("wal{i:03}")).unwrap();
            if i == 7 {
                assert_eq!(got, None, "deleted by the segment's last record");
            } else {
                assert_eq!(got.as_deref(), Some(i.to_string().as_bytes()), "wal{i:03}");
            }
        }
    };
    let db = Db::open(dir.path(), Options::default()).unwrap();
    check(&db);
    assert_eq!(db.stats().last_sequence, 243);
    db.put("new", "after the upgrade").unwrap();
    db.close().unwrap();
    // Recovery moved the old records into a table; the segment written since is version 2.
    for s in segments(dir.path()) {
        assert_eq!(
            version_of(&std::fs::read(&s).unwrap()),
            2,
            "{}",
            s.display()
        );
    }
    let db = Db::open(dir.path(), Options::default()).unwrap();
    check(&db);
    assert_eq!(
        db.get("new").unwrap().as_deref(),
        Some(&b"after the upgrade"[..])
    );
    db.close().unwrap();
}
