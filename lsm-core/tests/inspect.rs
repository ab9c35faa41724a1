//! The offline inspection functions: verify a directory, dump each kind of file, stats.

use lsm_core::{inspect, Db, Error, Options};

fn populated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for i in 0..300u32 {
        db.put(format!("key{i:04}"), format!("value{i}")).unwrap();
    }
    db.delete("key0001").unwrap();
    db.flush().unwrap();
    db.put("in-wal", b"\x00\x01binary").unwrap();
    db.close().unwrap();
    dir
}

fn file_with(dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap()
}

#[test]
fn verify_dump_and_stats_of_a_healthy_directory() {
    let dir = populated();
    let r = inspect::verify(dir.path()).unwrap();
    assert_eq!(
        (r.tables, r.table_entries, r.wal_segments, r.wal_batches),
        (1, 300, 1, 1)
    );
    assert!(r.torn_wal_tail.is_none());

    let mut out = Vec::new();
    inspect::dump(&file_with(dir.path(), ".sst"), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("300 entries (1 tombstones)"), "{text}");
    assert!(text.contains("key0001 @") && text.contains("deleted"));
    let mut out = Vec::new();
    inspect::dump(&file_with(dir.path(), ".wal"), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("put in-wal = \\x00\\x01binary"), "{text}");
    let mut out = Vec::new();
    inspect::dump(&dir.path().join("MANIFEST"), &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().contains("1 tables"));
    assert!(matches!(
        inspect::dump(&dir.path().join("LOCK"), &mut Vec::new()),
        Err(Error::InvalidArgument(_))
    ));

    let s = inspect::dir_stats(dir.path()).unwrap();
    assert_eq!(s.levels[0].0, 1);
    assert_eq!(s.levels[0].2, 300);
    assert_eq!(s.levels[0].3, 1);
    assert_eq!(s.wal_segments, 1);
}

#[test]
fn verify_finds_a_damaged_block_and_refuses_a_locked_directory() {
    let dir = populated();
    let sst = file_with(dir.path(), ".sst");
    let mut bytes = std::fs::read(&sst).unwrap();
    bytes[100] ^= 0xff; // inside the first data block
    std::fs::write(&sst, &bytes).unwrap();
    let e = inspect::verify(dir.path()).unwrap_err();
    assert!(e.is_corruption(), "{e}");
    assert!(
        e.to_string().contains(".sst") && e.to_string().contains("checksum"),
        "{e}"
    );

    let healthy = populated();
    let db = Db::open(healthy.path(), Options::default()).unwrap();
    assert!(matches!(
        inspect::verify(healthy.path()),
        Err(Error::Locked { .. })
    ));
    drop(db);
}
