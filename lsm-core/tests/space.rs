//! Space is reclaimed by compaction, and point misses are answered by bloom filters and
//! key ranges without reading table blocks.

mod common;

use lsm_core::{Db, Options};

fn options() -> Options {
    Options {
        memtable_size_bytes: 1 << 20,
        l1_target_bytes: 4 << 20,
        target_file_size_bytes: 2 << 20,
        ..Options::default()
    }
}

fn key(i: u32) -> [u8; 16] {
    // Spread keys over the key space like hashed keys.
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&h.to_be_bytes());
    k[8..12].copy_from_slice(&i.to_be_bytes());
    k
}

#[test]
fn overwrite_delete_and_compact_reclaims_space() {
    const KEYS: u32 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let mut value = [0u8; 100];
    for round in 0..5u8 {
        for i in 0..KEYS {
            value[0] = round;
            value[1..5].copy_from_slice(&i.to_le_bytes());
            db.put(key(i), value).unwrap();
        }
    }
    for i in (0..KEYS).step_by(2) {
        db.delete(key(i)).unwrap();
    }
    db.compact().unwrap();
    let live_bytes = (KEYS as u64 / 2) * (16 + 100);
    let on_disk = common::dir_bytes(dir.path());
    let ratio = on_disk as f64 / live_bytes as f64;
    eprintln!(
        "space amplification after compact: {ratio:.3} ({on_disk} bytes for {live_bytes} live)"
    );
    assert!(
        ratio <= 1.3,
        "space amplification {ratio:.3} ({on_disk} bytes on disk for {live_bytes} live)"
    );

    // No tombstone is left: every table entry is a live key.
    let stats = db.stats();
    let files: u64 = stats.levels.iter().map(|l| l.files).sum();
    assert!(files > 0);
    let entries = common::collect(db.iter()).len();
    assert_eq!(entries, KEYS as usize / 2);
    assert_eq!(db.get(key(2)).unwrap(), None);
    let v = db.get(key(3)).unwrap().unwrap();
    assert_eq!(v[0], 4);
    db.close().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let stats = db.stats();
    assert_eq!(
        stats.table_tombstones, 0,
        "tombstones left after a full compaction"
    );
    assert_eq!(
        stats.table_entries,
        KEYS as u64 / 2,
        "shadowed versions left"
    );
}

#[test]
fn misses_are_answered_by_bloom_filters() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        memtable_size_bytes: 64 << 10,
        l0_compaction_trigger: 100,
        l0_slowdown_trigger: 100,
        l0_stop_trigger: 100,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    // Overlapping L0 tables: every key range covers the probes below.
    for round in 0..8u32 {
        for i in 0..2000u32 {
            db.put(key(i * 8 + round), [1u8; 20]).unwrap();
        }
        db.flush().unwrap();
    }
    let files = db.stats().levels[0].files;
    assert!(files >= 8, "{files} L0 files");
    let before = db.stats();
    for i in 0..1000u32 {
        assert_eq!(db.get(key(1_000_000 + i)).unwrap(), None);
    }
    let after = db.stats();
    let checks = after.bloom_checks - before.bloom_checks;
    let negatives = after.bloom_negatives - before.bloom_negatives;
    let probes = after.table_probes - before.table_probes;
    assert!(
        checks >= 1000 * 7,
        "misses consulted filters of the overlapping tables ({checks})"
    );
    assert!(
        negatives as f64 >= 0.97 * checks as f64,
        "{negatives} of {checks} checks excluded the table"
    );
    assert!(
        probes as f64 <= 0.03 * checks as f64,
        "{probes} block probes for {checks} checks"
    );
    assert_eq!(
        after.bloom_false_positives - before.bloom_false_positives,
        probes
    );
}
